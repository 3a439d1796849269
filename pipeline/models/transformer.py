"""The Transformer (Vaswani et al., 2017): attention without recurrence, in the same pipeline.

The encoder and decoder are stacks of pre-norm layers (layer normalisation before each
sub-layer, the residual around it; stabler on a small corpus than post-norm). One embedding
matrix serves the source, the target and the output projection, since the SentencePiece
vocabulary is joint; positions are sinusoidal, so nothing limits the length but the search's cap.

The multi-head attention is Keras 3's ``MultiHeadAttention`` for its projections (``query``,
``key``, ``value`` and ``attention_output``, their weights and serialisation); the scaled
dot product itself is ``attend`` below (and ``attend_one``, the same for one query a row), so
that they can return the weights the ``align`` signatures and the heatmaps need (the fused
kernel Keras picks otherwise returns none).

Decoding with a cache: each decoder layer keeps the keys and values of the positions already
written, one more each step, so a step projects one new position and attends over those. The
encoder's keys and values for the cross-attention are projected once per sentence, in ``encode``.
A step works on rows (batch, model_dim), not on sequences of one position: its projections are
plain 2-D products and its attention two small batched ones, much faster than the same
arithmetic through the sequence layers (test_transformer.py checks that it decodes what the
whole prefix recomputed decodes).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pipeline.constants import PAD_ID

NEG = -1e9  # a masked score: exp() of it is 0 in float32

# Keras files a list of layers in a weights file under the name of the attribute that holds it. The
# stacks were ``encoder_layers`` and ``decoder_layers`` until ``decoder_layers`` became the decoder's
# depth, an int like its constructor argument; .weights.h5 files keep the old names
# (``Transformer.save_weights`` and ``load_weights`` rename them), so that the run folders of either
# version load into the other. A .keras archive (``model.save``) has the attributes' names.
STORED_NAMES = {"encoder_blocks": "encoder_layers", "decoder_blocks": "decoder_layers"}


def rename_groups(path, names: dict[str, str]) -> None:
    """Renames the top-level groups of an HDF5 file, ``names`` old -> new, those it has."""
    with h5py.File(path, "a") as file:
        for old, new in names.items():
            if old in file:
                file.move(old, new)


def positions(length, dim: int, start=0):
    """Sinusoidal position encodings (length, dim) of positions start.., float32."""
    position = tf.cast(tf.range(start, start + length), tf.float32)[:, None]  # (length, 1)
    rates = tf.constant(np.power(10000.0, -np.arange(0, dim, 2) / dim), tf.float32)  # (dim / 2,)
    angles = position * rates[None, :]
    return tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1), [length, dim])


def attend(query, key, value, mask):
    """Scaled dot-product attention over heads.

    query (batch, T, heads, key_dim); key, value (batch, S, heads, key_dim); mask (batch, T, S)
    bool, True where attention may look. Returns the context (batch, T, heads, key_dim) and the
    weights (batch, heads, T, S).
    """
    scores = tf.einsum("bthd,bshd->bhts", query, key) / math.sqrt(query.shape[-1])
    scores = tf.where(mask[:, None, :, :], scores, NEG)
    weights = tf.nn.softmax(scores, axis=-1)
    return tf.einsum("bhts,bshd->bthd", weights, value), weights


def attend_one(query, key, value, mask=None):
    """``attend`` for one query a row, as search steps ask, with the heads before the positions
    (the layout the search's caches keep, so the products run without a transpose).

    query (rows, heads, key_dim); key, value (rows, heads, S, key_dim); mask (rows, S) bool or None
    (every position). Returns the context (rows, heads, key_dim) and the weights (rows, heads, S).
    """
    scores = tf.matmul(query[:, :, None, :], key, transpose_b=True) / math.sqrt(query.shape[-1])
    if mask is not None:  # scores (rows, heads, 1, S)
        scores = tf.where(mask[:, None, None, :], scores, NEG)
    weights = tf.nn.softmax(scores, axis=-1)
    return tf.matmul(weights, value)[:, :, 0, :], weights[:, :, 0, :]


def rows_through(dense: keras.layers.EinsumDense, x):
    """One of attention's projections applied to rows (rows, in): its kernel as one matrix,
    (in, heads * key_dim) or (heads * key_dim, out), so a search step runs a single 2-D product."""
    kernel = dense.kernel
    out = tf.matmul(x, tf.reshape(kernel, [x.shape[-1], -1]))
    return out if dense.bias is None else out + tf.reshape(dense.bias, [-1])


@keras.saving.register_keras_serializable(package="pipeline")
class Attention(keras.layers.MultiHeadAttention):
    """Keras' multi-head attention, its product computed by ``attend``: (output, weights)."""

    def attend(self, query, key, value, mask):
        """query (batch, T, model_dim) attends over projected keys and values: (output, weights)."""
        context, weights = attend(self.query_dense(query), key, value, mask)
        return self.output_dense(context), weights

    def keys_values(self, x):
        """x (batch, S, model_dim) -> the projected keys and values, each (batch, S, heads, key_dim)."""
        return self.key_dense(x), self.value_dense(x)

    def split_heads(self, x):
        """(rows, heads * key_dim) -> (rows, heads, key_dim)."""
        return tf.reshape(x, [-1, self.num_heads, self.key_dim])

    def attend_one(self, query, key, value, mask=None):
        """``attend`` for one position a row: query (rows, model_dim) -> (output, weights)."""
        queries = self.split_heads(rows_through(self.query_dense, query))  # (rows, heads, key_dim)
        context, weights = attend_one(queries, key, value, mask)
        context = tf.reshape(context, [-1, self.num_heads * self.key_dim])
        return rows_through(self.output_dense, context), weights

    def key_value_one(self, x):
        """(rows, model_dim) -> this position's key and value, each (rows, heads, 1, key_dim)."""
        key, value = (rows_through(dense, x) for dense in (self.key_dense, self.value_dense))
        return self.split_heads(key)[:, :, None], self.split_heads(value)[:, :, None]


@keras.saving.register_keras_serializable(package="pipeline")
class FeedForward(keras.layers.Layer):
    def __init__(self, model_dim: int, ff_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.model_dim, self.ff_dim = model_dim, ff_dim
        self.inner = keras.layers.Dense(ff_dim, activation="relu", name="inner")
        self.outer = keras.layers.Dense(model_dim, name="outer")

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.outer.build((*input_shape[:-1], self.ff_dim))

    def call(self, x):
        return self.outer(self.inner(x))

    def get_config(self):
        return {**super().get_config(), "model_dim": self.model_dim, "ff_dim": self.ff_dim}


def attention(model_dim: int, heads: int, name: str) -> Attention:
    return Attention(heads, model_dim // heads, name=name)  # its own dropout off: residual dropout instead


class ResidualFeedForward(keras.layers.Layer):
    """The pre-normed feed-forward sub-layer and the residual around it, with which an encoder and a
    decoder layer (its subclasses) end; it keeps their sizes too."""

    def __init__(self, model_dim: int, heads: int, ff_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.model_dim, self.heads, self.ff_dim, self.dropout = model_dim, heads, ff_dim, dropout
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ff_norm")
        self.feed_forward = FeedForward(model_dim, ff_dim, name="feed_forward")
        self.ff_dropout = keras.layers.Dropout(dropout, name="ff_dropout")

    def build(self, input_shape):
        self.ff_norm.build(input_shape)
        self.feed_forward.build(input_shape)

    def feed_forward_residual(self, x, training):
        """x (batch, T, model_dim) plus the pre-normed feed-forward of it."""
        return x + self.ff_dropout(self.feed_forward(self.ff_norm(x)), training=training)

    def get_config(self):
        return {**super().get_config(), "model_dim": self.model_dim, "heads": self.heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout}  # fmt: skip


@keras.saving.register_keras_serializable(package="pipeline")
class EncoderLayer(ResidualFeedForward):
    def __init__(self, model_dim: int, heads: int, ff_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(model_dim, heads, ff_dim, dropout, **kwargs)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.self_attention = attention(model_dim, heads, "self_attention")
        self.attention_dropout = keras.layers.Dropout(dropout, name="attention_dropout")

    def build(self, input_shape):
        super().build(input_shape)
        self.attention_norm.build(input_shape)
        self.self_attention.build(input_shape, input_shape)

    def call(self, x, source_mask, training=False):
        """x (batch, S, model_dim); source_mask (batch, S) bool, True on real pieces."""
        h = self.attention_norm(x)
        k, v = self.self_attention.keys_values(h)
        every = source_mask[:, None, :] & tf.ones_like(source_mask)[:, :, None]  # (batch, S, S)
        out, _ = self.self_attention.attend(h, k, v, every)
        return self.feed_forward_residual(x + self.attention_dropout(out, training=training), training)


@keras.saving.register_keras_serializable(package="pipeline")
class DecoderLayer(ResidualFeedForward):
    def __init__(self, model_dim: int, heads: int, ff_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(model_dim, heads, ff_dim, dropout, **kwargs)
        self.self_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="self_norm")
        self.self_attention = attention(model_dim, heads, "self_attention")
        self.cross_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="cross_norm")
        self.cross_attention = attention(model_dim, heads, "cross_attention")
        self.self_dropout = keras.layers.Dropout(dropout, name="self_dropout")
        self.cross_dropout = keras.layers.Dropout(dropout, name="cross_dropout")

    def build(self, input_shape):
        super().build(input_shape)
        for norm in (self.self_norm, self.cross_norm):
            norm.build(input_shape)
        self.self_attention.build(input_shape, input_shape)
        self.cross_attention.build(input_shape, input_shape)

    def call(
        self, y, self_keys, self_values, self_mask, cross_keys, cross_values, cross_mask, training=False
    ):
        """y (batch, T, model_dim) attends over the self keys and values (batch, T or cache, heads,
        key_dim) under self_mask (batch, T, T or cache), then over the source's under cross_mask
        (batch, T, S). Returns y and the cross-attention weights (batch, heads, T, S)."""
        out, _ = self.self_attention.attend(self.self_norm(y), self_keys, self_values, self_mask)
        y = y + self.self_dropout(out, training=training)
        out, weights = self.cross_attention.attend(self.cross_norm(y), cross_keys, cross_values, cross_mask)
        y = y + self.cross_dropout(out, training=training)
        return self.feed_forward_residual(y, training), weights

    def step(self, y, self_keys, self_values, cross_keys, cross_values, cross_mask):
        """``call`` for one new position a row, in search: y (rows, model_dim) appends its key and
        value to the cache (rows, heads, T, key_dim) and attends over all of it, then over the
        source's (rows, heads, S, key_dim) under cross_mask (rows, S). Returns y, the caches and
        the cross-attention weights (rows, heads, S)."""
        normed = self.self_norm(y)
        key, value = self.self_attention.key_value_one(normed)
        self_keys, self_values = tf.concat([self_keys, key], axis=2), tf.concat([self_values, value], axis=2)
        y = y + self.self_attention.attend_one(normed, self_keys, self_values)[0]
        out, weights = self.cross_attention.attend_one(
            self.cross_norm(y), cross_keys, cross_values, cross_mask
        )
        return self.feed_forward_residual(y + out, training=False), self_keys, self_values, weights


@keras.saving.register_keras_serializable(package="pipeline")
class Transformer(keras.Model):
    """An encoder-decoder Transformer with one shared embedding, for the same search, export and
    probe as ``Seq2Seq``: ``call``, ``encode``, ``decode_step``, ``search_width`` and
    ``probe_positions``.

    Args:
        vocab_size: size of the joint SentencePiece vocabulary.
        model_dim: size of the embeddings and of every layer's output.
        layers: encoder layers, the depth of ``encoder_blocks`` (stored as ``layers_count``: a
            model's ``layers`` is Keras' list of its sub-layers).
        heads: attention heads (model_dim must be a multiple).
        ff_dim: the feed-forward sub-layers' inner size.
        dropout: on the embeddings and on every sub-layer's output.
        decoder_layers: decoder layers, the depth of ``decoder_blocks``; None is as many as the
            encoder's.

    Call arguments:
        inputs: {"source": (batch, src_len), "target_in": (batch, tgt_len)} int ids, right-padded.

    Returns:
        logits (batch, tgt_len, vocab_size) for the next token at each position.

    Example:
    >>> model = Transformer(20, model_dim=8, layers=1, heads=2, ff_dim=16)
    >>> logits = model({"source": ops.array([[5, 3]]), "target_in": ops.array([[2, 6, 7]])})
    >>> tuple(logits.shape)
    (1, 3, 20)
    """

    attention = "transformer"  # what the report, the probe and the export ask of a variant

    def __init__(self, vocab_size: int, model_dim: int = 256, layers: int = 3, heads: int = 4,
                 ff_dim: int = 1024, dropout: float = 0.0, decoder_layers: int | None = None,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        if model_dim % heads:
            raise ValueError(f"model_dim {model_dim} is not a multiple of heads {heads}")
        self.vocab_size, self.model_dim, self.layers_count = vocab_size, model_dim, layers
        self.decoder_layers = layers if decoder_layers is None else decoder_layers
        self.heads, self.ff_dim, self.dropout = heads, ff_dim, dropout
        initializer = keras.initializers.RandomNormal(stddev=model_dim**-0.5)  # scaled back up by sqrt(dim)
        self.embedding = keras.layers.Embedding(vocab_size, model_dim, embeddings_initializer=initializer,
                                                name="embedding")  # fmt: skip
        self.source_dropout = keras.layers.Dropout(dropout, name="source_dropout")
        self.target_dropout = keras.layers.Dropout(dropout, name="target_dropout")
        self.encoder_blocks = [
            EncoderLayer(model_dim, heads, ff_dim, dropout, name=f"encoder_{i}") for i in range(layers)
        ]
        self.decoder_blocks = [
            DecoderLayer(model_dim, heads, ff_dim, dropout, name=f"decoder_{i}")
            for i in range(self.decoder_layers)
        ]
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")
        self.output_bias = None

    def build(self, inputs_shape=None):
        shape = (None, None, self.model_dim)
        self.embedding.build((None, None))
        for layer in (*self.encoder_blocks, *self.decoder_blocks):
            layer.build(shape)
        self.encoder_norm.build(shape)
        self.decoder_norm.build(shape)
        self.output_bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="output_bias")

    def embed(self, ids, start=0):
        """(batch, length) ids -> scaled embeddings plus the positions from ``start``."""
        length = tf.shape(ids)[1]
        return (
            self.embedding(ids) * math.sqrt(self.model_dim)
            + positions(length, self.model_dim, start)  # a search step: its own position only
        )

    def encode_memory(self, source, training=False):
        """(batch, S) ids -> memory (batch, S, model_dim) and mask (batch, S)."""
        mask = ops.not_equal(source, PAD_ID)
        x = self.source_dropout(self.embed(source), training=training)
        for layer in self.encoder_blocks:
            x = layer(x, mask, training=training)
        return self.encoder_norm(x), mask

    def decode(self, target_in, memory, mask, training=False):
        """Teacher forcing: logits (batch, T, vocab) and the last layer's cross-attention weights."""
        y = self.target_dropout(self.embed(target_in), training=training)
        length = tf.shape(target_in)[1]
        causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)[None]  # (1, T, T)
        cross = mask[:, None, :] & tf.ones([1, length, 1], tf.bool)  # (batch, T, S)
        weights = None
        for layer in self.decoder_blocks:
            keys, values = layer.self_attention.keys_values(layer.self_norm(y))
            cross_keys, cross_values = layer.cross_attention.keys_values(memory)
            y, weights = layer(y, keys, values, causal, cross_keys, cross_values, cross, training=training)
        return self.logits(self.decoder_norm(y)), weights

    def logits(self, y):
        """(..., model_dim) -> (..., vocab): the output projection is the shared embedding,
        transposed, as one 2-D product over every position (the transpose left to the product)."""
        rows = tf.reshape(y, [-1, self.model_dim])
        out = tf.matmul(rows, self.embedding.embeddings, transpose_b=True) + self.output_bias
        return tf.reshape(out, tf.concat([tf.shape(y)[:-1], [self.vocab_size]], axis=0))

    def step_logits(self, y):
        """``logits`` of a search step's rows (rows, model_dim) -> (rows, vocab), taken as the
        embeddings times the rows transposed, then transposed back: on a CPU the two together
        take less time than the rows times the embeddings transposed (a step's largest product)."""
        return tf.transpose(tf.matmul(self.embedding.embeddings, y, transpose_b=True)) + self.output_bias

    def call(self, inputs, training=False):
        memory, mask = self.encode_memory(inputs["source"], training=training)
        return self.decode(inputs["target_in"], memory, mask, training=training)[0]

    def encode(self, source):
        """For search: (batch, S) ids -> ``(encoded, state)``. encoded holds each layer's cross keys
        and values (batch, heads, S, key_dim) and the mask; state holds each layer's self-attention cache
        (batch, heads, 0, key_dim), empty until the first step, and the alignment (batch, S), the
        last layer's cross-attention over heads. Heads come before positions, as ``attend_one`` reads."""
        memory, mask = self.encode_memory(source)
        batch, src_len = tf.shape(source)[0], tf.shape(source)[1]
        empty = tf.zeros([batch, self.heads, 0, self.model_dim // self.heads])
        encoded, state = {"mask": mask}, {"alignment": tf.zeros([batch, src_len])}
        for i, layer in enumerate(self.decoder_blocks):
            keys, values = layer.cross_attention.keys_values(memory)  # (batch, S, heads, key_dim)
            encoded[f"keys_{i}"] = tf.transpose(keys, [0, 2, 1, 3])  # (batch, heads, S, key_dim)
            encoded[f"values_{i}"] = tf.transpose(values, [0, 2, 1, 3])
            state[f"keys_{i}"], state[f"values_{i}"] = empty, empty
        return encoded, state

    def decode_step(self, token_ids, state, encoded):
        """Search step: (batch,) previous ids -> logits (batch, vocab) and the next state.

        Appends this position's keys and values to each layer's cache and attends over it: one
        new position per step, not the whole prefix. The caches grow by one position a step, so a
        step reads (and the search's reordering copies) only the positions written so far; and a
        step's tensors are rows (batch, model_dim), not sequences of one, so its products are 2-D."""
        step = tf.shape(state["keys_0"])[2]  # positions written so far
        y = self.embed(token_ids[:, None], start=step)[:, 0]  # (batch, model_dim)
        new = {}
        for i, layer in enumerate(self.decoder_blocks):
            y, new[f"keys_{i}"], new[f"values_{i}"], weights = layer.step(
                y, state[f"keys_{i}"], state[f"values_{i}"], encoded[f"keys_{i}"], encoded[f"values_{i}"],
                encoded["mask"],
            )  # fmt: skip
        new["alignment"] = tf.reduce_mean(weights, axis=1)  # (batch, S), over heads
        return self.step_logits(self.decoder_norm(y)), new

    def search_width(self) -> int:
        """Floats a search keeps per row (a sentence's beam) and source piece, for export's memory
        bound: per decoder layer the cross keys and values, the scores, and a cache up to twice
        as long."""
        return self.decoder_layers * (6 * self.model_dim + self.heads)

    def probe_positions(self, source, target_in):
        """For the gradient probe: the encoder's output at each source position (no recurrence, so
        no directions), src_len x (batch, model_dim), and the logits (batch, T, vocab) computed
        from them, without dropout."""
        memory, mask = self.encode_memory(source)
        positions = tf.unstack(memory, axis=1)
        return positions, self.decode(target_in, tf.stack(positions, axis=1), mask)[0]

    def save_weights(self, filepath, overwrite=True, max_shard_size=None):
        """Keras' ``save_weights``, with the stacks under their names in earlier files (STORED_NAMES)."""
        super().save_weights(filepath, overwrite=overwrite, max_shard_size=max_shard_size)
        if max_shard_size is None and str(filepath).endswith(".weights.h5"):
            rename_groups(filepath, STORED_NAMES)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Keras' ``load_weights``, reading the stacks from their names in the file (STORED_NAMES)."""
        if not str(filepath).endswith(".weights.h5"):
            return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        with tempfile.TemporaryDirectory() as folder:  # Keras refuses links in a weights file: a copy
            renamed = Path(folder) / Path(filepath).name
            shutil.copyfile(filepath, renamed)
            rename_groups(renamed, {stored: name for name, stored in STORED_NAMES.items()})
            super().load_weights(renamed, skip_mismatch=skip_mismatch, **kwargs)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "model_dim": self.model_dim,
                "layers": self.layers_count, "heads": self.heads, "ff_dim": self.ff_dim,
                "dropout": self.dropout, "decoder_layers": self.decoder_layers}  # fmt: skip
