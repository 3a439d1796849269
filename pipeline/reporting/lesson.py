"""The reading of a comparison against the classic lesson, written from its numbers alone.

The lesson makes four claims: attention beats a single context vector, most of all on long
sentences; gated cells (LSTM, GRU) beat the tanh RNN, and are about equal to each other; the
gradient reaching a sentence's first words vanishes in a tanh RNN and less so in gated cells,
while attention gives every position a short path; Bahdanau's and Luong's attention are about
equal. Its next chapter adds a fifth: attention alone, without recurrence (the Transformer),
beats attention over a recurrent encoder and decoder. Each claim is checked on ``compare.json``
(the test BLEU gaps, their paired bootstrap p-values, BLEU by source length, the gradient-flow
probe) and, when there is one, on ``seeds.json``, whose spread is the scale of run-to-run
noise. A verdict is computed, never written by hand: "holds", "contradicted" or, for a claim
that one is ahead, "not resolved" (p at or above ``ALPHA``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import UserError
from pipeline.files import write_text

ALPHA = 0.05  # a gap with a paired bootstrap p-value below this is called significant
MIN_BUCKET = 20  # sentences: a source-length bucket with fewer is too small to read
# The lesson's pairs, (before, after): +1 if it says ``after`` is ahead, 0 if about equal. The report
# stage keeps the paired bootstrap p-value of each pair in compare.json.
CLAIMS: dict[tuple[str, str], tuple[int, str]] = {
    ("gru", "gru_bahdanau"): (1, "Attention against a single context vector"),
    ("lstm", "lstm_bahdanau"): (1, "Attention against a single context vector"),
    ("rnn", "lstm"): (1, "A gated cell against the tanh RNN"),
    ("rnn", "gru"): (1, "A gated cell against the tanh RNN"),
    ("lstm", "gru"): (0, "LSTM against GRU, about equal"),
    ("lstm_bahdanau", "gru_bahdanau"): (0, "LSTM against GRU under attention, about equal"),
    ("gru_bahdanau", "gru_luong"): (0, "Luong's attention against Bahdanau's, about equal"),
    ("gru_bahdanau", "transformer"): (1, "Attention without recurrence against attention over a GRU"),
}


def load(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} does not exist: make report (or make seeds) writes it")
    return json.loads(path.read_text())


def verdict(gap: float, p: float, expected: int) -> str:
    """``expected``: +1 if the lesson says ``after`` is ahead, 0 if it says they are about equal."""
    if p >= ALPHA:
        return "not resolved" if expected else "holds"
    if expected == 0:
        return "contradicted"
    return "holds" if gap * expected > 0 else "contradicted"


def said(holds: bool) -> str:
    return "holds" if holds else "contradicted"


def gap_phrase(rows: dict, pair: dict, noise: float | None) -> str:
    before, after = rows[pair["before"]], rows[pair["after"]]
    gap = round(after["test_bleu"] - before["test_bleu"], 2)
    text = (
        f"`{pair['after']}` {after['test_bleu']} against `{pair['before']}` {before['test_bleu']} "
        f"({gap:+.2f}, p {pair['p']:.3f}"
    )
    if noise:
        text += f"; {abs(gap) / noise:.1f} times the seed standard deviation"
    return text + ")"


def pair_claims(report: dict, noise: float | None) -> list[str]:
    rows = {r["variant"]: r for r in report["variants"]}
    lines = []
    for pair in report.get("pairs", []):
        expected, claim = CLAIMS[(pair["before"], pair["after"])]
        gap = rows[pair["after"]]["test_bleu"] - rows[pair["before"]]["test_bleu"]
        lines.append(f"- {claim}: **{verdict(gap, pair['p'], expected)}**. {gap_phrase(rows, pair, noise)}.")
    return lines


def length_claim(report: dict) -> list[str]:
    """BLEU on the longest bucket with enough sentences over BLEU on the shortest: the single
    context vector is said to lose more on long sentences than attention does."""
    rows = {r["variant"]: r for r in report["variants"]}
    single = [v for v, r in rows.items() if not r["attention"]]
    attended = [v for v, r in rows.items() if r["attention"]]
    if not single or not attended:
        return []
    buckets = rows[single[0]]["test_bleu_by_length"]
    readable = [b for b, cell in buckets.items() if cell["sentences"] >= MIN_BUCKET]
    short, long = readable[0], readable[-1]

    def kept(v: str) -> float:
        cells = rows[v]["test_bleu_by_length"]
        return cells[long]["bleu"] / cells[short]["bleu"] if cells[short]["bleu"] else 0.0

    ratios = ", ".join(f"`{v}` {kept(v):.2f}" for v in rows)
    holds = max(kept(v) for v in single) < min(kept(v) for v in attended)
    return [
        f"- Long sentences hurt a single context vector more: **{said(holds)}**. "
        f"BLEU on sources of {long} words over BLEU on {short} words ({buckets[long]['sentences']} and "
        f"{buckets[short]['sentences']} sentences): {ratios}."
    ]


def gradient_claim(report: dict) -> list[str]:
    """First over last position of the gradient-flow probe: a tanh RNN's should be the smallest,
    and attention's above every single-vector model's."""
    rows = {r["variant"]: r for r in report["variants"]}
    ratio = {v: flow[0] / flow[-1] for v, flow in report["gradient_flow"].items()}
    single = [v for v in ratio if not rows[v]["attention"]]
    attended = [v for v in ratio if rows[v]["attention"]]
    named = ", ".join(f"`{v}` {r:.2g}" for v, r in ratio.items())
    lines = []
    if "rnn" in ratio and len(single) > 1:
        holds = ratio["rnn"] == min(ratio[v] for v in single)
        lines.append(f"- The gradient vanishes most in the tanh RNN: **{said(holds)}**.")
    if single and attended:
        holds = min(ratio[v] for v in attended) > max(ratio[v] for v in single)
        lines.append(f"- Attention carries gradient to a sentence's first words: **{said(holds)}**.")
    if lines:
        lines.append(f"  Gradient at the first source position over the last (the probe): {named}.")
    return lines


def reading(compare_path: Path, seeds_path: Path | None, out: Path) -> Path:
    """Writes the reading of ``compare_path`` (and of the seed spread in ``seeds_path``, if it
    exists) as a Markdown list to ``out``; returns ``out``."""
    report = load(compare_path)
    noise = None
    lines = [
        f"A claim that one variant is ahead holds when its gap has paired bootstrap p < {ALPHA} in that "
        "direction; a claim that two are about equal holds when their gap is not significant."
    ]
    if seeds_path is not None and seeds_path.is_file():
        seeds = load(seeds_path)
        spread = seeds["spread"]["test_bleu"]
        noise = spread["stdev"]
        lines[0] += (
            f" Run-to-run noise: `{seeds['runs'][0]['run']}` trained with {len(seeds['runs'])} seeds scores "
            f"{spread['min']}-{spread['max']} test BLEU (standard deviation {noise})."
        )
    lines.append("")
    lines += pair_claims(report, noise) + length_claim(report) + gradient_claim(report)
    return write_text(out, "\n".join(lines) + "\n")
