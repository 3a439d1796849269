"""The "Reproduce every figure" table: each command's minutes summed from its committed report folders."""

from __future__ import annotations

import json

from pipeline import layout
from pipeline.reporting.reproduce import reproduce_table


def run(folder, train_seconds: float, ceiling: float, translate_seconds: float | None = None) -> None:
    folder.mkdir(parents=True)
    summary = {"train_seconds": train_seconds, "ceiling_gflops": {"1": ceiling}}
    (folder / layout.SUMMARY).write_text(json.dumps(summary))
    if translate_seconds is not None:
        for name in (
            layout.result("validation"),
            layout.result("test"),
            layout.result("test", layout.GREEDY),
        ):
            (folder / name).write_text(json.dumps({"translate_seconds": translate_seconds}))


def test_each_command_sums_its_runs_training_and_translation_with_their_ceilings(tmp_path):
    run(tmp_path / "de-en" / "converge" / "rnn", 600.0, 120.0, translate_seconds=20.0)
    run(tmp_path / "de-en" / "converge" / "gru", 1200.0, 130.5, translate_seconds=20.0)
    run(tmp_path / "de-en" / "converge" / "gru_bahdanau-seed1", 3000.0, 60.0)
    run(tmp_path / "de-en" / "tuning" / "R_converge", 1800.0, 80.0)
    (tmp_path / layout.ARCHIVED_JSON).write_text(json.dumps({"folders": {"de-en/tuning/R_converge": "old"}}))
    timed = {"label": "make test", "minutes": 27.14, "ceiling_gflops": 113.5, "date": "2026-11-30"}
    (tmp_path / layout.TIMINGS_JSON).write_text(json.dumps({"rows": [timed]}))
    text = reproduce_table(tmp_path, tmp_path / layout.REPRODUCE_MD).read_text()
    # (600 + 1200 + 2 x 3 x 20) / 60 = 32 minutes, 2 of the 7 variants
    converge = "| make all PRESET=converge | de-en/converge/compare.md, summary.md and its figures | 32 |"
    assert (
        f"{converge} 120.0-130.5 | training and translation, 2 of 7 runs (reports/de-en/converge) |" in text
    )
    seeds = "| make seeds PRESET=converge | de-en/converge/seeds.md | 50 | 60.0 |"
    assert f"{seeds} training and translation, 1 of 2" in text
    tune = "| make tune | de-en/tuning/tuning.md, tuning.png | 30 | 80.0 |"
    assert (
        f"{tune} training and translation, the 1 runs committed, 1 of them archived (reports/de-en/tuning) |"
        in text
    )
    assert (
        "| make all PAIR=en-de PRESET=converge | " in text
        and "| - | - | not run yet: no report folder |" in text
    )
    assert (
        "| make test | nothing: the test suite | 27 | 113.5 | wall time, `make timings` on 2026-11-30 |"
        in text
    )
    assert "| make bench | bench.md, bench.json | - | - | not run yet |" in text


def test_the_benches_minutes_are_what_their_own_files_time(tmp_path):
    (tmp_path / layout.BENCH_JSON).write_text(json.dumps({"matmul_gflops": 113.6, "seconds": 600.0}))
    sizes = [{"prepare_seconds": 3.0, "tokenize": {"seconds": 11.0}, "batches": {"seconds": 46.0}}]
    (tmp_path / layout.MEMORY_JSON).write_text(json.dumps({"ceiling_gflops": 325.2, "sizes": sizes}))
    serve = {"ceiling_gflops": 118.3, "seconds_per_level": 20.0, "levels": [{}, {}, {}]}
    (tmp_path / layout.SERVE_JSON).write_text(json.dumps(serve))
    (tmp_path / "de-en" / "converge" / "bench").mkdir(parents=True)
    (tmp_path / "de-en" / "converge" / "bench" / layout.BENCH_JSON).write_text(
        json.dumps({"matmul_gflops": 99.0})
    )
    text = reproduce_table(tmp_path, tmp_path / layout.REPRODUCE_MD).read_text()
    assert "| make bench | bench.md, bench.json | 10 | 113.6 | its timed parts, reports/bench.json |" in text
    assert (
        "| make membench | memory.md, memory.json | 1 | 325.2 | its timed parts, reports/memory.json |"
        in text
    )
    assert "| make servebench | serve.md | 1 | 118.3 | its timed parts, reports/serve.json |" in text
    # A bench from before it recorded its own time.
    assert "| 99.0 | not recorded in reports/de-en/converge/bench/bench.json |" in text
