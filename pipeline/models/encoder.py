"""A bidirectional recurrent encoder: every source position sees the whole sentence."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from pipeline.constants import PAD_ID
from pipeline.models import recurrence
from pipeline.models.cells import LAYERS, STATES, check_cell, embedding


def run_cell(cell, embedded, reverse: bool) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """Runs one direction's cell over (batch, src_len, emb) inputs, step by step, without a mask.

    Returns the output h at every position, in source order (each (batch, units)),
    and the state after the last step taken (position src_len - 1 forwards,
    position 0 backwards).
    """
    src_len = embedded.shape[1]
    states = cell.get_initial_state(batch_size=ops.shape(embedded)[0])  # [h] or [h, c], (batch, units)
    outputs: list[tf.Tensor | None] = [None] * src_len
    positions = range(src_len - 1, -1, -1) if reverse else range(src_len)
    for t in positions:
        _, states = cell(embedded[:, t, :], states, training=False)
        states = list(states)
        # Keras' three cells return their output as states[0]; using that one tensor for both
        # the memory and the next step makes a gradient with respect to h_t cover both paths.
        outputs[t] = states[0]
    return outputs, states


@keras.saving.register_keras_serializable(package="pipeline")
class RecurrentEncoder(keras.layers.Layer):
    """Embeds source ids and runs a bidirectional RNN over them.

    Args:
        vocab_size: size of the source vocabulary.
        embedding_dim: size of the token embeddings.
        units: size of each direction's state; the outputs have ``2 * units``.
        cell: ``"rnn"`` (tanh), ``"lstm"`` or ``"gru"``.
        dropout: dropout on the embeddings during training.
        fused: run both directions in one loop with the input projections hoisted out of it
            (``pipeline.models.recurrence``); False runs Keras' ``Bidirectional`` layer. The
            weights are the same either way.

    Call arguments:
        source: (batch, src_len) int ids, right-padded with PAD_ID.

    Returns:
        memory (batch, src_len, 2 * units), mask (batch, src_len) bool, and the
        final states, forward and backward concatenated: a list of one
        (batch, 2 * units) tensor, two for LSTM (h and c).

    Example:
    >>> encoder = RecurrentEncoder(20, 8, 4, cell="gru")
    >>> memory, mask, states = encoder(ops.array([[5, 6, 3, 0]]))
    >>> tuple(memory.shape), len(states), tuple(states[0].shape)
    ((1, 4, 8), 1, (1, 8))
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        units: int,
        cell: str = "gru",
        dropout: float = 0.0,
        fused: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = check_cell(cell)
        self.dropout = dropout
        self.fused = fused
        self.embedding = embedding(vocab_size, embedding_dim)
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        # Named, so that its variables' paths are the same in every model built (checkpoints key by them).
        name = {"rnn": "simple_rnn"}.get(cell, cell)
        rnn = LAYERS[cell](units, return_sequences=True, return_state=True, name=name)
        self.rnn = keras.layers.Bidirectional(rnn, merge_mode="concat", name="birnn")

    def build(self, source_shape):
        self.embedding.build(source_shape)
        self.rnn.build((*source_shape, self.embedding_dim))

    def call(self, source, training=False):
        mask = ops.not_equal(source, PAD_ID)  # (batch, src_len)
        embedded = self.embedding_dropout(self.embedding(source), training=training)
        if self.fused:  # the same function, both directions in one loop (pipeline.models.recurrence)
            zeros = [tf.zeros([tf.shape(source)[0], self.units])] * STATES[self.cell]
            cells = self.rnn.forward_layer.cell, self.rnn.backward_layer.cell
            memory, forward, backward = recurrence.bidirectional(self.cell, *cells, embedded, mask, zeros)
        else:  # Keras' Bidirectional layer, step by step
            memory, *states = self.rnn(embedded, mask=mask, training=training)
            forward, backward = states[: STATES[self.cell]], states[STATES[self.cell] :]
        states = [ops.concatenate([f, b], axis=-1) for f, b in zip(forward, backward, strict=True)]
        return memory, mask, states

    def unroll(self, source):
        """``call`` step by step in eager mode, for the gradient probe, which needs each position's
        state as a tensor of its own: the fused loops and Keras' RNN layer expose none. It ignores
        masks, so ``source`` must have no padding, and runs without dropout.

        Returns memory (batch, src_len, 2 * units), the final states as ``call`` returns them, and
        the forward direction's h at each position, src_len x (batch, units).
        """
        embedded = self.embedding(source)  # (batch, src_len, emb)
        forward, forward_final = run_cell(self.rnn.forward_layer.cell, embedded, reverse=False)
        backward, backward_final = run_cell(self.rnn.backward_layer.cell, embedded, reverse=True)
        # memory: (batch, src_len, 2 * units), as Bidirectional(merge_mode="concat") stacks it
        positions = zip(forward, backward, strict=True)
        memory = ops.stack([ops.concatenate(pair, axis=-1) for pair in positions], axis=1)
        # per state component, as call: [concat(h_f, h_b)], and concat(c_f, c_b) for LSTM
        pairs = zip(forward_final, backward_final, strict=True)
        return memory, [ops.concatenate(pair, axis=-1) for pair in pairs], forward

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "dropout": self.dropout,
            "fused": self.fused,
        }
