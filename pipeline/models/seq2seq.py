"""The encoder-decoder model: the encoder reads the source, the decoder writes the target."""

from __future__ import annotations

import keras
from keras import ops

from pipeline.models.decoder import RecurrentDecoder
from pipeline.models.encoder import RecurrentEncoder


@keras.saving.register_keras_serializable(package="pipeline")
class Seq2Seq(keras.Model):
    """A recurrent sequence-to-sequence model, with or without attention. Search, export and the
    gradient probe call its ``encode``, ``decode_step``, ``search_width`` and ``probe_positions``,
    as they call the Transformer's.

    Args:
        vocab_size: size of the joint SentencePiece vocabulary.
        cell: ``"rnn"`` (tanh), ``"lstm"`` or ``"gru"``, for encoder and decoder.
        attention: ``None`` (a single context vector), ``"bahdanau"`` or ``"luong"``.
        embedding_dim, units, attention_units, dropout: sizes and regularisation.
        tie_embeddings: the output projection reuses the target embeddings (see RecurrentDecoder).
        fused: the loops with their input products hoisted out (``pipeline.models.recurrence``);
            False runs the Keras layers and cells step by step. Same weights, same function.

    Call arguments:
        inputs: {"source": (batch, src_len), "target_in": (batch, tgt_len)} int ids.

    Returns:
        logits (batch, tgt_len, vocab_size) for the next token at each position.

    Example:
    >>> model = Seq2Seq(20, cell="gru", attention="bahdanau", embedding_dim=8, units=4)
    >>> logits = model({"source": keras.ops.array([[5, 3]]), "target_in": keras.ops.array([[2, 6, 7]])})
    >>> tuple(logits.shape)
    (1, 3, 20)
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str = "gru",
        attention: str | None = "bahdanau",
        embedding_dim: int = 256,
        units: int = 256,
        attention_units: int | None = None,
        dropout: float = 0.0,
        fused: bool = True,
        tie_embeddings: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.cell = cell
        self.attention = attention
        self.embedding_dim = embedding_dim
        self.units = units
        self.attention_units = attention_units or units
        self.dropout = dropout
        self.fused = fused
        self.tie_embeddings = tie_embeddings
        self.encoder = RecurrentEncoder(
            vocab_size, embedding_dim, units, cell=cell, dropout=dropout, fused=fused, name="encoder"
        )
        self.decoder = RecurrentDecoder(
            vocab_size,
            embedding_dim,
            units,
            cell=cell,
            attention=attention,
            attention_units=self.attention_units,
            dropout=dropout,
            fused=fused,
            tie_embeddings=tie_embeddings,
            name="decoder",
        )

    def build(self, inputs_shape=None):
        self.encoder.build((None, None))
        self.decoder.build((None, None), (None, None, 2 * self.units))

    def call(self, inputs, training=False):
        memory, mask, states = self.encoder(inputs["source"], training=training)
        return self.decoder(inputs["target_in"], memory, mask, states, training=training)

    def encode(self, source):
        """For search: (batch, src_len) ids -> the decoder's (encoded, state), see RecurrentDecoder.start."""
        memory, mask, states = self.encoder(source)
        return self.decoder.start(memory, mask, states)

    def decode_step(self, token_ids, state, encoded):
        """For search: (batch,) previous ids -> logits (batch, vocab_size) and the next state."""
        return self.decoder.decode_step(token_ids, state, encoded)

    def search_width(self) -> int:
        """Floats a search keeps per row (a sentence's beam) and source piece, for export's memory
        bound: the encoder states and the attention's keys."""
        return 2 * self.units + (self.attention_units if self.attention else 0)

    def probe_positions(self, source, target_in):
        """For the gradient probe: the encoder's forward-direction state at each source position,
        src_len x (batch, units), from its step-by-step unroll (``source`` without padding), and the
        logits (batch, tgt_len, vocab) computed from them, without dropout."""
        memory, states, forward = self.encoder.unroll(source)
        mask = ops.ones(ops.shape(source), "bool")  # (batch, src_len): no padding
        return forward, self.decoder(target_in, memory, mask, states, training=False)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "cell": self.cell,
            "attention": self.attention,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "fused": self.fused,
            "tie_embeddings": self.tie_embeddings,
        }
