"""The machine a figure was measured on: its float32 matrix-product ceiling and its processor.

Every time this project reports (training minutes, steps, translation speed, `make test`) comes
with both, since the machines it runs on differ by 4x in that ceiling.
"""

from __future__ import annotations

import time
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an (n, n) x (n, n) float32 product, the best of ``repeats`` timed runs."""
    import tensorflow as tf  # here: the processor's name needs no TensorFlow

    a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))  # the sum forces the work
    product(a, b).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def processor(cpuinfo: Path = CPUINFO) -> dict:
    """The processor's name, and whether it has AVX-512: the two kinds of machine we meet."""
    info = cpuinfo.read_text() if cpuinfo.is_file() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return {"cpu": names[0] if names else "unknown", "avx512": "avx512f" in info}


def processor_name(found: dict | None) -> str:
    """``AMD EPYC 7B13 (AVX2 only)``, ``Intel Xeon ... (AVX-512)``: the name beside every ceiling.
    ``found`` is what ``processor()`` returned (None: not recorded)."""
    if not found:
        return "not recorded"
    if found.get("avx512") is None:
        return found["cpu"]
    return f"{found['cpu']} ({'AVX-512' if found['avx512'] else 'AVX2 only'})"
