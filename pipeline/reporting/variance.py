"""Seed variance: the same variant and preset trained with several seeds, and how far apart they land.

A gap between two variants smaller than this spread says little about the variants.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from pipeline import layout
from pipeline.errors import UserError
from pipeline.files import write_json, write_text


def seeds(runs: list[str], reports_dir: Path, out_dir: Path) -> Path:
    """Reads ``<reports_dir>/<run>/{test,validation}.json`` and ``train.json`` of each run;
    writes ``seeds.json`` and ``seeds.md`` (mean, sample standard deviation, range); returns seeds.json."""
    rows = []
    for run in runs:
        folder = reports_dir / run
        for name in (layout.result("test"), layout.result("validation"), layout.SUMMARY, layout.CONFIG):
            if not (folder / name).is_file():
                raise UserError(f"{folder / name} does not exist: evaluate run {run} first (make seeds does)")
        test = json.loads((folder / layout.result("test")).read_text())
        validation = json.loads((folder / layout.result("validation")).read_text())
        summary = json.loads((folder / layout.SUMMARY).read_text())
        config = json.loads((folder / layout.CONFIG).read_text())
        rows.append({"run": run, "seed": config["train"]["seed"], "epochs": summary["epochs"],
                     "best_epoch": summary["best_epoch"], "val_bleu": validation["bleu"],
                     "test_bleu": test["bleu"], "test_bleu_ci": test.get("bleu_ci")})  # fmt: skip
    spread = {}
    for key in ("val_bleu", "test_bleu"):
        values = [r[key] for r in rows]
        spread[key] = {
            "mean": round(statistics.mean(values), 2),
            "stdev": round(statistics.stdev(values), 2) if len(values) > 1 else None,
            "min": min(values),
            "max": max(values),
        }
    write_json(out_dir / layout.SEEDS_JSON, {"runs": rows, "spread": spread})
    write_text(out_dir / layout.SEEDS_MD, markdown(rows, spread))
    return out_dir / layout.SEEDS_JSON


def markdown(rows: list[dict], spread: dict) -> str:
    lines = ["| run | seed | epochs | best epoch | val BLEU | test BLEU |", "|---|---|---|---|---|---|"]
    for r in rows:
        ci = f" ± {r['test_bleu_ci']}" if r["test_bleu_ci"] is not None else ""
        lines.append(f"| `{r['run']}` | {r['seed']} | {r['epochs']} | {r['best_epoch']} | {r['val_bleu']} "
                     f"| {r['test_bleu']}{ci} |")  # fmt: skip
    lines.append("")
    for key, label in (("val_bleu", "Validation"), ("test_bleu", "Test")):
        s = spread[key]
        lines.append(f"{label} BLEU over {len(rows)} seeds: mean {s['mean']}, standard deviation "
                     f"{s['stdev']}, range {s['min']}-{s['max']}.")  # fmt: skip
    return "\n".join(lines) + "\n"
