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
