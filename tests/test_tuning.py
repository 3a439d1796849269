import json

from pipeline import layout
from pipeline.reporting.tuning import halvings, summarize


def history(bleus: list[float], rates: list[float]) -> list[dict]:
    return [
        {"epoch": i + 1, "val_bleu": b, "learning_rate": r}
        for i, (b, r) in enumerate(zip(bleus, rates, strict=True))
    ]


def test_halvings_compare_the_best_score_before_and_after_the_first_one():
    rows = history([10, 20, 19, 22, 21, 23], [2e-3, 2e-3, 2e-3, 1e-3, 1e-3, 5e-4])
    # The rate fell between epochs 3 and 4 and between 5 and 6.
    assert halvings(rows) == {"after_epochs": [3, 5], "best_before": 20, "best_after": 23}
    nothing = {"after_epochs": [], "best_before": None, "best_after": None}
    assert halvings(history([1, 2], [1e-3, 1e-3])) == nothing
    # A warmup schedule's 1/sqrt(step) decay lowers the rate every epoch without halving it.
    assert halvings(history([1, 2, 3, 4], [1e-3, 7.1e-4, 5.8e-4, 5e-4])) == nothing


def write_run(folder, dropout: float, best: float, penalties: dict | None = None) -> None:
    folder.mkdir()
    config = {"model": {"variant": "gru_bahdanau", "dropout": dropout, "tie_embeddings": False, "units": 256},
              "train": {"label_smoothing": 0.0, "learning_rate": 0.002}}  # fmt: skip
    rows = history([best - 1, best, best - 0.5], [2e-3, 2e-3, 1e-3])
    summary = {"epochs": 3, "best_epoch": 2, "stopped_by": "epochs", "val_bleu_greedy": best + 0.3,
               "best_epoch_val_bleu_greedy": best, "train_seconds": 600.0, "history": rows,
               "averaging": {"epochs": [1, 2, 3], "val_bleu_greedy": best + 0.3, "kept": True}}  # fmt: skip
    decoding = {
        "length_penalty": 0.8,
        "validation_bleu_by_length_penalty": penalties or {"0.6": best + 1, "0.8": best + 2},
    }
    (folder / layout.CONFIG).write_text(json.dumps(config))
    (folder / layout.SUMMARY).write_text(json.dumps(summary))
    (folder / layout.DECODING).write_text(json.dumps(decoding))
    (folder / layout.LOG).write_text("epoch,val_bleu\n1,1.0\n")
    (folder / layout.TRAINING_PLOT).write_bytes(b"\x89PNG")


def test_summary_table_has_a_row_per_run_with_its_setting_and_scores(tmp_path):
    write_run(tmp_path / "a", 0.1, 30.0)
    write_run(tmp_path / "b", 0.3, 32.0)
    result = json.loads(summarize([tmp_path / "a", tmp_path / "b"], tmp_path / "out").read_text())
    assert [r["settings"]["dropout"] for r in result["runs"]] == [0.1, 0.3]
    table = (tmp_path / "out" / "tuning.md").read_text()
    assert (
        "| `b` | gru_bahdanau | 0.3 | 0.0 | False | 256 | 0.002 | - | - | 3 | 2 | 32.0 | 32.3 [1, 2, 3] "
        "| 33.0 | **34.0** |" in table
    )
    assert (tmp_path / "out" / "tuning.png").read_bytes().startswith(b"\x89PNG")
    assert (
        "- `a`: learning rate halved after epochs [2]; best greedy validation BLEU 30.0 up to the first"
        in table
    )


def test_a_transformers_row_shows_its_depths_and_a_config_from_before_decoder_layers_is_symmetric(tmp_path):
    tiny = {"embedding_dim": 128, "ff_dim": 512}
    for name, model in (("new", {**tiny, "layers": 6, "decoder_layers": 1}), ("old", {**tiny, "layers": 3})):
        write_run(tmp_path / name, 0.1, 30.0)
        config = json.loads((tmp_path / name / layout.CONFIG).read_text())
        config["model"].update(variant="transformer", **model)
        (tmp_path / name / layout.CONFIG).write_text(json.dumps(config))
    write_run(tmp_path / "gru", 0.1, 30.0)
    summarize([tmp_path / n for n in ("new", "old", "gru")], tmp_path / "out")
    table = (tmp_path / "out" / "tuning.md").read_text()
    assert "| warmup_steps | embedding_dim | ff_dim | layers | decoder_layers | epochs |" in table
    assert "| `new` | transformer | 0.1 | 0.0 | False | 256 | 0.002 | - | - | 128 | 512 | 6 | 1 |" in table
    assert "| `old` | transformer | 0.1 | 0.0 | False | 256 | 0.002 | - | - | 128 | 512 | 3 | 3 |" in table
    assert "| `gru` | gru_bahdanau | 0.1 | 0.0 | False | 256 | 0.002 | - | - | - | - | - | - | 3 |" in table
    summarize([tmp_path / "gru"], tmp_path / "recurrent")  # no Transformer, no depth columns
    assert "layers" not in (tmp_path / "recurrent" / "tuning.md").read_text()
    assert "ff_dim" not in (tmp_path / "recurrent" / "tuning.md").read_text()


def test_each_length_penalty_any_run_tried_has_its_column(tmp_path):
    write_run(tmp_path / "a", 0.3, 30.0)  # 0.6 and 0.8
    write_run(tmp_path / "b", 0.1, 32.0, penalties={"0.0": 31.0, "0.8": 34.0, "2.0": 33.0})
    summarize([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    table = (tmp_path / "out" / "tuning.md").read_text()
    assert "| beam 5, lp 0.0 | beam 5, lp 0.6 | beam 5, lp 0.8 | beam 5, lp 2.0 |" in table
    assert (
        "| `a` | gru_bahdanau | 0.3 | 0.0 | False | 256 | 0.002 | - | - | 3 | 2 | 30.0 | 30.3 [1, 2, 3] "
        "| - | 31.0 | **32.0** | - |" in table
    )
    assert "| 31.0 | - | **34.0** | 33.0 |" in table


def test_a_run_stopped_before_its_end_shows_its_epochs_so_far(tmp_path):
    write_run(tmp_path / "a", 0.3, 32.0)
    stopped = tmp_path / "b"
    stopped.mkdir()
    config = {"model": {"dropout": 0.3, "tie_embeddings": True, "units": 256},
              "train": {"label_smoothing": 0.1, "learning_rate": 0.002}}  # fmt: skip
    (stopped / layout.CONFIG).write_text(json.dumps(config))
    (stopped / layout.LOG).write_text(
        "epoch,val_bleu,learning_rate,seconds\n1,13.4,0.002,60.0\n2,19.7,0.002,60.0\n3,18.0,0.002,60.0\n"
    )
    result = json.loads(summarize([tmp_path / "a", stopped], tmp_path / "out").read_text())
    row = result["runs"][1]
    assert (row["epochs"], row["best_epoch"], row["val_bleu_best_epoch"]) == (3, 2, 19.7)
    assert row["train_minutes"] == 3.0
    table = (tmp_path / "out" / "tuning.md").read_text()
    row = "| `b` | - | 0.3 | 0.1 | True | 256 | 0.002 | - | - | 3 (unfinished) | 2 | 19.7 | - | - | - |"
    assert row in table
    assert "| run | 1 | 2 | 3 |" in table
    assert "| `a` | 31.0 | 32.0 | 31.5* |" in table  # the rate fell after epoch 2
    assert "| `b` | 13.4 | 19.7 | 18.0 |" in table
