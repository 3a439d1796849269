import json
from collections import Counter
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline import layout
from pipeline.config import ModelConfig, make_config
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.models import VARIANTS, build_model
from pipeline.models.attention import BahdanauAttention
from pipeline.models.encoder import RecurrentEncoder
from pipeline.models.seq2seq import Seq2Seq
from pipeline.training import checkpoints
from pipeline.training.train import compile_model

RECURRENT = sorted(v for v in VARIANTS if v != "transformer")  # tests/test_transformer.py: the other

VOCAB = 20
# Distinct sizes, so a mixed-up dimension fails loudly instead of broadcasting.
TINY = {"embedding_dim": 6, "units": 4, "attention_units": 5, "dropout": 0.0}

# Two right-padded sentence pairs of different lengths.
SOURCE = np.array([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]], np.int32)
TARGET_IN = np.array([[BOS_ID, 11, 12, 13], [BOS_ID, 14, PAD_ID, PAD_ID]], np.int32)
INPUTS = {"source": SOURCE, "target_in": TARGET_IN}


def tiny_model(variant: str) -> Seq2Seq:
    keras.utils.set_random_seed(0)
    return build_model(ModelConfig(variant=variant, **TINY), VOCAB)


@pytest.mark.parametrize("variant", RECURRENT)
def test_variant_builds_and_outputs_logits_per_target_position(variant):
    model = tiny_model(variant)
    cell, attention = VARIANTS[variant]
    assert (model.cell, model.attention) == (cell, attention)
    assert model.count_params() > 0
    logits = model(INPUTS)
    assert tuple(logits.shape) == (2, TARGET_IN.shape[1], VOCAB)
    assert np.all(np.isfinite(logits))


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        build_model(ModelConfig(variant="lstm_luong", **TINY), VOCAB)


@pytest.mark.parametrize("variant", RECURRENT)
def test_get_config_round_trip(variant):
    model = tiny_model(variant)
    config = model.get_config()
    assert config["cell"] == VARIANTS[variant][0]
    assert Seq2Seq.from_config(config).get_config() == config


@pytest.mark.parametrize("variant", RECURRENT)
def test_saved_model_file_reloads_with_same_outputs(variant, tmp_path):
    model = tiny_model(variant)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, Seq2Seq)
    np.testing.assert_allclose(restored(INPUTS), model(INPUTS), atol=1e-5)


@pytest.mark.parametrize("variant", RECURRENT)
def test_weights_file_reloads_into_fresh_model(variant, tmp_path):
    model = tiny_model(variant)
    path = tmp_path / layout.WEIGHTS
    model.save_weights(path)
    keras.utils.set_random_seed(1)  # different initial weights, so only loading can make them equal
    fresh = build_model(ModelConfig(variant=variant, **TINY), VOCAB)
    assert not np.allclose(fresh(INPUTS), model(INPUTS), atol=1e-5)
    fresh.load_weights(path)
    np.testing.assert_allclose(fresh(INPUTS), model(INPUTS), atol=1e-5)


# Where the code before the Transformer's stacks were renamed kept a tiny model's state (made by that code).
EARLIER_PATHS = json.loads((Path(__file__).parent / "weight_paths.json").read_text())


def stored_groups(path: Path) -> dict[str, int]:
    """The groups of a weights file that hold datasets, and how many each holds."""
    datasets: list[str] = []
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    return dict(Counter(name.rpartition("/")[0] for name in datasets))  # ".../vars/0" -> ".../vars"


@pytest.mark.parametrize("variant", ["transformer", "gru_luong"])
def test_weights_optimizer_and_random_streams_keep_the_paths_of_earlier_runs(variant, tmp_path):
    # A run folder keeps them by path (checkpoints.py): the same paths, so earlier runs load and resume.
    earlier = EARLIER_PATHS[variant]
    cfg = make_config("tiny", variant=variant, overrides=[*earlier["overrides"], "model.dropout=0.1"])
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(cfg.model, 30), cfg)
    model.optimizer.build(model.trainable_variables)
    model.save_weights(tmp_path / layout.WEIGHTS)
    assert stored_groups(tmp_path / layout.WEIGHTS) == earlier["stored"]
    assert [v.path for v in model.weights] == earlier["variables"]  # in order: the optimizer's are by index
    assert sorted(checkpoints.resumable_variables(model)) == earlier["resumable"]
    keras.utils.set_random_seed(1)
    fresh = build_model(cfg.model, 30)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    assert not np.allclose(fresh(inputs), model(inputs), atol=1e-5)
    fresh.load_weights(tmp_path / layout.WEIGHTS)
    np.testing.assert_array_equal(fresh(inputs), model(inputs))


def test_attention_weights_are_a_distribution_over_real_positions():
    keras.utils.set_random_seed(0)
    attention = BahdanauAttention(5)
    attention.build((2, 3), values_shape=(2, 4, 6))  # as RecurrentDecoder.build does
    values = keras.random.normal((2, 4, 6))
    mask = np.array([[True, True, True, True], [True, True, False, False]])
    query = keras.random.normal((2, 3))
    context, weights = attention(query, attention.keys(values), values, mask)
    weights = np.asarray(weights)
    assert context.shape == (2, 6) and weights.shape == (2, 4)
    np.testing.assert_allclose(weights.sum(axis=-1), [1.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(weights[1, 2:], [0.0, 0.0])
    assert np.all(weights[mask] > 0)
    # The context is the weighted mean of the values: nothing leaks in from padding.
    np.testing.assert_allclose(context, np.einsum("bs,bsd->bd", weights, values), atol=1e-5)


def test_attention_docstring_example_runs_unbuilt():
    attention = BahdanauAttention(8)
    values = keras.random.normal((2, 5, 6))
    mask = np.ones((2, 5), bool)
    context, weights = attention(keras.random.normal((2, 4)), attention.keys(values), values, mask)
    assert (tuple(context.shape), tuple(weights.shape)) == ((2, 6), (2, 5))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encoder_ignores_padding(cell):
    keras.utils.set_random_seed(0)
    encoder = RecurrentEncoder(VOCAB, 6, 4, cell=cell)
    sentence = np.array([[5, 6, 7, EOS_ID]], np.int32)
    padded = np.array([[5, 6, 7, EOS_ID, PAD_ID, PAD_ID, PAD_ID]], np.int32)
    memory, mask, states = encoder(sentence)
    padded_memory, padded_mask, padded_states = encoder(padded)
    assert len(states) == (2 if cell == "lstm" else 1)
    np.testing.assert_array_equal(padded_mask, [[True] * 4 + [False] * 3])
    # The backward direction starts at the last real token, so every position must agree.
    np.testing.assert_allclose(padded_memory[:, :4], memory, atol=1e-5)
    for state, padded_state in zip(states, padded_states, strict=True):
        np.testing.assert_allclose(padded_state, state, atol=1e-5)


def step_by_step_logits(model: Seq2Seq, source, target_in) -> np.ndarray:
    """Logits from encode + decode_step, fed the same previous tokens as teacher forcing."""
    encoded, state = model.encode(tf.constant(source))
    logits = []
    for t in range(target_in.shape[1]):
        step_logits, state = model.decoder.decode_step(tf.constant(target_in[:, t]), state, encoded)
        logits.append(step_logits)
    return np.stack(logits, axis=1)  # (batch, tgt_len, vocab)


@pytest.mark.parametrize("variant", ["gru_bahdanau", "lstm"])
def test_teacher_forcing_and_step_by_step_decoding_agree(variant):
    model = tiny_model(variant)
    forced = np.asarray(model(INPUTS))
    stepped = step_by_step_logits(model, SOURCE, TARGET_IN)
    # Only real target positions: after the target's end both compute logits for PAD inputs.
    real = TARGET_IN != PAD_ID
    np.testing.assert_allclose(stepped[real], forced[real], atol=1e-4)


@pytest.mark.parametrize("variant", RECURRENT)
def test_fused_loops_compute_the_plain_keras_loss_and_gradients(variant):
    # The fast path (pipeline.models.recurrence) against Keras' own layers and cells, same weights.
    from pipeline.models.losses import masked_cross_entropy

    fused = tiny_model(variant)
    plain = build_model(ModelConfig(variant=variant, **TINY), VOCAB, fused=False)
    plain.set_weights(fused.get_weights())
    target_out = np.array([[11, 12, 13, EOS_ID], [14, EOS_ID, PAD_ID, PAD_ID]], np.int32)
    results = []
    for model in (fused, plain):
        with tf.GradientTape() as tape:
            loss = masked_cross_entropy(target_out, model(INPUTS, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((float(loss), [np.asarray(tf.convert_to_tensor(g)) for g in grads]))
    (fused_loss, fused_grads), (plain_loss, plain_grads) = results
    assert fused_loss == pytest.approx(plain_loss, rel=1e-6)
    assert len(fused_grads) == len(plain_grads) == len(fused.trainable_variables)
    for a, b, var in zip(fused_grads, plain_grads, fused.trainable_variables, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=var.path)
    assert plain.get_config()["fused"] is False and fused.get_config()["fused"] is True
