"""Configuration: frozen dataclasses per stage, presets, and their JSON form.

Every run directory keeps the resolved ``config.json``, so export and evaluate
rebuild exactly the model that was trained.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 8000
    model_type: str = "unigram"
    train_limit: int | None = None  # sentence pairs to train on; None: the whole train split


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 128
    max_length: int = 64  # pieces; longer training pairs are dropped
    pool_batches: int = 256  # batches' worth of examples sorted by length together (Multi30k: one epoch)
    train_limit: int | None = None  # None: the whole split
    eval_limit: int | None = None
    seed: int = 1234


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "gru_bahdanau"
    embedding_dim: int = 256
    units: int = 256
    attention_units: int = 256
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    learning_rate: float = 2e-3
    clipnorm: float = 5.0  # on the global gradient norm
    patience: int = 3  # epochs without a better validation loss before stopping
    time_budget_minutes: float | None = None  # no new epoch starts that would overrun it
    seed: int = 1234


@dataclass(frozen=True)
class Config:
    pair: str = "de-en"
    preset: str = "quick"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Each preset overrides the defaults above, section by section.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # A smoke run of the whole chain in about a minute: tests and CI.
    "tiny": {
        "tokenizer": {"vocab_size": 400, "train_limit": 2000},
        "data": {"batch_size": 32, "train_limit": 2000, "eval_limit": 64},
        "model": {"embedding_dim": 32, "units": 32, "attention_units": 32, "dropout": 0.0},
        "train": {"epochs": 1},
    },
    # The default: every variant trained, exported and scored by one `make all` within 45 minutes
    # on a 2-core CPU; each variant gets the same 5 minutes of training (gru_bahdanau: 3-4 epochs).
    "quick": {
        "train": {"epochs": 10, "time_budget_minutes": 5.0},
    },
    # The published-level setting, for a long run.
    "full": {
        "model": {"embedding_dim": 512, "units": 512, "attention_units": 512, "dropout": 0.3},
        "train": {"epochs": 40, "patience": 5, "learning_rate": 1e-3},
    },
}


def make_config(
    preset: str = "quick", pair: str = "de-en", variant: str | None = None, overrides: list[str] | None = None
) -> Config:
    """The defaults, then the preset, then the variant, then ``section.key=value`` overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    tree = to_dict(Config(pair=pair, preset=preset))
    for section, values in PRESETS[preset].items():
        tree[section].update(values)
    if variant:
        tree["model"]["variant"] = variant
    for item in overrides or []:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in tree or not isinstance(tree[section], dict) or name not in tree[section]:
            raise ValueError(f"unknown setting {key!r} in override {item!r}")
        tree[section][name] = _parse(value)
    return from_dict(tree)


def _parse(value: str) -> Any:
    """``8`` -> 8, ``[8, 16]`` -> [8, 16], ``None`` -> None, ``gru`` -> "gru"."""
    if value in ("", "None", "null"):
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(tree: dict[str, Any]) -> Config:
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    kwargs: dict[str, Any] = {}
    for name, value in tree.items():
        if name not in sections:
            raise ValueError(f"unknown config section {name!r}")
        if isinstance(value, dict):
            cls = {
                "tokenizer": TokenizerConfig,
                "data": DataConfig,
                "model": ModelConfig,
                "train": TrainConfig,
            }[name]
            value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
            value = cls(**value)
        kwargs[name] = value
    return Config(**kwargs)


def save_config(cfg: Config, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    return path


def load_config(path: Path) -> Config:
    return from_dict(json.loads(Path(path).read_text()))
