"""The README's timings: a command timed with its machine, make all summed from the quick reports."""

from __future__ import annotations

import json
import sys

from pipeline import timings


def test_a_timed_command_is_recorded_once_per_kind_of_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(timings, "ceiling", lambda: 123.4)
    monkeypatch.setattr(timings, "quick_row", lambda: None)
    command = [sys.executable, "-c", "import time; time.sleep(0.2)"]
    assert timings.record("make test", command, tmp_path) == 0
    assert timings.record("make test", command, tmp_path) == 0  # the same machine: replaced, not added
    rows = json.loads((tmp_path / "timings.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["label"] == "make test" and rows[0]["ceiling_gflops"] == 123.4
    assert 0 <= rows[0]["minutes"] < 1  # minutes, to one decimal
    assert "| make test | " in (tmp_path / "timings.md").read_text()
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert timings.record("make lint", failing, tmp_path) == 3  # a failed command is not a timing
    assert len(json.loads((tmp_path / "timings.json").read_text())["rows"]) == 1


def test_make_all_is_the_sum_of_the_quick_runs_training_and_translation(tmp_path):
    for variant, (train, ceiling) in {"rnn": (60.0, 390.0), "gru": (120.0, 410.0)}.items():
        folder = tmp_path / variant
        folder.mkdir()
        (folder / "train.json").write_text(
            json.dumps({"train_seconds": train, "ceiling_gflops": {"1": ceiling}})
        )
        for name in ("validation.json", "test.json", "test.greedy.json"):
            (folder / name).write_text(json.dumps({"translate_seconds": 10.0}))
    row = timings.quick_row(tmp_path)
    assert row["minutes"] == round((60 + 120 + 6 * 10) / 60, 1) and row["ceiling_gflops"] == "390.0-410.0"
    # Five variants are not in the folder: the sum is a lower bound, and the label says which.
    assert "2 of its 7 variants" in row["label"]
    assert "not yet run there: lstm, lstm_bahdanau, gru_bahdanau, gru_luong, transformer" in row["label"]
