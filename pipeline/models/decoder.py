"""A recurrent decoder that composes an optional attention layer.

With Bahdanau attention, every step first attends from the previous state over
all encoder states and feeds the context into the cell's input together with
the previous token (Bahdanau et al., 2015). With Luong attention the cell runs
first and its new state attends; the context of the step before is fed to the
cell's input (input feeding, Luong et al., 2015, with the context in place of
their attentional vector). Without attention, the source reaches the decoder as
one context vector, the encoder's final state: it sets the initial state and is
fed, unchanged, into every step's input and into the output (Cho et al., 2014).

Training (``call``) and search (``decode_step``) run the very same ``step``,
so teacher forcing and decoding compute the same function. With ``fused`` (the
default), the cell's product with the embeddings is computed for all steps before
the loop and the cell update reads the Keras cell's weights
(``pipeline.models.recurrence``); without, every step calls the Keras cell.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from pipeline.models import recurrence
from pipeline.models.attention import BahdanauAttention, LuongAttention
from pipeline.models.cells import CELLS, STATES, check_cell, embedding

ATTENTIONS = {"bahdanau": BahdanauAttention, "luong": LuongAttention}


@keras.saving.register_keras_serializable(package="pipeline")
class RecurrentDecoder(keras.layers.Layer):
    """Predicts the next target token from the previous ones and the encoder states.

    Args:
        vocab_size: size of the target vocabulary.
        embedding_dim: size of the token embeddings.
        units: size of the recurrent state.
        cell: ``"rnn"`` (tanh), ``"lstm"`` or ``"gru"``.
        attention: ``None``, ``"bahdanau"`` or ``"luong"``.
        attention_units: hidden size of the Bahdanau scorer (Luong's is ``units``).
        dropout: dropout on the embeddings and before the output projection.
        fused: hoist the embeddings' input projection out of the loop (same weights).
        tie_embeddings: the output projection is the embedding matrix, transposed and scaled
            by 1/sqrt(embedding_dim) (its N(0, 1) entries would saturate the softmax at the
            start), plus a bias; the deep output then has embedding_dim units.

    Call arguments:
        target_in: (batch, tgt_len) ids, BOS first, right-padded.
        memory: (batch, src_len, memory_dim) encoder states.
        memory_mask: (batch, src_len) bool.
        encoder_states: the encoder's final states, each (batch, memory_dim); the first
            is the context vector of a decoder without attention.

    Returns:
        logits (batch, tgt_len, vocab_size).

    Example:
    >>> decoder = RecurrentDecoder(20, 8, 4, cell="gru", attention="bahdanau", attention_units=4)
    >>> memory = keras.random.normal((2, 5, 6)); mask = ops.ones((2, 5), "bool")
    >>> logits = decoder(ops.array([[2, 7], [2, 9]]), memory, mask, [keras.random.normal((2, 6))])
    >>> tuple(logits.shape)
    (2, 2, 20)
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        units: int,
        cell: str = "gru",
        attention: str | None = None,
        attention_units: int | None = None,
        dropout: float = 0.0,
        fused: bool = True,
        tie_embeddings: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention is not None and attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell_type = check_cell(cell)
        self.attention_type = attention
        self.attention_units = attention_units or units
        self.dropout = dropout
        self.fused = fused
        self.tie_embeddings = tie_embeddings
        self.embedding = embedding(vocab_size, embedding_dim)
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        # One bridge per state tensor: the encoder's final state, squashed to our size.
        self.bridges = [
            keras.layers.Dense(units, activation="tanh", name=f"bridge_{i}") for i in range(STATES[cell])
        ]
        self.cell = CELLS[cell](units, name="cell")
        # Luong's score multiplies the decoder state into the keys, so its size is fixed.
        attention_units = units if attention == "luong" else self.attention_units
        self.attention = ATTENTIONS[attention](attention_units, name="attention") if attention else None
        # A deep output: the next token is read from the state, context and previous token.
        self.readout_units = embedding_dim if tie_embeddings else units
        self.readout = keras.layers.Dense(self.readout_units, activation="tanh", name="readout")
        self.readout_dropout = keras.layers.Dropout(dropout, name="readout_dropout")
        self.projection = None if tie_embeddings else keras.layers.Dense(vocab_size, name="projection")

    def build(self, target_in_shape, memory_shape, memory_mask_shape=None, encoder_states_shape=None):
        batch, memory_dim = memory_shape[0], memory_shape[-1]
        context_dim = memory_dim  # attention's context, or the single context vector
        self.embedding.build(target_in_shape)
        for bridge in self.bridges:
            bridge.build((batch, memory_dim))
        self.cell.build((batch, self.embedding_dim + context_dim))
        if self.attention:
            self.attention.build((batch, self.units), values_shape=memory_shape)
        self.readout.build((batch, self.units + context_dim + self.embedding_dim))
        if self.tie_embeddings:
            self.output_bias = self.add_weight(
                shape=(self.vocab_size,), initializer="zeros", name="output_bias"
            )
        else:
            self.projection.build((batch, self.readout_units))

    def start(self, memory, memory_mask, encoder_states):
        """The constant per-sentence inputs and the state before the first step.

        Returns ``(encoded, state)``: encoded holds values (batch, src_len, memory_dim),
        keys (batch, src_len, key_dim) and mask; state holds the cell
        states, the context (batch, memory_dim) and the alignment (batch, src_len; (batch, 0)
        without attention).
        """
        batch, src_len = ops.shape(memory)[0], ops.shape(memory)[1]
        cells = [bridge(s) for bridge, s in zip(self.bridges, encoder_states, strict=True)]
        if self.attention:
            encoded = {"values": memory, "keys": self.attention.keys(memory), "mask": memory_mask}
            context = ops.zeros((batch, ops.shape(memory)[-1]), memory.dtype)
            alignment = ops.zeros((batch, src_len), memory.dtype)
        else:  # the single context vector, the same at every step (Cho et al., 2014)
            encoded = {"mask": memory_mask}
            context = encoder_states[0]  # (batch, memory_dim)
            alignment = ops.zeros((batch, 0), memory.dtype)
        return encoded, {"cells": cells, "context": context, "alignment": alignment}

    def project(self, embedded):
        """The embeddings' share of the cell's input product: (..., emb) -> (..., gates * units)."""
        kernel = self.cell.kernel[: self.embedding_dim]
        return tf.tensordot(embedded, kernel, axes=1) + recurrence.input_bias(self.cell)

    def loop_weights(self) -> dict:
        """The cell weights a fused step reads, sliced once before a loop rather than at every step
        (a slice's gradient is a full-size scatter)."""
        return {
            "kernel": self.cell.recurrent_kernel,
            "bias": recurrence.recurrent_bias(self.cell),
            "context_kernel": self.cell.kernel[self.embedding_dim :],  # (memory_dim, gates * units)
        }

    def step(self, embedded, state, encoded, projected=None, weights=None):
        """One step: (batch, embedding_dim) previous-token embedding -> next state.

        ``projected`` is the cell's input product computed before the loop in training:
        ``project(embedded)``, plus the context's share when the context is the same at
        every step (no attention); ``weights`` is ``loop_weights()``.
        """
        context, alignment = state["context"], state["alignment"]
        if self.attention_type == "bahdanau":  # attend from the state before the step
            query = state["cells"][0]  # (batch, units)
            context, alignment = self.attention(query, encoded["keys"], encoded["values"], encoded["mask"])
        if self.fused:
            weights = self.loop_weights() if weights is None else weights
            if projected is None:  # search: all of this step's input product
                projected = self.project(embedded) + tf.matmul(context, weights["context_kernel"])
            elif self.attention:  # training: add this step's context's share
                projected += tf.matmul(context, weights["context_kernel"])
            kernel, bias = weights["kernel"], weights["bias"]
            cells = recurrence.update(self.cell_type, projected, state["cells"], kernel, bias)
        else:
            inputs = ops.concatenate([embedded, context], axis=-1)
            _, cells = self.cell(inputs, state["cells"])
        if self.attention_type == "luong":  # attend from the state after the step
            query = cells[0]
            context, alignment = self.attention(query, encoded["keys"], encoded["values"], encoded["mask"])
        return {"cells": list(cells), "context": context, "alignment": alignment}

    def logits(self, state, embedded, training=False):
        """Output logits (..., vocab_size) for the given state and previous-token embedding."""
        features = ops.concatenate([state["cells"][0], state["context"], embedded], axis=-1)
        features = self.readout_dropout(self.readout(features), training=training)  # (..., readout_units)
        if self.tie_embeddings:
            scale = 1.0 / self.embedding_dim**0.5
            return ops.matmul(features, ops.transpose(self.embedding.embeddings)) * scale + self.output_bias
        return self.projection(features)

    def call(self, target_in, memory, memory_mask, encoder_states, training=False):
        embedded = self.embedding(target_in)  # (batch, tgt_len, emb)
        embedded = self.embedding_dropout(embedded, training=training)
        encoded, state = self.start(memory, memory_mask, encoder_states)
        time_major = tf.transpose(embedded, [1, 0, 2])  # (tgt_len, batch, emb)
        # One tf.scan over time: the loop body is a single traced step, not a Python unroll.
        if self.fused:
            weights = self.loop_weights()
            projected = self.project(time_major)  # all steps' input products: (tgt_len, batch, gates * units)
            if not self.attention:  # and a constant context's share, once: (batch, gates * units)
                projected += tf.matmul(state["context"], weights["context_kernel"])
            states = tf.scan(
                lambda state, x: self.step(x[0], state, encoded, projected=x[1], weights=weights),
                (time_major, projected),
                initializer=state,
            )
        else:
            states = tf.scan(lambda state, x: self.step(x, state, encoded), time_major, initializer=state)
        states = tf.nest.map_structure(lambda t: tf.transpose(t, [1, 0, 2]), states)  # (batch, tgt_len, ...)
        return self.logits(states, embedded, training=training)

    def decode_step(self, token_ids, state, encoded):
        """Search step: (batch,) previous ids -> logits (batch, vocab_size) and next state."""
        embedded = self.embedding(token_ids)
        state = self.step(embedded, state, encoded)
        return self.logits(state, embedded), state

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell_type,
            "attention": self.attention_type,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "fused": self.fused,
            "tie_embeddings": self.tie_embeddings,
        }
