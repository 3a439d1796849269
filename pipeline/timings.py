"""How long the README's commands take, on the machine that ran them: wall time with its ceiling.

    python -m pipeline.timings --label "make test" -- make test

runs the command, and adds its minutes, the machine's ``make bench`` ceiling (measured just
before, alone) and its processor to ``reports/timings.json``, one row per label and kind of
machine (AVX-512 or not), the newest kept; ``reports/timings.md`` is the table ``make readme``
puts under the README's two commands (``--table`` writes it again without timing anything, as
``make readme`` does). ``make all``'s row is summed from the committed quick reports instead
(training and translation of every variant): one full run takes an hour or more.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from pipeline.constants import VARIANT_NAMES
from pipeline.files import write_json, write_text

QUICK = Path("reports/de-en/quick")


def machine() -> dict:
    """The processor's name, and whether it has AVX-512: the two kinds of machine we meet."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return {"cpu": names[0] if names else "unknown", "avx512": "avx512f" in info}


def ceiling() -> float:
    from pipeline.flops import matmul_rate  # TensorFlow: only when measuring

    return round(matmul_rate(), 1)


def quick_row(quick: Path = QUICK) -> dict | None:
    """``make all``'s training and translation, summed over the committed quick reports."""
    folders = sorted(p for p in quick.iterdir() if (p / "train.json").is_file()) if quick.is_dir() else []
    if not folders:
        return None
    seconds, ceilings = 0.0, []
    for folder in folders:
        summary = json.loads((folder / "train.json").read_text())
        seconds += summary["train_seconds"]
        ceilings += list(summary.get("ceiling_gflops", {}).values())
        for name in ("validation.json", "test.json", "test.greedy.json"):
            seconds += json.loads((folder / name).read_text()).get("translate_seconds", 0.0)
    there = {folder.name for folder in folders}
    missing = [v for v in VARIANT_NAMES if v not in there]  # newer than the quick run: a lower bound
    label = (f"make all (training and translation of {len(folders)} of its {len(VARIANT_NAMES)} variants, "
             f"from {quick}; not yet run there: {', '.join(missing)})" if missing else
             f"make all (training and translation of the {len(folders)} variants, from {quick})")  # fmt: skip
    return {"label": label,
            "minutes": round(seconds / 60, 1),
            "ceiling_gflops": f"{min(ceilings)}-{max(ceilings)}" if ceilings else None,
            "cpu": "as recorded in each run's train.json", "avx512": None, "date": None}  # fmt: skip


def record(label: str, command: list[str], out_dir: Path) -> int:
    """Times ``command``; adds its row to timings.json and rewrites timings.md. Returns its exit status."""
    rate = ceiling()
    began = time.monotonic()
    status = subprocess.call(command)
    minutes = round((time.monotonic() - began) / 60, 1)
    if status != 0:
        print(f"{' '.join(command)} failed (exit {status}): not recorded", file=sys.stderr)
        return status
    path = out_dir / "timings.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    row = {
        "label": label,
        "minutes": minutes,
        "ceiling_gflops": rate,
        **machine(),
        "date": date.today().isoformat(),
    }
    rows = [r for r in rows if (r["label"], r["avx512"]) != (label, row["avx512"])] + [row]
    write_json(path, {"rows": rows})
    table(out_dir)
    return 0


def table(out_dir: Path) -> Path:
    """timings.md again from timings.json (if any) and the committed quick reports."""
    path = out_dir / "timings.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    return write_text(out_dir / "timings.md", markdown(rows, quick_row()))


def markdown(rows: list[dict], quick: dict | None) -> str:
    intro = (
        "How long they take, with the `make bench` ceiling of the machine that measured it (a slower "
        "ceiling, a longer time): `make timings` times `make test`; `make all`'s training and "
        "translation are summed from the committed quick run."
    )
    lines = [
        intro,
        "",
        "| command | minutes | ceiling GFLOP/s | processor | measured |",
        "|---|---|---|---|---|",
    ]
    for r in [*([quick] if quick else []), *sorted(rows, key=lambda r: (r["label"], r["ceiling_gflops"]))]:
        kind = "" if r["avx512"] is None else (" (AVX-512)" if r["avx512"] else " (AVX2)")
        cells = [r["label"], r["minutes"], r["ceiling_gflops"], f"{r['cpu']}{kind}", r["date"] or "-"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Time a command and record it in reports/timings.{json,md}.")
    parser.add_argument("--label", help='what the README calls it, e.g. "make test"')
    parser.add_argument("--table", action="store_true", help="only write timings.md again, timing nothing")
    parser.add_argument("--out-dir", type=Path, default=Path("reports"), help="where timings.{json,md} go")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to time")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.table:
        print(table(args.out_dir))
    elif not (args.label and command):
        parser.error("give --label and, after --, the command to time (or --table)")
    else:
        sys.exit(record(args.label, command, args.out_dir))
