import json

import pytest

from pipeline import layout
from pipeline.reporting.variance import seeds


def write_run(folder, seed: int, val: float, test: float) -> None:
    folder.mkdir(parents=True)
    (folder / layout.result("test")).write_text(json.dumps({"bleu": test, "bleu_ci": 1.1}))
    (folder / layout.result("validation")).write_text(json.dumps({"bleu": val}))
    (folder / layout.SUMMARY).write_text(json.dumps({"epochs": 9, "best_epoch": 6}))
    (folder / layout.CONFIG).write_text(json.dumps({"train": {"seed": seed}}))


def test_mean_and_spread_of_three_seeds(tmp_path):
    for run, seed, val, test in (("a", 1, 30.0, 31.0), ("b", 2, 32.0, 33.0), ("c", 3, 34.0, 38.0)):
        write_run(tmp_path / run, seed, val, test)
    result = json.loads(seeds(["a", "b", "c"], tmp_path, tmp_path).read_text())
    # test: mean 34, deviations -3, -1, 4: sample variance (9 + 1 + 16) / 2 = 13
    assert result["spread"]["test_bleu"] == {"mean": 34.0, "stdev": pytest.approx(13**0.5, abs=0.005),
                                             "min": 31.0, "max": 38.0}  # fmt: skip
    assert result["spread"]["val_bleu"]["stdev"] == 2.0
    table = (tmp_path / "seeds.md").read_text()
    assert "| `c` | 3 | 9 | 6 | 34.0 | 38.0 ± 1.1 |" in table
    assert "Test BLEU over 3 seeds: mean 34.0, standard deviation 3.61, range 31.0-38.0." in table
