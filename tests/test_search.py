import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import ModelConfig, make_config
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.decoding.search import (
    beam_search,
    compile_search,
    greedy_search,
    max_output_lengths,
    translate_rows,
)
from pipeline.metrics import score
from pipeline.models import build_model
from pipeline.training.train import compile_model

VOCAB = 20  # conftest.SYNTHETIC_VOCAB


def train_on_synthetic(variant: str, synthetic, epochs: int = 10):
    """A 32-unit model fitted to 2000 synthetic pairs (about 10 s on 2 cores)."""
    keras.utils.set_random_seed(0)
    cfg = make_config("tiny", variant=variant, overrides=[
        "model.units=32", "model.embedding_dim=32", "model.attention_units=32", "train.learning_rate=0.01",
    ])  # fmt: skip
    model = compile_model(build_model(cfg.model, VOCAB), cfg)
    data = synthetic(2000, seed=0).batches(64, shuffle_seed=0)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0)  # shuffled by tf.data
    return model


@pytest.fixture(scope="module")
def held_out(synthetic):
    return synthetic(200, seed=1)  # another seed: mostly sentences the model never saw


@pytest.fixture(scope="module")
def attention_model(synthetic):
    return train_on_synthetic("gru_bahdanau", synthetic)


def greedy_lists(model, source, max_length=None) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    found = greedy_search(model, tf.constant(source), max_length)
    ids, lengths = found.ids.numpy(), found.lengths.numpy()
    return ids, lengths, [[int(t) for t in row[:n]] for row, n in zip(ids, lengths, strict=True)]


def exact_match(model, pairs) -> float:
    _, _, hypotheses = greedy_lists(model, pairs.source)
    return float(np.mean([h == r for h, r in zip(hypotheses, pairs.targets(), strict=True)]))


def test_attention_model_translates_synthetic_pair(attention_model, held_out):
    _, _, hypotheses = greedy_lists(attention_model, held_out.source)
    references = held_out.targets()
    assert np.mean([h == r for h, r in zip(hypotheses, references, strict=True)]) >= 0.95
    joined = [" ".join(map(str, ids)) for ids in hypotheses]
    assert score(joined, [" ".join(map(str, ids)) for ids in references])["bleu"] >= 90


def test_attention_beats_a_single_context_vector(attention_model, held_out, synthetic):
    # The reversal puts the last source word first: a fixed-size summary loses the details.
    plain = train_on_synthetic("gru", synthetic)
    assert exact_match(attention_model, held_out) > exact_match(plain, held_out)


def test_ids_lengths_and_padding(attention_model, held_out):
    # What the search guarantees, whatever the CPU rounded during training: each length is where
    # the model itself put EOS, the output is padded after it, and the loop stops at the longest.
    source = held_out.source[:20]
    ids, lengths, _ = greedy_lists(attention_model, source)
    caps = max_output_lengths(tf.constant(source)).numpy()
    assert ids.dtype == np.int32 and ids.shape[0] == 20
    assert np.all(lengths < caps)  # every row ended with EOS (the trained model stops)
    assert ids.shape[1] == lengths.max() + 1  # the loop stops once all have emitted EOS
    for row, n in zip(ids, lengths, strict=True):
        assert PAD_ID not in row[:n] and EOS_ID not in row[:n]
        assert np.all(row[n:] == PAD_ID)  # EOS is replaced by PAD too
    # Teacher-forced on its own output, the model's best next token after each row is EOS
    # (up to a float tie that another CPU could break the other way).
    target_in = np.full((20, ids.shape[1]), PAD_ID, np.int32)
    target_in[:, 0] = BOS_ID
    target_in[:, 1:] = ids[:, :-1]
    logits = attention_model({"source": source, "target_in": target_in}, training=False).numpy()
    for step_logits, n in zip(logits, lengths, strict=True):
        assert step_logits[n, EOS_ID] >= np.delete(step_logits[n], [PAD_ID, BOS_ID]).max() - 1e-4
    # Statistical, with a margin: the lengths are those of the references for nearly every row.
    expected_lengths = np.array([len(t) for t in held_out.targets()[:20]])
    assert np.mean(lengths == expected_lengths) >= 0.8


def untrained_model():
    keras.utils.set_random_seed(0)
    return build_model(
        ModelConfig(variant="gru_bahdanau", embedding_dim=6, units=4, attention_units=4, dropout=0.0), VOCAB
    )


def test_max_length_is_respected_and_pad_bos_never_emitted():
    model = untrained_model()
    source = np.array([[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]], np.int32)
    ids, lengths, _ = greedy_lists(model, source, max_length=3)
    assert ids.shape == (2, lengths.max()) and ids.shape[1] <= 3
    assert np.all(lengths <= 3)
    for row, n in zip(ids, lengths, strict=True):
        assert BOS_ID not in row
        assert np.all(row[:n] != PAD_ID) and np.all(row[n:] == PAD_ID)


def test_zero_max_length_gives_empty_output():
    ids, lengths, _ = greedy_lists(untrained_model(), np.array([[5, EOS_ID]], np.int32), max_length=0)
    assert ids.shape == (1, 0)
    np.testing.assert_array_equal(lengths, [0])


def test_default_max_length_grows_with_each_source_and_is_capped():
    source = np.zeros((3, 1000), np.int32)
    source[0, :4] = 5  # 4 real tokens, the rest padding
    source[1, :] = 5
    np.testing.assert_array_equal(max_output_lengths(tf.constant(source)), [2 * 4 + 10, 256, 10])


def test_a_translation_does_not_depend_on_its_batch():
    model = untrained_model()  # runs to the length cap: the cap must come from its own source
    short = np.array([[5, 6, EOS_ID]], np.int32)
    padded = np.zeros((2, 12), np.int32)
    padded[0, :3] = short[0]
    padded[1, :] = 7
    _, _, alone = greedy_lists(model, short)
    _, _, together = greedy_lists(model, padded)
    assert alone[0] == together[0]


def test_alignments_follow_the_synthetic_reordering(attention_model, held_out):
    # The synthetic target reverses the source, so output word i attends to source word n-1-i.
    source = held_out.source[:16]
    ids, lengths, _, alignments = greedy_search(attention_model, tf.constant(source), return_alignments=True)
    alignments = alignments.numpy()  # (batch, steps, src_len)
    assert alignments.shape[:2] == ids.shape and alignments.shape[2] == source.shape[1]
    real = source != PAD_ID
    hits = steps = rightwards = 0
    for row, n, weights in zip(real, lengths.numpy(), alignments, strict=True):
        np.testing.assert_allclose(weights[:n].sum(axis=1), 1.0, atol=1e-5)  # a distribution per step
        assert np.all(weights[:n, ~row] < 1e-6)  # nothing on padding
        words = int(row.sum()) - 1  # without EOS
        focus = weights[:n].argmax(axis=1)
        rightwards += int(focus[0] > focus[-1])  # the first output word looks further right than the last
        hits += int(np.sum(focus == [words - 1 - i for i in range(n)]))
        steps += n
    # What training learned, with a margin another CPU's rounding cannot cross: Bahdanau attends
    # from the state *before* a step, and the encoder states mix neighbours, so not every step
    # points exactly at its word; most do.
    assert rightwards >= 0.8 * len(source)
    assert hits / steps > 0.6


def test_a_model_without_attention_has_empty_alignments():
    model = build_model(ModelConfig(variant="gru", embedding_dim=6, units=4, dropout=0.0), VOCAB)
    source = tf.constant([[5, 6, EOS_ID]])
    alignments = greedy_search(model, source, max_length=3, return_alignments=True).alignments
    assert alignments.shape == (1, 3, 0)


def test_greedy_picks_the_models_most_likely_token_at_every_step(attention_model, held_out):
    # Teacher-force the model on its own greedy output: each token must be the argmax there.
    for model in (attention_model, untrained_model()):
        source = held_out.source[:32]
        ids, lengths, _, _ = greedy_search(model, tf.constant(source))
        ids, lengths = ids.numpy(), lengths.numpy()
        caps = max_output_lengths(tf.constant(source)).numpy()
        ended = [
            row[:n].tolist() + [EOS_ID] * int(n < cap) for row, n, cap in zip(ids, lengths, caps, strict=True)
        ]
        target_in = np.full((len(ended), max(map(len, ended))), PAD_ID, np.int32)
        for i, row in enumerate(ended):
            target_in[i, : len(row)] = [BOS_ID] + row[:-1]
        logits = model({"source": source, "target_in": target_in}, training=False).numpy()
        logits[..., [PAD_ID, BOS_ID]] = -np.inf  # search never emits these
        for row, expected in zip(logits, ended, strict=True):
            chosen = row[np.arange(len(expected)), expected]  # (steps,) the logits of what search chose
            # The best at every step, up to a float tie that the loop and the scan could break apart.
            assert np.all(chosen >= row[: len(expected)].max(axis=-1) - 1e-4)


def test_beam_search_translates_synthetic_pair(attention_model, held_out):
    ids, lengths, _, _ = beam_search(attention_model, tf.constant(held_out.source), beam_size=5)
    hypotheses = [[int(t) for t in row[:n]] for row, n in zip(ids.numpy(), lengths.numpy(), strict=True)]
    assert np.mean([h == r for h, r in zip(hypotheses, held_out.targets(), strict=True)]) >= 0.95


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_score_is_the_models_log_probability_over_the_length_penalty(attention_model, held_out, alpha):
    source = held_out.source[:8]
    ids, lengths, scores, _ = beam_search(attention_model, tf.constant(source), beam_size=4, alpha=alpha)
    never = np.zeros(VOCAB, np.float32)
    never[[PAD_ID, BOS_ID]] = -1e9  # the search never emits these, so neither does its score
    for row, ids_row, n, beam_score in zip(source, ids.numpy(), lengths.numpy(), scores.numpy(), strict=True):
        output = [int(t) for t in ids_row[:n]] + [EOS_ID]
        inputs = {"source": row[None], "target_in": np.array([[BOS_ID] + output[:-1]], np.int32)}
        log_probs = tf.nn.log_softmax(attention_model(inputs)[0] + never).numpy()  # (len, vocab)
        expected = sum(log_probs[i, t] for i, t in enumerate(output))
        assert beam_score == pytest.approx(expected / ((5 + len(output)) / 6) ** alpha, abs=1e-4)


def test_beam_search_respects_max_length():
    ids, lengths, _, _ = beam_search(
        untrained_model(), tf.constant([[5, 6, EOS_ID]]), beam_size=3, max_length=4
    )
    assert ids.shape[1] <= 4 and int(lengths[0]) <= 4


def test_one_traced_graph_serves_every_beam_size(attention_model, held_out):
    # As in the SavedModel: beam size and alpha are tensors, so one graph runs them all.
    search = tf.function(lambda source, k, alpha: beam_search(attention_model, source, k, alpha, None, True))
    source = tf.constant(held_out.source[:16])
    for k, alpha in ((1, 0.0), (5, 0.6)):
        traced = search(source, tf.constant(k), tf.constant(alpha))
        eager = beam_search(attention_model, source, k, alpha, return_alignments=True)
        np.testing.assert_array_equal(traced.ids, eager.ids)
        np.testing.assert_allclose(traced.scores, eager.scores, atol=1e-5)
        np.testing.assert_allclose(traced.alignments, eager.alignments, atol=1e-5)
    assert len(search._list_all_concrete_functions()) == 1


def test_one_search_gives_each_length_penalty_the_winners_of_its_own_search():
    # An untrained model ends its beams at scattered lengths, so the penalty changes winners.
    model, alphas = untrained_model(), (0.0, 0.6, 2.0)
    rng = np.random.default_rng(0)
    rows = [[*rng.integers(4, VOCAB, size=n).tolist(), EOS_ID] for n in rng.integers(2, 9, size=24)]
    together = translate_rows(compile_search(model), rows, beam_size=4, alphas=alphas, batch_size=10)
    # Each sentence alone, one search per penalty; traced once (eagerly, 72 searches take most of a minute).
    signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.float32)]

    @tf.function(input_signature=signature)
    def search_one(source, alpha):
        return beam_search(model, source, 4, alpha)

    for alpha, outputs in zip(alphas, together, strict=True):
        alone = [search_one(tf.constant([row]), tf.constant(alpha)) for row in rows]
        assert outputs == [h.ids[0, : h.lengths[0]].numpy().tolist() for h in alone]
    assert together[0] != together[2]  # the penalties did pick different winners


def test_beam_alignments_belong_to_the_winning_hypothesis(attention_model, held_out):
    source = held_out.source[:16]
    ids, lengths, _, alignments = beam_search(attention_model, tf.constant(source), 5, return_alignments=True)
    ids, lengths, alignments = ids.numpy(), lengths.numpy(), alignments.numpy()
    first_on_last = 0
    for row, n, weights, src in zip(ids, lengths, alignments, source, strict=True):
        np.testing.assert_allclose(weights[: n + 1].sum(axis=1), 1.0, atol=1e-5)  # tokens and EOS
        assert not weights[n + 1 :].any() and not row[n:].any()  # nothing after the end
        words = int(np.sum(src != PAD_ID)) - 1
        first_on_last += int(weights[0].argmax() == words - 1)
    # The reversal: the winner's first word looks at the last source word (learned: a margin).
    assert first_on_last >= 0.8 * len(source)
