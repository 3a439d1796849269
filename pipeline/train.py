"""The train stage: Keras fit with the best-by-validation checkpoint, logs and resume."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import keras
import sentencepiece as spm

from pipeline import dataset
from pipeline.config import Config, save_config
from pipeline.models import build_model
from pipeline.models.losses import masked_accuracy, masked_cross_entropy
from pipeline.plots import plot_history

# The files of a run directory, shared with export and evaluate.
CONFIG = "config.json"
TOKENIZER = "spm.model"
BEST_WEIGHTS = "best.weights.h5"
SUMMARY = "train.json"


class TimeBudget(keras.callbacks.Callback):
    """Stops before an epoch that would end after ``minutes`` of training in this process."""

    def __init__(self, minutes: float | None):
        super().__init__()
        self.seconds = minutes * 60 if minutes else None
        self.first_epoch: int | None = None  # not 0 when BackupAndRestore resumed the run
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.seconds is None:
            return
        done = epoch + 1 - self.first_epoch
        elapsed = time.monotonic() - self.start
        if elapsed * (done + 1) / done > self.seconds:
            self.stopped_epoch = epoch
            self.model.stop_training = True


class Throughput(keras.callbacks.Callback):
    """Seconds spent on training steps alone: each epoch until its validation pass begins."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self.epoch_start: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_test_begin(self, logs=None):
        if self.epoch_start is not None:  # fit's validation pass, not a separate evaluate()
            self.seconds += time.monotonic() - self.epoch_start
            self.epoch_start = None


def compile_model(model: keras.Model, cfg: Config) -> keras.Model:
    optimizer = keras.optimizers.Adam(cfg.train.learning_rate, global_clipnorm=cfg.train.clipnorm)
    model.compile(optimizer=optimizer, loss=masked_cross_entropy, metrics=[masked_accuracy])
    return model


def train(cfg: Config, run_dir: Path, data_dir: Path, tokenizer_path: Path) -> Path:
    """Trains ``cfg.model.variant`` and returns the path of the run's summary.

    The run directory keeps the resolved config, a copy of the tokenizer, the
    best weights by validation loss, log.csv, TensorBoard logs and a backup
    from which an interrupted run resumes at its last finished epoch.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG)
    shutil.copyfile(tokenizer_path, run_dir / TOKENIZER)
    keras.utils.set_random_seed(cfg.train.seed)

    vocab_size = spm.SentencePieceProcessor(model_file=str(tokenizer_path)).vocab_size()
    train_batches = dataset.batches(cfg.pair, "train", data_dir, tokenizer_path, cfg.data, training=True)
    val_batches = dataset.batches(cfg.pair, "validation", data_dir, tokenizer_path, cfg.data, training=False)
    tokens_per_epoch = dataset.count_target_tokens(train_batches)
    model = compile_model(build_model(cfg.model, vocab_size), cfg)
    print(f"{cfg.model.variant}: {model.count_params():,} parameters, vocabulary {vocab_size}")

    budget, throughput = TimeBudget(cfg.train.time_budget_minutes), Throughput()
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / BEST_WEIGHTS), monitor="val_loss", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.train.patience),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        budget,
        throughput,
    ]
    start = time.monotonic()
    history = model.fit(
        train_batches,
        validation_data=val_batches,
        epochs=cfg.train.epochs,
        callbacks=callbacks,
        shuffle=False,
        verbose=1,
    )  # shuffled by tf.data
    seconds = time.monotonic() - start

    val_losses = history.history.get("val_loss", [])
    epochs = len(val_losses)
    summary = {
        "variant": cfg.model.variant,
        "parameters": model.count_params(),
        "epochs_this_process": epochs,
        "stopped_by_time_budget": budget.stopped_epoch is not None,
        "best_val_loss": min(val_losses) if val_losses else None,
        "train_seconds_this_process": round(seconds, 1),
        "target_tokens_per_epoch": tokens_per_epoch,
        # real (unpadded) target tokens per second of training steps, validation excluded
        "tokens_per_second": round(tokens_per_epoch * epochs / throughput.seconds) if epochs else None,
        "history": history.history,
    }
    plot_history(run_dir / "log.csv", run_dir / "training.png")
    out = run_dir / SUMMARY
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out
