"""The Make chain end to end on the tiny preset: data -> tokenize -> train -> export -> evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = ROOT.parent / "shared" / "data" / "multi30k"


def make(target: str, tmp: Path) -> subprocess.CompletedProcess:
    installed = tmp / "installed"  # this interpreter's environment is the installed one
    if not installed.exists():  # touched once: a newer stamp would make every stage stale
        installed.touch()
    variables = {
        "PRESET": "tiny",
        "PYTHON": sys.executable,
        "INSTALLED": installed,
        "SHARED_CORPUS": SHARED_CORPUS,
        "DATA_DIR": tmp / "data",
        "RUN_DIR": tmp / "run",
        "SAVED_DIR": tmp / "saved",
        "REPORT_DIR": tmp / "report",
    }
    command = ["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_make_all_runs_every_stage_once(tmp_path):
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"no corpus at {SHARED_CORPUS}")
    first = make("all", tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("data", "tokenize", "train", "export", "evaluate"):
        assert f"-m pipeline {stage}" in first.stdout
    assert "BLEU" in first.stdout.splitlines()[-1]

    assert (tmp_path / "saved" / "gru_bahdanau" / "1" / "saved_model.pb").is_file()
    report = json.loads((tmp_path / "report" / "test.json").read_text())
    assert report["sentences"] == 64  # the tiny preset's eval_limit
    assert 0 <= report["bleu"] <= 100 and report["bleu_signature"].startswith("nrefs:1")
    hypotheses = (tmp_path / "report" / "test.hyp.txt").read_text().splitlines()
    assert len(hypotheses) == 64

    second = make("all", tmp_path)  # everything is up to date: no stage runs again
    assert second.returncode == 0, second.stderr[-3000:]
    assert "-m pipeline" not in second.stdout
    assert not (tmp_path / "saved" / "gru_bahdanau" / "2").exists()
