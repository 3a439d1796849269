"""Writes that a kill or a power loss cannot leave half done: write aside, flush, then rename.

A later stage only ever sees the old file or the new one, never a truncated one that
looks finished, because ``os.replace`` within one folder is atomic on POSIX. The new data
reaches the disk (``fsync``) before the rename, and the rename itself (the folder's entry)
right after it: without the first, a power loss can leave the new name on empty blocks.

Also where a SavedModel is: TensorFlow Serving's numbered version folders under a base path,
found without loading TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import UserError


def replace_file(path: Path, write: Callable[[Path], Any]) -> Path:
    """Calls ``write(tmp)`` for a temporary path beside ``path`` (same suffix), then renames it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        sync(Path(tmp))
        os.replace(tmp, path)
        sync(path.parent)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text(path: Path, text: str) -> Path:
    return replace_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def copy_file(source: Path, path: Path) -> Path:
    return replace_file(path, lambda tmp: shutil.copyfile(source, tmp))


def replace_dir(path: Path, write: Callable[[Path], Any]) -> Path:
    """Calls ``write(tmp_dir)`` for a fresh folder beside ``path``, then renames it to ``path``.

    ``path`` must not exist yet (a folder cannot be replaced atomically by another one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(staging)
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700
        sync_tree(staging)
        os.replace(staging, path)
        sync(path.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def sync(path: Path) -> None:
    """Flushes a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    """``sync`` for every file and folder under ``folder``, the folder itself last."""
    for root, _, names in os.walk(folder, topdown=False):
        for name in names:
            sync(Path(root) / name)
        sync(Path(root))


def remove_stale(folder: Path) -> None:
    """Deletes the dot-prefixed temporaries that ``replace_file`` and ``replace_dir`` leave when killed."""
    for leftover in Path(folder).glob(".*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def latest_version(base: Path) -> Path | None:
    """The highest numbered version directory under ``base`` (TensorFlow Serving's layout), or None."""
    versions = [int(p.name) for p in Path(base).glob("*") if p.name.isdigit() and p.is_dir()]
    return Path(base) / str(max(versions)) if versions else None


def saved_model_dir(model: Path) -> Path:
    """``model`` if it holds a SavedModel, else its latest numbered version; a UserError if neither,
    or if its ``saved_model.pb`` is empty."""
    model = Path(model)
    found = model if (model / "saved_model.pb").is_file() else latest_version(model)
    if found is None:
        raise UserError(f"no SavedModel in {model} nor any numbered version under it: export a run first")
    if not (found / "saved_model.pb").is_file() or (found / "saved_model.pb").stat().st_size == 0:
        raise UserError(f"{found / 'saved_model.pb'} is missing or empty: export the run again")
    return found
