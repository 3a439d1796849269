"""Which committed results this version's code trained, and which are archived.

A report folder is a folder under ``reports/`` with a ``train.json``. Each was trained by the
current ``constants.TRAINING_CODE``, or is listed in ``reports/archived.json`` with the reason it
is kept: a result of earlier code, which the docs present as such (``archived.md``, copied into
docs/results.md by ``make readme``). An entry whose folder the current code trained, or that is
no longer there, is stale: the list only shrinks as runs are trained again.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
from pipeline.constants import TRAINING_CODE
from pipeline.errors import UserError
from pipeline.files import write_text


def report_folders(root: Path) -> dict[str, int | None]:
    """Every report folder under ``root``, by its path from ``root``: its ``training_code``
    (None: trained before train.json recorded one)."""
    return {
        summary.parent.relative_to(root).as_posix(): json.loads(summary.read_text()).get("training_code")
        for summary in sorted(Path(root).rglob(layout.SUMMARY))
    }


def archived(root: Path) -> dict[str, str]:
    """``reports/archived.json``: each archived folder (its path from ``root``) and why it is kept."""
    path = Path(root) / layout.ARCHIVED_JSON
    if not path.is_file():
        raise UserError(f"{path} does not exist: it lists the report folders of earlier code")
    return json.loads(path.read_text())["folders"]


def drift(root: Path, code: int = TRAINING_CODE) -> list[str]:
    """What does not hold, one line each: a folder of other code not archived, an archived folder
    of the current code, an archived folder that is not there. Empty: nothing has drifted."""
    folders, kept = report_folders(root), archived(root)
    found = [
        f"{name}: trained by training code {trained}, not {code}, and not in {layout.ARCHIVED_JSON}"
        for name, trained in folders.items()
        if trained != code and name not in kept
    ]
    found += [
        f"{name}: in {layout.ARCHIVED_JSON} but trained by the current code {code}: remove its entry"
        for name in kept
        if folders.get(name) == code
    ]
    found += [
        f"{name}: in {layout.ARCHIVED_JSON} but has no {layout.SUMMARY}"
        for name in kept
        if name not in folders
    ]
    return found


def archive_table(root: Path, out: Path) -> Path:
    """The archived folders as a Markdown table (folder, its training code, why it is kept)."""
    folders, kept = report_folders(root), archived(root)
    lines = [
        f"Report folders under `reports/` not trained by this version (its training code is {TRAINING_CODE}; "
        f"`-`: their `train.json` records none), kept as archived results "
        f"(`reports/{layout.ARCHIVED_JSON}`); every other report folder was trained by this version.",
        "",
        "| folder | training code | why it is kept |",
        "|---|---|---|",
    ]
    for name, reason in sorted(kept.items()):
        trained = folders.get(name)
        lines.append(f"| `reports/{name}` | {'-' if trained is None else trained} | {reason} |")
    return write_text(out, "\n".join(lines) + "\n")
