"""Token-level loss and accuracy that ignore padding."""

from __future__ import annotations

import keras
from keras import ops

from pipeline.constants import PAD_ID


@keras.saving.register_keras_serializable(package="pipeline")
def masked_cross_entropy(y_true, y_pred):
    """Mean cross-entropy over real target tokens: y_true (batch, len), y_pred logits (batch, len, vocab)."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), y_pred.dtype)
    loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="pipeline")
def masked_accuracy(y_true, y_pred):
    """Share of real target tokens predicted exactly."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
    predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    hits = ops.cast(ops.equal(ops.cast(y_true, "int32"), predicted), "float32")
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)
