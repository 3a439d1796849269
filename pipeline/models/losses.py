"""Token-level loss and accuracy that ignore padding."""

from __future__ import annotations

import keras
import tensorflow as tf
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
    """Each position's cross-entropy, padding included: (batch, len).

    With label smoothing e the cost is (1 - e) (lse - z_ref) + e (lse - mean z), which is the plain
    cost lse - z_ref plus e (z_ref - mean z); its gradient is softmax - (1 - e) onehot - e / vocab.
    Both come from the one fused softmax pass that the plain cost makes: over (batch x len x vocab)
    logits that pass, not the products, is most of the loss's time, so it is made once.
    """
    labels = tf.cast(y_true, "int32")  # (batch, len)
    if not label_smoothing:
        return fused_cross_entropy(labels, y_pred)[0]  # TensorFlow differentiates the kernel itself

    @tf.custom_gradient
    def smoothed(logits):  # (batch, len, vocab)
        plain, softmax_minus_onehot = fused_cross_entropy(labels, logits)  # (batch, len), like logits
        reference = tf.gather(logits, labels, batch_dims=2)  # (batch, len)
        cost = plain + label_smoothing * (reference - tf.reduce_mean(logits, axis=-1))

        def gradient(upstream):  # upstream: (batch, len)
            vocab = tf.shape(logits)[-1]
            spread = label_smoothing * tf.one_hot(labels, vocab, dtype=logits.dtype)
            spread -= label_smoothing / tf.cast(vocab, logits.dtype)
            return (softmax_minus_onehot + spread) * upstream[..., None]

        return cost, gradient

    return smoothed(y_pred)


def fused_cross_entropy(labels, logits):
    """TensorFlow's fused kernel: the cost (batch, len) and its gradient softmax - onehot, like logits.

    The smoothed loss and the plain one (the ``xent`` metric beside it) call the kernel alike, on
    the same logits: in one graph, TensorFlow's optimizer runs it once for both.
    """
    vocab = tf.shape(logits)[-1]
    cost, gradient = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
        features=tf.reshape(logits, [-1, vocab]), labels=tf.reshape(labels, [-1])
    )
    return tf.reshape(cost, tf.shape(labels)), tf.reshape(gradient, tf.shape(logits))


@keras.saving.register_keras_serializable(package="pipeline")
def masked_accuracy(y_true, y_pred):
    """Share of real target tokens whose reference token has the highest logit (a tie counts).

    The reference's logit against the maximum, not an argmax: a reduction that costs little
    beside the loss, where an argmax over (batch x len x vocab) is a pass of its own.
    """
    labels = tf.cast(y_true, "int32")  # (batch, len)
    mask = tf.cast(tf.not_equal(labels, PAD_ID), "float32")
    reference = tf.gather(y_pred, labels, batch_dims=2)  # (batch, len)
    hits = tf.cast(reference >= tf.reduce_max(y_pred, axis=-1), "float32")
    return tf.reduce_sum(hits * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
