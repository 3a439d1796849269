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


def plot_bleu_by_variant(rows: list[dict], out: Path) -> Path:
    """Validation and test BLEU per variant (beam 5), and test BLEU with greedy search beside it."""
    names = [r["variant"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar([i - 0.27 for i in x], [r["val_bleu"] for r in rows], width=0.27, label="validation, beam 5")
    ax.bar([i for i in x], [r["test_bleu_greedy"] for r in rows], width=0.27, label="test, greedy")
    bars = ax.bar([i + 0.27 for i in x], [r["test_bleu"] for r in rows], width=0.27, label="test, beam 5")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(list(x), names, rotation=20)
    ax.set_ylabel("BLEU")
    ax.set_title("BLEU by variant (sacreBLEU)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_bleu_by_length(rows: list[dict], out: Path) -> Path:
    """Test BLEU against source sentence length, one line per variant."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        buckets = r["test_bleu_by_length"]
        style = "-" if r["attention"] else "--"
        bleu = [float("nan") if b["bleu"] is None else b["bleu"] for b in buckets.values()]  # empty bucket
        ax.plot(list(buckets), bleu, style, marker="o", label=r["variant"])
    counts = [f"{name}\n({b['sentences']} sent.)" for name, b in rows[0]["test_bleu_by_length"].items()]
    ax.set_xticks(range(len(counts)), counts)  # few sentences in a bucket: a noisy point
    ax.set_xlabel("source length (words)")
    ax.set_ylabel("test BLEU")
    ax.set_title("BLEU by source length (dashed: single context vector)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_gradient_flow(flows: dict, out: Path) -> Path:
    """Norm of d loss / d encoder state per source position, one line per variant, log scale."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for variant, flow in flows.items():
        style = "--" if "_" not in variant else "-"
        ax.semilogy(range(1, len(flow) + 1), flow, style, marker=".", label=variant)
    ax.set_xlabel("source position (forward encoder state)")
    ax.set_ylabel("mean |d loss / d h_t|")
    ax.set_title("Gradient reaching each encoder position (dashed: single context vector)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_attention(examples: list[dict], variant: str, out: Path) -> Path:
    """Attention weights of a few beam-5 translations: output pieces down, source pieces across."""
    fig, axes = plt.subplots(1, len(examples), figsize=(6 * len(examples), 5.5), squeeze=False)
    for ax, example in zip(axes[0], examples, strict=True):
        ax.imshow(example["weights"], cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(example["source"])), example["source"], rotation=90, fontsize=8)
        ax.set_yticks(range(len(example["output"])), example["output"], fontsize=8)
    fig.suptitle(f"{variant}: attention weights")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
