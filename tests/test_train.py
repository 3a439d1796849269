import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import layout
from pipeline.config import PRESETS, load_config, make_config
from pipeline.constants import TRAINING_CODE
from pipeline.models import build_model
from pipeline.tokenizer import load_tokenizer
from pipeline.training import checkpoints
from pipeline.training.callbacks import Clock, EpochCheckpoint, Plateau
from pipeline.training.train import (
    BEST_WEIGHTS,
    CHECKPOINTS,
    CONFIG,
    DECODING,
    SUMMARY,
    TOKENIZER,
    RunError,
    train,
)

# The tiny preset on 256 pairs: 8 batches per epoch, 64 validation pairs.
TINY = ["data.train_limit=256"]
HARNESS = Path(__file__).with_name("train_process.py")


def read_log(run_dir) -> list[dict]:
    with open(run_dir / layout.LOG, newline="") as f:
        return list(csv.DictReader(f))


def assert_seconds_add_up(summary: dict, rows: list[dict]) -> None:
    """The run's training time is the sum of its logged epochs (killed epochs are not counted).

    Each row and the summary are rounded to 0.1 s, so they may differ by 0.05 s per number.
    """
    logged = sum(float(r["seconds"]) for r in rows)
    assert summary["train_seconds"] == pytest.approx(logged, abs=0.05 * (len(rows) + 1) + 1e-9)


@pytest.fixture(scope="module")
def run_dir(prepared_data, spm_model, tmp_path_factory):
    cfg = make_config("tiny", overrides=[*TINY, "train.epochs=2", "train.length_penalties=[0.0, 1.0]"])
    run_dir = tmp_path_factory.mktemp("run")
    assert train(cfg, run_dir, prepared_data, spm_model) == run_dir / SUMMARY
    return run_dir


def test_run_dir_holds_everything_later_stages_need(run_dir, spm_model):
    assert load_config(run_dir / CONFIG) == make_config(
        "tiny", overrides=[*TINY, "train.epochs=2", "train.length_penalties=[0.0, 1.0]"]
    )
    assert (run_dir / TOKENIZER).read_bytes() == spm_model.read_bytes()
    assert (run_dir / BEST_WEIGHTS).stat().st_size > 0
    assert (run_dir / layout.TRAINING_PLOT).stat().st_size > 0
    decoding = json.loads((run_dir / DECODING).read_text())
    by_alpha = decoding["validation_bleu_by_length_penalty"]
    assert set(by_alpha) == {"0.0", "1.0"}
    assert by_alpha[str(decoding["length_penalty"])] == max(by_alpha.values())
    assert not list(run_dir.rglob(".*"))  # no temporaries left behind


def test_logs_one_row_per_epoch_and_a_summary_of_the_run(run_dir):
    rows = read_log(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "val_loss", "val_bleu", "xent", "val_xent", "learning_rate", "seconds"} <= set(rows[0])
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["variant"] == "gru_bahdanau" and summary["training_code"] == TRAINING_CODE
    assert summary["epochs"] == 2 and summary["processes"] == 1
    assert summary["ceiling_gflops"]["1"] > 0  # the machine that took the time
    assert summary["stopped_by"] == "epochs"
    best = max(rows, key=lambda r: float(r["val_bleu"]))
    assert summary["best_epoch"] == int(best["epoch"])
    assert summary["val_bleu_greedy"] == pytest.approx(float(best["val_bleu"]))
    assert_seconds_add_up(summary, rows)
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])  # it learns something


def test_a_finished_run_is_reused_and_force_trains_again(run_dir, prepared_data, spm_model, capsys):
    cfg = load_config(run_dir / CONFIG)
    before = (run_dir / SUMMARY).stat().st_mtime_ns
    assert train(cfg, run_dir, prepared_data, spm_model) == run_dir / SUMMARY
    assert (run_dir / SUMMARY).stat().st_mtime_ns == before
    assert "trained already" in capsys.readouterr().out


def test_a_finished_run_refuses_another_config(run_dir, prepared_data, spm_model):
    before = (run_dir / SUMMARY).read_bytes()
    with pytest.raises(RunError, match="another config"):
        train(make_config("quick"), run_dir, prepared_data, spm_model)  # the tiny run's folder
    assert (run_dir / SUMMARY).read_bytes() == before


def test_an_unfinished_run_refuses_another_config(run_dir, prepared_data, spm_model, tmp_path):
    other = tmp_path / "run"
    other.mkdir()
    (other / CONFIG).write_text((run_dir / CONFIG).read_text())
    with pytest.raises(RunError, match="another config"):
        train(make_config("tiny", overrides=["train.epochs=3"]), other, prepared_data, spm_model)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Stoppable:
    stop_training = False


def run_budget(minutes, epoch_seconds: list[float], monkeypatch, clock=None) -> int:
    """Epochs a Clock lets run when they take ``epoch_seconds`` each."""
    fake = FakeClock()
    monkeypatch.setattr("pipeline.training.callbacks.time.monotonic", fake)
    clock = clock or Clock(minutes)
    clock.set_model(Stoppable())
    for epoch, seconds in enumerate(epoch_seconds):
        clock.on_epoch_begin(epoch)
        fake.now += seconds
        clock.on_epoch_end(epoch, {})
        if clock.model.stop_training:
            return epoch + 1
    return len(epoch_seconds)


def test_time_budget_stops_before_an_epoch_that_would_overrun(monkeypatch):
    # 1 minute, 25 s per epoch: after two epochs (50 s) a third would end at 75 s.
    assert run_budget(1.0, [25.0] * 5, monkeypatch) == 2
    assert run_budget(1.0, [19.0] * 5, monkeypatch) == 3  # 57 s, a 4th would end at 76 s
    assert run_budget(None, [1000.0] * 5, monkeypatch) == 5  # no budget, no stop


def test_time_budget_is_minutes_at_the_reference_ceiling(monkeypatch):
    # 1 minute at 400 GFLOP/s is 2 minutes on a machine at 200: four 25 s epochs, where 400 stops at two.
    assert run_budget(None, [25.0] * 9, monkeypatch, clock=Clock(1.0, ceiling_gflops=400.0)) == 2
    assert run_budget(None, [25.0] * 9, monkeypatch, clock=Clock(1.0, ceiling_gflops=200.0)) == 4
    assert run_budget(None, [10.0] * 9, monkeypatch, clock=Clock(1.0, ceiling_gflops=800.0)) == 3


def test_every_epoch_but_the_last_says_how_long_the_rest_would_take(monkeypatch, capsys):
    clock = Clock(None)
    clock.set_params({"epochs": 4})
    run_budget(None, [60.0, 120.0, 90.0, 90.0], monkeypatch, clock=clock)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    # The mean epoch so far times the epochs left: 1 min x 3, 1.5 min x 2, 1.5 min x 1.
    assert lines == [
        "epoch 1 of 4: 1.0 min; 3 more at most, about 3.0 min at this pace",
        "epoch 2 of 4: 2.0 min; 2 more at most, about 3.0 min at this pace",
        "epoch 3 of 4: 1.5 min; 1 more at most, about 1.5 min at this pace",
    ]
    stopped = Clock(None)  # by early stopping, an earlier callback: nothing more to come
    stopped.set_params({"epochs": 4})
    stopped.set_model(Stoppable())
    stopped.model.stop_training = True
    stopped.on_epoch_begin(0)
    stopped.on_epoch_end(0, {})
    assert "more" not in capsys.readouterr().out


def test_time_budget_counts_the_time_of_earlier_processes(monkeypatch):
    first = Clock(1.0)
    assert run_budget(None, [25.0], monkeypatch, clock=first) == 1  # one epoch, then killed
    resumed = Clock(1.0)
    resumed.restore(first.state())
    assert run_budget(None, [25.0] * 5, monkeypatch, clock=resumed) == 1  # 50 s spent: a third would overrun
    assert resumed.fired and resumed.seconds == 50.0


def harness(run_dir: Path, data_dir: Path, spm_model: Path, overrides: list[str], **env) -> subprocess.Popen:
    """A real training process (tests/train_process.py) on the tiny preset."""
    command = [
        sys.executable,
        str(HARNESS),
        str(run_dir),
        str(data_dir),
        str(spm_model),
        "tiny",
        *TINY,
        *overrides,
    ]
    return subprocess.Popen(
        command,
        # a script's folder, not the working directory, leads sys.path: this project's pipeline
        # first, not the one the environment has installed
        env={**os.environ, "PYTHONPATH": str(HARNESS.parents[1]), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=HARNESS.parents[1],
    )


def kill_when_paused(process: subprocess.Popen, marker: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before pausing:\n{process.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {marker.name} within {timeout} s")
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL


def weights_of(path: Path, cfg, vocab_size: int) -> list[np.ndarray]:
    model = build_model(cfg.model, vocab_size)
    model.load_weights(path)
    return [w.numpy() for w in model.weights]


def test_the_rate_halves_on_a_plateau_and_after_every_epoch_from_decay_from():
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.008), loss="mse")
    plateau = Plateau(patience=2, decay_from=5)
    plateau.set_model(model)
    trained_with = []
    # Two epochs without a better score after epoch 1: halved after epoch 3. From epoch 5 on,
    # halved after every epoch; after epoch 7 the plateau is due too, and it halves once.
    for epoch, score in enumerate([10, 9, 8, 12, 13, 11, 10]):
        logs = {"val_bleu": score}
        plateau.on_epoch_end(epoch, logs)
        trained_with.append(logs["learning_rate"])
    assert trained_with == pytest.approx([0.008, 0.008, 0.008, 0.004, 0.004, 0.002, 0.001])
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.0005)


# Six epochs with dropout (its masks must continue, not restart), the rate halved after every
# epoch from the fourth, the two best checkpoints averaged, real validation BLEU.
TWIN = ["train.epochs=6", "train.patience=10", "train.decay_from=4", "train.average=2",
        "model.dropout=0.3", "train.length_penalties=[0.0, 1.0]"]  # fmt: skip
# Where the twin that is killed dies, once each: in the middle of epoch 2's batches; after epoch
# 3's checkpoint, before its prune; right after the rate was halved at the end of epoch 4, before
# its checkpoint; after the last epoch's checkpoint and prune, before its row of log.csv.
KILLS = "batch:2:3,prune:3,halved:4,log:6"
# Per-epoch figures that must not depend on the kills; seconds and process do.
SAME = ("loss", "val_loss", "xent", "val_xent", "masked_accuracy", "val_bleu", "learning_rate")


def run_to_the_end(run_dir: Path, data_dir: Path, spm_model: Path, overrides: list[str], **env) -> int:
    """Starts the harness again after every kill until the run ends; returns how many processes it took."""
    for processes in range(1, 10):
        process = harness(run_dir, data_dir, spm_model, overrides, **env)
        output, _ = process.communicate(timeout=600)
        if process.returncode == 0:
            return processes
        assert process.returncode == -signal.SIGKILL, output[-3000:]
    raise AssertionError("the run never ended")


def weights_file(path: Path) -> list[np.ndarray]:
    import h5py

    with h5py.File(path) as f:
        found = []
        f.visititems(lambda name, item: found.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.slow
def test_a_run_killed_at_every_step_of_an_epoch_ends_as_its_twin_never_killed(
    prepared_data, spm_model, tmp_path
):
    killed, twin = tmp_path / "killed", tmp_path / "twin"
    assert run_to_the_end(killed, prepared_data, spm_model, TWIN, KILL_AT=KILLS) == 5
    assert run_to_the_end(twin, prepared_data, spm_model, TWIN) == 1
    for point in ("batch-2-3", "prune-3", "halved-4", "log-6"):
        assert Path(f"{killed}.killed-{point}").exists(), point  # each kill happened

    rows, twin_rows = read_log(killed), read_log(twin)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]  # the last row too, written after its kill
    # A process counts from the checkpoint it resumed: the one killed after the halving, before
    # its checkpoint, left nothing, and the next one took its number.
    assert [int(r["process"]) for r in rows] == [1, 2, 2, 3, 3, 3]
    for row, twin_row in zip(rows, twin_rows, strict=True):
        for key in SAME:
            assert float(row[key]) == pytest.approx(float(twin_row[key]), rel=1e-5, abs=1e-6), (row, twin_row)
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.002] * 4 + [0.001, 0.0005])

    summary, twin_summary = (json.loads((d / SUMMARY).read_text()) for d in (killed, twin))
    assert summary["processes"] == 3 and set(summary["ceiling_gflops"]) == {"1", "2", "3", "4"}
    assert_seconds_add_up(summary, rows)  # the killed epochs' time is not counted
    for key in ("epochs", "best_epoch", "best_epoch_val_bleu_greedy", "averaging", "val_bleu_greedy",
                "stopped_by", "length_penalty", "target_tokens_per_epoch"):  # fmt: skip
        assert summary[key] == twin_summary[key], key
    assert json.loads((killed / DECODING).read_text()) == json.loads((twin / DECODING).read_text())
    # The same weights: the best (or averaged) ones, and the last epoch's.
    last = checkpoints.epoch_dir(Path(CHECKPOINTS), 6) / checkpoints.WEIGHTS
    for path in (Path(BEST_WEIGHTS), last):
        for a, b in zip(weights_file(killed / path), weights_file(twin / path), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert checkpoints.epochs(killed / CHECKPOINTS) == checkpoints.epochs(twin / CHECKPOINTS)
    assert not list(killed.rglob(".*"))  # no temporaries left behind


@pytest.mark.slow
def test_the_best_weights_are_the_best_epochs_and_the_export_loads(prepared_data, spm_model, tmp_path):
    # Scripted validation BLEU 20, 10, 15: epoch 1 stays the best, so best.weights.h5 is epoch 1's
    # and not the last epoch's, after a kill in epoch 2.
    run_dir = tmp_path / "run"
    overrides = ["train.epochs=3", "train.patience=4"]
    env = {"SCRIPTED_BLEU": "20,10,15", "KILL_AT": "batch:2:3"}
    assert run_to_the_end(run_dir, prepared_data, spm_model, overrides, **env) == 2
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["best_epoch"] == 1 and summary["val_bleu_greedy"] == 20.0
    cfg, vocab = load_config(run_dir / CONFIG), load_tokenizer(spm_model).vocab_size()
    # epoch 1's weights, saved by the first process, against the best weights the second one chose
    best = weights_of(run_dir / BEST_WEIGHTS, cfg, vocab)
    first = weights_of(checkpoints.epoch_dir(run_dir / CHECKPOINTS, 1) / checkpoints.WEIGHTS, cfg, vocab)
    final = weights_of(checkpoints.epoch_dir(run_dir / CHECKPOINTS, 3) / checkpoints.WEIGHTS, cfg, vocab)
    assert all(np.array_equal(b, f) for b, f in zip(best, first, strict=True))
    assert not all(np.array_equal(b, f) for b, f in zip(best, final, strict=True))

    from pipeline.decoding.export import export

    exported = export(run_dir, tmp_path / "saved" / "model")
    import tensorflow as tf

    translator = tf.saved_model.load(str(exported))
    out = translator.translate(tf.constant(["Ein Hund läuft."]), tf.constant(2), tf.constant(0.6))
    assert out["translations"].shape == (1,)


@pytest.mark.slow
def test_training_amount_does_not_depend_on_the_machines_speed(prepared_data, spm_model, tmp_path):
    # The same preset on a machine whose steps take 0.25 s longer trains the same epochs.
    overrides = ["train.epochs=6", "train.patience=2"]
    env = {"SCRIPTED_BLEU": "5,6,7,7,7,7"}  # no better score after epoch 3: stop after epoch 5
    runs = {}
    for name, slow in (("fast", "0"), ("slow", "0.25")):
        process = harness(tmp_path / name, prepared_data, spm_model, overrides, SLOW_STEP=slow, **env)
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]
        runs[name] = json.loads((tmp_path / name / SUMMARY).read_text())
    # The slow run really was slower: it slept after each of its 5 epochs' 8 steps, inside the
    # training it timed. Counted, not compared with the fast run's time, which a busy machine
    # can stretch by more than the 10 s of sleep.
    slept = [float(line) for line in (tmp_path / "slow.slept").read_text().split()]
    assert slept == [0.25] * 5 * 8
    assert runs["slow"]["train_seconds"] >= sum(slept), runs
    assert not (tmp_path / "fast.slept").exists()
    for key in ("epochs", "best_epoch", "stopped_by"):
        assert runs["slow"][key] == runs["fast"][key]
    assert runs["fast"]["epochs"] == 5


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_fixes_its_training_in_epochs_with_at_most_a_generous_guard(preset):
    train_cfg = make_config(preset).train
    assert train_cfg.epochs >= 1
    # A time budget is only a guard against a runaway run, never what ends a normal one.
    assert train_cfg.time_budget_minutes is None or train_cfg.time_budget_minutes >= 60


def test_each_process_records_its_processor_and_a_checkpoint_from_before_it_resumes(tmp_path):
    def checkpoint(processor: str) -> EpochCheckpoint:
        return EpochCheckpoint(
            tmp_path / "checkpoints", tmp_path / "log.csv", {}, 1, 120.0, processor=processor
        )

    first = checkpoint("AMD EPYC 7B13 (AVX2 only)")
    second = checkpoint("Intel Xeon (AVX-512)")
    second.restore(first.state())  # the run resumed on another machine
    assert second.processors == {"1": "AMD EPYC 7B13 (AVX2 only)", "2": "Intel Xeon (AVX-512)"}
    assert second.ceilings == {"1": 120.0, "2": 120.0}
    older = {key: value for key, value in first.state().items() if key != "processors"}
    third = checkpoint("Intel Xeon (AVX-512)")
    third.restore(older)  # a checkpoint written before processors were recorded
    assert third.processors == {"2": "Intel Xeon (AVX-512)"}
