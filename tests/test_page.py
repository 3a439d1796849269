"""The page at / in headless Chromium (Debian's): a typed sentence, its translations side by side,
the attention map of the model that has attention and the note of the one that has none."""

from __future__ import annotations

import pytest
from page_driver import browsers_installed, translate_on_page

from pipeline.serving.load import request

pytestmark = pytest.mark.skipif(
    not browsers_installed(),
    reason="no Chromium: apt-get install chromium chromium-driver (Debian; .ci/run does)",
)
SENTENCE = "Ein Hund läuft über eine Wiese."


def test_the_page_translates_a_typed_sentence_and_draws_the_attention(served, tmp_path):
    # conftest: make serve over gru_bahdanau_converge (attention), gru_converge (none) and best, their
    # ensemble, whose map is the mean of its attending members' (here gru_bahdanau's alone).
    port = served.port
    models = ["gru_converge", "gru_bahdanau_converge", "best"]
    screenshot = tmp_path / "page.png"
    shown = translate_on_page(port, SENTENCE, models, screenshot)
    assert set(shown) == set(models)  # side by side; the -ids servables have no align
    for model in models:
        inputs = {"sources": [SENTENCE], "beam_size": 5, "length_penalty": 0.6}
        answer = request(port, f"/v1/models/{model}:predict", {"signature_name": "align", "inputs": inputs})
        assert shown[model]["translation"] == answer[1]["outputs"]["translations"][0].strip()
    for model in ("gru_bahdanau_converge", "best"):
        attention = shown[model]
        assert attention["map"] and attention["source"][-1] == "</s>"
        assert attention["source"] == [p for p in answer_pieces(port, model) if p]
        assert attention["cells"] == len(attention["source"]) * len(attention["output"]) > 0
    assert not shown["gru_converge"]["map"] and "single context vector" in shown["gru_converge"]["note"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def answer_pieces(port: int, model: str) -> list[str]:
    inputs = {"sources": [SENTENCE], "beam_size": 5, "length_penalty": 0.6}
    return request(port, f"/v1/models/{model}:predict", {"signature_name": "align", "inputs": inputs})[1][
        "outputs"
    ]["source_pieces"][0]
