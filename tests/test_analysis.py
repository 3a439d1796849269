"""The analysis stage keeps, beside a variant's reports, what its row and figures need from its weights."""

from __future__ import annotations

import json

import numpy as np

from pipeline import corpus
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.decoding.analysis import analyse, load_trained, probe_batch


def test_analysis_holds_the_probe_profile_and_attention_maps_that_sum_to_one(
    tiny_run, prepared_data, tmp_path
):
    result = json.loads(analyse(tiny_run, prepared_data, tmp_path).read_text())
    assert result["variant"] == "gru_bahdanau"
    sources, references = corpus.read_split("de-en", "test", prepared_data, 64)
    _, sp = load_trained(tiny_run)
    source, _, _ = probe_batch(sp, sources, references)
    assert len(result["gradient_flow"]) == source.shape[1]  # one value per source position
    assert all(g > 0 for g in result["gradient_flow"])
    assert len(result["attention"]) == 3
    for example in result["attention"]:
        weights = np.array(example["weights"])  # (out_len, src_len): one row per output piece
        assert weights.shape == (len(example["output"]), len(example["source"]))
        assert example["source"][-1] == "</s>"
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-3)  # a distribution over the source


def test_the_probe_takes_sources_of_one_length_and_pads_none(tiny_run, prepared_data):
    # A padded source would send gradient to positions that are not words (the probe refuses it).
    sources, references = corpus.read_split("de-en", "test", prepared_data, None)
    _, sp = load_trained(tiny_run)
    source, target_in, target_out = probe_batch(sp, sources, references)
    assert len(source) > 1 and (source != PAD_ID).all() and (source[:, -1] == EOS_ID).all()
    assert target_in.shape == target_out.shape and (target_in[:, 0] == BOS_ID).all()
