"""The reading of a comparison: each verdict follows from the numbers, whichever way they go."""

from __future__ import annotations

import json

import pytest

from pipeline import layout
from pipeline.reporting.lesson import reading, side_by_side, verdict


def row(variant: str, attention: str | None, bleu: float, short: float, long: float) -> dict:
    return {"variant": variant, "attention": attention, "test_bleu": bleu,
            "test_bleu_by_length": {"1-10": {"sentences": 500, "bleu": short},
                                    "21-25": {"sentences": 24, "bleu": long},
                                    "26+": {"sentences": 2, "bleu": 90.0}}}  # fmt: skip


def comparison(tmp_path, rows, pairs, flows):
    path = tmp_path / layout.COMPARE_JSON
    path.write_text(
        json.dumps({"baseline": "gru_bahdanau", "variants": rows, "pairs": pairs, "gradient_flow": flows})
    )
    return path


@pytest.mark.parametrize(
    ("gap", "p", "expected", "said"),
    [(2.0, 0.001, 1, "holds"), (-2.0, 0.001, 1, "contradicted"), (2.0, 0.2, 1, "not resolved"),
     (0.3, 0.4, 0, "holds"), (-3.0, 0.001, 0, "contradicted")],
)  # fmt: skip
def test_a_verdict_needs_a_significant_gap_in_the_lessons_direction(gap, p, expected, said):
    assert verdict(gap, p, expected) == said


def test_the_reading_follows_the_numbers_where_they_agree_with_the_lesson_and_where_not(tmp_path):
    rows = [row("rnn", None, 10.0, 12.0, 3.0), row("gru", None, 20.0, 24.0, 12.0),
            row("gru_bahdanau", "bahdanau", 35.0, 36.0, 33.0)]  # fmt: skip
    pairs = [{"before": "gru", "after": "gru_bahdanau", "p": 0.001},
             {"before": "rnn", "after": "gru", "p": 0.001}]  # fmt: skip
    flows = {"rnn": [1e-4, 1e-2], "gru": [1e-3, 1e-2], "gru_bahdanau": [2.0, 1.0]}
    seeds = tmp_path / layout.SEEDS_JSON
    spread = {"test_bleu": {"stdev": 0.5, "min": 34.8, "max": 35.5}}
    seeds.write_text(
        json.dumps({"runs": [{"run": "gru_bahdanau"}, {"run": "gru_bahdanau-seed1"}], "spread": spread})
    )
    text = reading(comparison(tmp_path, rows, pairs, flows), seeds, tmp_path / "lesson.md").read_text()
    assert (
        "Attention against a single context vector: **holds**. `gru_bahdanau` 35.0 against `gru` 20.0 "
        in text
    )
    assert "(+15.00, p 0.001; 30.0 times the seed standard deviation)" in text
    assert "A gated cell against the tanh RNN: **holds**" in text
    # 21-25 words over 1-10 (26+ has too few sentences): rnn 0.25, gru 0.5, gru_bahdanau 0.92
    assert "Long sentences hurt a single context vector more: **holds**" in text
    assert "`rnn` 0.25, `gru` 0.50, `gru_bahdanau` 0.92" in text
    assert "vanishes most in the tanh RNN: **holds**" in text
    assert "first words: **holds**" in text and "`rnn` 0.01, `gru` 0.1, `gru_bahdanau` 2" in text
    assert "standard deviation 0.5" in text and "34.8-35.5" in text

    # The same table with the numbers turned round: every verdict turns with them.
    rows = [row("rnn", None, 25.0, 24.0, 20.0), row("gru", None, 20.0, 24.0, 22.0),
            row("gru_bahdanau", "bahdanau", 15.0, 36.0, 3.0)]  # fmt: skip
    flows = {"rnn": [1e-1, 1e-2], "gru": [1e-3, 1e-2], "gru_bahdanau": [1e-4, 1.0]}
    text = reading(comparison(tmp_path, rows, pairs, flows), None, tmp_path / "lesson.md").read_text()
    assert "Attention against a single context vector: **contradicted**" in text
    assert "A gated cell against the tanh RNN: **contradicted**" in text
    assert "Long sentences hurt a single context vector more: **contradicted**" in text
    assert "vanishes most in the tanh RNN: **contradicted**" in text
    assert "first words: **contradicted**" in text
    assert "seed" not in text


def test_the_transformer_is_read_against_attention_over_a_gru(tmp_path):
    rows = [row("gru", None, 20.0, 24.0, 12.0), row("gru_bahdanau", "bahdanau", 35.0, 36.0, 33.0),
            row("transformer", "multi-head", 31.5, 33.0, 30.0)]  # fmt: skip
    pairs = [{"before": "gru_bahdanau", "after": "transformer", "p": 0.002}]
    flows = {"gru": [1e-3, 1e-2], "gru_bahdanau": [2.0, 1.0], "transformer": [0.9, 1.0]}
    text = reading(comparison(tmp_path, rows, pairs, flows), None, tmp_path / "lesson.md").read_text()
    assert (
        "- Attention without recurrence against attention over a GRU: **contradicted**. `transformer` 31.5 "
        "against `gru_bahdanau` 35.0 (-3.50, p 0.002)." in text
    )
    # it counts as attention: its gradient and its long sentences are read with the attentive variants
    assert "first words: **holds**" in text and "`transformer` 0.9" in text


def test_both_directions_side_by_side_each_from_its_own_comparison_and_not_run_where_absent(tmp_path):
    flows = {"rnn": [1e-4, 1e-2], "gru": [1e-3, 1e-2], "gru_bahdanau": [2.0, 1.0]}
    de_en, en_de = tmp_path / "de-en", tmp_path / "en-de"
    de_en.mkdir(), en_de.mkdir()
    rows = [row("rnn", None, 10.0, 12.0, 3.0), row("gru", None, 20.0, 24.0, 12.0),
            row("gru_bahdanau", "bahdanau", 35.0, 36.0, 33.0)]  # fmt: skip
    comparison(de_en, rows, [{"before": "gru", "after": "gru_bahdanau", "p": 0.001}], flows)
    # en-de: attention behind, long sentences hurt it more, the probe the other way round.
    rows = [row("rnn", None, 10.0, 12.0, 3.0), row("gru", None, 20.0, 24.0, 23.0),
            row("gru_bahdanau", "bahdanau", 18.0, 36.0, 9.0)]  # fmt: skip
    reversed_flows = {"rnn": [1e-2, 1e-2], "gru": [1e-3, 1e-2], "gru_bahdanau": [1e-4, 1.0]}
    comparison(en_de, rows, [{"before": "gru", "after": "gru_bahdanau", "p": 0.01}], reversed_flows)
    compares = {"de-en": de_en / layout.COMPARE_JSON, "en-de": en_de / layout.COMPARE_JSON,
                "fr-en": tmp_path / "fr-en" / layout.COMPARE_JSON}  # fmt: skip
    text = side_by_side(compares, tmp_path / layout.LESSON_DIRECTIONS_MD).read_text()
    assert "| claim | de-en | en-de | fr-en |" in text
    attention = "| Attention against a single context vector: `gru_bahdanau` against `gru` |"
    assert f"{attention} **holds** (+15.00, p 0.001) | **contradicted** (-2.00, p 0.010) | not run |" in text
    # Neither comparison has lstm: its claims are rows, with "-" where a comparison cannot test them.
    assert "| A gated cell against the tanh RNN: `lstm` against `rnn` | - | - | not run |" in text
    assert (
        "| Long sentences hurt a single context vector more | **holds** | **contradicted** | not run |"
        in text
    )
    assert "| The gradient vanishes most in the tanh RNN | **holds** | **contradicted** | not run |" in text
    assert "first words | **holds** | **contradicted** | not run |" in text
    assert '"not run": that direction' in text and '"-": its table lacks' in text
    # Both directions complete: the caption defines no marker the table does not use.
    del compares["fr-en"]
    text = side_by_side(compares, tmp_path / layout.LESSON_DIRECTIONS_MD).read_text()
    assert '"not run"' not in text and '"-": its table lacks' in text


def report_folder(folder, hypotheses: dict[str | None, list[str]], references: list[str]):
    """A report folder with a test result and its translations for each decoding (None: beam)."""
    from pipeline.metrics import bleu

    folder.mkdir(parents=True)
    for decoding, lines in hypotheses.items():
        result = {"bleu": round(bleu(lines, references), 2)}
        (folder / layout.result("test", decoding)).write_text(json.dumps(result))
        (folder / layout.hypotheses("test", decoding)).write_text("\n".join(lines) + "\n")
    return folder


def test_a_student_is_read_against_its_variant_on_the_references_greedy_and_with_the_beam(tmp_path):
    from pipeline.reporting.student import against_references

    references = [f"a dog number {i} runs over the green grass by the river" for i in range(60)]
    split = tmp_path / "test.json"
    split.write_text(json.dumps({"corpus": "multi30k", "pair": "de-en", "split": "test", "title": "t",
                                 "sources": references, "references": references}))  # fmt: skip
    poor = [f"a dog number {i} walks on grass" for i in range(60)]
    # Greedy: the student translates every sentence exactly, the reference-trained model poorly;
    # with the beam they translate alike.
    student = report_folder(
        tmp_path / "distilled/gru_luong", {layout.GREEDY: references, None: poor}, references
    )
    reference = report_folder(tmp_path / "converge/gru_luong", {layout.GREEDY: poor, None: poor}, references)
    out = against_references(student, reference, split, "de-en", "multi30k", student / "against.json")
    found = json.loads(out.read_text())
    poor_bleu = json.loads((reference / layout.result("test")).read_text())["bleu"]
    assert found["greedy"]["student_bleu"] == 100.0 and found["greedy"]["references_bleu"] == poor_bleu
    assert found["greedy"]["gap"] == round(100.0 - poor_bleu, 2) and found["greedy"]["p"] < 0.05
    assert found["beam"]["student_bleu"] == found["beam"]["references_bleu"] == poor_bleu
    assert found["beam"]["gap"] == 0.0
    out.rename(student / layout.AGAINST_REFERENCES_JSON)
    compare = comparison(tmp_path, [row("gru", None, 20.0, 25.0, 15.0)], [], {})
    text = reading(compare, None, tmp_path / "lesson.md", tmp_path / "distilled").read_text()
    assert text.splitlines()[-1].startswith(
        "- A student trained on the best model's translations against its variant trained on the "
        "references, greedy (sequence-level distillation): **holds**. `gru_luong` distilled 100.0 greedy"
    )
    # The other way round, the claim is contradicted.
    swapped = against_references(reference, student, split, "de-en", "multi30k", tmp_path / "swapped.json")
    (student / layout.AGAINST_REFERENCES_JSON).write_text(swapped.read_text())
    text = reading(compare, None, tmp_path / "lesson.md", tmp_path / "distilled").read_text()
    assert "greedy (sequence-level distillation): **contradicted**" in text
