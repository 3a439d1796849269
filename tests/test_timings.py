"""The README's timings: a command timed with its machine, make all summed from the quick reports."""

from __future__ import annotations

import json
import sys

import pytest

from pipeline import layout
from pipeline.__main__ import main
from pipeline.bench import timings


def test_a_timed_command_is_recorded_once_per_kind_of_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(timings, "ceiling", lambda: 123.4)
    monkeypatch.setattr(timings, "quick_row", lambda: None)
    command = [sys.executable, "-c", "import time; time.sleep(0.2)"]
    assert timings.record("make test", command, tmp_path) == 0
    assert timings.record("make test", command, tmp_path) == 0  # the same machine: replaced, not added
    rows = json.loads((tmp_path / layout.TIMINGS_JSON).read_text())["rows"]
    assert len(rows) == 1 and rows[0]["label"] == "make test" and rows[0]["ceiling_gflops"] == 123.4
    assert 0 <= rows[0]["minutes"] < 1  # minutes, to one decimal
    assert "| make test | " in (tmp_path / "timings.md").read_text()
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert timings.record("make lint", failing, tmp_path) == 3  # a failed command is not a timing
    assert len(json.loads((tmp_path / layout.TIMINGS_JSON).read_text())["rows"]) == 1


def test_make_all_is_the_sum_of_the_quick_runs_training_and_translation(tmp_path):
    for variant, (train, ceiling) in {"rnn": (60.0, 390.0), "gru": (120.0, 410.0)}.items():
        folder = tmp_path / variant
        folder.mkdir()
        (folder / layout.SUMMARY).write_text(
            json.dumps(
                {"train_seconds": train, "ceiling_gflops": {"1": ceiling}, "processors": {"1": "AMD EPYC"}}
            )
        )
        for name in (
            layout.result("validation"),
            layout.result("test"),
            layout.result("test", layout.GREEDY),
        ):
            (folder / name).write_text(json.dumps({"translate_seconds": 10.0}))
    row = timings.quick_row(tmp_path)
    assert row["cpu"] == "AMD EPYC"  # train.json's processors, each named once
    assert row["minutes"] == round((60 + 120 + 6 * 10) / 60, 1) and row["ceiling_gflops"] == "390.0-410.0"
    # Five variants are not in the folder: the sum is a lower bound, and the label says which.
    assert "2 of its 7 variants" in row["label"]
    assert "has no report of lstm, lstm_bahdanau, gru_bahdanau, gru_luong, transformer" in row["label"]


def test_nmt_timings_records_a_command_and_writes_the_table_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(timings, "ceiling", lambda: 50.0)
    monkeypatch.setattr(timings, "quick_row", lambda: None)
    out = ["--out-dir", str(tmp_path)]
    assert main(["timings", "--label", "make test", *out, "--", sys.executable, "-c", "pass"]) == 0
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert main(["timings", "--label", "make lint", *out, "--", *failing]) == 3  # its status, not recorded
    rows = json.loads((tmp_path / layout.TIMINGS_JSON).read_text())["rows"]
    assert [row["label"] for row in rows] == ["make test"] and rows[0]["ceiling_gflops"] == 50.0
    (tmp_path / "timings.md").unlink()
    capsys.readouterr()
    assert main(["timings", "--table", *out]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'timings.md'}\n"
    assert "| make test | " in (tmp_path / "timings.md").read_text()


@pytest.mark.parametrize(
    "args", [(), ("--label", "make test"), ("--label", "make test", "--"), ("--", "true")]
)
def test_nmt_timings_without_a_label_or_a_command_is_a_usage_error(args, capsys, monkeypatch):
    def refused(*args):
        raise AssertionError("a usage mistake ran the timing")

    monkeypatch.setattr(timings, "record", refused)  # nothing is run, even if the refusal breaks
    with pytest.raises(SystemExit) as exit:
        main(["timings", *args])
    assert exit.value.code == 2
    problem = "give --label and, after --, the command to time (or --table)"
    assert capsys.readouterr().err == f"error: nmt timings: {problem} (see nmt timings --help)\n"


def test_make_all_timed_replaces_the_sum_of_the_quick_reports_and_each_row_names_its_processor(
    tmp_path, monkeypatch
):
    summed = {"label": "make all (summed)", "minutes": 38.2, "ceiling_gflops": "357.1-419.6",
              "cpu": "not recorded in train.json", "avx512": None, "date": None}  # fmt: skip
    monkeypatch.setattr(timings, "quick_row", lambda: summed)
    test = {"label": "make test", "minutes": 27.1, "ceiling_gflops": 113.5, "cpu": "AMD EPYC",
            "avx512": False, "date": "2026-11-30"}  # fmt: skip
    (tmp_path / layout.TIMINGS_JSON).write_text(json.dumps({"rows": [test]}))
    text = timings.table(tmp_path).read_text()
    assert "| make all (summed) | 38.2 |" in text and "has not been timed yet" in text
    assert "| make test | 27.1 | 113.5 | AMD EPYC (AVX2 only) | 2026-11-30 |" in text
    timed = {**test, "label": timings.MAKE_ALL, "minutes": 75.0, "cpu": "Intel Xeon", "avx512": True}
    (tmp_path / layout.TIMINGS_JSON).write_text(json.dumps({"rows": [test, timed]}))
    text = timings.table(tmp_path).read_text()
    assert "summed" not in text and "has not been timed yet" not in text
    assert "| make all | 75.0 | 113.5 | Intel Xeon (AVX-512) | 2026-11-30 |" in text
