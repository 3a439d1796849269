"""How long the README's commands take, on the machine that ran them: wall time with its ceiling.

    python -m pipeline timings --label "make test" -- make test

runs the command, and adds its minutes, the machine's ``make bench`` ceiling (measured just
before, alone) and its processor to ``reports/timings.json``, one row per label and kind of
machine (AVX-512 or not), the newest kept; ``reports/timings.md`` is the table ``make readme``
puts under the README's two commands (``--table`` writes it again without timing anything, as
``make readme`` does). ``make timings`` times ``make test`` and ``make all`` (in folders of its
own). Until a ``make all`` row is recorded, the table sums ``make all``'s training and
translation from the committed quick reports instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from pipeline import layout
from pipeline.constants import VARIANT_NAMES
from pipeline.files import write_json, write_text
from pipeline.machine import matmul_rate, processor, processor_name

QUICK = Path("reports/de-en/quick")
MAKE_ALL = "make all"  # the label of make all timed, which replaces the sum of the quick reports


def ceiling() -> float:
    return round(matmul_rate(), 1)  # TensorFlow: only when measuring


def quick_row(quick: Path = QUICK) -> dict | None:
    """``make all``'s training and translation, summed over the committed quick reports."""
    folders = sorted(p for p in quick.iterdir() if (p / layout.SUMMARY).is_file()) if quick.is_dir() else []
    if not folders:
        return None
    seconds, ceilings, cpus = 0.0, [], set()
    for folder in folders:
        summary = json.loads((folder / layout.SUMMARY).read_text())
        seconds += summary["train_seconds"]
        ceilings += list(summary.get("ceiling_gflops", {}).values())
        cpus |= {cpu for cpu in summary.get("processors", {}).values() if cpu}
        for name in (
            layout.result("validation"),
            layout.result("test"),
            layout.result("test", layout.GREEDY),
        ):
            seconds += json.loads((folder / name).read_text()).get("translate_seconds", 0.0)
    there = {folder.name for folder in folders}
    missing = [v for v in VARIANT_NAMES if v not in there]  # newer than the quick run: a lower bound
    label = (f"make all (training and translation of {len(folders)} of its {len(VARIANT_NAMES)} variants, "
             f"from {quick}, which has no report of {', '.join(missing)}: a lower bound)" if missing else
             f"make all (training and translation of the {len(folders)} variants, from {quick})")  # fmt: skip
    return {"label": label,
            "minutes": round(seconds / 60, 1),
            "ceiling_gflops": f"{min(ceilings)}-{max(ceilings)}" if ceilings else None,
            "cpu": ", ".join(sorted(cpus)) or "not recorded in train.json", "avx512": None,
            "date": None}  # fmt: skip


def record(label: str, command: list[str], out_dir: Path) -> int:
    """Times ``command``; adds its row to timings.json and rewrites timings.md. Returns its exit status."""
    rate = ceiling()
    began = time.monotonic()
    status = subprocess.call(command)
    minutes = round((time.monotonic() - began) / 60, 1)
    if status != 0:
        print(f"{' '.join(command)} failed (exit {status}): not recorded", file=sys.stderr)
        return status
    path = out_dir / layout.TIMINGS_JSON
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    row = {
        "label": label,
        "minutes": minutes,
        "ceiling_gflops": rate,
        **processor(),
        "date": date.today().isoformat(),
    }
    rows = [r for r in rows if (r["label"], r["avx512"]) != (label, row["avx512"])] + [row]
    write_json(path, {"rows": rows})
    table(out_dir)
    return 0


def table(out_dir: Path) -> Path:
    """timings.md again from timings.json (if any) and the committed quick reports."""
    path = out_dir / layout.TIMINGS_JSON
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    timed = any(r["label"] == MAKE_ALL for r in rows)
    return write_text(out_dir / layout.TIMINGS_MD, markdown(rows, None if timed else quick_row()))


def markdown(rows: list[dict], quick: dict | None) -> str:
    intro = (
        "How long they take, with the `make bench` ceiling and the processor of the machine that measured "
        "it (a slower ceiling, a longer time): `make timings` times `make test` and `make all`"
    )
    intro += (
        "; `make all` has not been timed yet, so its row sums the training and translation of the "
        "committed quick run."
        if quick
        else "."
    )
    lines = [
        intro,
        "",
        "| command | minutes | ceiling GFLOP/s | processor | measured |",
        "|---|---|---|---|---|",
    ]
    for r in [*([quick] if quick else []), *sorted(rows, key=lambda r: (r["label"], r["ceiling_gflops"]))]:
        cells = [r["label"], r["minutes"], r["ceiling_gflops"], processor_name(r), r["date"] or "-"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
