"""The bench stage: how close training and translation come to what this CPU can do.

One run measures, on the same machine and in the same process:

- the ceiling: the float32 matrix-product rate (GFLOP/s);
- per variant, the training step: measured seconds on real batches, the step's FLOPs
  counted on their real tokens (``pipeline.bench.flops``), and the ratio of the measured
  time to the floor those FLOPs need at the ceiling's rate;
- per variant, translation through the exported SavedModel on the test set: greedy and
  beam 5, at batch 64 and at batch 1;
- the same translation timings of other exports in the same run, with no training step of their
  own (``models``: the best ensemble, ``runs/<pair>-<preset>/best``, and distilled students).

It writes ``bench.json`` and ``bench.md`` and returns the table.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import corpus, dataset, layout
from pipeline.bench.flops import training_step_flops
from pipeline.config import Config, make_config
from pipeline.constants import PAD_ID
from pipeline.decoding.evaluate import load_translator, translate_all
from pipeline.machine import matmul_rate, processor, processor_name
from pipeline.models import build_model
from pipeline.tokenizer import load_tokenizer
from pipeline.training.train import compile_model

DECODINGS = {"greedy": (1, 0.0), "beam5": (5, 0.6)}
TRANSLATION_KEYS = [f"{d}_{k}" for d in DECODINGS for k in ("b64_seconds", "b64_sentences_per_second",
                                                              "b1_ms_per_sentence")]  # fmt: skip
Batches = list[tuple[dict, np.ndarray]]  # ({"source", "target_in"}, target_out), numpy


def sample_batches(cfg: Config, data_dir: Path, tokenizer: Path, steps: int) -> Batches:
    """The first ``steps`` training batches, as training draws them (shuffled, bucketed), in memory."""
    keras.utils.set_random_seed(cfg.train.seed)  # the same batches in every run
    batches = dataset.batches(cfg.pair, "train", data_dir, tokenizer, cfg.data, training=True)
    return list(batches.take(steps).as_numpy_iterator())


def real_share(batches: Batches) -> dict[str, float]:
    """Real tokens over padded positions, for the sources and the targets of ``batches``."""
    shares = {}
    for name, arrays in (("source", [x["source"] for x, _ in batches]), ("target", [y for _, y in batches])):
        shares[name] = round(sum(int(np.sum(a != PAD_ID)) for a in arrays) / sum(a.size for a in arrays), 3)
    return shares


def real_lengths(batches: Batches) -> tuple[list[int], list[int]]:
    """Real source tokens (EOS included) and decoder steps of every sentence in ``batches``."""
    sources, targets = [], []
    for inputs, target_out in batches:
        sources += np.sum(inputs["source"] != PAD_ID, axis=1).tolist()
        targets += np.sum(target_out != PAD_ID, axis=1).tolist()
    return sources, targets


def time_training(
    cfg: Config, vocab_size: int, batches: list[tuple[dict, np.ndarray]], fused: bool = True
) -> float:
    """Seconds per training step, the train function fit runs, after a pass that traces every shape.

    Steps are timed by ``train_on_batch``, which runs the same compiled step as ``fit`` without
    the per-epoch set-up (iterator, callbacks) that ``fit`` spreads over a whole epoch.
    """
    keras.utils.set_random_seed(cfg.train.seed)
    model = compile_model(build_model(cfg.model, vocab_size, fused=fused), cfg)
    for inputs, target in batches:  # warm-up: traces (and compiles) every batch shape
        model.train_on_batch(inputs, target)
    start = time.perf_counter()
    for inputs, target in batches:
        model.train_on_batch(inputs, target)
    return (time.perf_counter() - start) / len(batches)


def time_translation(translator, sources: list[str], batch_size: int, beam_size: int, alpha: float):
    """Seconds to translate ``sources`` through a loaded SavedModel, after one warm-up batch."""
    translate_all(translator, sources[:batch_size], beam_size, alpha, batch_size, progress=False)
    start = time.perf_counter()
    translate_all(translator, sources, beam_size, alpha, batch_size, progress=False)
    return time.perf_counter() - start


def markdown(report: dict) -> str:
    """The report as text and a table; without translation timings (``--no-translation``) their
    sentence and columns are left out."""
    translated = any(r["translation"] for r in report["variants"])
    text = (
        f"Benchmark on {report['machine']}, {processor_name(report.get('processor'))}: float32 matrix "
        f"product {report['matmul_gflops']:.1f} GFLOP/s "
        f"(the ceiling). Training ({'fused loops' if report['fused'] else 'plain Keras layers'}): "
        f"{report['train_steps']} real training batches of up to "
        f"{report['batch_size']} sentences ({report['real_share']['source']:.1%} of source and "
        f"{report['real_share']['target']:.1%} of target positions are real tokens), timed after a "
        "warm-up pass over the same batches; the floor "
        "is the step's matrix-product FLOPs (forward and backward, real tokens only) at the ceiling's rate."
    )
    head, rule = "| variant | GFLOP/step | step s | floor s | step / floor | tokens/s |", "|" + "---|" * 6
    if translated:
        batch1 = (
            "batch 64 and at batch 1."
            if report["batch1_sentences"] == report["sentences"]
            else f"batch 64, the first {report['batch1_sentences']} at batch 1."
        )
        text += f" Translation: the exported SavedModels on test_2016_flickr, {report['sentences']} sentences"
        text += f" at {batch1}"
        head += " greedy b64 sent/s | beam5 b64 sent/s | beam5 b64 test s | greedy b1 ms/sent"
        head += " | beam5 b1 ms/sent |"
        rule += "---|" * 5
    lines = [text, "", head, rule]
    for r in report["variants"]:
        row = (
            f"| `{r['variant']}` | {r['gflops_per_step']:.1f} | {r['step_seconds']:.3f} | "
            f"{r['floor_seconds']:.3f} | **{r['ratio_to_floor']:.2f}** | {r['tokens_per_second']:,} |"
            if r["step_seconds"] is not None
            else f"| `{r['variant']}` | - | - | - | - | - |"  # an export only: no training step timed
        )
        if translated:
            t = r["translation"] or {k: float("nan") for k in TRANSLATION_KEYS}
            row += (
                f" {t['greedy_b64_sentences_per_second']:.0f} | {t['beam5_b64_sentences_per_second']:.0f} | "
                f"{t['beam5_b64_seconds']:.1f} | {t['greedy_b1_ms_per_sentence']:.1f} | "
                f"{t['beam5_b1_ms_per_sentence']:.1f} |"
            )
        lines.append(row)
    return "\n".join(lines) + "\n"


def bench(
    pair: str,
    preset: str,
    variants: list[str],
    data_dir: Path,
    tokenizer: Path,
    runs_dir: Path,
    out_dir: Path,
    steps: int = 50,
    batch1_sentences: int | None = None,
    overrides: list[str] | None = None,
    fused: bool = True,
    translation: bool = True,
    models: list[str] | None = None,
    models_dir: Path | None = None,
) -> str:
    """Runs every measurement, writes ``bench.json`` and ``bench.md`` to ``out_dir``, returns the table.

    ``batch1_sentences`` limits the batch-1 translation to the first test sentences (None: all);
    ``fused=False`` times the plain Keras layers instead; ``translation=False`` skips translation;
    ``models`` are other exports under ``models_dir`` (``<name>/exported.txt``; None: ``runs_dir``),
    translation only: the converge runs' best model and students beside the quick variants.
    """
    cfg = make_config(preset, pair, overrides=overrides)
    vocab_size = load_tokenizer(tokenizer).vocab_size()
    began = time.monotonic()
    gflops = matmul_rate()
    print(f"matrix product: {gflops:.1f} GFLOP/s")
    batches = sample_batches(cfg, data_dir, tokenizer, steps)
    sources, _ = corpus.read_split(cfg.pair, "test", data_dir, cfg.data.eval_limit)
    batch1_sentences = min(batch1_sentences or len(sources), len(sources))

    rows = []
    for variant in variants:
        exported = runs_dir / variant / layout.EXPORTED if translation else None
        variant_cfg = make_config(preset, pair, variant, overrides)
        row = bench_variant(
            variant,
            variant_cfg,
            vocab_size,
            batches,
            steps,
            gflops,
            fused,
            exported,
            sources,
            batch1_sentences,
        )
        rows.append(row)
    for name in (models or []) if translation else []:
        exported = (models_dir or runs_dir) / name / layout.EXPORTED
        rows.append(translation_row(name, exported, sources, batch1_sentences))

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}",
        "processor": processor(),  # the CPU's name, and whether it has AVX-512
        "matmul_gflops": round(gflops, 2),
        "batch_size": cfg.data.batch_size,
        "train_steps": steps,
        "real_share": real_share(batches),
        "fused": fused,
        "sentences": len(sources),
        "batch1_sentences": batch1_sentences,
        "variants": rows,
        "seconds": round(time.monotonic() - began, 1),  # the whole bench, for docs/results.md
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / layout.BENCH_JSON).write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out_dir / layout.BENCH_MD).write_text(table)
    return table


def bench_variant(
    variant: str,
    cfg: Config,
    vocab_size: int,
    batches: Batches,
    steps: int,
    gflops: float,
    fused: bool,
    exported: Path | None,
    sources: list[str],
    batch1_sentences: int,
) -> dict:
    """``variant``'s row of the table (``cfg`` its config): its training step on ``batches`` against
    the floor at ``gflops``, and with ``exported`` (its run's pointer to its SavedModel) its
    translation timings."""
    source_lengths, target_lengths = real_lengths(batches)
    flops = training_step_flops(cfg.model, vocab_size, source_lengths, target_lengths) / steps
    seconds = time_training(cfg, vocab_size, batches, fused)
    floor = flops / (gflops * 1e9)
    timings = time_decodings(exported, sources, batch1_sentences) if exported is not None else {}
    print(f"{variant}: {seconds:.3f} s/step, {seconds / floor:.2f}x the floor; {timings}")
    return {
        "variant": variant,
        "gflops_per_step": round(flops / 1e9, 2),
        "step_seconds": round(seconds, 4),
        "floor_seconds": round(floor, 4),
        "ratio_to_floor": round(seconds / floor, 3),
        "tokens_per_second": round(sum(target_lengths) / steps / seconds),
        "translation": timings,
    }


def translation_row(name: str, exported: Path, sources: list[str], batch1_sentences: int) -> dict:
    """The row of an export timed for translation alone (an ensemble, a student): no training step."""
    timings = time_decodings(exported, sources, batch1_sentences)
    print(f"{name}: {timings}")
    training = dict.fromkeys(("gflops_per_step", "step_seconds", "floor_seconds", "ratio_to_floor",
                              "tokens_per_second"))  # fmt: skip
    return {"variant": name, **training, "translation": timings}


def time_decodings(exported: Path, sources: list[str], batch1_sentences: int) -> dict[str, float]:
    """Every decoding of ``DECODINGS`` through the SavedModel ``exported`` points to: the seconds
    and sentences per second at batch 64 on all ``sources``, the milliseconds per sentence at
    batch 1 on the first ``batch1_sentences``."""
    # loaded once: each load reads and restores the whole SavedModel
    translator, _ = load_translator(Path(exported.read_text().strip()))
    timings = {}
    for name, (beam, alpha) in DECODINGS.items():
        full = time_translation(translator, sources, 64, beam, alpha)
        one = time_translation(translator, sources[:batch1_sentences], 1, beam, alpha)
        timings[f"{name}_b64_seconds"] = round(full, 2)
        timings[f"{name}_b64_sentences_per_second"] = round(len(sources) / full, 1)
        timings[f"{name}_b1_ms_per_sentence"] = round(1000 * one / batch1_sentences, 2)
    return timings
