"""TensorFlow Serving's REST API: the JSON of a predict request into tensors, and back.

A request names its signature (``signature_name``, default ``serving_default``) and gives its
inputs in one of two forms:

- row: ``{"instances": [...]}``, one item per example; an item is the value of the
  signature's only input, or an object with every input. The response is
  ``{"predictions": [...]}``, one item per example (a value if there is one output, else an
  object).
- columnar: ``{"inputs": {...}}`` with each input whole (or the value, if there is one
  input). The response is ``{"outputs": {...}}`` (or the value, if there is one output).

A scalar input (``beam_size``) has no example dimension, so only the columnar form can send
it, as in TensorFlow Serving. Strings are UTF-8 text, or ``{"b64": ...}`` for bytes.

The decoding values are checked before any work: a length penalty must be a finite number from 0
to ``MAX_LENGTH_PENALTY`` and a beam size a whole number of at least 1, or the request gets a 400
that names the input. A beam above ``MAX_BEAM_SIZE`` is searched at that size, as the export does,
and the output ``beam_size`` says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from pipeline.decoding.export import MAX_BEAM_SIZE, MAX_LENGTH_PENALTY
from pipeline.serving.repository import Servable, ServingError, Signature, TensorInfo

DEFAULT_SIGNATURE = "serving_default"


def bad(message: str) -> ServingError:
    return ServingError(400, message)


def parse_json(body: bytes) -> dict:
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise bad(f"JSON Parse error: {error}") from error
    if not isinstance(request, dict):
        raise bad("JSON Parse error: the request body must be a JSON object")
    return request


def decode_strings(value: Any, name: str) -> Any:
    """Nested lists of str or {"b64": ...} -> the same nesting of bytes."""
    if isinstance(value, list):
        return [decode_strings(v, name) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error as error:
            raise bad(f"input {name}: invalid base64 ({error})") from error
    raise bad(f"input {name} must hold strings, got {json.dumps(value)[:80]}")


def to_array(value: Any, info: TensorInfo, name: str) -> np.ndarray:
    """A JSON value as an array of the input's dtype and rank, or a 400 that says what is wrong."""
    if info.dtype == tf.string:
        array = np.array(decode_strings(value, name), dtype=object)
    else:
        if not _numbers(value):
            raise bad(f"input {name} must hold numbers, got {json.dumps(value)[:80]}")
        try:
            array = np.array(value, dtype=info.dtype.as_numpy_dtype)
        except (ValueError, OverflowError) as error:
            raise bad(f"input {name}: {error}") from error
        if info.dtype.is_integer and not np.array_equal(array, np.array(value, dtype=np.float64)):
            raise bad(f"input {name} must hold whole numbers within {info.dtype.name}")
    if array.dtype == object and any(isinstance(v, list) for v in array.flat):
        raise bad(f"input {name}: the lists of a tensor must all have the same length")
    if array.ndim != len(info.shape):
        raise bad(f"input {name} must have {len(info.shape)} dimensions, got {array.ndim}")
    for size, want in zip(array.shape, info.shape, strict=True):
        if want is not None and size != want:
            raise bad(f"input {name} must have shape {list(info.shape)}, got {list(array.shape)}")
    return array


def _numbers(value: Any) -> bool:
    if isinstance(value, list):
        return all(_numbers(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def signature_of(servable: Servable, request: dict) -> Signature:
    name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str) or name not in servable.signatures:
        raise bad(f'Serving signature name: "{name}" not found in signature def')
    return servable.signatures[name]


def parse_predict(servable: Servable, body: bytes) -> tuple[Signature, dict[str, np.ndarray], str]:
    """The signature, its inputs as arrays, and the form (``row`` or ``columnar``) of a request."""
    request = parse_json(body)
    signature = signature_of(servable, request)
    return signature, *parse_inputs(signature, request)


def parse_inputs(signature: Signature, request: dict) -> tuple[dict[str, np.ndarray], str]:
    """The inputs of a request for ``signature`` as arrays, and its form (``row`` or ``columnar``)."""
    if ("instances" in request) == ("inputs" in request):
        raise bad('the request must have exactly one of "instances" (row form) or "inputs" (columnar form)')
    names = list(signature.inputs)
    if "inputs" in request:
        given = request["inputs"]
        if not (isinstance(given, dict) and len(names) > 1):  # one input: the value itself, or {name: value}
            given = given if isinstance(given, dict) and set(given) == set(names) else {names[0]: given}
        check_names(given, names)
        inputs = {k: to_array(given[k], signature.inputs[k], k) for k in names}
        check_decoding(inputs)
        return inputs, "columnar"
    instances = request["instances"]
    if not isinstance(instances, list) or not instances:
        raise bad('"instances" must be a non-empty list, one item per example')
    scalars = [k for k in names if not signature.inputs[k].shape]
    if scalars:
        raise bad(
            f"signature {signature.name} has scalar inputs ({', '.join(scalars)}), which have no example "
            'dimension: send them in the columnar form, {"inputs": {...}}'
        )
    if len(names) == 1 and not all(isinstance(i, dict) and set(i) == set(names) for i in instances):
        instances = [{names[0]: i} for i in instances]
    for item in instances:
        if not isinstance(item, dict):
            raise bad(f"each instance must be an object with the inputs {', '.join(names)}")
        check_names(item, names)
    return {k: to_array([i[k] for i in instances], signature.inputs[k], k) for k in names}, "row"


def check_decoding(inputs: dict[str, np.ndarray]) -> None:
    """A 400 for the decoding values the export cannot use; NaN would pass JSON (Python reads NaN and
    Infinity) and the export would replace it unseen."""
    if "length_penalty" in inputs:
        penalty = float(inputs["length_penalty"])
        if not (math.isfinite(penalty) and 0.0 <= penalty <= MAX_LENGTH_PENALTY):
            raise bad(
                f"input length_penalty must be finite, from 0 to {MAX_LENGTH_PENALTY:g}, got {penalty:g}"
            )
    if "beam_size" in inputs and int(inputs["beam_size"]) < 1:
        raise bad(
            f"input beam_size must be at least 1 (a larger one than {MAX_BEAM_SIZE} is searched at "
            f"{MAX_BEAM_SIZE}), got {int(inputs['beam_size'])}"
        )


def check_names(given: dict, names: list[str]) -> None:
    missing, unknown = [n for n in names if n not in given], [n for n in given if n not in names]
    if missing:
        raise bad(f"missing input {', '.join(missing)} (the signature's inputs: {', '.join(names)})")
    if unknown:
        raise bad(
            f"unknown input {', '.join(map(str, unknown))} (the signature's inputs: {', '.join(names)})"
        )


def jsonable(array: np.ndarray) -> Any:
    """Bytes as text (or {"b64": ...} when not UTF-8), numbers as numbers (NaN and inf as null)."""
    if array.dtype == object:
        return _texts(array.tolist())
    values = array.tolist()
    return _finite(values) if array.dtype.kind == "f" else values


def _texts(value: Any) -> Any:
    if isinstance(value, list):
        return [_texts(v) for v in value]
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}


def _finite(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value if math.isfinite(value) else None


def format_predict(outputs: dict[str, np.ndarray], form: str) -> dict:
    names = sorted(outputs)
    if form == "columnar":
        if len(names) == 1:
            return {"outputs": jsonable(outputs[names[0]])}
        return {"outputs": {k: jsonable(outputs[k]) for k in names}}
    columns = {k: jsonable(outputs[k]) for k in names}
    rows = len(next(iter(columns.values())))
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    return {"predictions": [{k: columns[k][i] for k in names} for i in range(rows)]}


def status(servable: Servable) -> dict:
    """GetModelStatusResponse: the one version served, available."""
    return {"model_version_status": [{"version": str(servable.version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}  # fmt: skip


def tensor_json(info: TensorInfo) -> dict:
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in info.shape]
    return {"dtype": types_pb2.DataType.Name(info.dtype.as_datatype_enum),
            "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": info.name}  # fmt: skip


def metadata(servable: Servable) -> dict:
    """GetModelMetadataResponse with the signature_def of every signature."""
    defs = {
        name: {"inputs": {k: tensor_json(v) for k, v in s.inputs.items()},
               "outputs": {k: tensor_json(v) for k, v in s.outputs.items()},
               "method_name": "tensorflow/serving/predict"}
        for name, s in sorted(servable.signatures.items())
    }  # fmt: skip
    return {
        "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": {"signature_def": defs}},
    }
