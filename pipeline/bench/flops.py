"""The arithmetic of a training step, counted on real (unpadded) tokens.

Only matrix products are counted (2 FLOPs per multiply-add): the dense layers, the
recurrent kernels and attention's scores and context. Element-wise work (gate
non-linearities, softmax, the loss) is left out, which makes the floor lower, never
higher. The backward pass of a matrix product costs two more of the same size (one
for the input gradient, one for the weight gradient), so a training step is three
forward passes (Kaplan et al., 2020, section 2.1).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import ModelConfig
from pipeline.models import VARIANTS
from pipeline.models.cells import STATES  # state tensors per cell, one bridge each

GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # kernel blocks per cell
TRAINING_PASSES = 3  # forward + backward


def transformer_flops_per_token(cfg: ModelConfig, vocab_size: int) -> dict[str, int]:
    """The Transformer's: per layer, the four attention projections and the feed-forward pair of
    each sub-layer, the scores and weighted sums of each attention (self-attention over pairs of
    source tokens, and of target tokens up to the current one), and the tied output projection."""
    d, f, encoder, decoder = cfg.embedding_dim, cfg.ff_dim, cfg.layers, cfg.decoder_layers
    per_source = encoder * (8 * d * d + 4 * d * f)  # encoder: q, k, v, o and the feed-forward
    per_source += decoder * 4 * d * d  # each decoder layer's cross-attention keys and values
    per_target = decoder * (8 * d * d + 4 * d * d + 4 * d * f) + 2 * d * vocab_size  # self q k v o, cross q o
    return {
        "source": per_source,
        "target": per_target,
        "pair": decoder * 4 * d,
        "source_pair": encoder * 4 * d,
        "target_pair": decoder * 4 * d,
        "sentence": 0,
    }


def forward_flops_per_token(cfg: ModelConfig, vocab_size: int) -> dict[str, int]:
    """Forward FLOPs of the model's parts, per source token, target token and (source, target) pair;
    the Transformer's also per pair of source tokens and per (causal) pair of target tokens."""
    if cfg.variant == "transformer":
        return transformer_flops_per_token(cfg, vocab_size)
    cell, attention = VARIANTS[cfg.variant]
    gates, e, u, a = GATES[cell], cfg.embedding_dim, cfg.units, cfg.attention_units
    memory = 2 * u  # the bidirectional encoder's output size
    per_source = 2 * (2 * gates * u * (e + u))  # both directions: input and recurrent kernels
    r = e if cfg.tie_embeddings else u  # the deep output's size
    # The cell's input: the previous token and the context, attention's (per target) or the single
    # context vector (the same at every step: its product is once per sentence, below).
    per_target = 2 * gates * u * (e + (memory if attention else 0) + u)
    per_target += 2 * (u + memory + e) * r + 2 * r * vocab_size  # the deep output reads the context too
    per_pair = 0
    if attention == "bahdanau":
        per_source += 2 * memory * a  # keys, once per sentence
        per_target += 2 * u * a  # the query
        per_pair = 2 * a + 2 * memory  # score (v . tanh) and the context's weighted sum
    elif attention == "luong":
        per_source += 2 * memory * u  # W k, once per sentence
        per_pair = 2 * u + 2 * memory  # score (q . Wk) and the context
    per_sentence = STATES[cell] * 2 * memory * u  # the bridges
    if not attention:
        per_sentence += 2 * memory * gates * u  # the single context vector's share of the cell's input
    return {"source": per_source, "target": per_target, "pair": per_pair, "sentence": per_sentence}


def training_step_flops(
    cfg: ModelConfig, vocab_size: int, source_lengths: Sequence[int], target_lengths: Sequence[int]
) -> int:
    """FLOPs of one training step (forward and backward) on a batch of real lengths.

    source_lengths: real source tokens per sentence, EOS included.
    target_lengths: real decoder steps per sentence (BOS and the words; as many as the
        words and EOS that the loss scores).
    """
    per = forward_flops_per_token(cfg, vocab_size)
    forward = sum(
        s * per["source"] + t * per["target"] + s * t * per["pair"] + per["sentence"]
        + s * s * per.get("source_pair", 0) + t * (t + 1) // 2 * per.get("target_pair", 0)
        for s, t in zip(source_lengths, target_lengths, strict=True)
    )  # fmt: skip
    return TRAINING_PASSES * forward
