"""A run's epoch checkpoints: written atomically, restored after a kill, pruned, averaged.

``<run>/checkpoints/epoch-007/`` holds the model's weights, the optimizer's variables
(Adam's moments, step count and learning rate) and ``state.json``, everything the run
had decided after its 7th epoch. The folder is written aside and renamed into place, so
a run killed at any moment finds only whole checkpoints, and the newest is where it goes on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from pipeline.files import remove_stale, replace_dir

WEIGHTS = "model.weights.h5"
OPTIMIZER = "optimizer.npz"
STATE = "state.json"


def epoch_dir(folder: Path, epoch: int) -> Path:
    return Path(folder) / f"epoch-{epoch:03d}"


def epochs(folder: Path) -> list[int]:
    """The finished epochs (1-based) that have a checkpoint, in order."""
    return sorted(int(p.name.split("-")[1]) for p in Path(folder).glob("epoch-[0-9][0-9][0-9]"))


def save(folder: Path, epoch: int, model: keras.Model, state: dict) -> Path:
    """Checkpoints ``model`` (weights and optimizer) and ``state`` after ``epoch`` finished epochs."""

    def write(tmp: Path) -> None:
        model.save_weights(tmp / WEIGHTS)
        variables = {f"{i:04d}": v.numpy() for i, v in enumerate(model.optimizer.variables)}
        np.savez(tmp / OPTIMIZER, **variables)
        (tmp / STATE).write_text(json.dumps(state, indent=2) + "\n")

    return replace_dir(epoch_dir(folder, epoch), write)


def restore(folder: Path, model: keras.Model, tidy: bool = True) -> dict:
    """Loads the newest checkpoint into ``model`` and its optimizer; returns its state ({} if none).

    Under a strategy, call it in ``strategy.scope()``: building the optimizer makes its variables,
    mirrored there, and assigning a value sets every replica's copy. ``tidy`` (the process that
    writes the run) removes what a killed write left; the other workers only read.
    """
    if tidy:
        Path(folder).mkdir(parents=True, exist_ok=True)
        remove_stale(folder)  # a checkpoint whose writing was killed
    found = epochs(folder)
    if not found:
        return {}
    path = epoch_dir(folder, found[-1])
    model.optimizer.build(model.trainable_variables)  # before loading: the weights file holds its state too
    model.load_weights(path / WEIGHTS)
    with np.load(path / OPTIMIZER) as saved:
        values = [saved[key] for key in sorted(saved.files)]
    if len(values) != len(model.optimizer.variables):
        raise ValueError(f"{path / OPTIMIZER} does not match this model's optimizer")
    for variable, value in zip(model.optimizer.variables, values, strict=True):
        variable.assign(value)
    return json.loads((path / STATE).read_text())


def prune(folder: Path, keep: set[int]) -> None:
    """Deletes the checkpoints not in ``keep``; only the newest keeps its optimizer state."""
    found = epochs(folder)
    for epoch in found:
        if epoch not in keep and epoch != found[-1]:
            shutil.rmtree(epoch_dir(folder, epoch))
        elif epoch != found[-1]:
            (epoch_dir(folder, epoch) / OPTIMIZER).unlink(missing_ok=True)


def load_weights(folder: Path, epoch: int, model: keras.Model) -> None:
    model.load_weights(epoch_dir(folder, epoch) / WEIGHTS)


def average(folder: Path, chosen: list[int], model: keras.Model) -> None:
    """Sets ``model``'s float weights to the mean of the ``chosen`` epochs' checkpoints
    (integer state, such as a dropout seed, is the last one's)."""
    total = None
    for epoch in chosen:
        load_weights(folder, epoch, model)
        values = [v.numpy().astype(np.float64) for v in model.weights]
        total = values if total is None else [t + v for t, v in zip(total, values, strict=True)]
    for variable, value in zip(model.weights, total, strict=True):
        if "float" in str(variable.dtype):
            variable.assign((value / len(chosen)).astype(variable.dtype))
