"""Token-level loss and accuracy that ignore padding."""

from __future__ import annotations

import keras
from keras import ops

from pipeline.constants import PAD_ID
from pipeline.distribute import global_sum, replicas_in_step


@keras.saving.register_keras_serializable(package="pipeline")
class MaskedCrossEntropy(keras.losses.Loss):
    """Mean cross-entropy over real target tokens, with optional label smoothing.

    With ``label_smoothing`` e, the target distribution puts 1 - e on the reference token
    and spreads e evenly over the vocabulary (Szegedy et al., 2016).

    Call arguments: y_true (batch, len) ids, PAD where there is no token; y_pred logits
    (batch, len, vocab).

    Under a strategy with several replicas, each replica holds a slice of the global batch and
    Keras sums their gradients: each replica's loss is its tokens' loss over the global batch's
    token count, so that the sum is the global batch's token mean, whatever each slice holds.
    What Keras reports as the loss is then the global token mean too, except for a batch that
    does not split evenly across the replicas (Keras averages the replicas' running means).
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        if replicas_in_step() == 1:
            return masked_cross_entropy(y_true, y_pred, self.label_smoothing)
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), y_pred.dtype)  # (batch, len): this replica's slice
        total = ops.sum(token_losses(y_true, y_pred, self.label_smoothing) * mask)
        return total / ops.maximum(global_sum(ops.sum(mask)), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="pipeline")
def masked_cross_entropy(y_true, y_pred, label_smoothing: float = 0.0):
    """Mean cross-entropy over real target tokens: y_true (batch, len), y_pred logits (batch, len, vocab)."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), y_pred.dtype)  # (batch, len)
    loss = token_losses(y_true, y_pred, label_smoothing)  # (batch, len)
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


def token_losses(y_true, y_pred, label_smoothing: float = 0.0):
    """Each position's cross-entropy, padding included: (batch, len)."""
    loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)  # (batch, len)
    if label_smoothing:
        uniform = -ops.mean(ops.log_softmax(y_pred, axis=-1), axis=-1)  # (batch, len)
        loss = (1.0 - label_smoothing) * loss + label_smoothing * uniform
    return loss


@keras.saving.register_keras_serializable(package="pipeline")
def masked_accuracy(y_true, y_pred):
    """Share of real target tokens predicted exactly."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
    predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    hits = ops.cast(ops.equal(ops.cast(y_true, "int32"), predicted), "float32")
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)
