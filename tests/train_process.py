"""A real training process for the tests, with hooks that only the tests set.

    python tests/train_process.py RUN_DIR DATA_DIR SPM_MODEL PRESET [SECTION.KEY=VALUE ...]

Environment:
    SCRIPTED_BLEU  "20,10,15": epoch i's validation BLEU is the i-th number instead of a
                   measured one, so the decisions that follow (best epoch, patience, learning
                   rate) are known in advance; everything else is the real training stage.
    PAUSE_AT       "2:3,3:3": at batch 3 of epoch 2 (1-based), write RUN_DIR.paused-2 and
                   sleep, for the test to kill the process there; once per marker.
    SLOW_STEP      seconds to sleep after every training batch: a slower machine.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pipeline.callbacks import ValidationBLEU
from pipeline.config import make_config
from pipeline.train import train

run_dir, data_dir, spm_model, preset, *overrides = sys.argv[1:]
scripted = [float(x) for x in os.environ.get("SCRIPTED_BLEU", "").split(",") if x]
pauses = [tuple(int(n) for n in p.split(":")) for p in os.environ.get("PAUSE_AT", "").split(",") if p]
slow = float(os.environ.get("SLOW_STEP", "0"))
measured = ValidationBLEU.on_epoch_end


def on_epoch_end(self, epoch, logs=None):
    if scripted:
        logs["val_bleu"] = scripted[epoch]
    else:
        measured(self, epoch, logs)


def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch + 1


def on_train_batch_end(self, batch, logs=None):
    time.sleep(slow)
    for epoch, at in pauses:
        marker = Path(f"{run_dir}.paused-{epoch}")
        if (self.epoch, batch + 1) == (epoch, at) and not marker.exists():
            marker.touch()
            time.sleep(600)  # killed here


ValidationBLEU.on_epoch_end = on_epoch_end
ValidationBLEU.on_epoch_begin = on_epoch_begin
ValidationBLEU.on_train_batch_end = on_train_batch_end
cfg = make_config(preset, overrides=overrides)
print(train(cfg, Path(run_dir), Path(data_dir), Path(spm_model)))
