"""Figures people would rather look at than read."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(log_csv: Path, out: Path) -> Path:
    """Training and validation loss and token accuracy per epoch, from Keras' CSVLogger file."""
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (loss_ax, "loss", "cross-entropy per token"),
        (acc_ax, "masked_accuracy", "token accuracy"),
    ):
        ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label="train")
        ax.plot(epochs, [float(r["val_" + key]) for r in rows], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(Path(log_csv).parent.name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
