"""The report stage's pieces: BLEU by length bucket, the table, the figures, the README splice."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import plots
from pipeline.report import bleu_by_length, markdown_table, splice_readme


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


def row(variant: str, attention: str | None, bleu: float) -> dict:
    return {
        "variant": variant, "cell": "gru", "attention": attention, "parameters": 1234567, "epochs": 3,
        "train_seconds": 300.0, "tokens_per_second": 6543, "val_bleu": bleu + 1, "val_chrf": 50.0,
        "test_bleu_greedy": bleu - 0.5, "test_bleu": bleu, "test_chrf": 49.0,
        "test_bleu_by_length": {
            "1-10": {"sentences": 5, "bleu": bleu + 2}, "11+": {"sentences": 7, "bleu": bleu - 2}
        },
    }  # fmt: skip


def test_markdown_table_has_one_row_per_variant_with_its_numbers():
    table = markdown_table(
        [row("gru", None, 20.5), row("gru_bahdanau", "bahdanau", 31.25)], "de-en", "quick", 12
    )
    lines = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(lines) == 2
    assert lines[1].startswith(
        "| `gru_bahdanau` | bahdanau | 1,234,567 | 3 | 5.0 | 6,543 | 32.25 | 50.0 | 30.75 | **31.25** |"
    )
    assert lines[0].endswith("| 22.5 | 18.5 |")
    assert "1-10: 5, 11+: 7" in table


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
    with pytest.raises(ValueError, match="compare:start"):
        splice_readme(readme, compare)
