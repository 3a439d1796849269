import numpy as np

from pipeline.bench.bench import markdown, real_lengths, real_share
from pipeline.machine import matmul_rate, processor, processor_name


def test_matmul_rate_is_a_plausible_cpu_rate():
    rate = matmul_rate(n=256, repeats=3)
    assert 0.1 < rate < 100_000  # GFLOP/s


def test_real_lengths_count_tokens_not_padding():
    source = np.array([[5, 6, 3, 0], [7, 3, 0, 0]], np.int32)
    target_out = np.array([[8, 3, 0], [9, 9, 3]], np.int32)
    batches = [({"source": source, "target_in": target_out}, target_out)] * 2
    assert real_lengths(batches) == ([3, 2, 3, 2], [2, 3, 2, 3])
    assert real_share(batches) == {"source": 0.625, "target": 0.833}  # 5/8 and 5/6


def test_markdown_has_a_row_per_variant():
    keys = ("seconds", "sentences_per_second")
    translation = {f"{d}_b64_{k}": 1.0 for d in ("greedy", "beam5") for k in keys}
    translation |= {"greedy_b1_ms_per_sentence": 3.0, "beam5_b1_ms_per_sentence": 7.0}
    row = {"variant": "gru", "gflops_per_step": 10.0, "step_seconds": 0.2, "floor_seconds": 0.1,
           "ratio_to_floor": 2.0, "tokens_per_second": 9000, "translation": translation}  # fmt: skip
    report = {"machine": "x86_64", "processor": {"cpu": "AMD EPYC 7B13", "avx512": False},
              "matmul_gflops": 90.0, "train_steps": 20, "batch_size": 128, "fused": True,
              "real_share": {"source": 0.9, "target": 0.99},
              "sentences": 1000, "batch1_sentences": 200,
              "variants": [row, {**row, "variant": "lstm", "translation": {}}]}  # fmt: skip
    table = markdown(report)
    assert "| `gru` | 10.0 | 0.200 | 0.100 | **2.00** | 9,000 |" in table
    assert "| `lstm` |" in table and "fused loops" in table
    assert "Benchmark on x86_64, AMD EPYC 7B13 (AVX2 only): float32 matrix product 90.0 GFLOP/s" in table
    assert "90.0% of source and 99.0% of target positions" in table
    assert table.splitlines()[-1].endswith("| nan | nan | nan | nan | nan |")  # translation not measured

    # An export timed for translation alone (the best ensemble): its training columns are dashes.
    export_only = {
        "variant": "best",
        **dict.fromkeys(row.keys() - {"variant", "translation"}),
        "translation": translation,
    }
    with_best = markdown({**report, "variants": [row, export_only]})
    assert with_best.splitlines()[-1] == "| `best` | - | - | - | - | - | 1 | 1 | 1.0 | 3.0 | 7.0 |"

    # Without any translation timings (--no-translation) the table has no translation columns.
    steps_only = markdown({**report, "variants": [{**row, "translation": {}}]})
    assert steps_only.splitlines()[-1] == "| `gru` | 10.0 | 0.200 | 0.100 | **2.00** | 9,000 |"
    assert "Translation:" not in steps_only and "nan" not in steps_only


def test_the_processor_is_named_with_avx_512_or_avx2_only(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Intel Xeon Platinum 8481C\nflags\t: fpu avx2 avx512f\n")
    assert processor_name(processor(cpuinfo)) == "Intel Xeon Platinum 8481C (AVX-512)"
    cpuinfo.write_text("model name\t: AMD EPYC 7B13\nflags\t: fpu avx2\n")
    assert processor_name(processor(cpuinfo)) == "AMD EPYC 7B13 (AVX2 only)"
    assert processor_name(None) == "not recorded"  # a bench.json from before it was recorded


def test_an_export_is_timed_for_translation_alone(exported_tiny, tmp_path):
    from pipeline.bench.bench import TRANSLATION_KEYS, translation_row

    pointer = tmp_path / "exported.txt"
    pointer.write_text(f"{exported_tiny}\n")
    row = translation_row("best", pointer, ["Ein Hund.", "Zwei Katzen laufen."], 1)
    assert row["variant"] == "best" and row["step_seconds"] is None and row["tokens_per_second"] is None
    assert sorted(row["translation"]) == sorted(TRANSLATION_KEYS)
    assert all(v > 0 for v in row["translation"].values())
