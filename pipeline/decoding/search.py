"""Decoding in TensorFlow ops, shared by evaluate and export."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.models import Model
from pipeline.models.lengths import max_output_lengths

NEVER = (PAD_ID, BOS_ID)  # ids the decoder must never emit


class Hypotheses(NamedTuple):
    """The best translation of each sentence.

    ids: (batch, out_len) int32 without EOS, PAD after the end.
    lengths: (batch,) int32, tokens before EOS.
    scores: (batch,) float32, log-probability (EOS included) over ``length_penalty``.
    alignments: (batch, out_len, src_len) float32 attention weights that produced each
        output, the EOS included (row ``length``) and zero after; ``src_len`` is 0 for a
        model without attention. None unless asked for.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    alignments: tf.Tensor | None = None


def length_penalty(lengths, alpha):
    """GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016); 1 when alpha is 0."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def greedy_search(model: Model, source, max_length=None, return_alignments: bool = False) -> Hypotheses:
    """The most likely token at each step until EOS: beam search with one beam, alpha 0."""
    return beam_search(model, source, 1, 0.0, max_length, return_alignments)


class Beams(NamedTuple):
    """Each sentence's ``k`` hypotheses when beam search ends, side by side, before a length
    penalty picks one: the search itself never looks at the penalty (every hypothesis it
    compares has the same length), so one search serves every penalty.

    ids: (batch * k, out_len) int32 without EOS, PAD after the end.
    lengths: (batch * k,) int32, tokens before EOS.
    scores: (batch * k,) float32, summed log-probability, EOS included.
    ended: (batch * k,) bool, EOS emitted (not stopped by the length cap).
    alignments: (batch * k, out_len, src_len) float32, empty unless asked for.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    ended: tf.Tensor
    alignments: tf.Tensor


def beam_search(
    model: Model, source, beam_size=5, alpha=0.6, max_length=None, return_alignments: bool = False
) -> Hypotheses:
    """The ``beam_size`` best partial translations kept at every step, the best one returned.

    Hypotheses that end (EOS, or their length cap) stay in the beam with their score
    frozen; the search stops when every beam of every sentence has ended. The winner is
    the hypothesis with the best log-probability divided by ``length_penalty``. With
    ``beam_size=1`` this is greedy search. ``beam_size`` and ``alpha`` may be Python
    numbers or scalar tensors, so one traced graph serves every beam size.

    Args:
        source: (batch, src_len) int32 ids ending with EOS, right-padded.
        beam_size: hypotheses kept per sentence, at least 1.
        alpha: length penalty exponent; 0 ranks by log-probability alone.
        max_length: optional scalar int, a cap on top of ``max_output_lengths(source)``.
        return_alignments: also return the attention weights of the winners.
    """
    found = search_beams(model, source, beam_size, max_length, return_alignments)
    return best_hypotheses(found, beam_size, alpha, return_alignments)


def best_hypotheses(found: Beams, beam_size, alpha, return_alignments: bool = False) -> Hypotheses:
    """Each sentence's hypothesis with the best log-probability over ``length_penalty(alpha)``."""
    lengths = found.lengths + tf.cast(found.ended, tf.int32)  # (batch * k,) EOS counts
    normalized = found.scores / length_penalty(lengths, alpha)
    offsets = tf.range(tf.shape(normalized)[0] // beam_size) * beam_size  # (batch,) each sentence's first row
    winner = tf.argmax(tf.reshape(normalized, [-1, beam_size]), axis=1, output_type=tf.int32) + offsets
    alignments = tf.gather(found.alignments, winner) if return_alignments else None
    ids, lengths, scores = (tf.gather(t, winner) for t in (found.ids, found.lengths, normalized))
    return Hypotheses(ids, lengths, scores, alignments)


def search_beams(
    model: Model, source, beam_size=5, max_length=None, return_alignments: bool = False
) -> Beams:
    """Beam search up to the choice of a winner: ``beam_search``'s arguments, without ``alpha``."""
    batch, k = tf.shape(source)[0], beam_size
    max_lengths = max_output_lengths(source)  # (batch,)
    if max_length is not None:
        max_lengths = tf.minimum(max_lengths, max_length)
    encoded, state = model.encode(source)

    def tile(t):  # (batch, ...) -> (batch * k, ...), each sentence's rows side by side
        return tf.repeat(t, k, axis=0)

    encoded, state = tf.nest.map_structure(tile, encoded), tf.nest.map_structure(tile, state)
    caps = tile(max_lengths)  # (batch * k,)
    vocab = model.vocab_size
    never = tf.scatter_nd([[i] for i in NEVER], [-1e9] * len(NEVER), [vocab])
    # Only the first beam of each sentence is alive at the start, so step one expands it alone.
    first = tf.concat([[0.0], tf.fill([k - 1], -1e9)], axis=0)
    scores = tf.tile(first, [batch])  # (batch * k,) summed log-probabilities
    finished = tile(max_lengths <= 0)
    sequences = tf.zeros([batch * k, 0], tf.int32)
    src_len = tf.shape(state["alignment"])[1]  # 0 without attention
    history = tf.zeros([batch * k, 0, src_len])  # (batch * k, steps, src_len) if return_alignments
    offsets = tf.range(batch)[:, None] * k  # (batch, 1): the first row of each sentence
    ended_row = tf.one_hot(PAD_ID, vocab, on_value=0.0, off_value=-1e9)  # ended: PAD, free

    def body(step, tokens, state, scores, finished, sequences, history):
        logits, state = model.decode_step(tokens, state, encoded)  # (batch * k, vocab)
        log_probs = tf.nn.log_softmax(logits + never)
        log_probs = tf.where(finished[:, None], ended_row[None, :], log_probs)
        total = tf.reshape(scores[:, None] + log_probs, [batch, -1])  # (batch, k * vocab)
        best, index = tf.math.top_k(total, k)  # (batch, k)
        parents = tf.reshape(index // vocab + offsets, [-1])  # (batch * k,) rows to follow
        tokens = tf.reshape(index % vocab, [-1])
        state = tf.nest.map_structure(lambda t: tf.gather(t, parents), state)
        sequences = tf.concat([tf.gather(sequences, parents), tokens[:, None]], axis=1)
        if return_alignments:
            alignment = tf.where(tf.equal(tokens, PAD_ID)[:, None], 0.0, state["alignment"])
            history = tf.concat([tf.gather(history, parents), alignment[:, None, :]], axis=1)
        finished = tf.gather(finished, parents) | tf.equal(tokens, EOS_ID) | (step + 1 >= caps)
        return step + 1, tokens, state, tf.reshape(best, [-1]), finished, sequences, history

    def growing(t):  # a state's dimension empty at the start grows with the steps (the Transformer's cache)
        return tf.TensorShape([None if d == 0 else d for d in t.shape])

    def cond(step, tokens, state, scores, finished, sequences, history):
        return tf.logical_not(tf.reduce_all(finished))

    *_, scores, _, sequences, history = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tf.fill([batch * k], BOS_ID), state, scores, finished, sequences, history),
        shape_invariants=(
            tf.TensorShape([]), tf.TensorShape([None]), tf.nest.map_structure(growing, state),
            tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([None, None]),
            tf.TensorShape([None, None, None]),
        ),
    )  # fmt: skip
    is_token = tf.logical_and(tf.not_equal(sequences, EOS_ID), tf.not_equal(sequences, PAD_ID))
    lengths = tf.reduce_sum(tf.cast(is_token, tf.int32), axis=1)  # (batch * k,)
    ended = tf.reduce_any(tf.equal(sequences, EOS_ID), axis=1)
    return Beams(tf.where(is_token, sequences, PAD_ID), lengths, scores, ended, history)


def compile_search(model: Model) -> Callable:
    """Beam search traced once for any batch, beam size and set of length penalties, one search
    for all of them: ``search(source (batch, src_len) int32, beam_size, alphas (n,) float32) ->
    (ids (n, batch, out_len), lengths (n, batch))``, the winners under each penalty."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([None], tf.float32),
        ]
    )
    def search(source, beam_size, alphas):
        found = search_beams(model, source, beam_size)
        return tf.map_fn(
            lambda alpha: best_hypotheses(found, beam_size, alpha)[:2],  # (ids, lengths)
            alphas,
            fn_output_signature=(tf.int32, tf.int32),
        )

    return search


def translate_rows(
    search: Callable,
    rows: list[list[int]],
    beam_size: int = 1,
    alphas: Sequence[float] = (0.0,),
    batch_size: int = 128,
    on_batch: Callable[[int], object] | None = None,
) -> list[list[list[int]]]:
    """Output ids of each source row (ids ending with EOS), in order, under each of ``alphas``,
    through ``compile_search``'s function: ``outputs[a][i]``, the ``i``-th row's translation
    under ``alphas[a]``. Batched by length, so little of the work is padding; ``on_batch`` is
    called with each batch's size (a progress bar's ``add``)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    outputs: list[list[list[int]]] = [[[] for _ in rows] for _ in alphas]
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        source = np.full((len(chosen), max(len(rows[i]) for i in chosen)), PAD_ID, np.int32)
        for j, i in enumerate(chosen):
            source[j, : len(rows[i])] = rows[i]
        ids, lengths = search(tf.constant(source), tf.constant(beam_size), tf.constant(alphas, tf.float32))
        ids, lengths = ids.numpy(), lengths.numpy()  # (n, batch, out_len), (n, batch)
        for a in range(len(alphas)):
            for j, i in enumerate(chosen):
                outputs[a][i] = ids[a, j, : lengths[a, j]].tolist()
        if on_batch:
            on_batch(len(chosen))
    return outputs
