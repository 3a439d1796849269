"""The page at / in headless Chromium (Debian's): a typed sentence, its translations side by side,
the attention map of the model that has attention and the note of the one that has none."""

from __future__ import annotations

import shutil
import socket

import keras
import pytest
from page_driver import browsers_installed, translate_on_page

from pipeline.config import make_config, save_config
from pipeline.export import export
from pipeline.models import build_model
from pipeline.serving.load import request, start_server, stop_server
from pipeline.tokenizer import load_tokenizer
from pipeline.train import BEST_WEIGHTS, CONFIG, TOKENIZER

pytestmark = pytest.mark.skipif(
    not browsers_installed(),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
SENTENCE = "Ein Hund läuft über eine Wiese."


@pytest.fixture(scope="module")
def served(tiny_run, spm_model, tmp_path_factory):
    """A server of two tiny models: gru_bahdanau (attention) and gru (a single context vector)."""
    base = tmp_path_factory.mktemp("page")
    export(tiny_run, base / "gru_bahdanau")
    single = tmp_path_factory.mktemp("gru_run")
    cfg = make_config("tiny", variant="gru")
    keras.utils.set_random_seed(0)
    build_model(cfg.model, load_tokenizer(spm_model).vocab_size()).save_weights(single / BEST_WEIGHTS)
    save_config(cfg, single / CONFIG)
    shutil.copyfile(spm_model, single / TOKENIZER)
    export(single, base / "gru")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server(base, port)
    yield port
    stop_server(server)


def test_the_page_translates_a_typed_sentence_and_draws_the_attention(served, tmp_path):
    screenshot = tmp_path / "page.png"
    shown = translate_on_page(served, SENTENCE, ["gru", "gru_bahdanau"], screenshot)
    assert set(shown) == {"gru", "gru_bahdanau"}  # side by side; the -ids servables have no align
    for model in ("gru", "gru_bahdanau"):
        inputs = {"sources": [SENTENCE], "beam_size": 5, "length_penalty": 0.6}
        answer = request(
            served, f"/v1/models/{model}:predict", {"signature_name": "align", "inputs": inputs}
        )[1]
        assert shown[model]["translation"] == answer["outputs"]["translations"][0].strip()
    attention = shown["gru_bahdanau"]
    assert attention["map"] and attention["source"][-1] == "</s>"
    assert attention["source"] == [p for p in answer_pieces(served, "gru_bahdanau") if p]
    assert attention["cells"] == len(attention["source"]) * len(attention["output"]) > 0
    assert not shown["gru"]["map"] and "single context vector" in shown["gru"]["note"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def answer_pieces(port: int, model: str) -> list[str]:
    inputs = {"sources": [SENTENCE], "beam_size": 5, "length_penalty": 0.6}
    return request(port, f"/v1/models/{model}:predict", {"signature_name": "align", "inputs": inputs})[1][
        "outputs"
    ]["source_pieces"][0]
