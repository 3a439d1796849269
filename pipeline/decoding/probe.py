"""The gradient-flow probe: how much of the loss's gradient reaches each source position.

The classic lesson on vanishing gradients, measured on our own models. For each
source position t we take the encoder's forward-direction state h_t and ask how
strongly the translation loss depends on it: ``|| d loss / d h_t ||``.

Without attention the decoder sees the source only through the encoder's final
states, so the gradient that reaches position t has travelled back through every
recurrent step from t to the end of the sentence, multiplied by one Jacobian per
step. For a tanh RNN those Jacobians are mostly contractions, so the gradient
shrinks with distance from the end: the first words of a long sentence learn
least. LSTM and GRU cells keep an additive path through the state and lose less.
Attention reads every encoder state directly, which gives every position a path
of constant length to the loss. That path is not a promise of equal gradient: it is
weighted by the attention a position receives, and the recurrent path beside it still
decays, so a trained attention model's profile need not be flat (the report's table
gives first position over last for each variant).

To take a gradient with respect to each h_t we need h_t as a tensor, which the
fused Keras RNN layer does not expose; so the encoder's two cells are unrolled,
step by step, in eager mode (``RecurrentEncoder.unroll``), and the decoder is called
on the result. The unroll is the model's own function: ``check_unrolled`` compares
it with the encoder's output. Each model says where the probe differentiates
(``probe_positions``): the Transformer, without recurrence, at its encoder's output.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import ops

from pipeline.constants import PAD_ID
from pipeline.models.losses import masked_cross_entropy
from pipeline.models.seq2seq import Seq2Seq
from pipeline.models.transformer import Transformer


def _check_unpadded(source) -> np.ndarray:
    source = np.asarray(source)
    if source.ndim != 2:
        raise ValueError(f"source must be (batch, src_len) ids, got shape {source.shape}")
    if np.any(source == PAD_ID):
        # The encoder's unroll ignores masks: with padding its states would differ from the model's.
        raise ValueError("source contains padding; pass sentences of one length, without PAD")
    return source


def check_unrolled(model: Seq2Seq, source) -> float:
    """Max abs difference between the hand-unrolled encoder and ``model.encoder(source)``.

    Compares the memory (every position, both directions) and the final states,
    so for LSTM the cell states c are checked too. Raises ValueError on padding.
    """
    source = _check_unpadded(source)
    memory, states, _ = model.encoder.unroll(source)
    expected_memory, _, expected_states = model.encoder(source, training=False)
    diffs = [ops.max(ops.abs(memory - expected_memory))]
    diffs += [ops.max(ops.abs(s - e)) for s, e in zip(states, expected_states, strict=True)]
    return float(max(float(d) for d in diffs))


def gradient_flow(model: Seq2Seq | Transformer, source, target_in, target_out) -> np.ndarray:
    """Mean over the batch of ``|| d loss / d h_t ||_2`` for each source position t.

    h_t is the encoder's forward-direction state at position t (for the Transformer, which has
    no directions, the encoder's output at position t), and the loss is
    ``masked_cross_entropy(target_out, logits)``, the training loss, computed
    without dropout.

    Args:
        model: a built Seq2Seq or Transformer.
        source: (batch, src_len) int ids with NO padding: every sentence of the batch
            must have the same length (pick them so); the unroll ignores masks.
        target_in: (batch, tgt_len) ids, BOS first; may be right-padded.
        target_out: (batch, tgt_len) ids; padding is left out of the loss.

    Returns:
        float64 array (src_len,).

    Raises:
        ValueError: if ``source`` contains PAD_ID.
    """
    source = _check_unpadded(source)
    target_in = np.asarray(target_in)
    target_out = np.asarray(target_out)
    with tf.GradientTape() as tape:
        # src_len x (batch, dim) tensors, and the logits (batch, tgt_len, vocab) computed from them
        positions, logits = model.probe_positions(tf.constant(source), target_in)
        loss = masked_cross_entropy(target_out, logits)
    # A position the loss does not depend on gets zeros, not None.
    grads = tape.gradient(loss, positions, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    # each grad: (batch, units) -> norms: (batch, src_len)
    norms = np.stack([np.linalg.norm(g.numpy().astype(np.float64), axis=-1) for g in grads], axis=1)
    return norms.mean(axis=0)
