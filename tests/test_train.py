import csv
import json

import pytest

from pipeline.config import load_config, make_config
from pipeline.train import BEST_WEIGHTS, CONFIG, SUMMARY, TOKENIZER, TimeBudget, train

# The tiny preset on 256 pairs: 8 batches per epoch, 64 validation pairs.
TINY = ["data.train_limit=256"]


def read_log(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run_dir(prepared_data, spm_model, tmp_path_factory):
    cfg = make_config("tiny", overrides=[*TINY, "train.epochs=2"])
    run_dir = tmp_path_factory.mktemp("run")
    assert train(cfg, run_dir, prepared_data, spm_model) == run_dir / SUMMARY
    return run_dir


def test_run_dir_holds_everything_later_stages_need(run_dir, spm_model):
    assert load_config(run_dir / CONFIG) == make_config("tiny", overrides=[*TINY, "train.epochs=2"])
    assert (run_dir / TOKENIZER).read_bytes() == spm_model.read_bytes()
    assert (run_dir / BEST_WEIGHTS).stat().st_size > 0
    assert not (run_dir / "backup").exists()  # removed once training finished
    assert (run_dir / "training.png").stat().st_size > 0


def test_logs_one_row_per_epoch(run_dir):
    rows = read_log(run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"loss", "val_loss", "masked_accuracy", "val_masked_accuracy"} <= set(rows[0])
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["variant"] == "gru_bahdanau"
    assert summary["epochs_this_process"] == 2
    assert summary["stopped_by_time_budget"] is False
    assert summary["best_val_loss"] == pytest.approx(min(float(r["val_loss"]) for r in rows), rel=1e-6)
    assert summary["history"]["loss"][1] < summary["history"]["loss"][0]  # it learns something


def test_time_budget_stops_after_the_first_epoch(prepared_data, spm_model, tmp_path):
    # 0.06 s: the first epoch alone overruns it, so no second epoch may start.
    cfg = make_config("tiny", overrides=[*TINY, "train.epochs=3", "train.time_budget_minutes=0.001"])
    summary = json.loads(train(cfg, tmp_path, prepared_data, spm_model).read_text())
    assert summary["epochs_this_process"] == 1
    assert summary["stopped_by_time_budget"] is True
    assert len(read_log(tmp_path)) == 1


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Stoppable:
    stop_training = False


def run_budget(minutes, epoch_seconds: list[float], monkeypatch) -> int:
    """Epochs a TimeBudget lets run when they take ``epoch_seconds`` each."""
    clock = FakeClock()
    monkeypatch.setattr("pipeline.train.time.monotonic", clock)
    budget = TimeBudget(minutes)
    budget.set_model(Stoppable())
    budget.on_train_begin()
    for epoch, seconds in enumerate(epoch_seconds):
        budget.on_epoch_begin(epoch)
        clock.now += seconds
        budget.on_epoch_end(epoch)
        if budget.model.stop_training:
            return epoch + 1
    return len(epoch_seconds)


def test_time_budget_stops_before_an_epoch_that_would_overrun(monkeypatch):
    # 1 minute, 25 s per epoch: after two epochs (50 s) a third would end at 75 s.
    assert run_budget(1.0, [25.0] * 5, monkeypatch) == 2
    assert run_budget(1.0, [19.0] * 5, monkeypatch) == 3  # 57 s, a 4th would end at 76 s
    assert run_budget(None, [1000.0] * 5, monkeypatch) == 5  # no budget, no stop
