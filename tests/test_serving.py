"""The server as a client sees it: its own process, real HTTP, TensorFlow Serving's REST API."""

from __future__ import annotations

import http.client
import json
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from refused_decoding import REFUSED, decoding

from pipeline.decoding.export import MAX_BEAM_SIZE, export
from pipeline.serving.load import request
from pipeline.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["Ein Hund läuft über eine Wiese.", "Zwei Kinder spielen im Sand."]
NAME = "gru_bahdanau_converge"
BEST = "best"  # the README's model name (make best's export): its curl exchange runs here unchanged


@pytest.fixture(scope="module")
def server(served) -> int:
    """The port of ``make serve`` over the tiny models (conftest's ``served``)."""
    return served.port


@pytest.fixture(scope="module")
def local(served):
    """The same SavedModels loaded here: what the server must answer."""
    return tf.saved_model.load(str(served.models / NAME / "1")), tf.saved_model.load(
        str(served.models / f"{NAME}-ids" / "1")
    )


def post(port: int, model: str, body) -> tuple[int, dict]:
    return request(port, f"/v1/models/{model}:predict", body)


def test_status_and_metadata_are_tensorflow_servings(server):
    status, body = request(server, f"/v1/models/{NAME}")
    assert status == 200
    available = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert body == {"model_version_status": [available]}
    assert request(server, f"/v1/models/{NAME}/versions/1")[0] == 200
    status, body = request(server, f"/v1/models/{NAME}/versions/7")
    assert status == 404 and body["error"] == f"Servable not found for request: Specific({NAME}, 7)"
    status, body = request(server, f"/v1/models/{NAME}/metadata")
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert body["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    assert set(defs) == {"serving_default", "translate", "align", "translate_ids", "align_ids"}
    assert defs["translate"]["inputs"]["sources"]["dtype"] == "DT_STRING"
    assert defs["translate"]["inputs"]["sources"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert defs["translate"]["inputs"]["beam_size"]["tensor_shape"]["dim"] == []
    assert set(defs["align"]["outputs"]) == {"alignments", "beam_size", "output_pieces", "scores",
                                             "source_pieces", "translations"}  # fmt: skip
    status, body = request(server, f"/v1/models/{NAME}-ids/metadata")
    assert set(body["metadata"]["signature_def"]["signature_def"]) == {
        "serving_default",
        "translate_ids",
        "align_ids",
    }


def test_the_row_and_columnar_forms_answer_what_the_model_answers_here(server, local):
    text, ids = local
    expected = text.serve(tf.constant(SOURCES))
    status, body = post(server, NAME, {"instances": SOURCES})
    assert status == 200, body
    assert [p["translations"] for p in body["predictions"]] == [
        t.decode() for t in expected["translations"].numpy()
    ]
    assert [p["beam_size"] for p in body["predictions"]] == [5, 5]
    np.testing.assert_allclose(
        [p["scores"] for p in body["predictions"]], expected["scores"].numpy(), rtol=1e-5
    )

    inputs = {"sources": SOURCES, "beam_size": 1, "length_penalty": 0.6}
    status, body = post(server, NAME, {"signature_name": "translate", "inputs": inputs})
    greedy = text.translate(tf.constant(SOURCES), tf.constant(1), tf.constant(0.6))
    assert status == 200 and body["outputs"]["translations"] == [
        t.decode() for t in greedy["translations"].numpy()
    ]
    assert body["outputs"]["beam_size"] == [1, 1]

    sp = load_tokenizer(Path(text.sentencepiece_model.asset_path.numpy().decode()))
    rows = [sp.encode(s) for s in SOURCES]
    width = max(map(len, rows))
    source_ids = [r + [0] * (width - len(r)) for r in rows]
    inputs = {
        "source_ids": source_ids,
        "source_lengths": list(map(len, rows)),
        "beam_size": 5,
        "length_penalty": 0.6,
    }
    status, body = post(server, f"{NAME}-ids", {"inputs": inputs})  # serving_default: translate_ids
    mine = ids.translate_ids(
        tf.constant(source_ids), tf.constant(list(map(len, rows))), tf.constant(5), tf.constant(0.6)
    )
    assert status == 200 and body["outputs"]["ids"] == mine["ids"].numpy().tolist()
    assert [
        sp.decode(r[:n]) for r, n in zip(body["outputs"]["ids"], body["outputs"]["lengths"], strict=True)
    ] == [t.decode() for t in expected["translations"].numpy()]


def test_every_signature_answers_with_its_outputs(server):
    for model in (NAME, f"{NAME}-ids"):
        defs = request(server, f"/v1/models/{model}/metadata")[1]["metadata"]["signature_def"][
            "signature_def"
        ]
        for name, signature in defs.items():
            values = {"sources": SOURCES, "source_ids": [[5, 6, 7], [8, 9, 0]], "source_lengths": [3, 2],
                      "beam_size": 2, "length_penalty": 0.6}  # fmt: skip
            inputs = {k: values[k] for k in signature["inputs"]}
            status, body = post(server, model, {"signature_name": name, "inputs": inputs})
            assert status == 200, (model, name, body)
            assert set(body["outputs"]) == set(signature["outputs"]), (model, name)
            assert all(len(v) == 2 for v in body["outputs"].values()), (model, name)


@pytest.mark.parametrize("model", [NAME, BEST])
def test_align_gives_the_pieces_the_weights_are_over(server, model):
    # BEST is an ensemble of an attention model and a single-vector one: its map is the first's.
    inputs = {"sources": SOURCES[:1], "beam_size": 5, "length_penalty": 0.6}
    status, body = post(server, model, {"signature_name": "align", "inputs": inputs})
    out = body["outputs"]
    source = [p for p in out["source_pieces"][0] if p]
    assert status == 200 and source[-1] == "</s>"
    weights = np.array(out["alignments"][0])  # (output pieces + EOS, source pieces + EOS)
    n = len([p for p in out["output_pieces"][0] if p])
    assert weights.shape[1] == len(source) and weights.shape[0] >= n > 0
    np.testing.assert_allclose(weights[:n].sum(axis=1), 1.0, atol=1e-4)  # a distribution per output piece


BAD = [
    (b"{not json", 400, "JSON Parse error"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (json.dumps({"signature_name": "nope", "instances": ["a"]}), 400, 'signature name: "nope" not found'),
    (json.dumps({"signature_name": "translate", "instances": [{"sources": "a", "beam_size": 1}]}), 400,
     "scalar inputs (beam_size, length_penalty)"),
    (json.dumps({"inputs": {"sources": [1, 2]}}), 400, "must hold strings"),
    (json.dumps({"inputs": {"sources": [["a", "b"], ["c"]]}}), 400, "same length"),
    (json.dumps({"signature_name": "translate", "inputs": {"sources": ["a"], "beam_size": 1}}), 400,
     "missing input length_penalty"),
    (json.dumps({"signature_name": "translate", "inputs": {"sources": ["a"], "beam_size": 1.5,
                                                           "length_penalty": 1}}), 400, "whole numbers"),
    (json.dumps({"instances": ["a"], "inputs": ["b"]}), 400, "exactly one of"),
    (json.dumps({"instances": []}), 400, "non-empty list"),
    # Many pieces under any tokenizer: a run of characters it does not know is one piece, but
    # spaces cut it (the synthetic corpus, without ../shared, has no "x").
    (json.dumps({"instances": ["x " * 300] * 1000}), 400, "request too large"),
    (json.dumps({"instances": ["x"] * 2049}), 413, "at most 2048"),
    (b'{"instances": ["' + b"x" * (1 << 20) + b'"]}', 413, "larger than 1048576 bytes"),
    # The decoding values the export cannot use, each named (Python's json reads NaN and Infinity).
    *((decoding(beam, penalty), 400, words) for beam, penalty, words in REFUSED),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "words"), BAD, ids=[words for _, _, words in BAD])
def test_a_bad_request_is_a_4xx_with_a_json_error_and_the_server_goes_on(server, body, status, words):
    port = server
    connection_body = body if isinstance(body, bytes) else body.encode()
    answer = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--data-binary", "@-", f"http://127.0.0.1:{port}/v1/models/{NAME}:predict"],
        input=connection_body, capture_output=True, timeout=120,
    )  # fmt: skip
    text, code = answer.stdout.decode().rsplit("\n", 1)
    assert int(code) == status, text
    assert words in json.loads(text)["error"]
    assert post(port, NAME, {"instances": SOURCES[:1]})[0] == 200


def test_unknown_models_paths_and_methods_are_json_errors(server):
    assert request(server, "/v1/models/nope") == (
        404,
        {"error": "Servable not found for request: Latest(nope)"},
    )
    status, body = request(server, f"/v1/models/{NAME}:explain", {"instances": ["a"]})
    assert status == 404 and "no such endpoint" in body["error"]
    status, body = request(server, f"/v1/models/{NAME}:predict")  # GET
    assert status == 405 and "POST" in body["error"]
    status, body = request(server, "/v2/anything")
    assert status == 404 and "error" in body


def test_concurrent_requests_are_batched_and_answered_as_if_alone(server):
    # Which rows go back to which request is the batcher's own test (test_batching); here, that
    # merging changes nothing a client sees: the same sentence, alone or in a crowd.
    alone = post(server, NAME, {"instances": SOURCES[:1]})[1]["predictions"][0]
    before = request(server, "/page/stats")[1]
    answers: dict[int, tuple] = {}

    def client(i: int) -> None:
        answers[i] = post(server, NAME, {"instances": SOURCES[:1]})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answers[i][0] for i in range(16)] == [200] * 16
    assert all(answers[i][1]["predictions"][0]["translations"] == alone["translations"] for i in range(16))
    after = request(server, "/page/stats")[1]
    assert after["examples"] - before["examples"] == 16
    assert after["batches"] - before["batches"] < 16  # some of them shared a call


def test_a_clamped_beam_is_searched_at_the_largest_and_the_answer_says_so(server):
    inputs = {"sources": SOURCES[:1], "beam_size": 100_000, "length_penalty": 0.6}
    status, body = post(server, NAME, {"signature_name": "translate", "inputs": inputs})
    assert status == 200 and body["outputs"]["beam_size"] == [MAX_BEAM_SIZE]


def test_the_quick_and_converge_models_of_one_variant_are_served_side_by_side_under_two_names(server):
    models = {m["name"] for m in request(server, "/page/models")[1]["models"]}
    assert {"gru_bahdanau_quick", "gru_bahdanau_converge"} <= models
    for name in ("gru_bahdanau_quick", "gru_bahdanau_converge"):
        assert request(server, f"/v1/models/{name}")[1]["model_version_status"][0]["version"] == "1"
        assert post(server, name, {"instances": SOURCES[:1]})[0] == 200


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value in Prometheus's text format (0 when absent, as a counter not yet touched)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def scrape(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/monitoring/prometheus/metrics")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("content-type").startswith("text/plain")
        return response.read().decode()
    finally:
        connection.close()


def test_the_metrics_endpoint_counts_requests_by_model_signature_and_code(server):
    before = scrape(server)
    ok = {"model": NAME, "signature": "translate", "code": "200"}
    bad = {"model": NAME, "signature": "translate", "code": "400"}
    inputs = {"sources": SOURCES, "beam_size": 2, "length_penalty": 0.6}
    for _ in range(3):
        assert post(server, NAME, {"signature_name": "translate", "inputs": inputs})[0] == 200
    wrong = {**inputs, "length_penalty": -1}
    assert post(server, NAME, {"signature_name": "translate", "inputs": wrong})[0] == 400
    after = scrape(server)
    assert (
        metric(after, "nmt_serving_requests_total", **ok) - metric(before, "nmt_serving_requests_total", **ok)
        == 3
    )
    assert (
        metric(after, "nmt_serving_requests_total", **bad)
        - metric(before, "nmt_serving_requests_total", **bad)
        == 1
    )
    latency = "nmt_serving_request_latency_seconds_count"
    assert (
        metric(after, latency, model=NAME, signature="translate")
        - metric(before, latency, model=NAME, signature="translate")
        == 4
    )
    sentences = metric(after, "nmt_serving_call_sentences_sum") - metric(
        before, "nmt_serving_call_sentences_sum"
    )
    assert sentences == 6  # the three 200s, two sentences each; the 400 never reached a call
    assert metric(after, "nmt_serving_queued_sentences") == 0
    assert metric(after, "nmt_serving_model_version", model="gru_converge") == 1
    assert metric(after, "nmt_serving_model_versions_failed", model=NAME) == 0


def test_a_new_version_is_served_once_it_appears(served, tiny_run):
    server = served.port
    export(tiny_run, served.models / NAME)  # version 2, written aside and renamed into place
    deadline = time.monotonic() + 60
    while request(server, f"/v1/models/{NAME}")[1]["model_version_status"][0]["version"] != "2":
        assert time.monotonic() < deadline, "version 2 was not picked up within 60 s"
        time.sleep(0.5)
    assert post(server, NAME, {"instances": SOURCES[:1]})[0] == 200


def readme_exchange() -> list[tuple[list[str], dict]]:
    """The README's curl commands, each with the response it shows."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- serve-exchange:start -->", 1)[1].split("<!-- serve-exchange:end -->", 1)[0]
    pairs = re.findall(r"```sh\n(curl .*?)\n```\n\n```json\n(.*?)\n```", block, flags=re.S)
    return [(shlex.split(command.replace("\\\n", " ")), json.loads(shown)) for command, shown in pairs]


def shape(value):
    """A JSON value's structure: keys, nesting and types, not the numbers, words or lengths in it."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if not isinstance(value, int | float) or isinstance(value, bool) else "number"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)")
def test_the_readmes_curl_exchange_runs_against_make_serve(server):
    # conftest's server is `make serve`; the README's commands run against it as they are written.
    exchange = readme_exchange()
    assert len(exchange) >= 2 and {c[-1].split("/v1/models/")[1].split(":")[0] for c, _ in exchange} == {
        BEST, f"{BEST}-ids"}  # fmt: skip
    for command, shown in exchange:
        command = [a.replace("localhost:8501", f"localhost:{server}") for a in command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        answer = json.loads(result.stdout)
        assert shape(answer) == shape(shown), (command, answer)
