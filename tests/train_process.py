"""A real training process for the tests, with hooks that only the tests set.

    python tests/train_process.py RUN_DIR DATA_DIR SPM_MODEL PRESET [SECTION.KEY=VALUE ...]

Environment:
    SCRIPTED_BLEU  "20,10,15": epoch i's validation BLEU is the i-th number instead of a
                   measured one, so the decisions that follow (best epoch, patience, learning
                   rate) are known in advance; everything else is the real training stage.
    PAUSE_AT       "2:3,3:3": at batch 3 of epoch 2 (1-based), write RUN_DIR.paused-2 and
                   sleep, for the test to kill the process there; once per marker.
    SLOW_STEP      seconds to sleep after every training batch: a slower machine. Each sleep adds a
                   line to RUN_DIR.slept, for the test to count.
    LOGICAL_CPUS   "2": split the CPU into that many logical devices, before TensorFlow starts,
                   for train.strategy=mirrored.
    STEP_LOSSES    a file to write each training batch's loss to, one JSON list per epoch.
    KILL_AT        "batch:2:3,prune:3,log:4,halved:5": the process kills itself with SIGKILL, once
                   per point (a marker file RUN_DIR.killed-POINT beside the run says it did): at
                   batch 3 of epoch 2 (1-based); after epoch 3's checkpoint, before its prune;
                   after epoch 4's prune, before its row of log.csv; right after the learning
                   rate was halved at the end of epoch 5, before the checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from pipeline.config import make_config
from pipeline.training import callbacks, checkpoints
from pipeline.training.callbacks import Plateau, ValidationBLEU
from pipeline.training.train import train

if os.environ.get("LOGICAL_CPUS"):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * int(os.environ["LOGICAL_CPUS"])
    )

run_dir, data_dir, spm_model, preset, *overrides = sys.argv[1:]
scripted = [float(x) for x in os.environ.get("SCRIPTED_BLEU", "").split(",") if x]
pauses = [tuple(int(n) for n in p.split(":")) for p in os.environ.get("PAUSE_AT", "").split(",") if p]
slow = float(os.environ.get("SLOW_STEP", "0"))
step_losses_file = os.environ.get("STEP_LOSSES")
kills = [tuple(p.split(":")) for p in os.environ.get("KILL_AT", "").split(",") if p]
step_losses: list[list[float]] = []  # per epoch, the loss Keras reports after each batch
measured = ValidationBLEU.on_epoch_end


def on_epoch_end(self, epoch, logs=None):
    if step_losses_file:
        Path(step_losses_file).write_text(json.dumps(step_losses))
    if scripted:
        logs["val_bleu"] = scripted[epoch]
    else:
        measured(self, epoch, logs)


def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch + 1
    step_losses.append([])


def kill_at(*point) -> None:
    """SIGKILL this process at ``point`` if KILL_AT names it, the first time only."""
    point = tuple(str(p) for p in point)
    marker = Path(f"{run_dir}.killed-{'-'.join(point)}")
    if point in kills and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


def on_train_batch_end(self, batch, logs=None):
    step_losses[-1].append(float(logs["loss"]))
    if slow:
        time.sleep(slow)
        with open(f"{run_dir}.slept", "a") as slept:
            slept.write(f"{slow}\n")
    kill_at("batch", self.epoch, batch + 1)
    for epoch, at in pauses:
        marker = Path(f"{run_dir}.paused-{epoch}")
        if (self.epoch, batch + 1) == (epoch, at) and not marker.exists():
            marker.touch()
            time.sleep(600)  # killed here


prune, write_text, halve = checkpoints.prune, callbacks.write_text, Plateau.on_epoch_end


def prune_or_die(folder, keep):
    kill_at("prune", checkpoints.epochs(folder)[-1])
    prune(folder, keep)


def write_or_die(path, text):
    if Path(path).name == "log.csv":
        kill_at("log", text.count("\n") - 1)  # a header and one row per epoch
    write_text(path, text)


def halve_or_die(self, epoch, logs=None):
    before = float(self.model.optimizer.learning_rate.numpy())
    halve(self, epoch, logs)
    if float(self.model.optimizer.learning_rate.numpy()) < before:
        kill_at("halved", epoch + 1)


checkpoints.prune, callbacks.write_text, Plateau.on_epoch_end = prune_or_die, write_or_die, halve_or_die
ValidationBLEU.on_epoch_end = on_epoch_end
ValidationBLEU.on_epoch_begin = on_epoch_begin
ValidationBLEU.on_train_batch_end = on_train_batch_end
cfg = make_config(preset, overrides=overrides)
print(train(cfg, Path(run_dir), Path(data_dir), Path(spm_model)))
