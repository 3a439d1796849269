"""The report stage's pieces: BLEU by length bucket, the table, the figures, the README splice."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import plots
from pipeline.errors import UserError
from pipeline.readme import splice_readme
from pipeline.report import bleu_by_length, compact_table, gradient_table, markdown_table


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
    log = tmp_path / "run" / "log.csv"
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
    out = plots.plot_history(log, tmp_path / "training.png")
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
    compare = tmp_path / "compare.md"
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
    from pipeline.report import ceiling_cell

    assert ceiling_cell([365.4, 373.1, 365.4]) == "365.4-373.1"
    assert ceiling_cell([480.0]) == "480.0"
    assert ceiling_cell([]) == "-"  # a run from before ceilings were recorded
