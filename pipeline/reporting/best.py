"""The README's lines on each pair's best model and the students distilled from it, from their report
folders alone (``reports/<pair>/best``, ``reports/<pair>/distilled/<variant>`` and, for each
student, the same variant trained on the references, ``reports/<pair>/converge/<variant>``)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.files import write_text
from pipeline.layout import GREEDY, SELECTION_JSON, SELECTION_MD, result

BEST, DISTILLED, REFERENCES_PRESET = "best", "distilled", "converge"  # the folders under reports/<pair>


def read(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def scores(folder: Path) -> str | None:
    """``BLEU 38.1 ± 1.6 (beam 5), 36.2 greedy``, or None if the folder has no test results."""
    beam, greedy = read(folder, result("test")), read(folder, result("test", GREEDY))
    if beam is None or greedy is None:
        return None
    spread = f" ± {beam['bleu_ci']}" if "bleu_ci" in beam else ""
    decoding = f"{beam['decoding']}, length penalty {beam['length_penalty']}"
    return f"BLEU {beam['bleu']}{spread} ({decoding}), {greedy['bleu']} greedy"


def best_line(pair_dir: Path) -> str:
    """The best model's line: its members, its validation BLEU, its test scores; or not built yet."""
    folder, pair = pair_dir / BEST, pair_dir.name
    selection, tested = read(folder, SELECTION_JSON), scores(folder)
    if selection is None or tested is None:
        return f"The best model of {pair} is not built yet: `make best PAIR={pair}` builds it"
    chosen = selection["chosen"]
    members = " + ".join(f"`{m}`" for m in chosen["members"])
    kind = "an ensemble of" if len(chosen["members"]) > 1 else "the single model"
    tried = len(selection["models"]) + len(selection["ensembles"])
    return (f"The best model of {pair} (`make best PAIR={pair}`, [selection]({folder / SELECTION_MD})): "
            f"{kind} {members}, chosen among {tried} models and ensembles by validation BLEU "
            f"({chosen['validation_bleu']}); test {tested}")  # fmt: skip


def student_lines(pair_dir: Path) -> list[str]:
    """One line per distilled student with results: its scores beside its variant's on the references."""
    lines = []
    for folder in sorted(p for p in (pair_dir / DISTILLED).glob("*") if p.is_dir()):
        student = scores(folder)
        if student is None:
            continue
        reference = scores(pair_dir / REFERENCES_PRESET / folder.name) or "not evaluated yet"
        command = f"`make distill PAIR={pair_dir.name} VARIANT={folder.name}`"
        lines.append(f"`{folder.name}` distilled from it ({command}): test {student}; "
                     f"trained on the references ({REFERENCES_PRESET}): {reference}")  # fmt: skip
    return lines


def summarize_best(pair_dirs: list[Path], out: Path) -> Path:
    """Writes, for each pair in turn, its best model's line and its students' lines, one Markdown list,
    to ``out``."""
    lines = [line for pair_dir in pair_dirs for line in (best_line(pair_dir), *student_lines(pair_dir))]
    return write_text(out, "".join(f"- {line}\n" for line in lines))
