"""The reading of a comparison against the classic lesson, written from its numbers alone.

The lesson makes four claims: attention beats a single context vector, most of all on long
sentences; gated cells (LSTM, GRU) beat the tanh RNN, and are about equal to each other; the
gradient reaching a sentence's first words vanishes in a tanh RNN and less so in gated cells,
while attention gives every position a short path; Bahdanau's and Luong's attention are about
equal. Its next chapter adds a fifth: attention alone, without recurrence (the Transformer),
beats attention over a recurrent encoder and decoder. Where the best model has students
(``make distill``), a sixth: a student trained on its teacher's translations searches greedily
better than its variant trained on the references (Kim & Rush, 2016), read from each student's
``against_references.json``. Each other claim is checked on ``compare.json``
(the test BLEU gaps, their paired bootstrap p-values, BLEU by source length, the gradient-flow
probe) and, when there is one, on ``seeds.json``, whose spread is the scale of run-to-run
noise. A verdict is computed, never written by hand: "holds", "contradicted" or, for a claim
that one is ahead, "not resolved" (p at or above ``ALPHA``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
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


STUDENT_CLAIM = (
    "A student trained on the best model's translations against its variant trained on the references, "
    "greedy (sequence-level distillation)"
)
LONG_CLAIM = "Long sentences hurt a single context vector more"
VANISH_CLAIM = "The gradient vanishes most in the tanh RNN"
SHORT_PATH_CLAIM = "Attention carries gradient to a sentence's first words"
NOT_RUN = "not run"  # a direction without its comparison


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


def length_ratios(report: dict) -> tuple[str, str, dict[str, float]] | None:
    """The shortest and the longest source-length bucket with enough sentences, and each
    variant's BLEU on the longest over BLEU on the shortest; None without single-vector and
    attention variants both."""
    rows = {r["variant"]: r for r in report["variants"]}
    if all(r["attention"] for r in rows.values()) or not any(r["attention"] for r in rows.values()):
        return None
    buckets = next(iter(rows.values()))["test_bleu_by_length"]
    readable = [b for b, cell in buckets.items() if cell["sentences"] >= MIN_BUCKET]
    short, long = readable[0], readable[-1]

    def kept(cells: dict) -> float:
        return cells[long]["bleu"] / cells[short]["bleu"] if cells[short]["bleu"] else 0.0

    return short, long, {v: kept(r["test_bleu_by_length"]) for v, r in rows.items()}


def length_holds(report: dict, ratios: dict[str, float]) -> bool:
    """The single context vector is said to lose more on long sentences than attention does."""
    attention = {r["variant"]: r["attention"] for r in report["variants"]}
    single = [ratios[v] for v in ratios if not attention[v]]
    return max(single) < min(ratios[v] for v in ratios if attention[v])


def length_claim(report: dict) -> list[str]:
    """BLEU on the longest bucket with enough sentences over BLEU on the shortest."""
    found = length_ratios(report)
    if found is None:
        return []
    short, long, ratios = found
    buckets = report["variants"][0]["test_bleu_by_length"]
    named = ", ".join(f"`{v}` {r:.2f}" for v, r in ratios.items())
    return [
        f"- {LONG_CLAIM}: **{said(length_holds(report, ratios))}**. "
        f"BLEU on sources of {long} words over BLEU on {short} words ({buckets[long]['sentences']} and "
        f"{buckets[short]['sentences']} sentences): {named}."
    ]


def gradient_verdicts(report: dict) -> dict[str, bool]:
    """First over last position of the gradient-flow probe: a tanh RNN's should be the smallest,
    and attention's above every single-vector model's. Each claim the variants there can test."""
    attention = {r["variant"]: r["attention"] for r in report["variants"]}
    ratio = {v: flow[0] / flow[-1] for v, flow in report["gradient_flow"].items()}
    single = [ratio[v] for v in ratio if not attention[v]]
    attended = [ratio[v] for v in ratio if attention[v]]
    found = {}
    if "rnn" in ratio and len(single) > 1:
        found[VANISH_CLAIM] = ratio["rnn"] == min(single)
    if single and attended:
        found[SHORT_PATH_CLAIM] = min(attended) > max(single)
    return found


def gradient_claim(report: dict) -> list[str]:
    lines = [f"- {claim}: **{said(holds)}**." for claim, holds in gradient_verdicts(report).items()]
    if lines:
        named = ", ".join(f"`{v}` {flow[0] / flow[-1]:.2g}" for v, flow in report["gradient_flow"].items())
        lines.append(f"  Gradient at the first source position over the last (the probe): {named}.")
    return lines


def student_claims(students: Path | None) -> list[str]:
    """One line per student folder under ``students`` (``reports/<pair>/distilled``) that has its
    comparison with the references (``pipeline.reporting.student``): the greedy verdict, and beam."""
    lines = []
    for path in sorted(students.glob(f"*/{layout.AGAINST_REFERENCES_JSON}")) if students else []:
        found = load(path)
        greedy, beam = found["greedy"], found["beam"]
        said_greedy = verdict(greedy["gap"], greedy["p"], 1)
        lines.append(
            f"- {STUDENT_CLAIM}: **{said_greedy}**. `{found['variant']}` distilled "
            f"{greedy['student_bleu']} greedy against {greedy['references_bleu']} on the references "
            f"({greedy['gap']:+.2f}, p {greedy['p']:.3f}); with the beam, {beam['student_bleu']} against "
            f"{beam['references_bleu']} ({beam['gap']:+.2f}, p {beam['p']:.3f})."
        )
    return lines


def reading(compare_path: Path, seeds_path: Path | None, out: Path, students: Path | None = None) -> Path:
    """Writes the reading of ``compare_path`` (and of the seed spread in ``seeds_path``, and the
    students under ``students``, where they exist) as a Markdown list to ``out``; returns ``out``."""
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
    lines += student_claims(students)
    return write_text(out, "\n".join(lines) + "\n")


def claim_name(before: str, after: str) -> str:
    """A pair's claim as a row of the side-by-side table."""
    return f"{CLAIMS[(before, after)][1]}: `{after}` against `{before}`"


def verdict_cells(report: dict) -> dict[str, str]:
    """Each claim the comparison ``report`` can test, by its ``claim_name``: the verdict, and for a
    pair its test BLEU gap and p-value."""
    rows = {r["variant"]: r for r in report["variants"]}
    cells = {}
    for pair in report.get("pairs", []):
        expected, _ = CLAIMS[(pair["before"], pair["after"])]
        gap = round(rows[pair["after"]]["test_bleu"] - rows[pair["before"]]["test_bleu"], 2)
        said_here = verdict(gap, pair["p"], expected)
        cells[claim_name(pair["before"], pair["after"])] = f"**{said_here}** ({gap:+.2f}, p {pair['p']:.3f})"
    found = length_ratios(report)
    if found is not None:
        cells[LONG_CLAIM] = f"**{said(length_holds(report, found[2]))}**"
    return cells | {claim: f"**{said(holds)}**" for claim, holds in gradient_verdicts(report).items()}


def side_by_side(compares: dict[str, Path], out: Path) -> Path:
    """The lesson's claims, a row each, with a column of verdicts per direction (``compares``: each
    pair's compare.json, by the pair's name); a direction whose comparison is not there yet is
    "not run" in every row, and the caption defines only the markers its table uses. Writes the
    Markdown table to ``out``; returns ``out``."""
    found = {
        pair: verdict_cells(load(path)) if Path(path).is_file() else None for pair, path in compares.items()
    }
    claims = [claim_name(before, after) for before, after in CLAIMS] + [
        LONG_CLAIM,
        VANISH_CLAIM,
        SHORT_PATH_CLAIM,
    ]
    rows = [
        [NOT_RUN if cells is None else cells.get(claim, "-") for cells in found.values()] for claim in claims
    ]
    used = {cell for row in rows for cell in row}
    markers = {
        NOT_RUN: "that direction's comparison is not there yet",
        "-": "its table lacks a variant the claim needs",
    }
    defined = [f'"{marker}": {meaning}' for marker, meaning in markers.items() if marker in used]
    lines = [
        "The lesson's claims in both directions, on each direction's converge comparison "
        f"({', '.join(f'`{path}`' for path in compares.values())}), each verdict computed as above: "
        + "; ".join(["for a pair, its test BLEU gap and paired bootstrap p", *defined])
        + ".",
        "",
        "| claim | " + " | ".join(compares) + " |",
        "|---|" + "---|" * len(compares),
    ]
    lines += [f"| {claim} | " + " | ".join(cells) + " |" for claim, cells in zip(claims, rows, strict=True)]
    return write_text(out, "\n".join(lines) + "\n")
