"""A distilled student against the same variant trained on the references: the two test BLEU scores,
their gap and its paired bootstrap p-value, greedy and with the default beam, read from the two
report folders' translations and the test split's references.

Sequence-level knowledge distillation (Kim & Rush, 2016) says the student gains most where search
is weakest: its greedy translations score above those of the same model trained on the
references. The lesson's reading (``pipeline.reporting.lesson``) reads this file as that claim.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
from pipeline.files import write_json
from pipeline.metrics import check_pairs, paired_bootstrap
from pipeline.reporting.report import read_split_file

SPLIT = "test"
DECODINGS = {"greedy": layout.GREEDY, "beam": None}  # name in the file: the result's decoding


def translations(folder: Path, decoding: str | None) -> tuple[float, list[str]]:
    """A report folder's test BLEU and translations for one decoding."""
    scored = json.loads((folder / layout.result(SPLIT, decoding)).read_text())
    lines = (folder / layout.hypotheses(SPLIT, decoding)).read_text(encoding="utf-8").splitlines()
    return scored["bleu"], lines


def against_references(
    student: Path, references_run: Path, split_file: Path, pair: str, corpus_name: str, out: Path
) -> Path:
    """Writes the comparison of the report folders ``student`` and ``references_run`` to ``out``."""
    _, references, _ = read_split_file(split_file, pair, None, corpus_name)
    found: dict = {"variant": student.name, "student": str(student), "references_run": str(references_run)}
    for name, decoding in DECODINGS.items():
        student_bleu, ours = translations(student, decoding)
        references_bleu, theirs = translations(references_run, decoding)
        check_pairs(ours, references)
        check_pairs(theirs, references)
        p = paired_bootstrap(theirs, {"student": ours}, references)["student"]
        found[name] = {
            "student_bleu": student_bleu,
            "references_bleu": references_bleu,
            "gap": round(student_bleu - references_bleu, 2),
            "p": round(p, 4),
        }
    return write_json(out, found)
