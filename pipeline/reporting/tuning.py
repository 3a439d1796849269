"""The recipe's evidence: runs that differ in one setting, compared on the validation split only.

Reads each run directory as the train stage leaves it and writes ``tuning.json`` and
``tuning.md``: the settings that differ, greedy validation BLEU of the best epoch, of the
average of the best checkpoints, beam-5 validation BLEU at each length penalty tried, and
what halving the learning rate did; and ``tuning.png``, every run's validation BLEU per epoch.
A run stopped before its end (no ``train.json`` yet) shows its epochs so far, from ``log.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
from pipeline.config import with_decoder_depth
from pipeline.errors import UserError
from pipeline.files import copy_file, write_json, write_text
from pipeline.reporting.plots import plot_tuning_curves, read_log

SETTINGS = (("model", "variant"), ("model", "dropout"), ("train", "label_smoothing"),
            ("model", "tie_embeddings"), ("model", "units"), ("train", "learning_rate"),
            ("train", "decay_from"), ("train", "warmup_steps"), ("model", "embedding_dim"),
            ("model", "ff_dim"), ("model", "layers"), ("model", "decoder_layers"))  # fmt: skip
# The Transformer's sizes: "-" in a recurrent variant's row, and no column without a Transformer
TRANSFORMER_ONLY = ("embedding_dim", "ff_dim", "layers", "decoder_layers")
HISTORY_KEYS = ("epoch", "val_bleu", "learning_rate")  # what tuning.json keeps of each epoch


def halved(before: float, after: float) -> bool:
    """A halving (plateau or decay), not the gentle 1/sqrt(step) decay of a warmup schedule."""
    return after <= 0.5 * before * (1 + 1e-6)


def halvings(history: list[dict]) -> dict:
    """Epochs after which the learning rate was halved, and the best greedy validation BLEU
    before the first of them and after it."""
    pairs = zip(history, history[1:], strict=False)  # (epoch, the next one)
    after = [r["epoch"] for r, nxt in pairs if halved(r["learning_rate"], nxt["learning_rate"])]
    if not after:
        return {"after_epochs": [], "best_before": None, "best_after": None}
    first = after[0]
    return {
        "after_epochs": after,
        "best_before": max(r["val_bleu"] for r in history if r["epoch"] <= first),
        "best_after": max((r["val_bleu"] for r in history if r["epoch"] > first), default=None),
    }


def unfinished_summary(run_dir: Path) -> dict:
    """What a run stopped before its end has to show: its epochs so far, from ``log.csv``."""
    log = read_log(run_dir / layout.LOG)
    columns = zip(log["epoch"], log["val_bleu"], log["learning_rate"], strict=True)
    history = [{"epoch": int(e), "val_bleu": b, "learning_rate": r} for e, b, r in columns]
    best = max(history, key=lambda r: r["val_bleu"])
    return {
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "stopped_by": "unfinished",
        "val_bleu_greedy": best["val_bleu"],
        "train_seconds": sum(log["seconds"]),
        "history": history,
    }


def settings(config: dict) -> dict:
    """The SETTINGS of a run's config.json; a setting newer than the file has its default there:
    None, except the decoder's depth, which was the encoder's."""
    config = {**config, "model": with_decoder_depth(config["model"])}
    found = {name: config[section].get(name) for section, name in SETTINGS}
    if found["variant"] != "transformer":
        found.update(dict.fromkeys(TRANSFORMER_ONLY))
    return found


def summarize(run_dirs: list[Path], out_dir: Path) -> Path:
    """Writes ``tuning.json``, ``tuning.md`` and ``tuning.png`` to ``out_dir``, and each run's log,
    summary, decoding and training figure to ``out_dir/<run>/``; returns tuning.json."""
    rows, curves = [], {}
    for run_dir in run_dirs:
        if not (run_dir / layout.CONFIG).is_file():
            raise UserError(f"{run_dir} is not a run directory (no config.json): train it first (make tune)")
        for name in (layout.LOG, layout.SUMMARY, layout.DECODING, layout.CONFIG, layout.TRAINING_PLOT):
            if (run_dir / name).is_file():  # a run stopped before its end has no summary yet
                copy_file(run_dir / name, out_dir / run_dir.name / name)
        config = json.loads((run_dir / layout.CONFIG).read_text())
        finished = (run_dir / layout.SUMMARY).is_file()
        summary = (
            json.loads((run_dir / layout.SUMMARY).read_text()) if finished else unfinished_summary(run_dir)
        )
        decoding = json.loads((run_dir / layout.DECODING).read_text()) if finished else {}
        averaging = summary.get("averaging") or {}
        rows.append({
            "run": run_dir.name,
            "settings": settings(config),
            "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],
            "stopped_by": summary["stopped_by"],
            "val_bleu_best_epoch": summary.get("best_epoch_val_bleu_greedy", summary["val_bleu_greedy"]),
            "averaged_epochs": averaging.get("epochs"), "val_bleu_averaged": averaging.get("val_bleu_greedy"),
            "val_bleu_beam5": decoding.get("validation_bleu_by_length_penalty", {}),
            "length_penalty": decoding.get("length_penalty"),
            "plateau": halvings(summary["history"]),
            # not in the table: tune runs may share the machine (their train.json has the ceiling)
            "train_minutes": round(summary["train_seconds"] / 60, 1),
            "history": [{k: h[k] for k in HISTORY_KEYS} for h in summary["history"]],
        })  # fmt: skip
        curves[run_dir.name] = summary["history"]
    write_json(out_dir / layout.TUNING_JSON, {"runs": rows})
    write_text(out_dir / layout.TUNING_MD, markdown(rows))
    plot_tuning_curves(curves, out_dir / layout.TUNING_PLOT)
    return out_dir / layout.TUNING_JSON


def markdown(rows: list[dict]) -> str:
    names = [name for _, name in SETTINGS  # the sizes only where a Transformer is in the table
             if name not in TRANSFORMER_ONLY or any(r["settings"][name] for r in rows)]  # fmt: skip
    alphas = sorted({a for r in rows for a in r["val_bleu_beam5"]}, key=float)  # every run's grid
    header = ["run", *names, "epochs", "best epoch", "val BLEU greedy, best epoch", "averaged (epochs)",
              *[f"beam 5, lp {a}" for a in alphas]]  # fmt: skip
    intro = ("Validation split only (1014 sentences), sacreBLEU cased. Greedy: the search that picks the "
             "best epoch; averaged: the mean of the best checkpoints' weights; beam 5 at each length "
             "penalty: the chosen weights.")  # fmt: skip
    if any(r["stopped_by"] == "unfinished" for r in rows):
        intro += (
            " A run marked unfinished was stopped before its end: its numbers are those of its epochs so far."
        )
    lines = [intro, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        averaged = (
            "-" if r["val_bleu_averaged"] is None else f"{r['val_bleu_averaged']} {r['averaged_epochs']}"
        )
        best_alpha, beam5 = str(r["length_penalty"]), r["val_bleu_beam5"]
        beams = [
            ("-" if a not in beam5 else f"**{beam5[a]}**" if a == best_alpha else str(beam5[a]))
            for a in alphas
        ]
        settings = ["-" if r["settings"][n] is None else str(r["settings"][n]) for n in names]
        epochs = f"{r['epochs']} (unfinished)" if r["stopped_by"] == "unfinished" else str(r["epochs"])
        cells = [f"`{r['run']}`", *settings, epochs,
                 str(r["best_epoch"]), str(r["val_bleu_best_epoch"]), averaged, *beams]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *epoch_table(rows), ""]  # the figure beside it: tuning.png
    for r in rows:
        p = r["plateau"]
        if p["after_epochs"]:
            lines.append(f"- `{r['run']}`: learning rate halved after epochs {p['after_epochs']}; best "
                         f"greedy validation BLEU {p['best_before']} up to the first halving, "
                         f"{p['best_after']} after it.")  # fmt: skip
    return "\n".join(lines) + "\n"


def epoch_table(rows: list[dict]) -> list[str]:
    """Greedy validation BLEU after every epoch of every run, so runs compare at equal epochs; a
    star marks an epoch trained at half the learning rate of the one before."""
    epochs = max(len(r["history"]) for r in rows)
    lines = [
        "Greedy validation BLEU after each epoch (*: trained at half the learning rate of the one before):",
        "",
        "| run | " + " | ".join(str(e) for e in range(1, epochs + 1)) + " |",
        "|" + "---|" * (epochs + 1),
    ]
    for r in rows:
        h = r["history"]
        star = [bool(i) and halved(h[i - 1]["learning_rate"], x["learning_rate"]) for i, x in enumerate(h)]
        cells = [f"{x['val_bleu']}{'*' if s else ''}" for x, s in zip(h, star, strict=True)]
        lines.append(f"| `{r['run']}` | " + " | ".join(cells + ["-"] * (epochs - len(h))) + " |")
    return lines
