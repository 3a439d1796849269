"""Attention over the encoder states, recomputed at every decoding step."""

from __future__ import annotations

import keras
from keras import ops


def attend(scores, values, mask):
    """Softmax over the real source positions, then the weighted sum of their values.

    scores: (batch, src_len); values: (batch, src_len, value_dim); mask: (batch, src_len) bool.
    Returns context (batch, value_dim) and weights (batch, src_len), zero at padding.
    """
    scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
    weights = ops.softmax(scores, axis=-1)
    # A batched (1, src_len) x (src_len, value_dim) product: on CPU, einsum's kernel for this
    # shape (and its gradient) took a third of the decoder loop's time.
    context = ops.matmul(weights[:, None, :], values)[:, 0, :]
    return context, weights


@keras.saving.register_keras_serializable(package="pipeline")
class BahdanauAttention(keras.layers.Layer):
    """Additive attention (Bahdanau et al., 2015): ``v . tanh(W_q q + W_k k)``.

    The key projection does not depend on the decoding step, so it is computed
    once per sentence by ``keys`` and passed to every ``call``.

    Args:
        units: size of the hidden layer that scores each (query, key) pair.

    Call arguments:
        query: (batch, query_dim), the decoder state before the step.
        keys: (batch, src_len, units), from ``keys(values)``.
        values: (batch, src_len, value_dim), the encoder states.
        mask: (batch, src_len) bool, False at padding.

    Returns:
        context (batch, value_dim) and weights (batch, src_len).

    Example:
    >>> attention = BahdanauAttention(8)
    >>> values = keras.random.normal((2, 5, 6)); mask = ops.ones((2, 5), "bool")
    >>> context, weights = attention(keras.random.normal((2, 4)), attention.keys(values), values, mask)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 6), (2, 5))
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query_dense = keras.layers.Dense(units, use_bias=False, name="query")
        self.key_dense = keras.layers.Dense(units, name="key")
        self.score_dense = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, query_shape, keys_shape=None, values_shape=None, mask_shape=None):
        self.query_dense.build(query_shape)
        if values_shape is not None and not self.key_dense.built:  # keys() may have built it
            self.key_dense.build(values_shape)
        self.score_dense.build((None, None, self.units))

    def keys(self, values):
        # values: (batch, src_len, value_dim) -> (batch, src_len, units)
        return self.key_dense(values)

    def call(self, query, keys, values, mask):
        query = self.query_dense(query)[:, None, :]  # (batch, 1, units)
        # v . tanh(...) as a product and a sum: cheaper than a Dense (or einsum) on rank 3.
        scores = ops.sum(ops.tanh(keys + query) * self.score_dense.kernel[:, 0], axis=-1)  # (batch, src_len)
        return attend(scores, values, mask)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="pipeline")
class LuongAttention(keras.layers.Layer):
    """Multiplicative ("general") attention (Luong et al., 2015): ``q . W k / sqrt(units)``.

    The decoder queries it with the state *after* the step's cell update. ``W k``
    does not depend on the step, so ``keys`` computes it once per sentence. The
    scores are scaled as in Vaswani et al. (2017): unscaled, a 256-unit model's
    scores had grown to a spread (standard deviation across the source) of 83 after
    3 epochs, its softmax put all weight on one position at every step, and it
    translated worse than a GRU without attention.

    Args:
        units: size of the query (the decoder state).

    Call arguments:
        query: (batch, units), the decoder state after the step.
        keys: (batch, src_len, units), from ``keys(values)``.
        values: (batch, src_len, value_dim), the encoder states.
        mask: (batch, src_len) bool, False at padding.

    Returns:
        context (batch, value_dim) and weights (batch, src_len).

    Example:
    >>> attention = LuongAttention(4)
    >>> values = keras.random.normal((2, 5, 6)); mask = ops.ones((2, 5), "bool")
    >>> context, weights = attention(keras.random.normal((2, 4)), attention.keys(values), values, mask)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 6), (2, 5))
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.key_dense = keras.layers.Dense(units, use_bias=False, name="key")

    def build(self, query_shape, keys_shape=None, values_shape=None, mask_shape=None):
        if values_shape is not None and not self.key_dense.built:  # keys() may have built it
            self.key_dense.build(values_shape)

    def keys(self, values):
        # values: (batch, src_len, value_dim) -> (batch, src_len, units)
        return self.key_dense(values)

    def call(self, query, keys, values, mask):
        scores = ops.matmul(keys, query[:, :, None])[:, :, 0]  # (batch, src_len, units) x (units,) per row
        return attend(scores / self.units**0.5, values, mask)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
