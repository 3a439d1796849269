"""The training recipe's callbacks, each with its state, so that a killed run resumes exactly.

Every callback that decides something across epochs keeps its memory in ``state()`` and
takes it back with ``restore()``. ``EpochCheckpoint``, last in the list, writes all of it
with the weights and the optimizer after every epoch (``pipeline.training.checkpoints``). Order
matters: ``ValidationBLEU`` adds ``val_bleu`` to the epoch's logs, the callbacks after it
read it, and the checkpoint records what they decided.

Under a multi-worker strategy every worker runs these callbacks, and a decision that ends
training must be the same on all of them, or the others wait in the next step's all-reduce for
ever: validation BLEU is the chief's on every worker (``agree``), and the time guard fires on
all when it fires on one.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

from pipeline.constants import REFERENCE_CEILING_GFLOPS
from pipeline.decoding.search import compile_search, translate_rows
from pipeline.files import write_text
from pipeline.metrics import bleu
from pipeline.training import checkpoints


class Stateful(keras.callbacks.Callback):
    """A callback whose memory across epochs is a JSON-able dict."""

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        pass


class ValidationBLEU(keras.callbacks.Callback):
    """Greedy-decodes the validation sources after each epoch and logs their BLEU as ``val_bleu``.

    Args:
        sources: each sentence's ids, EOS last.
        references: the detokenized reference translations.
        detokenize: output ids -> text.
        agree: the score every worker uses, from this worker's (``distribute.agreement``: the
            chief's); the identity with one process.
    """

    def __init__(
        self,
        sources: list[list[int]],
        references: list[str],
        detokenize: Callable[[list[int]], str],
        agree: Callable[[float], float] = lambda score: score,
    ):
        super().__init__()
        self.sources, self.references, self.detokenize, self.agree = sources, references, detokenize, agree
        self.search = None

    def score(self, model: keras.Model, beam_size: int = 1, alpha: float = 0.0) -> float:
        return self.scores(model, beam_size, [alpha])[0]

    def scores(self, model: keras.Model, beam_size: int, alphas: Sequence[float]) -> list[float]:
        """BLEU under each length penalty of ``alphas``, from one search."""
        if self.search is None:
            self.search = compile_search(model)  # traced once, reused every epoch
        outputs = translate_rows(self.search, self.sources, beam_size, alphas)
        return [round(bleu([self.detokenize(ids) for ids in rows], self.references), 2) for rows in outputs]

    def on_epoch_end(self, epoch, logs=None):
        logs["val_bleu"] = self.agree(self.score(self.model))
        # A line of its own: the progress bar's last update has no newline until Keras ends the epoch.
        print(f"\nepoch {epoch + 1}: validation BLEU {logs['val_bleu']} (greedy)")


class Selection(Stateful):
    """Tracks the best epoch by validation BLEU and stops after ``patience`` epochs without a better one."""

    def __init__(self, patience: int, monitor: str = "val_bleu"):
        super().__init__()
        self.patience, self.monitor = patience, monitor
        self.best: float | None = None
        self.best_epoch: int | None = None  # 1-based
        self.wait = 0
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        if self.best is None or logs[self.monitor] > self.best:
            self.best, self.best_epoch, self.wait = logs[self.monitor], epoch + 1, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped = True
                self.model.stop_training = True

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "stopped": self.stopped}

    def restore(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.stopped = state["wait"], state["stopped"]


class Plateau(Stateful):
    """Multiplies the learning rate by ``factor`` after ``patience`` epochs without a better ``monitor``,
    and after every epoch from epoch ``decay_from`` on (once an epoch when both apply).

    The learning rate itself lives in the optimizer, whose variables the checkpoint keeps.
    """

    def __init__(self, patience: int | None, factor: float = 0.5, min_learning_rate: float = 1e-5,
                 monitor: str = "val_bleu", decay_from: int | None = None):  # fmt: skip
        super().__init__()
        self.patience, self.factor, self.min_learning_rate = patience, factor, min_learning_rate
        self.monitor, self.decay_from = monitor, decay_from
        self.best: float | None = None
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        rate = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(rate.numpy())  # the rate this epoch trained with
        reason = None
        if self.patience is not None:
            if self.best is None or logs[self.monitor] > self.best:
                self.best, self.wait = logs[self.monitor], 0
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    self.wait, reason = 0, f"no better validation BLEU in {self.patience} epochs"
        if self.decay_from is not None and epoch + 1 >= self.decay_from:
            reason = reason or f"decay from epoch {self.decay_from}"
        if reason and logs["learning_rate"] > self.min_learning_rate:
            new = max(logs["learning_rate"] * self.factor, self.min_learning_rate)
            rate.assign(new)
            print(f"epoch {epoch + 1}: {reason}, rate {new:g}")

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def restore(self, state: dict) -> None:
        self.best, self.wait = state["best"], state["wait"]


class Clock(Stateful):
    """Seconds of training across all of a run's processes, and the time budget, a guard.

    Counts whole epochs (training steps and validation): the part of an epoch that a kill
    interrupted is redone, not counted. With ``minutes``, no epoch starts that would end
    after the budget, judged by the mean epoch so far; ``fired`` says that it stopped the run.
    The budget is minutes at the reference ceiling (``constants.REFERENCE_CEILING_GFLOPS``):
    on a machine with half that ``ceiling_gflops``, twice as many.
    After each epoch but the last it prints how long the rest would take at the mean epoch so far.
    ``anyone`` turns this process's decision into every worker's (``distribute.agreement``):
    workers time their epochs apart, and one that stopped alone would leave the others waiting.
    """

    def __init__(self, minutes: float | None, anyone: Callable[[bool], bool] = lambda flag: flag,
                 ceiling_gflops: float | None = None):  # fmt: skip
        super().__init__()
        self.anyone = anyone
        # Minutes at the reference ceiling; this machine's, where measured, scales them.
        speed = REFERENCE_CEILING_GFLOPS / ceiling_gflops if ceiling_gflops else 1.0
        self.budget = minutes * 60 * speed if minutes else None
        self.seconds = 0.0  # whole epochs, all processes
        self.step_seconds = 0.0  # training steps alone, validation excluded
        self.epochs = 0
        self.fired = False
        self.epoch_start = self.test_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start, self.test_start = time.monotonic(), None

    def on_test_begin(self, logs=None):
        self.test_start = time.monotonic()  # fit's validation loss pass

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.seconds += now - self.epoch_start
        self.step_seconds += (self.test_start or now) - self.epoch_start
        self.epochs += 1
        logs["seconds"] = round(now - self.epoch_start, 1)
        # Every worker has a budget (each scaled by its own machine), so each asks the others at the
        # same epochs.
        if self.budget and self.anyone(self.seconds * (self.epochs + 1) / self.epochs > self.budget):
            self.fired = self.model.stop_training = True
        # How long the rest would take, unless the guard or early stopping has just ended the run.
        total = (self.params or {}).get("epochs")
        if total and epoch + 1 < total and not self.model.stop_training:
            mean = self.seconds / self.epochs
            left = total - epoch - 1  # at most: early stopping may end the run sooner
            print(f"epoch {epoch + 1} of {total}: {logs['seconds'] / 60:.1f} min; {left} more at most, "
                  f"about {left * mean / 60:.1f} min at this pace")  # fmt: skip

    def state(self) -> dict:
        return {"seconds": self.seconds, "step_seconds": self.step_seconds, "epochs": self.epochs,
                "fired": self.fired}  # fmt: skip

    def restore(self, state: dict) -> None:
        self.seconds, self.step_seconds = state["seconds"], state["step_seconds"]
        self.epochs, self.fired = state["epochs"], state["fired"]


class EpochCheckpoint(Stateful):
    """After every epoch: the weights, the optimizer, the random streams and every ``stateful``
    callback's state, in one atomic checkpoint; ``log.csv`` rewritten from the whole history.
    Keeps the newest checkpoint (where a restart resumes) and the ``keep_best`` best by
    ``monitor`` (for selection and averaging).
    """

    def __init__(self, folder: Path, log_csv: Path, stateful: dict[str, Stateful], keep_best: int,
                 ceiling_gflops: float | None = None, monitor: str = "val_bleu",
                 processor: str | None = None):  # fmt: skip
        super().__init__()
        self.folder, self.log_csv, self.stateful = folder, log_csv, stateful
        self.keep_best, self.monitor = max(keep_best, 1), monitor
        self.history: list[dict] = []  # one row of logs per finished epoch, all processes
        self.process = 1
        # The machine of each process: its float32 matrix-product rate, the `make bench` ceiling.
        self.ceilings: dict[str, float | None] = {"1": ceiling_gflops}
        self.processors: dict[str, str | None] = {"1": processor}  # and its CPU, by the same key

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "process": self.process}
        row.update({k: round(float(v), 6) for k, v in logs.items()})
        self.history.append(row)
        state = {
            "epoch": epoch + 1,
            **self.state(),
            "callbacks": {n: c.state() for n, c in self.stateful.items()},
        }
        checkpoints.save(self.folder, epoch + 1, self.model, state)  # the epoch's commit
        self.tidy()

    def tidy(self) -> None:
        """What follows from the checkpoints, done again after a kill: the prune and ``log.csv``."""
        best = sorted(self.history, key=lambda r: -r[self.monitor])[: self.keep_best]
        checkpoints.prune(self.folder, {r["epoch"] for r in best})
        write_text(self.log_csv, history_csv(self.history))

    def state(self) -> dict:
        return {"history": self.history, "process": self.process, "ceilings": self.ceilings,
                "processors": self.processors}  # fmt: skip

    def restore(self, state: dict) -> None:
        """Takes up the newest checkpoint's state, and finishes what a kill right after it left
        undone (``tidy``): the checkpoint and its row of ``log.csv`` are one unit."""
        self.history, self.process = state["history"], state["process"] + 1
        self.ceilings = {**state["ceilings"], str(self.process): self.ceilings["1"]}
        # A checkpoint from before the processor was recorded has none for its processes.
        self.processors = {**state.get("processors", {}), str(self.process): self.processors["1"]}
        self.tidy()


def history_csv(history: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in history for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()
