"""The README's tables: copied in from the files that produced them, between markers."""

from __future__ import annotations

from pathlib import Path

from pipeline.files import write_text


def splice_readme(readme: Path, compare_md: Path, marker: str = "compare") -> Path:
    """Replaces the text between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` in the README."""
    text = readme.read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = compare_md.read_text(encoding="utf-8").strip()
    return write_text(readme, f"{head}{start}\n{body}\n{end}{tail}")
