"""Ensembles: several models of one vocabulary searched and exported as one."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_export import signature_op_types

from pipeline.config import make_config, save_config
from pipeline.constants import EOS_ID, PAD_ID
from pipeline.decoding.export import (
    MAX_SOURCE_PIECES,
    MAX_WORK,
    export,
    ids_base,
    load_run_model,
    memory_bound,
)
from pipeline.decoding.search import beam_search, compile_search
from pipeline.errors import UserError
from pipeline.models import Ensemble, build_model
from pipeline.tokenizer import load_tokenizer
from pipeline.training.train import BEST_WEIGHTS, CONFIG, TOKENIZER

VOCAB = 20
SMALL = {"transformer": ["model.embedding_dim=8", "model.layers=1", "model.decoder_layers=1", "model.heads=2",
                         "model.ff_dim=16"]}  # fmt: skip
SOURCE = tf.constant(
    [[5, 9, 7, 12, EOS_ID, PAD_ID], [4, 18, 6, 6, 11, EOS_ID], [13, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]]
)


def tiny(variant: str, seed: int, vocab: int = VOCAB):
    """An untrained model of 8 units, its weights drawn from ``seed``: it still writes something."""
    keras.utils.set_random_seed(seed)
    overrides = SMALL.get(variant, ["model.units=8", "model.embedding_dim=8", "model.attention_units=8"])
    return build_model(make_config("tiny", variant=variant, overrides=overrides).model, vocab)


def searched(model, beam_size=3, alpha=0.6, alignments=False):
    return beam_search(model, SOURCE, beam_size, alpha, return_alignments=alignments)


@pytest.mark.parametrize("variant", ["gru_bahdanau", "transformer"])
def test_an_ensemble_of_one_is_that_model(variant):
    model = tiny(variant, 0)
    for beam_size in (1, 3):
        alone, ensemble = (
            searched(model, beam_size, alignments=True),
            searched(Ensemble([model]), beam_size, alignments=True),
        )
        assert len({tuple(row) for row in alone.ids.numpy().tolist()}) > 1
        for got, expected in zip(ensemble, alone, strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("variant", ["gru_luong", "transformer"])
def test_an_ensemble_of_two_copies_is_that_model_to_float_tolerance(variant):
    model, copy = tiny(variant, 0), tiny(variant, 1)
    copy.set_weights(model.get_weights())
    alone, ensemble = searched(model, alignments=True), searched(Ensemble([model, copy]), alignments=True)
    np.testing.assert_array_equal(ensemble.ids, alone.ids)
    np.testing.assert_array_equal(ensemble.lengths, alone.lengths)
    np.testing.assert_allclose(ensemble.scores, alone.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ensemble.alignments, alone.alignments, atol=1e-6)


def test_a_step_averages_the_members_log_probabilities_and_their_attention():
    members = [tiny("gru_bahdanau", 0), tiny("gru", 1), tiny("transformer", 2)]
    ensemble = Ensemble(members)
    tokens = tf.constant([2, 2, 2])
    logits, state = ensemble.decode_step(tokens, *reversed(ensemble.encode(SOURCE)))
    steps = [m.decode_step(tokens, *reversed(m.encode(SOURCE))) for m in members]
    mean = sum(tf.nn.log_softmax(out) for out, _ in steps) / 3
    np.testing.assert_allclose(logits, mean, atol=1e-6)
    attended = (steps[0][1]["alignment"] + steps[2][1]["alignment"]) / 2  # gru has no attention
    np.testing.assert_allclose(state["alignment"], attended, atol=1e-6)
    assert state["alignment"].shape == SOURCE.shape
    without = Ensemble([tiny("gru", 1), tiny("rnn", 3)]).encode(SOURCE)[1]["alignment"]
    assert without.shape == (3, 0)


def test_a_traced_search_of_members_with_and_without_attention_is_the_eager_one():
    ensemble = Ensemble([tiny("gru_bahdanau", 0), tiny("gru", 1), tiny("transformer", 2)])
    eager = searched(ensemble, beam_size=3, alpha=0.0)
    traced = compile_search(ensemble)(
        SOURCE, tf.constant(3), tf.constant([0.0])
    )  # src_len unknown in the loop
    np.testing.assert_array_equal(traced[0][0], eager.ids)


def test_the_memory_bound_counts_every_member():
    members = [tiny("gru_luong", 0), tiny("transformer", 1)]
    ensemble = Ensemble(members)
    assert ensemble.search_width() == members[0].search_width() + members[1].search_width() + 1
    assert memory_bound(ensemble) > max(memory_bound(m) for m in members)
    assert memory_bound(ensemble) == memory_bound(members[0]) + MAX_WORK * 4 * 3 * (
        members[1].search_width() + 1
    )


def test_a_config_round_trip_keeps_every_member():
    ensemble = Ensemble([tiny("gru_luong", 0), tiny("transformer", 1)])
    again = Ensemble.from_config(ensemble.get_config())
    assert [type(m).__name__ for m in again.members] == ["Seq2Seq", "Transformer"]
    assert [m.get_config() for m in again.members] == [m.get_config() for m in ensemble.members]


def test_members_of_other_vocabularies_are_refused():
    with pytest.raises(ValueError, match="vocabularies differ"):
        Ensemble([tiny("gru", 0), tiny("gru", 0, vocab=VOCAB + 1)])


# Exported: run folders as train leaves them, with the shared tiny tokenizer (conftest's spm_model).


def write_run(folder, variant: str, seed: int, spm_model, overrides: tuple[str, ...] = ()):
    folder.mkdir(parents=True)
    keras.utils.set_random_seed(seed)
    small = SMALL.get(variant, ["model.units=8", "model.embedding_dim=8", "model.attention_units=8"])
    cfg = make_config("tiny", variant=variant, overrides=[*small, *overrides])
    build_model(cfg.model, load_tokenizer(spm_model).vocab_size()).save_weights(folder / BEST_WEIGHTS)
    save_config(cfg, folder / CONFIG)
    shutil.copyfile(spm_model, folder / TOKENIZER)
    return folder


@pytest.fixture(scope="module")
def mixed_runs(spm_model, tmp_path_factory):
    """A recurrent run and a Transformer run of one tokenizer."""
    root = tmp_path_factory.mktemp("runs")
    return [write_run(root / "gru_luong", "gru_luong", 0, spm_model),
            write_run(root / "transformer", "transformer", 1, spm_model)]  # fmt: skip


@pytest.fixture(scope="module")
def exported_mixed(mixed_runs, tmp_path_factory):
    return export(mixed_runs, tmp_path_factory.mktemp("exported") / "best", length_penalty=0.8)


def test_a_reloaded_mixed_ensemble_translates_as_in_process(mixed_runs, exported_mixed, spm_model):
    sp = load_tokenizer(spm_model)
    sentences = ["Ein Hund läuft über eine Wiese.", "Zwei Männer spielen.", ""]
    rows = [sp.encode(s)[: MAX_SOURCE_PIECES - 1] + [EOS_ID] for s in sentences]
    source = np.full((len(rows), max(map(len, rows))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        source[i, : len(row)] = row
    members = [load_run_model(run) for run in mixed_runs]
    expected = beam_search(Ensemble(members), tf.constant(source), 5, 0.8)
    loaded = tf.saved_model.load(str(exported_mixed))
    assert float(loaded.default_length_penalty.numpy()) == pytest.approx(0.8)
    out = loaded.serve(tf.constant(sentences))  # beam 5 and the default penalty
    texts = [t.decode() for t in out["translations"].numpy()]
    assert texts == [
        sp.decode(row[:n].tolist())
        for row, n in zip(expected.ids.numpy(), expected.lengths.numpy(), strict=True)
    ]
    np.testing.assert_allclose(out["scores"], expected.scores, rtol=1e-4, atol=1e-4)
    aligned = loaded.align(tf.constant(sentences[:1]), tf.constant(5), tf.constant(0.8))
    assert aligned["alignments"].shape[2] == len(rows[0])  # both members attend: their mean, over the source


def test_a_mixed_ensembles_ids_servable_runs_only_core_ops(exported_mixed):
    import json
    import os
    import subprocess
    import sys

    ids_only = ids_base(exported_mixed.parent) / exported_mixed.name
    graphs = {
        s: sorted(signature_op_types(ids_only, s)) for s in ("translate_ids", "align_ids", "serving_default")
    }
    assert {"TopKV2", "While"} <= set(graphs["translate_ids"])
    check = "import json, sys\nfrom tensorflow.python.framework import op_def_registry\n" \
            "print(json.dumps({k: sorted(t for t in v if op_def_registry.get(t) is None) " \
            "for k, v in json.loads(sys.argv[1]).items()}))"  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", check, json.dumps(graphs)],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {s: [] for s in graphs}


def test_runs_of_other_tokenizers_are_refused(mixed_runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(mixed_runs[0], other)
    (other / TOKENIZER).write_bytes(b"another tokenizer")
    with pytest.raises(UserError, match="different tokenizers"):
        export([mixed_runs[0], other], tmp_path / "best", length_penalty=0.6)


def test_an_ensembles_default_penalty_must_be_given(mixed_runs, tmp_path):
    with pytest.raises(UserError, match="--length-penalty"):
        export(mixed_runs, tmp_path / "best")
