"""Figures people would rather look at than read."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def save(fig, out: Path) -> Path:
    """Writes a figure to ``out`` at the project's resolution and frees it."""
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def read_log(log_csv: Path) -> dict[str, list[float]]:
    """``log.csv`` as columns of floats; an empty cell (a key some epochs lacked) is NaN."""
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = rows[0].keys() if rows else []
    return {key: [float(r[key]) if r[key] not in ("", None) else math.nan for r in rows] for key in keys}


def mark_resumes(ax, epochs: list[float], processes: list[float]) -> None:
    """A dotted line between the last epoch of one process and the first of the next (a resumed run)."""
    for before, after, epoch in zip(processes, processes[1:], epochs[1:], strict=False):
        if after != before:
            ax.axvline(epoch - 0.5, color="gray", linestyle=":")
            ax.text(epoch - 0.5, 0.98, "resumed", transform=ax.get_xaxis_transform(), rotation=90,
                    ha="right", va="top", fontsize=8, color="gray")  # fmt: skip


def plot_history(log_csv: Path, out: Path) -> Path:
    """Cross-entropy per token (train, validation) and greedy validation BLEU with the learning
    rate, per epoch, from the run's ``log.csv`` (``pipeline.training.callbacks.history_csv``)."""
    log = read_log(log_csv)
    epochs = log.get("epoch", [])  # 1-based, counted over all processes
    # xent is plain cross-entropy, the same whatever the label smoothing; older logs only have the loss
    train_key, val_key = ("xent", "val_xent") if "xent" in log else ("loss", "val_loss")
    fig, (xent_ax, bleu_ax) = plt.subplots(1, 2, figsize=(11, 4))

    for key, label in ((train_key, "train"), (val_key, "validation")):
        if key in log:
            xent_ax.plot(epochs, log[key], marker="o", label=label)
    xent_ax.set_ylabel("cross-entropy per token (nats)")
    xent_ax.legend(loc="lower left")  # a falling loss leaves it empty

    if "val_bleu" in log:
        bleu_ax.plot(epochs, log["val_bleu"], marker="o", color="C2")
    bleu_ax.set_ylabel("validation BLEU (greedy)")
    if "learning_rate" in log:
        rate_ax = bleu_ax.twinx()
        # each epoch's rate spans its own tick: the rate it trained with, not the next one's
        rate_ax.step(epochs, log["learning_rate"], where="mid", color="C3", alpha=0.7)
        rate_ax.set_yscale("log")
        rate_ax.set_ylabel("learning rate", color="C3")

    for ax in (xent_ax, bleu_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if "process" in log:
            mark_resumes(ax, epochs, log["process"])
    fig.suptitle(Path(log_csv).parent.name)
    return save(fig, out)


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
    return save(fig, out)


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
    return save(fig, out)


def plot_tuning_curves(histories: dict[str, list[dict]], out: Path) -> Path:
    """Greedy validation BLEU per epoch, one line per tuning run; a ring on each run's best epoch
    and a dot where the learning rate it trained with went down."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, history) in enumerate(histories.items()):
        epochs, bleu = [r["epoch"] for r in history], [r["val_bleu"] for r in history]
        ax.plot(epochs, bleu, marker=".", color=f"C{i}", label=name)
        best = max(range(len(bleu)), key=bleu.__getitem__)
        ax.plot(epochs[best], bleu[best], "o", mfc="none", ms=10, color=f"C{i}")
        lowered = [j for j in range(1, len(history))
                   if history[j]["learning_rate"] < history[j - 1]["learning_rate"]]  # fmt: skip
        ax.plot([epochs[j] for j in lowered], [bleu[j] for j in lowered], "v", color=f"C{i}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation BLEU (greedy)")
    ax.set_title("Tuning runs (ring: best epoch; triangle: first epoch at a lower learning rate)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, out)


def plot_gradient_flow(flows: dict, out: Path) -> Path:
    """Norm of d loss / d encoder state per source position, one line per variant, log scale."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for variant, flow in flows.items():
        style = "--" if "_" not in variant else "-"
        ax.semilogy(range(1, len(flow) + 1), flow, style, marker=".", label=variant)
    ax.set_xlabel("source position (forward encoder state; the Transformer's encoder output)")
    ax.set_ylabel("mean |d loss / d h_t|")
    ax.set_title("Gradient reaching each encoder position (dashed: single context vector)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save(fig, out)


def plot_attention(examples: list[dict], variant: str, out: Path) -> Path:
    """Attention weights of a few beam-5 translations: output pieces down, source pieces across."""
    fig, axes = plt.subplots(1, len(examples), figsize=(6 * len(examples), 5.5), squeeze=False)
    for ax, example in zip(axes[0], examples, strict=True):
        ax.imshow(example["weights"], cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(example["source"])), example["source"], rotation=90, fontsize=8)
        ax.set_yticks(range(len(example["output"])), example["output"], fontsize=8)
    fig.suptitle(f"{variant}: attention weights")
    return save(fig, out)
