"""How long a translation may get: shared by the search and the Transformer's decoding cache."""

from __future__ import annotations

import tensorflow as tf

from pipeline.constants import PAD_ID

MAX_OUTPUT = 256  # tokens, whatever the source


def max_output_lengths(source, ratio: float = 2.0, extra: int = 10, cap: int = MAX_OUTPUT):
    """(batch,): how many tokens each translation may have, from its own source length.

    Per row, so that a sentence's translation does not depend on the others in its batch.
    """
    src_lengths = tf.reduce_sum(tf.cast(tf.not_equal(source, PAD_ID), tf.float32), axis=1)
    return tf.minimum(tf.cast(ratio * src_lengths, tf.int32) + extra, cap)
