"""The model registry: ``build_model`` builds each variant of ``pipeline.constants.VARIANTS``
(variant -> cell, attention), which it also exports as ``pipeline.models.VARIANTS``."""

from __future__ import annotations

from pipeline.config import ModelConfig
from pipeline.constants import VARIANTS
from pipeline.models.ensemble import Ensemble
from pipeline.models.seq2seq import Seq2Seq
from pipeline.models.transformer import Transformer

# What search and export take: encode, then decode_step. The probe takes the first two alone.
Model = Seq2Seq | Transformer | Ensemble


def build_model(cfg: ModelConfig, vocab_size: int, fused: bool = True) -> Model:
    """A built (weights created) model for ``cfg.variant``; ``fused=False`` is the plain Keras path
    of the recurrent variants."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"unknown variant {cfg.variant!r}; choose one of {', '.join(VARIANTS)}")
    if cfg.variant == "transformer":
        model = Transformer(vocab_size, model_dim=cfg.embedding_dim, layers=cfg.layers, heads=cfg.heads,
                            ff_dim=cfg.ff_dim, dropout=cfg.dropout, decoder_layers=cfg.decoder_layers,
                            name=cfg.variant)  # fmt: skip
        model.build()
        return model
    cell, attention = VARIANTS[cfg.variant]
    model = Seq2Seq(
        vocab_size,
        cell=cell,
        attention=attention,
        embedding_dim=cfg.embedding_dim,
        units=cfg.units,
        attention_units=cfg.attention_units,
        dropout=cfg.dropout,
        fused=fused,
        tie_embeddings=cfg.tie_embeddings,
        name=cfg.variant,
    )
    model.build()
    return model
