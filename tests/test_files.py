"""Writes that survive a kill and a power loss: flushed aside, renamed, the rename flushed too."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import files
from pipeline.files import latest_version, replace_dir, replace_file, write_text

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def disk_events(monkeypatch) -> list[tuple[str, str]]:
    """Every fsync (of the path its descriptor names) and rename, in order."""
    events = []
    fsync, replace = os.fsync, os.replace

    def logged_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def logged_replace(source, target):
        events.append(("rename", f"{os.path.realpath(source)} -> {os.path.realpath(target)}"))
        replace(source, target)

    monkeypatch.setattr(files.os, "fsync", logged_fsync)
    monkeypatch.setattr(files.os, "replace", logged_replace)
    return events


def test_a_file_reaches_the_disk_before_its_rename_and_the_rename_after_it(tmp_path, disk_events):
    target = tmp_path / "report.json"
    write_text(target, "{}\n")
    assert target.read_text() == "{}\n"
    (kind, synced), (renamed, names), (last, folder) = disk_events
    assert (kind, renamed, last) == ("fsync", "rename", "fsync")
    assert names == f"{synced} -> {target.resolve()}"  # the data flushed is the data renamed
    assert Path(synced).parent == tmp_path.resolve() and Path(synced).name.startswith(".report.")
    assert folder == str(tmp_path.resolve())  # then the folder's new entry


def test_a_folder_reaches_the_disk_whole_before_its_rename(tmp_path, disk_events):
    def write(staging: Path) -> None:
        (staging / "variables").mkdir()
        (staging / "variables" / "data").write_bytes(b"weights")
        (staging / "saved_model.pb").write_bytes(b"graph")

    replace_dir(tmp_path / "1", write)
    rename = next(i for i, (kind, _) in enumerate(disk_events) if kind == "rename")
    staging = disk_events[rename][1].split(" -> ")[0]
    synced_before = {path for kind, path in disk_events[:rename] if kind == "fsync"}
    inside = {"saved_model.pb", "variables", "variables/data", ""}
    assert synced_before == {os.path.join(staging, name).rstrip("/") for name in inside}
    assert disk_events[rename + 1 :] == [("fsync", str(tmp_path.resolve()))]
    assert (tmp_path / "1" / "variables" / "data").read_bytes() == b"weights"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "log.csv"
    target.write_text("old\n")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_file(target, fail)
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]


# Exports the run, killing the process (SIGKILL) as soon as the first SavedModel is written.
EXPORT_KILLED = """
import os, signal, sys
from pathlib import Path
import tensorflow as tf
from pipeline.decoding.export import export

save = tf.saved_model.save

def save_then_die(*args, **kwargs):
    save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

tf.saved_model.save = save_then_die
export(Path(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_an_export_killed_while_writing_leaves_no_version_a_server_would_load(tiny_run, tmp_path):
    from pipeline.decoding.export import export, ids_base

    base = tmp_path / "gru_bahdanau"
    killed = subprocess.run(
        [sys.executable, "-c", EXPORT_KILLED, str(tiny_run), str(base)],
        env={**os.environ, "PYTHONPATH": str(PROJECT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, cwd=PROJECT, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # The ids servable was written whole, then killed before its rename: no version folder anywhere.
    assert latest_version(ids_base(base)) is None and latest_version(base) is None
    assert all(p.name.startswith(".") for p in ids_base(base).iterdir())  # only the staging leftover
    # The next export starts at version 1, both servables complete.
    assert export(tiny_run, base) == base / "1"
    assert (ids_base(base) / "1" / "saved_model.pb").is_file()


def test_json_text_and_copies_are_written_whole_with_readable_modes(tmp_path):
    files.write_json(tmp_path / "sub" / "r.json", {"bleu": 38.99, "pair": "de-en", "note": "für"})
    assert (tmp_path / "sub" / "r.json").read_text(encoding="utf-8") == (
        '{\n  "bleu": 38.99,\n  "pair": "de-en",\n  "note": "für"\n}\n'
    )
    copied = files.copy_file(tmp_path / "sub" / "r.json", tmp_path / "copy" / "r.json")
    assert (
        copied == tmp_path / "copy" / "r.json"
        and copied.read_bytes() == (tmp_path / "sub" / "r.json").read_bytes()
    )
    assert copied.stat().st_mode & 0o777 == 0o644
    folder = replace_dir(tmp_path / "dir", lambda staging: (staging / "x").write_text("x"))
    assert folder == tmp_path / "dir" and folder.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "dir", "sub"]  # no temporaries
    # Folders that do not exist yet, however deep, are made.
    assert write_text(tmp_path / "a" / "b" / "c.txt", "c").read_text() == "c"
    assert (replace_dir(tmp_path / "d" / "e" / "1", lambda staging: None)).is_dir()


def test_a_failed_folder_write_leaves_nothing(tmp_path):
    def fail(staging: Path) -> None:
        (staging / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_dir(tmp_path / "1", fail)
    assert list(tmp_path.iterdir()) == []


def test_remove_stale_deletes_only_the_dot_temporaries(tmp_path):
    (tmp_path / ".epoch-003.abc").mkdir()
    (tmp_path / ".epoch-003.abc" / "model.weights.h5").write_text("half")
    (tmp_path / ".log.xyz.csv").write_text("half")
    (tmp_path / "epoch-002").mkdir()
    (tmp_path / "log.csv").write_text("whole")
    files.remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-002", "log.csv"]


def test_the_latest_version_is_the_highest_number_among_folders(tmp_path):
    assert latest_version(tmp_path / "absent") is None
    for name in ("1", "2", "10", ".11.staging", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a version")
    assert latest_version(tmp_path) == tmp_path / "10"


def test_a_saved_model_is_found_in_its_folder_or_its_latest_version(tmp_path):
    from pipeline.errors import UserError

    for version in ("1", "2"):
        (tmp_path / "base" / version).mkdir(parents=True)
        (tmp_path / "base" / version / "saved_model.pb").write_bytes(b"graph")
    assert files.saved_model_dir(tmp_path / "base") == tmp_path / "base" / "2"
    assert files.saved_model_dir(tmp_path / "base" / "1") == tmp_path / "base" / "1"
    with pytest.raises(UserError, match="no SavedModel in .*nowhere nor any numbered version"):
        files.saved_model_dir(tmp_path / "nowhere")
    (tmp_path / "base" / "3").mkdir()
    (tmp_path / "base" / "3" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(UserError, match="3/saved_model.pb is missing or empty"):
        files.saved_model_dir(tmp_path / "base")
    (tmp_path / "base" / "4").mkdir()  # a version folder without its graph
    with pytest.raises(UserError, match="4/saved_model.pb is missing or empty"):
        files.saved_model_dir(tmp_path / "base")
