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

from pipeline.constants import DEFAULT_CORPUS, PAIRS, STRATEGIES, VARIANT_NAMES
from pipeline.errors import ConfigError
from pipeline.files import write_text


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 8000
    model_type: str = "unigram"
    train_limit: int | None = None  # sentence pairs to train on; None: the whole train split
    # SentencePiece reads at most this many sentences, a random sample, when the split has more:
    # its memory stays bounded on any corpus (Multi30k's 58,000 are read whole)
    sample_sentences: int = 200_000


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 128
    max_length: int = 64  # pieces; longer training pairs are dropped
    pool_batches: int = 256  # batches' worth of examples sorted by length together (Multi30k: one epoch)
    train_limit: int | None = None  # None: the whole split
    eval_limit: int | None = None
    seed: int = 1234
    cache_pairs: int = 100_000  # a split up to this size is encoded once, kept in memory; larger ones stream
    # A file of the training split's targets, one a line in its order, read instead of its references:
    # a teacher's translations, to distill a student from (the teach stage). Validation and test keep theirs.
    train_targets: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "gru_bahdanau"
    embedding_dim: int = 256
    units: int = 256
    attention_units: int = 256
    dropout: float = 0.1  # on the embeddings and on the deep output (state, context, previous token)
    tie_embeddings: bool = False  # the output projection is the target embedding, transposed
    # The transformer variant's: encoder layers, decoder layers, attention heads, the feed-forward
    # inner size (embedding_dim is its model size; units and attention_units are the recurrent
    # variants'). The encoder runs once a sentence, the decoder once an output token and beam: a
    # shallow decoder searches faster, and on converge's 7 epochs learns less (docs/results.md).
    layers: int = 3
    decoder_layers: int = 3
    heads: int = 4
    ff_dim: int = 1024


@dataclass(frozen=True)
class TrainConfig:
    """How much to train is fixed here, in epochs and early stopping, never in seconds:
    a slower machine trains the same model, only later."""

    epochs: int = 10  # at most
    learning_rate: float = 2e-3
    clipnorm: float = 5.0  # on the global gradient norm
    label_smoothing: float = 0.0
    patience: int = 3  # epochs without a better validation BLEU (greedy) before stopping
    plateau_patience: int | None = None  # epochs without a better validation BLEU before halving the rate
    decay_from: int | None = None  # from the end of this epoch on, the rate is also halved after every epoch
    average: int = 0  # average the N best checkpoints, kept if that scores higher on validation
    length_penalties: tuple[float, ...] = (0.6,)  # tried on validation with beam 5; the best is the default
    # A guard: no epoch starts that would overrun it. Minutes at a `make bench` ceiling of 400 GFLOP/s;
    # a slower machine gets more in proportion (constants.REFERENCE_CEILING_GFLOPS).
    time_budget_minutes: float | None = None
    # 0: the rate is learning_rate until halved; N: it rises linearly to learning_rate over N steps,
    # then decays as 1/sqrt(step) (Vaswani et al.), and is never halved
    warmup_steps: int = 0
    seed: int = 1234
    # default (one device), mirrored (this machine's devices) or multi_worker (machines in TF_CONFIG);
    # data.batch_size stays the global batch, so the strategy changes the speed, not what is trained
    strategy: str = "default"


@dataclass(frozen=True)
class Config:
    pair: str = "de-en"
    corpus: str = DEFAULT_CORPUS  # or a TFDS catalogue dataset, e.g. ted_hrlr_translate/pt_to_en
    preset: str = "quick"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Length penalties (GNMT alpha) tried on validation with beam 5 at the end of a run.
LENGTH_PENALTIES = (0.0, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6, 2.0, 2.5, 3.0)

# The training recipe, each part kept because the validation split said so (`make tune`,
# reports/de-en/tuning/tuning.md): dropout, label smoothing, the learning rate halved when
# validation BLEU stalls, the average of the best checkpoints when it scores higher, and the
# length penalty chosen on validation.
RECIPE: dict[str, dict[str, Any]] = {
    "model": {"dropout": 0.3},
    "train": {
        "label_smoothing": 0.1,
        "plateau_patience": 1,
        "average": 3,
        "length_penalties": LENGTH_PENALTIES,
    },
}


def _merge(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values)
    return merged


# Each preset overrides the defaults above, section by section. Each fixes how much to train in
# epochs and early stopping; a time budget, where there is one, is a generous guard against a
# runaway run, and the run's train.json says when it fired.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # A smoke run of the whole chain in about a minute a variant: tests and CI.
    "tiny": {
        "tokenizer": {"vocab_size": 400, "train_limit": 2000},
        "data": {"batch_size": 32, "train_limit": 2000, "eval_limit": 64},
        "model": {
            "embedding_dim": 32,
            "units": 32,
            "attention_units": 32,
            "dropout": 0.0,
            "layers": 2,
            "decoder_layers": 2,
            "ff_dim": 64,
        },
        "train": {"epochs": 1},
    },
    # A first look: every variant for 3 epochs with the defaults, no early stopping.
    "quick": {
        "train": {"epochs": 3, "patience": 3},
    },
    # The comparison: every variant with one recipe and the same amount of training, 7 epochs at
    # most, the rate also halved after every epoch from the fifth, so each run anneals to its best
    # validation BLEU (halving on plateaus alone, make tune's B_d03, was at 31.38 greedy at epoch 7
    # and reached 35.04 at epoch 11). Seven epochs want less dropout than
    # the recipe's 0.3: on this schedule 0.1 reached 38.0 validation BLEU (beam 5) against 35.66
    # (make tune's F_converge_d01 and R_converge).
    "converge": _merge(
        RECIPE,
        {
            "model": {"dropout": 0.1},
            "train": {"epochs": 7, "decay_from": 5, "patience": 3, "time_budget_minutes": 60.0},
        },
    ),
    # A wider gru_bahdanau: a larger model, the same recipe, up to 30 epochs with early stopping.
    "full": _merge(
        RECIPE,
        {
            "model": {"embedding_dim": 512, "units": 512, "attention_units": 512},
            "train": {"epochs": 30, "patience": 3, "time_budget_minutes": 180.0},
        },
    ),
}


# What a variant needs whatever the preset: applied after the preset, before --set. The Transformer
# trains on its own schedule, warmup then 1/sqrt(step) decay, in place of the halvings; its peak
# rate is the one validation chose (make tune-transformer).
VARIANT_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "transformer": {"train": {"learning_rate": 2e-3, "warmup_steps": 400, "plateau_patience": None,
                              "decay_from": None}},
}  # fmt: skip


# The tuning runs (make tune, make tune-transformer: reports/de-en/tuning/), each one setting changed
# at a time on the validation split. A-E: gru_bahdanau on the quick defaults run to at most 12
# epochs, the rate halved on plateaus; R, F, G and T: the converge schedule itself (7 epochs, halved
# after every epoch from the 5th); transformer_*: the Transformer's peak rate and shape on converge's
# budget. Make's guard on wall time is off in all of them (the time_budget of None).
TUNING_BASE: dict[str, list[str]] = {
    "quick": ["train.epochs=12", "train.patience=3", "train.plateau_patience=1", "train.average=3",
              "train.length_penalties=[0.0,0.4,0.6,0.8,1.0,1.2]", "train.time_budget_minutes=None"],
    "converge": ["train.time_budget_minutes=None"],
}  # fmt: skip


@dataclass(frozen=True)
class TuningRun:
    preset: str
    variant: str
    settings: tuple[str, ...]  # section.key=value, after the preset's base

    @property
    def overrides(self) -> list[str]:
        return [*TUNING_BASE[self.preset], *self.settings]


TUNING_RUNS: dict[str, TuningRun] = {
    "A_d01": TuningRun("quick", "gru_bahdanau", ("model.dropout=0.1",)),
    "B_d03": TuningRun("quick", "gru_bahdanau", ("model.dropout=0.3",)),
    "C_d03_ls": TuningRun("quick", "gru_bahdanau", ("model.dropout=0.3", "train.label_smoothing=0.1")),
    "D_d03_ls_tie": TuningRun(
        "quick",
        "gru_bahdanau",
        ("model.dropout=0.3", "train.label_smoothing=0.1", "model.tie_embeddings=true"),
    ),
    "E_d03_decay5": TuningRun("quick", "gru_bahdanau", ("model.dropout=0.3", "train.decay_from=5")),
    "R_converge": TuningRun("converge", "gru_bahdanau", ("model.dropout=0.3",)),
    "F_converge_d01": TuningRun("converge", "gru_bahdanau", ("model.dropout=0.1",)),
    "G_converge_nols": TuningRun(
        "converge", "gru_bahdanau", ("model.dropout=0.3", "train.label_smoothing=0.0")
    ),
    "T_converge_tie": TuningRun("converge", "gru_bahdanau", ("model.tie_embeddings=true",)),
    # Peaks of 1e-3 and 5e-4 beside the converge run's own 2e-3 (read from its report folder).
    "transformer_peak1e3": TuningRun("converge", "transformer", ("train.learning_rate=1e-3",)),
    "transformer_peak5e4": TuningRun("converge", "transformer", ("train.learning_rate=5e-4",)),
    # A deep encoder with a shallow decoder (Kasai et al., 2021), and Transformer-tiny.
    "transformer_6x1": TuningRun("converge", "transformer", ("model.layers=6", "model.decoder_layers=1")),
    "transformer_tiny": TuningRun(
        "converge",
        "transformer",
        ("model.embedding_dim=128", "model.ff_dim=512", "model.layers=4", "model.decoder_layers=4"),
    ),
}


def tuning_run(name: str) -> TuningRun:
    if name not in TUNING_RUNS:
        raise ConfigError(f"unknown tuning run {name!r}; choose one of {', '.join(TUNING_RUNS)}")
    return TUNING_RUNS[name]


def make_config(
    preset: str = "quick",
    pair: str = "de-en",
    variant: str | None = None,
    overrides: list[str] | None = None,
    corpus: str = DEFAULT_CORPUS,
) -> Config:
    """The defaults, then the preset, then the variant's settings, then ``section.key=value`` overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    tree = to_dict(Config(pair=pair, corpus=corpus, preset=preset))
    for section, values in PRESETS[preset].items():
        tree[section].update(values)
    if variant:
        tree["model"]["variant"] = variant
    for section, values in VARIANT_SETTINGS.get(tree["model"]["variant"], {}).items():
        tree[section].update(values)
    for item in overrides or []:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in tree or not isinstance(tree[section], dict) or name not in tree[section]:
            raise ConfigError(
                f"unknown setting {key!r} in --set {item}; the settings are {', '.join(settings(tree))}"
            )
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


SECTIONS = {"tokenizer": TokenizerConfig, "data": DataConfig, "model": ModelConfig, "train": TrainConfig}

# The allowed values of each setting, checked whenever a config is made or loaded: (check, in words).
RANGES: dict[str, tuple[Any, str]] = {
    "tokenizer.vocab_size": (lambda v: v >= 16, "at least 16"),
    "tokenizer.model_type": (lambda v: v in ("unigram", "bpe", "char", "word"), "unigram, bpe, char or word"),
    "tokenizer.train_limit": (lambda v: v is None or v >= 1, "None or at least 1"),
    "tokenizer.sample_sentences": (lambda v: v >= 1000, "at least 1000"),
    "data.batch_size": (lambda v: v >= 1, "at least 1"),
    "data.max_length": (lambda v: v >= 2, "at least 2"),
    "data.pool_batches": (lambda v: v >= 1, "at least 1"),
    "data.train_limit": (lambda v: v is None or v >= 1, "None or at least 1"),
    "data.eval_limit": (lambda v: v is None or v >= 1, "None or at least 1"),
    "data.cache_pairs": (lambda v: v >= 0, "0 (always stream) or more"),
    "model.variant": (lambda v: v in VARIANT_NAMES, f"one of {', '.join(VARIANT_NAMES)}"),
    "model.embedding_dim": (lambda v: v >= 1, "at least 1"),
    "model.units": (lambda v: v >= 1, "at least 1"),
    "model.attention_units": (lambda v: v >= 1, "at least 1"),
    "model.dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "model.layers": (lambda v: v >= 1, "at least 1"),
    "model.decoder_layers": (lambda v: v >= 1, "at least 1"),
    "model.heads": (lambda v: v >= 1, "at least 1"),
    "model.ff_dim": (lambda v: v >= 1, "at least 1"),
    "train.epochs": (lambda v: v >= 1, "at least 1"),
    "train.learning_rate": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "train.clipnorm": (lambda v: v > 0, "positive"),
    "train.label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.patience": (lambda v: v >= 1, "at least 1"),
    "train.plateau_patience": (lambda v: v is None or v >= 1, "None or at least 1"),
    "train.decay_from": (lambda v: v is None or v >= 1, "None or at least 1"),
    "train.average": (lambda v: v >= 0, "0 (off) or more"),
    "train.length_penalties": (
        lambda v: len(v) >= 1 and all(0 <= a <= 10 for a in v),
        "one or more in [0, 10]",
    ),
    "train.time_budget_minutes": (lambda v: v is None or v > 0, "None or positive"),
    "train.warmup_steps": (lambda v: v >= 0, "0 (none) or more"),
    "train.strategy": (lambda v: v in STRATEGIES, ", ".join(STRATEGIES[:-1]) + f" or {STRATEGIES[-1]}"),
}


def _typed(key: str, value: Any, annotation: str) -> Any:
    """``value`` as the field's type (an int where a float is asked is a float), or a ConfigError."""
    allowed = {t.strip() for t in annotation.split("|")}
    if value is None and "None" in allowed:
        return None
    if "bool" in allowed and isinstance(value, bool):
        return value
    if not isinstance(value, bool):  # bool is an int in Python, never one here
        if "int" in allowed and isinstance(value, int):
            return value
        if "float" in allowed and isinstance(value, int | float):
            return float(value)
        if "str" in allowed and isinstance(value, str):
            return value
        if "tuple[float, ...]" in allowed and isinstance(value, list | tuple):
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                return tuple(float(v) for v in value)
    raise ConfigError(f"{key} must be {annotation.replace('|', 'or')}, not {value!r}")


def with_decoder_depth(model: dict[str, Any]) -> dict[str, Any]:
    """A config.json's model section; one from before the decoder had a depth of its own is as
    deep on each side."""
    if "layers" in model and "decoder_layers" not in model:
        return {**model, "decoder_layers": model["layers"]}
    return model


def from_dict(tree: dict[str, Any]) -> Config:
    """A Config from its JSON form, every value checked for type and range."""
    kwargs: dict[str, Any] = {}
    for name, value in tree.items():
        if name in ("pair", "corpus", "preset"):
            kwargs[name] = value
            continue
        if name not in SECTIONS or not isinstance(value, dict):
            raise ConfigError(f"unknown config section {name!r}")
        fields = {f.name: f.type for f in dataclasses.fields(SECTIONS[name])}
        if name == "model":
            value = with_decoder_depth(value)
        checked = {}
        for key, item in value.items():
            if key not in fields:
                raise ConfigError(f"unknown setting {name}.{key}")
            checked[key] = _typed(f"{name}.{key}", item, fields[key])
            check, allowed = RANGES.get(f"{name}.{key}", (lambda v: True, ""))
            if not check(checked[key]):
                raise ConfigError(f"{name}.{key} must be {allowed}, not {item!r}")
        kwargs[name] = SECTIONS[name](**checked)
    check_pair(kwargs.get("pair", "de-en"), kwargs.get("corpus", DEFAULT_CORPUS))
    cfg = Config(**kwargs)  # a config.json from before corpora had names is Multi30k's
    check_together(cfg)
    return cfg


def check_together(cfg: Config) -> None:
    """Settings that are each fine but do not go together."""
    if cfg.train.warmup_steps and (cfg.train.plateau_patience or cfg.train.decay_from):
        raise ConfigError("train.warmup_steps schedules the rate itself: set train.plateau_patience and "
                          "train.decay_from to None with it")  # fmt: skip
    if cfg.model.variant == "transformer" and cfg.model.embedding_dim % cfg.model.heads:
        sizes = f"model.embedding_dim ({cfg.model.embedding_dim}) and model.heads ({cfg.model.heads})"
        raise ConfigError(f"the transformer splits its model size over its heads: {sizes} do not divide")


def check_variants(variants: list[str]) -> None:
    """A ConfigError naming the first of ``variants`` that is not a model variant."""
    for variant in variants:
        if variant not in VARIANT_NAMES:
            raise ConfigError(f"unknown variant {variant!r}; the variants are {', '.join(VARIANT_NAMES)}")


def check_pair(pair: str, corpus: str = DEFAULT_CORPUS) -> None:
    """Multi30k's pairs by name; for another corpus, the form only (``pipeline.corpus`` checks
    its languages once the dataset's features are known)."""
    if corpus == DEFAULT_CORPUS and pair not in PAIRS:
        raise ConfigError(f"unknown language pair {pair!r}; choose one of {', '.join(PAIRS)}")
    source, _, target = pair.partition("-")
    if not (source and target) or "-" in target or source == target:
        raise ConfigError(f"--pair {pair!r} must be two different languages, source-target, e.g. pt-en")


def settings(tree: dict[str, Any]) -> list[str]:
    """Every ``section.key`` that ``--set`` accepts."""
    return [
        f"{section}.{key}" for section, values in tree.items() if isinstance(values, dict) for key in values
    ]


def save_config(cfg: Config, path: Path) -> Path:
    return write_text(path, json.dumps(to_dict(cfg), indent=2) + "\n")


def load_config(path: Path) -> Config:
    return from_dict(json.loads(Path(path).read_text()))
