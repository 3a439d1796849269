"""Translate stdin to stdout through an exported SavedModel, one line per line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from pipeline.constants import DEFAULT_BEAM_SIZE
from pipeline.decoding.evaluate import load_translator, translate_all


def translate_stream(
    model: Path,
    lines_in: TextIO = sys.stdin,
    lines_out: TextIO = sys.stdout,
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float | None = None,  # the model's own, tuned on validation
    batch_size: int = 64,
) -> int:
    """Translates every line; empty lines stay empty. Returns the number of lines."""
    translator, _ = load_translator(model)
    count = 0
    batch: list[str] = []

    def flush():
        texts = [line for line in batch if line.strip()]
        translations = iter(
            translate_all(translator, texts, beam_size, length_penalty, batch_size, progress=False)
            if texts
            else []
        )
        for line in batch:
            lines_out.write((next(translations) if line.strip() else "") + "\n")
        lines_out.flush()
        batch.clear()

    for line in lines_in:
        batch.append(line.rstrip("\n"))
        count += 1
        if len(batch) == batch_size:
            flush()
    flush()
    return count
