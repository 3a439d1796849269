"""TensorFlow Serving's REST JSON into arrays and back, in process, on signatures described by hand
(no model): what test_serving checks over HTTP, quick enough for make mutate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from refused_decoding import REFUSED, decoding

from pipeline.serving.protocol import format_predict, jsonable, metadata, parse_predict, status
from pipeline.serving.repository import Servable, ServingError, Signature, TensorInfo

TEXT = Signature(
    "translate",
    None,
    {
        "sources": TensorInfo(tf.string, (None,), "translate_sources:0"),
        "beam_size": TensorInfo(tf.int32, (), "translate_beam_size:0"),
        "length_penalty": TensorInfo(tf.float32, (), "translate_length_penalty:0"),
    },
    {"translations": TensorInfo(tf.string, (None,), "t:0"), "scores": TensorInfo(tf.float32, (None,), "s:0")},
)
ONE = Signature(
    "serving_default",
    None,
    {"sources": TensorInfo(tf.string, (None,), "sources:0")},
    {"translations": TensorInfo(tf.string, (None,), "t:0")},
)
IDS = Signature(
    "translate_ids",
    None,
    {
        "source_ids": TensorInfo(tf.int32, (None, None), "source_ids:0"),
        "source_lengths": TensorInfo(tf.int32, (None,), "source_lengths:0"),
    },
    {"ids": TensorInfo(tf.int32, (None, None), "ids:0")},
)
FIXED = Signature("fixed", None, {"rows": TensorInfo(tf.int32, (None, 300), "rows:0")},
                  {"ids": TensorInfo(tf.int32, (None,), "ids:0")})  # fmt: skip
SERVABLE = Servable(
    "m", 3, None, {"translate": TEXT, "serving_default": ONE, "translate_ids": IDS, "fixed": FIXED}, 0.6, None
)


def parse(body) -> tuple[str, dict, str]:
    signature, inputs, form = parse_predict(
        SERVABLE, body if isinstance(body, bytes) else json.dumps(body).encode()
    )
    return signature.name, inputs, form


def refused(body) -> str:
    with pytest.raises(ServingError) as error:
        parse(body)
    assert error.value.status == 400
    return str(error.value)


def test_the_row_form_with_one_input_takes_bare_values_and_the_default_signature():
    name, inputs, form = parse({"instances": ["a", "b"]})
    assert (name, form) == ("serving_default", "row") and inputs["sources"].tolist() == [b"a", b"b"]
    name, inputs, _ = parse({"instances": [{"sources": "a"}, {"sources": {"b64": "Yg=="}}]})
    assert inputs["sources"].tolist() == [b"a", b"b"]


def test_the_row_form_with_several_inputs_takes_objects():
    name, inputs, form = parse(
        {
            "signature_name": "translate_ids",
            "instances": [
                {"source_ids": [1, 2], "source_lengths": 2},
                {"source_ids": [3, 0], "source_lengths": 1},
            ],
        }
    )
    assert (name, form) == ("translate_ids", "row")
    assert inputs["source_ids"].tolist() == [[1, 2], [3, 0]] and inputs["source_ids"].dtype == np.int32
    assert inputs["source_lengths"].tolist() == [2, 1]
    assert "each instance must be an object" in refused(
        {"signature_name": "translate_ids", "instances": [[1, 2]]}
    )


def test_the_columnar_form_takes_each_input_whole_or_the_only_one_bare():
    name, inputs, form = parse(
        {"signature_name": "translate", "inputs": {"sources": ["a"], "beam_size": 5, "length_penalty": 0.5}}
    )
    assert (name, form) == ("translate", "columnar")
    assert inputs["beam_size"].shape == () and int(inputs["beam_size"]) == 5
    assert float(inputs["length_penalty"]) == 0.5 and inputs["length_penalty"].dtype == np.float32
    assert parse({"inputs": ["a", "b"]})[1]["sources"].tolist() == [b"a", b"b"]
    assert parse({"inputs": {"sources": ["a"]}})[1]["sources"].tolist() == [b"a"]


@pytest.mark.parametrize(("beam", "penalty"), [("5", "0"), ("5", "10"), ("1", "0.6"), ("100000", "0.6")])
def test_decoding_values_the_export_can_use_pass(beam, penalty):
    _, inputs, _ = parse(decoding(beam, penalty))
    assert int(inputs["beam_size"]) == int(beam) and math.isclose(
        float(inputs["length_penalty"]), float(penalty), rel_tol=1e-6
    )


@pytest.mark.parametrize(("beam", "penalty", "words"), REFUSED)
def test_decoding_values_the_export_cannot_use_are_a_400_naming_the_input(beam, penalty, words):
    assert words in refused(decoding(beam, penalty))


def test_malformed_requests_are_400s_that_say_what_is_wrong():
    assert "JSON Parse error" in refused(b"{nope")
    assert "must be a JSON object" in refused(b"[1]")
    assert 'exactly one of "instances"' in refused({"instances": ["a"], "inputs": ["a"]})
    assert 'exactly one of "instances"' in refused({})
    assert 'signature name: "x" not found' in refused({"signature_name": "x", "instances": ["a"]})
    assert "non-empty list" in refused({"instances": []})
    assert "scalar inputs (beam_size, length_penalty)" in refused(
        {"signature_name": "translate", "instances": ["a"]}
    )
    assert "missing input length_penalty" in refused(
        {"signature_name": "translate", "inputs": {"sources": ["a"], "beam_size": 1}}
    )
    assert "unknown input extra" in refused(
        {
            "signature_name": "translate",
            "inputs": {"sources": ["a"], "beam_size": 1, "length_penalty": 1, "extra": 1},
        }
    )
    assert "must hold strings" in refused({"inputs": [1]})
    assert "invalid base64" in refused({"inputs": [{"b64": "!!"}]})
    assert "must hold strings" in refused({"inputs": [{"b64": "YQ==", "x": 1}]})  # b64 alone, or not bytes
    assert "must have 1 dimensions, got 2" in refused({"inputs": [["a"]]})
    assert "must have 1 dimensions, got 0" in refused({"inputs": "a"})  # fewer too: a 400, not a 500
    assert "input source_ids: setting an array element with a sequence" in refused(
        {"signature_name": "translate_ids", "inputs": {"source_ids": [[1, 2], [3]], "source_lengths": [2, 1]}}
    )
    assert "must have 0 dimensions" in refused(decoding("[5]", "1"))
    assert "must hold strings" in refused({"inputs": {}})  # one input: an empty object is its value
    assert "must hold strings" in refused({"inputs": {"sources": ["a"], "x": 1}})  # and one with other keys
    assert "same length" in refused({"inputs": [["a", "b"], ["c"]]})
    assert "must hold strings" in refused({"instances": [{}]})  # one input: an empty object is its value
    assert "must hold strings" in refused({"instances": [{"sources": "a", "x": 1}]})  # other keys too
    # Several inputs, a bare value: taken as the first input's, so the others are missing.
    assert "missing input beam_size, length_penalty" in refused(
        {"signature_name": "translate", "inputs": ["a"]}
    )


def test_a_fixed_dimension_is_checked_whatever_its_size():
    assert parse({"signature_name": "fixed", "instances": [[0] * 300]})[1]["rows"].shape == (1, 300)
    assert "input rows must have shape [None, 300], got [1, 299]" in refused(
        {"signature_name": "fixed", "instances": [[0] * 299]}
    )
    assert "got [1, 301]" in refused({"signature_name": "fixed", "instances": [[0] * 301]})


def test_answers_in_both_forms():
    outputs = {
        "translations": np.array([b"x", b"\xff"], dtype=object),
        "scores": np.array([-1.5, np.nan], np.float32),
    }
    assert format_predict(outputs, "row") == {
        "predictions": [
            {"scores": -1.5, "translations": "x"},
            {"scores": None, "translations": {"b64": "/w=="}},
        ]
    }
    assert format_predict(outputs, "columnar") == {
        "outputs": {"scores": [-1.5, None], "translations": ["x", {"b64": "/w=="}]}
    }
    one = {"translations": np.array([b"x"], dtype=object)}
    assert format_predict(one, "row") == {"predictions": ["x"]}
    assert format_predict(one, "columnar") == {"outputs": ["x"]}
    assert jsonable(np.array([[1, 2]], np.int32)) == [[1, 2]]
    assert jsonable(np.array([np.inf, 0.5], np.float32)) == [None, 0.5]


def test_status_and_metadata_are_tensorflow_servings():
    available = {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert status(SERVABLE) == {"model_version_status": [available]}
    found = metadata(SERVABLE)
    assert found["model_spec"] == {"name": "m", "signature_name": "", "version": "3"}
    defs = found["metadata"]["signature_def"]["signature_def"]
    assert list(defs) == ["fixed", "serving_default", "translate", "translate_ids"]
    beam = defs["translate"]["inputs"]["beam_size"]
    assert beam == {
        "dtype": "DT_INT32",
        "tensor_shape": {"dim": [], "unknown_rank": False},
        "name": "translate_beam_size:0",
    }
    assert (
        defs["translate_ids"]["inputs"]["source_ids"]["tensor_shape"]["dim"]
        == [{"size": "-1", "name": ""}] * 2
    )
    assert defs["translate"]["method_name"] == "tensorflow/serving/predict"
