"""make membench: peak memory and time of the tokenize stage and of one pass of the training
input pipeline, on the synthetic corpus (``corpus/synthetic.py``) at each size asked.

Every measurement is its own process, so its peak resident set (``ru_maxrss`` from ``wait4``)
is that stage's alone. Writes ``memory.json`` and ``memory.md`` to the output folder.

    python -m pipeline membench --sizes 100000 1000000 --data-dir data/membench --out-dir reports
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from pipeline import layout
from pipeline.config import make_config
from pipeline.files import write_json, write_text

PAIR = "xx-yy"
PRESET = "quick"  # the default sizes: an 8,000-piece vocabulary, batches of 128
ROOT = Path(__file__).resolve().parents[1]  # the children import this checkout's pipeline


def corpus_name(pairs: int) -> str:
    from pipeline.corpus.synthetic import config_name  # TensorFlow Datasets: only where needed

    return f"synthetic_translate/{config_name(pairs)}"


def measure(command: list[str]) -> dict:
    """Runs ``command`` (python arguments) in a child process: its peak RSS, wall time and stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.monotonic()
    child = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {child.returncode}")
    # ru_maxrss is in KiB on Linux
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 1), "stdout": stdout}


def one_pass(pairs: int, data_dir: Path, spm_model: Path) -> None:
    """The measured child of the input-pipeline figure: builds ``dataset.batches`` (training) and
    reads one epoch of it; prints what it saw as JSON."""
    from pipeline import dataset

    cfg = make_config(PRESET, PAIR, corpus=corpus_name(pairs))
    start = time.monotonic()
    batches = dataset.batches(PAIR, "train", data_dir, spm_model, cfg.data, True, cfg.corpus)
    built = time.monotonic() - start
    count = examples = 0
    for _, target_out in batches:  # target_out: (batch, tgt_len)
        count += 1
        examples += int(target_out.shape[0])
    print(json.dumps({"batches": count, "examples": examples, "build_seconds": round(built, 1),
                      "cached": pairs <= cfg.data.cache_pairs}))  # fmt: skip


def membench(sizes: list[int], data_dir: Path, out_dir: Path) -> Path:
    """Prepares the synthetic corpus at each size (unmeasured), then measures tokenize and one
    pass of the input pipeline at each; returns ``memory.json``."""
    cfg = make_config(PRESET, PAIR, corpus=corpus_name(sizes[0]))
    rows = []
    for pairs in sizes:
        name, spm_dir = corpus_name(pairs), data_dir / "spm" / str(pairs)
        print(f"{pairs:,} pairs: preparing {name}", flush=True)
        data = ["--corpus", name, "--pair", PAIR, "--data-dir", str(data_dir)]
        prepare = measure(["-m", "pipeline", "data", *data])
        print(f"{pairs:,} pairs: tokenize", flush=True)
        tokenize = measure(
            ["-m", "pipeline", "tokenize", *data, "--preset", PRESET, "--out-dir", str(spm_dir)]
        )
        print(f"{pairs:,} pairs: tokenize {tokenize['peak_rss_mib']} MiB {tokenize['seconds']} s", flush=True)
        spm_model = spm_dir / layout.TOKENIZER  # the measured child: one pass of the input pipeline
        one_pass_args = ["--one-pass", str(pairs), "--data-dir", str(data_dir), "--spm-model", str(spm_model)]
        batches = measure(["-m", "pipeline", "membench", *one_pass_args])
        seen = json.loads(batches.pop("stdout").strip().splitlines()[-1])
        print(f"{pairs:,} pairs: batches {batches['peak_rss_mib']} MiB, {batches['seconds']} s", flush=True)
        rows.append({
            "pairs": pairs,
            "prepare_seconds": prepare["seconds"],
            "tokenize": {k: tokenize[k] for k in ("peak_rss_mib", "seconds")},
            "batches": {**batches, **seen},
        })  # fmt: skip
    peak = {r["pairs"]: max(r["tokenize"]["peak_rss_mib"], r["batches"]["peak_rss_mib"]) for r in rows}
    from pipeline.machine import matmul_rate  # TensorFlow in this process only now, after the children

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "ceiling_gflops": round(matmul_rate(), 1),  # `make bench`'s ceiling: what the times mean
        "preset": PRESET,
        "sample_sentences": cfg.tokenizer.sample_sentences,
        "cache_pairs": cfg.data.cache_pairs,
        "sizes": rows,
        "peak_rss_mib": peak,
        "ratio_largest_to_smallest": round(peak[sizes[-1]] / peak[sizes[0]], 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / layout.MEMORY_MD, markdown_table(result))
    return write_json(out_dir / layout.MEMORY_JSON, result)


def markdown_table(result: dict) -> str:
    lines = [
        f"Synthetic corpus (`make membench`), preset `{result['preset']}`, on {result['machine']} "
        f"whose float32 matrix product (the `make bench` ceiling) ran at {result['ceiling_gflops']} GFLOP/s: "
        "peak resident memory of each stage's own process and its wall time. The tokenizer reads "
        f"a sample of at most {result['sample_sentences']:,} sentences; a split of more than "
        f"{result['cache_pairs']:,} pairs streams instead of being cached.",
        "",
        "| training pairs | tokenize: peak MiB | tokenize: s | input pipeline, one pass: peak MiB | "
        "one pass: s | batches | cached |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"]:
        t, b = r["tokenize"], r["batches"]
        lines.append(f"| {r['pairs']:,} | {t['peak_rss_mib']:,} | {t['seconds']} | {b['peak_rss_mib']:,} | "
                     f"{b['seconds']} | {b['batches']:,} | {'yes' if b['cached'] else 'no'} |")  # fmt: skip
    lines += ["", f"Peak at the largest size / peak at the smallest: {result['ratio_largest_to_smallest']}."]
    return "\n".join(lines) + "\n"
