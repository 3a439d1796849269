"""The README's tables: copied in from the files that produced them, between markers."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError
from pipeline.files import write_text


def splice_readme(readme: Path, compare_md: Path, marker: str = "compare") -> Path:
    """Replaces the text between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` in the README."""
    if not Path(readme).is_file():
        raise UserError(f"{readme} does not exist: give the README with --readme")
    if not Path(compare_md).is_file():
        raise UserError(f"{compare_md} does not exist: run the make target that writes it first")
    text = readme.read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in text or end not in text:
        raise UserError(f"{readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = compare_md.read_text(encoding="utf-8").strip()
    return write_text(readme, f"{head}{start}\n{body}\n{end}{tail}")
