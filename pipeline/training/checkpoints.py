"""A run's epoch checkpoints: written atomically, restored after a kill, pruned, averaged.

``<run>/checkpoints/epoch-007/`` holds the model's weights, the optimizer's variables
(Adam's moments, step count and learning rate) and the state of every random stream (the
dropout masks), each by its path, and ``state.json``, everything the run had decided after its
7th epoch. The folder is written aside, flushed to disk and renamed into place, so a run killed
at any moment, or a machine that loses power, finds only whole checkpoints, and the newest is
where it goes on, drawing the same batches and masks as a run never stopped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from pipeline.errors import UserError
from pipeline.files import remove_stale, replace_dir
from pipeline.layout import STATE, WEIGHTS

OPTIMIZER = "optimizer.npz"  # the optimizer's variables and the random streams' states, by path


class CheckpointError(UserError):
    """A checkpoint that this model cannot resume from."""


def epoch_dir(folder: Path, epoch: int) -> Path:
    return Path(folder) / f"epoch-{epoch:03d}"


def epochs(folder: Path) -> list[int]:
    """The finished epochs (1-based) that have a checkpoint, in order."""
    return sorted(int(p.name.split("-")[1]) for p in Path(folder).glob("epoch-[0-9][0-9][0-9]"))


def save(folder: Path, epoch: int, model: keras.Model, state: dict) -> Path:
    """Checkpoints ``model`` (weights, optimizer, random streams) and ``state`` after ``epoch``
    finished epochs."""

    def write(tmp: Path) -> None:
        model.save_weights(tmp / WEIGHTS)
        np.savez(tmp / OPTIMIZER, **{path: v.numpy() for path, v in resumable_variables(model).items()})
        (tmp / STATE).write_text(json.dumps(state, indent=2) + "\n")

    return replace_dir(epoch_dir(folder, epoch), write)


def restore(folder: Path, model: keras.Model, tidy: bool = True) -> dict:
    """Loads the newest checkpoint into ``model``, its optimizer and its random streams; returns
    its state ({} if none).

    Under a strategy, call it in ``strategy.scope()``: building the optimizer makes its variables,
    mirrored there, and assigning a value sets every replica's copy. ``tidy`` (the process that
    writes the run) removes what a killed write left; the other workers only read.
    """
    if tidy:
        Path(folder).mkdir(parents=True, exist_ok=True)
        remove_stale(folder)  # a checkpoint whose writing was killed
    # Built whether or not there is a checkpoint: under several workers, making its variables is a
    # collective step, which every worker must take, whatever its folder holds.
    model.optimizer.build(model.trainable_variables)  # before loading: the weights file holds its state too
    found = epochs(folder)
    if not found:
        return {}
    path = epoch_dir(folder, found[-1])
    model.load_weights(path / WEIGHTS)
    variables = resumable_variables(model)
    with np.load(path / OPTIMIZER) as saved:
        if set(saved.files) != set(variables):
            missing = sorted(set(variables) - set(saved.files))
            extra = sorted(set(saved.files) - set(variables))
            raise CheckpointError(
                f"{path / OPTIMIZER} does not match this model: missing {missing[:3]}, unknown {extra[:3]}"
            )
        for name, variable in variables.items():
            variable.assign(saved[name])
    return json.loads((path / STATE).read_text())


def resumable_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """What a resumed run needs besides the weights, by path: the optimizer's variables (its own
    name, which Keras numbers per process, left out) and the random streams' states."""
    found = {"optimizer/" + v.path.partition("/")[2]: v for v in model.optimizer.variables}
    found.update({"random/" + path: v for path, v in random_states(model).items()})
    if len(found) != len(model.optimizer.variables) + len(random_states(model)):
        raise CheckpointError("two of the optimizer's variables share a path")
    return found


def random_states(model: keras.Model) -> dict[str, keras.Variable]:
    """The state of each random stream in ``model`` (a dropout layer's seed generator), keyed by
    the path of layer names that leads to it. Keras keeps these out of the weights, yet a run
    resumed without them draws other dropout masks than a run never stopped."""
    found = {}

    def walk(layer: keras.layers.Layer, path: str) -> None:
        for i, generator in enumerate(layer._seed_generators):
            found[f"{path}/seed_generator_{i}"] = generator.state
        for child in layer._flatten_layers(include_self=False, recursive=False):
            walk(child, f"{path}/{child.name}")

    walk(model, model.name)
    return found


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
