"""Decoding in TensorFlow ops, shared by evaluate and export."""

from __future__ import annotations

import tensorflow as tf

from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.models.seq2seq import Seq2Seq

NEVER = (PAD_ID, BOS_ID)  # ids the decoder must never emit


def max_output_lengths(source, ratio: float = 2.0, extra: int = 10, cap: int = 256):
    """(batch,): how many tokens each translation may have, from its own source length.

    Per row, so that a sentence's translation does not depend on the others in its batch.
    """
    src_lengths = tf.reduce_sum(tf.cast(tf.not_equal(source, PAD_ID), tf.float32), axis=1)
    return tf.minimum(tf.cast(ratio * src_lengths, tf.int32) + extra, cap)


def greedy_search(model: Seq2Seq, source, max_length=None, return_alignments: bool = False):
    """The most likely token at each step until EOS.

    Args:
        source: (batch, src_len) int32 ids ending with EOS, right-padded.
        max_length: optional scalar int, a cap on top of ``max_output_lengths(source)``.
        return_alignments: also return the attention weights of every step.

    Returns:
        ids (batch, out_len) int32 without EOS, PAD after the end, and lengths (batch,);
        with ``return_alignments``, also alignments (batch, out_len, src_len), or
        (batch, out_len, 0) for a model without attention.
    """
    max_lengths = max_output_lengths(source)  # (batch,)
    if max_length is not None:
        max_lengths = tf.minimum(max_lengths, max_length)
    encoded, state = model.encode(source)
    batch = tf.shape(source)[0]
    never = tf.scatter_nd([[i] for i in NEVER], [-1e9] * len(NEVER), [model.vocab_size])

    def body(step, tokens, state, finished, outputs, alignments):
        logits, state = model.decoder.decode_step(tokens, state, encoded)  # (batch, vocab)
        tokens = tf.argmax(logits + never, axis=-1, output_type=tf.int32)
        tokens = tf.where(finished, PAD_ID, tokens)
        finished = finished | tf.equal(tokens, EOS_ID) | (step + 1 >= max_lengths)
        alignments = alignments.write(step, state["alignment"]) if return_alignments else alignments
        return step + 1, tokens, state, finished, outputs.write(step, tokens), alignments

    def cond(step, tokens, state, finished, outputs, alignments):
        return tf.logical_not(tf.reduce_all(finished))

    _, _, _, _, outputs, alignments = tf.while_loop(
        cond,
        body,
        (
            tf.constant(0),
            tf.fill([batch], BOS_ID),
            state,
            max_lengths <= 0,
            tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
            tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None, None]),
        ),
    )
    ids = tf.transpose(outputs.stack())  # (batch, out_len), or (0,) if no step ran
    ids = tf.reshape(ids, [batch, -1])
    is_token = tf.logical_and(tf.not_equal(ids, EOS_ID), tf.not_equal(ids, PAD_ID))
    lengths = tf.reduce_sum(tf.cast(is_token, tf.int32), axis=1)
    ids = tf.where(is_token, ids, PAD_ID)
    if not return_alignments:
        return ids, lengths
    alignments = tf.transpose(alignments.stack(), [1, 0, 2])  # (batch, out_len, src_len)
    return ids, lengths, alignments


def length_penalty(lengths, alpha: float):
    """GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016); 1 when alpha is 0."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def beam_search(model: Seq2Seq, source, beam_size: int = 5, alpha: float = 0.6, max_length=None):
    """The ``beam_size`` best partial translations kept at every step, the best one returned.

    Hypotheses that end (EOS, or their length cap) stay in the beam with their score
    frozen; the search stops when every beam of every sentence has ended. The winner is
    the hypothesis with the best log-probability divided by ``length_penalty``. With
    ``beam_size=1`` this is greedy search.

    Args:
        source: (batch, src_len) int32 ids ending with EOS, right-padded.
        beam_size: hypotheses kept per sentence.
        alpha: length penalty exponent; 0 ranks by log-probability alone.
        max_length: optional scalar int, a cap on top of ``max_output_lengths(source)``.

    Returns:
        ids (batch, out_len) int32 without EOS, PAD after the end; lengths (batch,); and
        scores (batch,): the winner's log-probability (EOS included) over its length penalty.
    """
    batch, k = tf.shape(source)[0], beam_size
    max_lengths = max_output_lengths(source)  # (batch,)
    if max_length is not None:
        max_lengths = tf.minimum(max_lengths, max_length)
    encoded, state = model.encode(source)

    def tile(t):  # (batch, ...) -> (batch * k, ...), each sentence's rows side by side
        return tf.repeat(t, k, axis=0)

    encoded, state = tf.nest.map_structure(tile, encoded), tf.nest.map_structure(tile, state)
    caps = tile(max_lengths)  # (batch * k,)
    never = tf.scatter_nd([[i] for i in NEVER], [-1e9] * len(NEVER), [model.vocab_size])
    # Only the first beam of each sentence is alive at the start, so step one expands it alone.
    first = tf.concat([[0.0], tf.fill([k - 1], -1e9)], axis=0)
    scores = tf.tile(first, [batch])  # (batch * k,) summed log-probabilities
    finished = tile(max_lengths <= 0)
    sequences = tf.zeros([batch * k, 0], tf.int32)
    offsets = tf.range(batch)[:, None] * k  # (batch, 1): the first row of each sentence
    ended_row = tf.one_hot(PAD_ID, model.vocab_size, on_value=0.0, off_value=-1e9)  # ended: PAD, free

    def body(step, tokens, state, scores, finished, sequences):
        logits, state = model.decoder.decode_step(tokens, state, encoded)  # (batch * k, vocab)
        log_probs = tf.nn.log_softmax(logits + never)
        log_probs = tf.where(finished[:, None], ended_row[None, :], log_probs)
        total = tf.reshape(scores[:, None] + log_probs, [batch, -1])  # (batch, k * vocab)
        best, index = tf.math.top_k(total, k)  # (batch, k)
        parents = tf.reshape(index // model.vocab_size + offsets, [-1])  # (batch * k,) rows to follow
        tokens = tf.reshape(index % model.vocab_size, [-1])
        state = tf.nest.map_structure(lambda t: tf.gather(t, parents), state)
        sequences = tf.concat([tf.gather(sequences, parents), tokens[:, None]], axis=1)
        finished = tf.gather(finished, parents) | tf.equal(tokens, EOS_ID) | (step + 1 >= caps)
        return step + 1, tokens, state, tf.reshape(best, [-1]), finished, sequences

    def cond(step, tokens, state, scores, finished, sequences):
        return tf.logical_not(tf.reduce_all(finished))

    _, _, _, scores, _, sequences = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tf.fill([batch * k], BOS_ID), state, scores, finished, sequences),
        shape_invariants=(
            tf.TensorShape([]), tf.TensorShape([None]), tf.nest.map_structure(lambda t: t.shape, state),
            tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([None, None]),
        ),
    )  # fmt: skip
    is_token = tf.logical_and(tf.not_equal(sequences, EOS_ID), tf.not_equal(sequences, PAD_ID))
    lengths = tf.reduce_sum(tf.cast(is_token, tf.int32), axis=1)  # (batch * k,)
    ended = tf.reduce_any(tf.equal(sequences, EOS_ID), axis=1)
    normalized = scores / length_penalty(lengths + tf.cast(ended, tf.int32), alpha)  # EOS counts
    winner = tf.argmax(tf.reshape(normalized, [batch, k]), axis=1, output_type=tf.int32) + offsets[:, 0]
    ids = tf.where(is_token, sequences, PAD_ID)
    return tf.gather(ids, winner), tf.gather(lengths, winner), tf.gather(normalized, winner)
