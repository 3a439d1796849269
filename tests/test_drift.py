"""The committed results against the code: every report folder under reports/ was trained by the
current training code, or is archived (reports/archived.json), and no archived entry is stale."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from pipeline import layout
from pipeline.constants import TRAINING_CODE
from pipeline.reporting.archive import archive_table, drift

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def test_every_committed_report_folder_is_from_the_current_code_or_archived():
    assert drift(REPORTS) == []


def tree(root: Path, codes: dict[str, int | None], kept: dict[str, str]) -> Path:
    for name, code in codes.items():
        (root / name).mkdir(parents=True)
        summary = {"variant": Path(name).name} | ({} if code is None else {"training_code": code})
        (root / name / layout.SUMMARY).write_text(json.dumps(summary))
    (root / layout.ARCHIVED_JSON).write_text(json.dumps({"folders": kept}))
    return root


def test_a_folder_of_other_code_an_entry_of_current_code_and_a_missing_entry_are_each_named(tmp_path):
    root = tree(tmp_path, {"de-en/quick/rnn": None, "de-en/quick/gru": TRAINING_CODE,
                           "de-en/converge/gru": TRAINING_CODE - 1, "de-en/full/gru": None},
                {"de-en/quick/rnn": "old", "de-en/quick/gru": "old", "en-de/full/gru": "old"})  # fmt: skip
    assert drift(root) == [
        f"de-en/converge/gru: trained by training code {TRAINING_CODE - 1}, not {TRAINING_CODE}, and not in "
        f"{layout.ARCHIVED_JSON}",
        f"de-en/full/gru: trained by training code None, not {TRAINING_CODE}, and not in "
        f"{layout.ARCHIVED_JSON}",
        f"de-en/quick/gru: in {layout.ARCHIVED_JSON} but trained by the current code {TRAINING_CODE}: "
        "remove its entry",
        f"en-de/full/gru: in {layout.ARCHIVED_JSON} but has no {layout.SUMMARY}",
    ]


def test_changing_one_committed_folders_training_code_is_drift(tmp_path):
    copy = tmp_path / "reports"
    shutil.copytree(REPORTS, copy, ignore=shutil.ignore_patterns("*.png", "*.txt", "*.md"))
    summary = copy / "de-en" / "converge" / "gru" / layout.SUMMARY
    summary.write_text(json.dumps(json.loads(summary.read_text()) | {"training_code": TRAINING_CODE - 1}))
    assert drift(copy) == [
        f"de-en/converge/gru: trained by training code {TRAINING_CODE - 1}, not {TRAINING_CODE}, and not in "
        f"{layout.ARCHIVED_JSON}"
    ]


def test_the_archive_table_names_each_folder_its_code_and_why(tmp_path):
    root = tree(tmp_path, {"de-en/full/gru": None}, {"de-en/full/gru": "before exact resume"})
    text = archive_table(root, tmp_path / layout.ARCHIVED_MD).read_text()
    assert "| `reports/de-en/full/gru` | - | before exact resume |" in text
    assert f"training code is {TRAINING_CODE}" in text


ROOT = REPORTS.parent
MAKEFILES = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]


def documented_targets() -> list[str]:
    """The targets `make help` lists: each rule with a ``## `` line right above it."""
    found = []
    for path in MAKEFILES:
        lines = path.read_text().splitlines()
        for above, line in zip(lines, lines[1:], strict=False):
            if above.startswith("## ") and re.match(r"^[a-zA-Z][-a-zA-Z0-9_]*:([^=]|$)", line):
                found.append(line.split(":", 1)[0])
    return found


def test_the_readmes_targets_table_names_every_target_make_help_lists():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| target | what it does |") :].split("\n\n", 1)[0]
    named = set(re.findall(r"`make ([-a-z]+)`", table))
    assert {"all", "bench-transformer", "timings", "mutate", "help"} <= set(documented_targets())
    assert [t for t in documented_targets() if t not in named] == []


def test_the_development_pages_layout_names_every_module():
    page = (ROOT / "docs" / "development.md").read_text()
    block = page[page.index("```\npipeline/") :].split("```\n", 2)[1]
    modules = [p for p in sorted((ROOT / "pipeline").rglob("*.py")) if p.name != "__init__.py"]
    missing = [str(p.relative_to(ROOT)) for p in modules if not re.search(rf"\b{p.stem}\b", block)]
    assert missing == []
