"""docs/results.md's "Reproduce every figure" table: each command, what it writes, and its minutes
at the ceiling of the machines that ran it, all read from committed files.

A command that trains is timed by what its report folders record: each run's training
(``train.json``'s ``train_seconds``) and its translations (each result's ``translate_seconds``),
summed, with the `make bench` ceiling of every training process. Data preparation, tokenizing,
the probe and the report itself are not in that sum, so it is a lower bound of the command's wall
time. ``make test`` and ``make all`` are read from ``reports/timings.json`` (`make timings`), which
times them whole; the benches by what their own files time. A command whose files record no
time says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
from pipeline.constants import VARIANT_NAMES
from pipeline.files import write_text
from pipeline.reporting.archive import archived

SEED_RUNS = ("gru_bahdanau-seed1", "gru_bahdanau-seed2")
EN_DE_BEST_RUNS = ("gru_luong", "transformer", "gru_luong-seed1", "transformer-seed1")  # its candidates
TUNE_TRANSFORMER_RUNS = ("transformer_peak1e3", "transformer_peak5e4", "transformer_6x1", "transformer_tiny")
# Each command: what it writes (under reports/), the folder of its runs' report folders, and those
# runs (None: every report folder in it).
TRAINED: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    ("make all", "de-en/quick/compare.md and its figures", "de-en/quick", VARIANT_NAMES),
    ("make all PRESET=converge", "de-en/converge/compare.md, summary.md and its figures", "de-en/converge",
     VARIANT_NAMES),
    ("make seeds PRESET=converge", "de-en/converge/seeds.md", "de-en/converge", SEED_RUNS),
    ("make all PAIR=en-de PRESET=converge", "en-de/converge/compare.md, summary.md and its figures",
     "en-de/converge", VARIANT_NAMES),
    ("make all PRESET=full VARIANTS=gru_bahdanau", "de-en/full/compare.md", "de-en/full", ("gru_bahdanau",)),
    ("make all PRESET=full PAIR=en-de VARIANTS=gru_bahdanau", "en-de/full/compare.md", "en-de/full",
     ("gru_bahdanau",)),
    ("make best", "de-en/best/selection.md, test.json, serve-exchange.md", "de-en/best/members", None),
    ("make distill VARIANT=gru_luong", "de-en/distilled/gru_luong/", "de-en/distilled", ("gru_luong",)),
    ("make best PAIR=en-de", "en-de/best/selection.md, test.json", "en-de/converge", EN_DE_BEST_RUNS),
    ("make tune", "de-en/tuning/tuning.md, tuning.png", "de-en/tuning", None),
    ("make tune-transformer", "de-en/tuning/transformer/tuning.md, tuning.png", "de-en/tuning/transformer",
     TUNE_TRANSFORMER_RUNS),
)  # fmt: skip
# Commands that train nothing: what they write, the file that times them (under reports/), and
# the seconds and ceiling it records (None: it records none).
MEASURED = (
    ("make bench", f"{layout.BENCH_MD}, {layout.BENCH_JSON}", layout.BENCH_JSON),
    (
        "make bench-transformer",
        f"de-en/converge/bench/{layout.BENCH_MD}",
        f"de-en/converge/bench/{layout.BENCH_JSON}",
    ),
    ("make membench", f"{layout.MEMORY_MD}, {layout.MEMORY_JSON}", layout.MEMORY_JSON),
    ("make servebench", layout.SERVE_MD, layout.SERVE_JSON),
)
UNTIMED = (
    ("make report", "a comparison again from its report folders, training nothing"),
    ("make readme", "every table of README.md and docs/ from the files above"),
)


def recorded_seconds(found: dict) -> float | None:
    """What a bench, membench or servebench file records of its own time: bench's whole run,
    membench's timed stages, servebench's load at every level (None: a file from before)."""
    if "seconds" in found:
        return found["seconds"]
    if "sizes" in found:
        return sum(
            s["prepare_seconds"] + s["tokenize"]["seconds"] + s["batches"]["seconds"] for s in found["sizes"]
        )
    if "levels" in found:
        return found["seconds_per_level"] * len(found["levels"])
    return None


def measured_row(reports: Path, command: str, writes: str, name: str) -> list:
    path = reports / name
    if not path.is_file():
        return [command, writes, "-", "-", "not run yet"]
    found = json.loads(path.read_text())
    seconds = recorded_seconds(found)
    ceiling = found.get("ceiling_gflops", found.get("matmul_gflops", "-"))
    if seconds is None:
        return [command, writes, "-", ceiling, f"not recorded in reports/{name}"]
    return [command, writes, f"{seconds / 60:.0f}", ceiling, f"its timed parts, reports/{name}"]


RESULTS = (layout.result("validation"), layout.result("test"), layout.result("test", layout.GREEDY))


def run_minutes(folder: Path) -> tuple[float, list[float]]:
    """One report folder's training and translation seconds, and the ceilings of its processes."""
    summary = json.loads((folder / layout.SUMMARY).read_text())
    seconds = summary["train_seconds"]
    for name in RESULTS:
        if (folder / name).is_file():
            seconds += json.loads((folder / name).read_text()).get("translate_seconds", 0.0)
    return seconds, [c for c in summary.get("ceiling_gflops", {}).values() if c]


def trained_row(reports: Path, command: str, writes: str, where: str, runs: tuple[str, ...] | None) -> list:
    """A training command's cells: its minutes and ceilings summed over the runs committed."""
    folder = reports / where
    there = (
        sorted(p.name for p in folder.iterdir() if (p / layout.SUMMARY).is_file()) if folder.is_dir() else []
    )
    found = [r for r in (runs or there) if r in there]
    if not found:
        return [command, writes, "-", "-", "not run yet: no report folder"]
    seconds, ceilings = 0.0, []
    for run in found:
        run_seconds, run_ceilings = run_minutes(folder / run)
        seconds, ceilings = seconds + run_seconds, ceilings + run_ceilings
    low, high = (min(ceilings), max(ceilings)) if ceilings else (None, None)
    ceiling = "-" if low is None else f"{low}" if low == high else f"{low}-{high}"
    counted = f"{len(found)} of {len(runs)} runs" if runs else f"the {len(found)} runs committed"
    old = [run for run in found if f"{where}/{run}" in kept(reports)]
    counted += f", {len(old)} of them archived" if old else ""
    return [
        command,
        writes,
        f"{seconds / 60:.0f}",
        ceiling,
        f"training and translation, {counted} (reports/{where})",
    ]


def kept(reports: Path) -> dict[str, str]:
    """The archived report folders (``reports/archived.json``), none if there is no list."""
    return archived(reports) if (reports / layout.ARCHIVED_JSON).is_file() else {}


def timed_rows(reports: Path) -> list[list]:
    """``make test`` and ``make all`` as `make timings` timed them, whole."""
    path = reports / layout.TIMINGS_JSON
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    writes = {"make test": "nothing: the test suite", "make all": "the quick comparison, in runs/timings"}
    return [[r["label"], writes.get(r["label"], "-"), f"{r['minutes']:.0f}",
             r["ceiling_gflops"], f"wall time, `make timings` on {r['date']}"] for r in rows]  # fmt: skip


def reproduce_table(reports: Path, out: Path) -> Path:
    """Writes the table to ``out``; returns ``out``."""
    lines = [
        "Each command, what it writes under `reports/`, and its minutes at the `make bench` ceiling of the "
        "machines that ran it, read from the committed files (`make readme` writes this table): for a "
        "command that trains, the training and translation its report folders record, summed (data, "
        "tokenizing, the probe and the report itself are left out: a lower bound); for `make test` and "
        "`make all` when `make timings` has run, their wall time; for the benches, what their own files "
        "time. A command without minutes records none.",
        "",
        "| command | what it writes | minutes | ceiling GFLOP/s | minutes from |",
        "|---|---|---|---|---|",
    ]
    rows = [trained_row(reports, *spec) for spec in TRAINED] + timed_rows(reports)
    rows += [measured_row(reports, *spec) for spec in MEASURED]
    rows += [[command, writes, "-", "-", "not recorded"] for command, writes in UNTIMED]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return write_text(out, "\n".join(lines) + "\n")
