"""Token-level loss and accuracy that ignore padding."""

from __future__ import annotations

import keras
from keras import ops

from pipeline.constants import PAD_ID


@keras.saving.register_keras_serializable(package="pipeline")
class MaskedCrossEntropy(keras.losses.Loss):
    """Mean cross-entropy over real target tokens, with optional label smoothing.

    With ``label_smoothing`` e, the target distribution puts 1 - e on the reference token
    and spreads e evenly over the vocabulary (Szegedy et al., 2016).

    Call arguments: y_true (batch, len) ids, PAD where there is no token; y_pred logits
    (batch, len, vocab).
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        return masked_cross_entropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="pipeline")
def masked_cross_entropy(y_true, y_pred, label_smoothing: float = 0.0):
    """Mean cross-entropy over real target tokens: y_true (batch, len), y_pred logits (batch, len, vocab)."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), y_pred.dtype)  # (batch, len)
    loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)  # (batch, len)
    if label_smoothing:
        uniform = -ops.mean(ops.log_softmax(y_pred, axis=-1), axis=-1)  # (batch, len)
        loss = (1.0 - label_smoothing) * loss + label_smoothing * uniform
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="pipeline")
def masked_accuracy(y_true, y_pred):
    """Share of real target tokens predicted exactly."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
    predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    hits = ops.cast(ops.equal(ops.cast(y_true, "int32"), predicted), "float32")
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)
