"""The models a server serves: the newest version of each, loaded once, replaced when a newer
version appears.

The layout is TensorFlow Serving's: ``<base>/<model>/<version>/saved_model.pb``, with versions
that only grow (``pipeline.decoding.export`` writes each one aside and renames it into place). As in
TensorFlow Serving's default policy, one version of a model is served at a time: the newest. A
newer version is loaded beside the old one, which serves until the new one is ready.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the text servables use)

from pipeline.errors import UserError
from pipeline.files import latest_version

log = logging.getLogger("pipeline.serving")


class ServingError(Exception):
    """A request the server refuses: its HTTP status and TensorFlow Serving's error message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TensorInfo:
    dtype: tf.DType
    shape: tuple[int | None, ...]  # None: any size
    name: str  # the graph tensor's name, as SavedModel metadata gives it

    @property
    def batched(self) -> bool:
        """Has a leading dimension of any size: requests can be merged along it."""
        return len(self.shape) >= 1 and self.shape[0] is None


@dataclass
class Signature:
    name: str
    function: Any  # a ConcreteFunction: keyword tensors in, a dict of tensors out
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {k: tf.constant(v, dtype=self.inputs[k].dtype) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in self.function(**tensors).items()}


@dataclass
class Servable:
    name: str
    version: int
    path: Path
    signatures: dict[str, Signature]
    default_length_penalty: float | None  # the export's, tuned on validation; None if it has none
    module: Any = field(repr=False)  # kept alive: the signatures' variables belong to it


def tensor_infos(specs: dict, names: dict[str, str]) -> dict[str, TensorInfo]:
    return {
        key: TensorInfo(spec.dtype, tuple(spec.shape.as_list()) if spec.shape.rank is not None else (),
                        names.get(key, key))
        for key, spec in sorted(specs.items())
    }  # fmt: skip


def load_servable(name: str, path: Path) -> Servable:
    """Loads one version of a model; a UserError when it is not a readable SavedModel."""
    try:
        module = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise UserError(f"{path} holds no readable SavedModel ({type(error).__name__})") from error
    signatures = {}
    for key, function in module.signatures.items():
        _, inputs = function.structured_input_signature
        outputs = function.structured_outputs
        input_names = {k: f"{key}_{k}:0" for k in inputs}
        output_names = {k: t.name for k, t in outputs.items()}
        signatures[key] = Signature(key, function, tensor_infos(inputs, input_names),
                                    tensor_infos(outputs, output_names))  # fmt: skip
    penalty = getattr(module, "default_length_penalty", None)
    penalty = None if penalty is None else round(float(penalty.numpy()), 4)
    return Servable(name, int(path.name), path, signatures, penalty, module)


class Repository:
    """The newest version of every model under ``base`` (or of the ``names`` given)."""

    def __init__(self, base: Path, names: list[str] | None = None):
        self.base = Path(base)
        self.names = names
        self.servables: dict[str, Servable] = {}
        self.failed: dict[tuple[str, int], str] = {}  # versions that would not load, and why

    def on_disk(self) -> dict[str, Path]:
        """Each model's newest complete version folder (one with a non-empty saved_model.pb)."""
        names = self.names or sorted(
            p.name for p in self.base.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        found = {}
        for name in names:
            newest = latest_version(self.base / name)
            if newest is not None and (newest / "saved_model.pb").is_file():
                found[name] = newest
        return found

    def refresh(self) -> list[str]:
        """Loads every version newer than the one served; returns what changed, as log lines."""
        if not self.base.is_dir():
            raise UserError(f"{self.base} does not exist: export a model first (make export)")
        changes = []
        for name, path in self.on_disk().items():
            version = int(path.name)
            served = self.servables.get(name)
            if (served and served.version >= version) or (name, version) in self.failed:
                continue
            try:
                self.servables[name] = load_servable(name, path)
            except UserError as error:
                self.failed[(name, version)] = str(error)
                changes.append(f"{name} version {version} did not load: {error}")
                continue
            changes.append(
                f"serving {name} version {version}" + (f" (was {served.version})" if served else "")
            )
        if self.names:
            missing = [n for n in self.names if n not in self.servables]
            if missing and not self.servables:
                raise UserError(f"no exported version of {', '.join(missing)} under {self.base}: make export")
        return changes

    def get(self, name: str, version: int | None = None) -> Servable:
        served = self.servables.get(name)
        if served is None or (version is not None and version != served.version):
            wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise ServingError(404, f"Servable not found for request: {wanted}")
        return served
