"""The report stage's pieces: BLEU by length bucket, the table, the figures, the README splice; the
whole comparison from report folders and the test split's file, without TensorFlow or the models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import layout
from pipeline.constants import VARIANTS
from pipeline.errors import UserError
from pipeline.reporting import plots
from pipeline.reporting.readme import splice_readme
from pipeline.reporting.report import (
    bleu_by_length,
    compact_table,
    compare,
    gradient_table,
    markdown_table,
    read_split_file,
    rising_line,
    still_rising,
)

ROOT = Path(__file__).resolve().parents[1]
REPORTING = ["report", "lesson", "variance", "tuning", "plots", "readme", "archive", "reproduce"]
# What a stage that reads report folders must not load: the models, the search, the corpus, TensorFlow.
HEAVY = (
    "tensorflow",
    "tensorflow_datasets",
    "keras",
    "pipeline.models",
    "pipeline.decoding",
    "pipeline.corpus",
)


def test_bleu_by_length_scores_each_bucket_on_its_own_sentences():
    sources = ["ein kurzer satz", " ".join(["wort"] * 12), " ".join(["wort"] * 30)]
    references = ["the cat sat on the mat", "a dog runs in the park today", "two men play football"]
    # Perfect on the short and the long sentence, nothing right on the 12-word one.
    hypotheses = [references[0], "xx yy zz qq rr ss tt", references[2]]
    buckets = bleu_by_length(sources, hypotheses, references)
    assert list(buckets) == ["1-10", "11-15", "16-20", "21-25", "26+"]
    assert buckets["1-10"] == {"sentences": 1, "bleu": 100.0}
    assert buckets["11-15"] == {"sentences": 1, "bleu": 0.0}
    assert buckets["16-20"] == buckets["21-25"] == {"sentences": 0, "bleu": None}
    assert buckets["26+"] == {"sentences": 1, "bleu": 100.0}


def row(variant: str, attention: str | None, bleu: float, p: float | None = None,
        stopped_by: str = "early stopping") -> dict:  # fmt: skip
    return {
        "variant": variant, "cell": "gru", "attention": attention, "parameters": 1234567, "epochs": 12,
        "best_epoch": 9, "train_seconds": 300.0, "ceiling_gflops": [365.4, 373.1], "tokens_per_second": 6543,
        "stopped_by": stopped_by,
        "length_penalty": 0.6, "val_bleu": bleu + 1, "val_chrf": 50.0, "test_bleu_greedy": bleu - 0.5,
        "test_bleu": bleu, "test_bleu_ci": 0.85, "test_bleu_lc": bleu + 0.75, "test_chrf": 49.0,
        "p_vs_baseline": p,
        "test_bleu_by_length": {
            "1-10": {"sentences": 5, "bleu": bleu + 2}, "11+": {"sentences": 7, "bleu": None}
        },
    }  # fmt: skip


def test_markdown_table_has_one_row_per_variant_with_its_numbers():
    rows = [row("gru", None, 20.5, p=0.0009765), row("gru_bahdanau", "bahdanau", 31.25)]
    table = markdown_table(rows, "de-en", "quick", 12, "gru_bahdanau")
    lines = table.splitlines()
    assert lines[0].startswith("Multi30k de-en, preset `quick`, test_2016_flickr (12 sentences)")
    assert "against `gru_bahdanau`" in lines[0]
    assert (
        '"val BLEU" is the validation split translated the same way (beam 5 at the row\'s length penalty)'
        in lines[0]
    )
    assert lines[2].split(" | ")[13:15] == ["p vs `gru_bahdanau`", "length penalty"]
    rendered = [line for line in lines if line.startswith("| `")]
    assert len(rendered) == 2
    assert rendered[1] == (
        "| `gru_bahdanau` | bahdanau | 1,234,567 | 12 | 9 | 5.0 | 365.4-373.1 | 6,543 | 32.25 | 30.75 "
        "| **31.25** ± 0.85 | 32.0 | 49.0 | - | 0.6 | 33.25 | - |"
    )
    assert "| **20.5** ± 0.85 | 21.25 | 49.0 | 0.001 | 0.6 |" in rendered[0]
    assert "1-10: 5, 11+: 7" in table
    assert "Every variant stopped by early stopping or its epoch limit (early stopping: `gru`, " in table


def test_the_compact_table_keeps_the_scores_and_the_cost_of_each_row():
    rows = [row("gru", None, 20.5, p=0.0009765), row("gru_bahdanau", "bahdanau", 31.25)]
    lines = compact_table(rows, "gru_bahdanau").splitlines()
    header = (
        "| variant | attention | test BLEU | p vs `gru_bahdanau` | test BLEU greedy | val BLEU | train min |"
    )
    assert lines[0] == header + " ceiling GFLOP/s |"
    assert lines[2] == "| `gru` | - | **20.5** ± 0.85 | 0.001 | 20.0 | 21.5 | 5.0 | 365.4-373.1 |"
    assert (
        lines[3] == "| `gru_bahdanau` | bahdanau | **31.25** ± 0.85 | - | 30.75 | 32.25 | 5.0 | 365.4-373.1 |"
    )


def test_a_table_whose_variants_were_still_rising_says_so_and_which_claims_it_cannot_read():
    # quick's 3 epochs: the single-vector rows still climbing; converge's last epochs: levelled off.
    histories = {"rnn": [6.81, 7.1, 9.01], "gru": [9.97, 15.16, 18.64], "gru_bahdanau": [29.0, 31.0, 31.5]}
    rising = still_rising(histories)
    assert list(rising) == ["rnn", "gru"] and round(rising["rnn"], 3) == 0.269
    assert still_rising({"rnn": [9.39, 10.14, 11.45, 11.97], "gru": [20.0]}) == {}
    caption = rising_line(rising)
    assert caption.startswith("Far from converged: the last epoch still raised the validation BLEU (greedy) "
                              "by more than 10% (`rnn` +27%, `gru` +23%)")  # fmt: skip
    claims = ("Attention against a single context vector; A gated cell against the tanh RNN; "
              "LSTM against GRU, about equal)")  # fmt: skip
    assert f"the lesson's claims on them ({claims} cannot be read from this table" in caption
    assert rising_line({}) == ""
    rows = [row("gru", None, 20.5), row("gru_bahdanau", "bahdanau", 31.25)]
    table = markdown_table(rows, "de-en", "quick", 12, "gru_bahdanau", caption=caption)
    assert f"\n\n{caption}\n" in table and caption not in markdown_table(rows, "de-en", "quick", 12, "gru")
    assert compact_table(rows, "gru_bahdanau", caption).endswith(f"|\n\n{caption}\n")
    assert compact_table(rows, "gru_bahdanau").endswith("|\n")


def test_markdown_table_says_whether_the_length_penalty_was_tuned():
    rows = [row("gru_bahdanau", "bahdanau", 31.25)]
    untuned = markdown_table(rows, "de-en", "quick", 12, "gru_bahdanau", penalties=(0.6,))
    assert "beam 5 and length penalty 0.6 (not tuned in this preset)" in untuned
    tuned = markdown_table(rows, "de-en", "converge", 12, "gru_bahdanau", penalties=(0.0, 0.6, 1.2))
    assert "each model's length penalty chosen on validation from 0.0, 0.6, 1.2" in tuned
    same = {"gru": (0.0, 0.6), "gru_bahdanau": (0.0, 0.6)}  # each variant's config.json: one phrase
    table = markdown_table(rows, "de-en", "converge", 12, "gru_bahdanau", penalties=same)
    assert "chosen on validation from 0.0, 0.6 (greedy" in table
    grown = {"gru": (0.0, 2.0), "transformer": (0.0, 2.0, 3.0), "gru_bahdanau": (0.0, 2.0)}
    assert (
        "each model's length penalty chosen on validation (0.0, 2.0 for `gru`, `gru_bahdanau`; "
        "0.0, 2.0, 3.0 for `transformer`)"
    ) in markdown_table(rows, "de-en", "converge", 12, "gru_bahdanau", penalties=grown)


def test_markdown_table_names_the_runs_the_time_guard_ended():
    rows = [row("gru", None, 20.5, p=0.2, stopped_by="time budget"), row("gru_bahdanau", "bahdanau", 31.25)]
    table = markdown_table(rows, "de-en", "quick", 12, "gru_bahdanau")
    assert "The time guard ended the training of: `gru`." in table.splitlines()


def test_gradient_table_gives_first_middle_last_and_their_ratio():
    flows = {
        "rnn": np.array([1e-6, 1e-4, 1e-3, 1e-2, 1e-1]),
        "gru_luong": np.array([2e-3, 3e-3, 1e-3, 5e-3, 4e-3]),
    }
    table = gradient_table(flows)
    assert "| variant | position 1 | position 3 | position 5 | position 1 / position 5 |" in table
    assert "| `rnn` | 1.0e-06 | 1.0e-03 | 1.0e-01 | 1e-05 |" in table
    assert "| `gru_luong` | 2.0e-03 | 1.0e-03 | 4.0e-03 | 0.5 |" in table


def test_plot_history_draws_a_resumed_run(tmp_path):
    log = tmp_path / "run" / layout.LOG
    log.parent.mkdir()
    header = (
        "epoch,process,loss,masked_accuracy,val_loss,val_masked_accuracy,xent,val_xent,val_bleu,"
        "learning_rate,seconds"
    )
    epochs = [
        "1,1,5.1,0.20,4.6,0.25,4.9,4.4,3.5,0.001,60.0",
        "2,1,4.2,0.30,4.0,0.33,4.0,3.8,9.1,0.001,59.5",
        "3,2,3.6,0.38,3.7,0.37,3.4,3.5,12.4,0.0005,61.2",  # resumed after a kill, rate halved
    ]
    log.write_text("\n".join([header, *epochs]) + "\n")
    out = plots.plot_history(log, tmp_path / layout.TRAINING_PLOT)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an older log, without xent nor the process column: the loss instead
    log.write_text("epoch,loss,val_loss\n1,5.0,4.5\n2,4.0,3.9\n")
    assert plots.plot_history(log, tmp_path / "old.png").read_bytes()[:4] == b"\x89PNG"


def test_figures_are_written(tmp_path):
    rows = [row("gru", None, 20.5), row("gru_bahdanau", "bahdanau", 31.25)]
    outputs = [
        plots.plot_bleu_by_variant(rows, tmp_path / "a.png"),
        plots.plot_bleu_by_length(rows, tmp_path / "b.png"),
        plots.plot_gradient_flow({"gru": np.array([1e-4, 1e-2, 1.0])}, tmp_path / "c.png"),
        plots.plot_attention(
            [{"source": ["▁a", "▁b", "</s>"], "output": ["▁x", "</s>"], "weights": np.eye(2, 3)}],
            "gru_bahdanau", tmp_path / "d.png",
        ),
    ]  # fmt: skip
    for out in outputs:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_splice_readme_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n<!-- compare:start -->\nold\n<!-- compare:end -->\nafter\n")
    compare = tmp_path / layout.COMPARE_MD
    compare.write_text("| new | table |\n")
    splice_readme(readme, compare)
    assert (
        readme.read_text()
        == "# Title\n<!-- compare:start -->\n| new | table |\n<!-- compare:end -->\nafter\n"
    )
    readme.write_text("no markers")
    with pytest.raises(UserError, match="compare:start"):
        splice_readme(readme, compare)


def test_the_ceiling_cell_gives_the_range_of_the_runs_machines():
    from pipeline.reporting.report import ceiling_cell

    assert ceiling_cell([365.4, 373.1, 365.4]) == "365.4-373.1"
    assert ceiling_cell([480.0]) == "480.0"
    assert ceiling_cell([]) == "-"  # a run from before ceilings were recorded


@pytest.mark.parametrize("module", REPORTING)
def test_the_reporting_stages_load_no_model_search_corpus_or_tensorflow(module):
    name = f"pipeline.reporting.{module}"
    code = "import importlib, sys; importlib.import_module(sys.argv[1]); print(*sys.modules, sep='\\n')"
    result = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = result.stdout.split()
    assert name in loaded
    heavy = [h for h in HEAVY if any(m == h or m.startswith(f"{h}.") for m in loaded)]
    assert not heavy, f"importing {name} loads {', '.join(heavy)}"


@pytest.fixture(scope="module")
def split_file(prepared_data, tmp_path_factory) -> Path:
    """The de-en test split (1000 pairs) as the split stage writes it."""
    from pipeline import corpus

    return corpus.write_split(
        "de-en", "test", prepared_data, tmp_path_factory.mktemp("splits") / layout.result("test")
    )


def report_folder(reports: Path, variant: str, hypotheses: list[str]) -> None:
    """A variant's report folder as train, evaluate and analyse leave it, with made-up numbers."""
    folder = reports / variant
    folder.mkdir(parents=True)
    scores = {"bleu": 1.0, "bleu_lc": 1.0, "chrf": 1.0}
    summary = {"parameters": 1, "epochs": 1, "best_epoch": 1, "train_seconds": 60.0, "tokens_per_second": 1,
               "stopped_by": "epochs", "length_penalty": 0.6, "training_code": 2}  # fmt: skip
    files = {layout.result("test"): scores, layout.result("test", layout.GREEDY): scores,
             layout.result("validation"): scores, layout.SUMMARY: summary,
             layout.CONFIG: {"preset": "tiny", "train": {"length_penalties": [0.6]}},
             layout.ANALYSIS: {"gradient_flow": [1.0, 2.0], "attention": None}}  # fmt: skip
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))
    (folder / layout.hypotheses("test")).write_text("".join(f"{h}\n" for h in hypotheses), encoding="utf-8")


def test_compare_scores_the_first_eval_limit_pairs_of_the_split_file(split_file, tmp_path):
    split = json.loads(split_file.read_text(encoding="utf-8"))
    references = split["references"][:64]  # the tiny preset's eval_limit
    report_folder(tmp_path / "reports", "gru", references)
    report_folder(tmp_path / "reports", "gru_bahdanau", ["A dog."] * 64)
    out = compare(
        "de-en", "tiny", ["gru", "gru_bahdanau"], split_file, tmp_path / "reports", tmp_path / "out"
    )
    report = json.loads(out.read_text())
    assert report["sentences"] == 64
    gru, attentive = report["variants"]
    assert (gru["cell"], gru["attention"]) == VARIANTS["gru"] == ("gru", None)
    assert (attentive["cell"], attentive["attention"]) == ("gru", "bahdanau")
    buckets = gru["test_bleu_by_length"]
    sources = split["sources"][:64]
    assert sum(b["sentences"] for b in buckets.values()) == 64
    assert buckets["1-10"]["sentences"] == sum(len(s.split()) <= 10 for s in sources)
    assert {b["bleu"] for b in buckets.values() if b["sentences"]} == {100.0}  # its references: perfect
    table = (tmp_path / "out" / layout.COMPARE_MD).read_text()
    assert table.startswith("Multi30k de-en, preset `tiny`, test_2016_flickr (64 sentences)")
    figures = {p.name for p in (tmp_path / "out").glob("*.png")}  # no attention in the analyses: no heatmap
    assert figures == {layout.BLEU_BY_VARIANT, layout.BLEU_BY_LENGTH, layout.GRADIENT_FLOW}


def test_read_split_file_takes_all_without_a_limit(split_file):
    sources, references, title = read_split_file(split_file, "de-en", None)
    assert len(sources) == len(references) == 1000 and title == "test_2016_flickr"
    assert read_split_file(split_file, "de-en", 2)[:2] == (sources[:2], references[:2])


@pytest.mark.parametrize(
    ("change", "said"),
    [({"pair": "en-de"}, "holds the multi30k en-de test split, not multi30k de-en test"),
     ({"split": "validation"}, "holds the multi30k de-en validation split, not multi30k de-en test"),
     ({"corpus": "ted_hrlr_translate/pt_to_en"}, "holds the ted_hrlr_translate/pt_to_en de-en test split")],
)  # fmt: skip
def test_a_split_file_of_another_corpus_pair_or_split_is_one_line(split_file, tmp_path, change, said):
    other = tmp_path / layout.result("test")
    other.write_text(json.dumps({**json.loads(split_file.read_text(encoding="utf-8")), **change}))
    with pytest.raises(UserError, match="make report writes it") as raised:
        read_split_file(other, "de-en", 64)
    message = str(raised.value)
    assert said in message and "\n" not in message
    assert f"nmt split --corpus multi30k --pair de-en --split test --data-dir DATA --out {other}" in message


def test_a_missing_or_unreadable_split_file_says_what_writes_it(tmp_path):
    with pytest.raises(UserError, match=r"test split file .*nowhere.json is missing: make report writes it"):
        read_split_file(tmp_path / "nowhere.json", "de-en", 64)
    for text in ("not json", "[1, 2]"):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(UserError, match="bad.json is not a split file: make report writes it"):
            read_split_file(tmp_path / "bad.json", "de-en", 64)
