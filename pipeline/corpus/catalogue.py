"""Any translation dataset of the TFDS catalogue, by name, as a corpus of sentence pairs.

``ted_hrlr_translate/pt_to_en`` with pair ``pt-en`` reads the dataset's ``pt`` feature as the
source and ``en`` as the target; ``en-pt`` swaps them. The dataset's own direction (its
``supervised_keys``) does not matter: a pair only has to name two of its languages.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from pipeline.errors import ConfigError, CorpusError

# TFDS caches a split that fits in a few hundred MiB in memory on its first pass (autocache),
# which makes the memory of every reader grow with the corpus; the stages cache what they need.
READ = tfds.ReadConfig(try_autocache=False)

# Our stages' split names, and the names a catalogue dataset may give the same split, in order.
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "dev", "valid"), "test": ("test",)}


def builder(name: str, data_dir: Path) -> tfds.core.DatasetBuilder:
    """The builder of ``name`` (``dataset[/config][:version]``); a ConfigError if TFDS has none."""
    try:
        return tfds.builder(name, data_dir=str(data_dir))
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ConfigError(f"--corpus {name}: no such dataset in the TFDS catalogue") from error
    except ValueError as error:  # an unknown config or version: TFDS names the ones it has
        raise ConfigError(f"--corpus {name}: {str(error).splitlines()[0]}") from error


def languages(builder: tfds.core.DatasetBuilder) -> tuple[str, ...]:
    """The languages of a translation dataset: its Translation feature's, or its text features'."""
    features = builder.info.features
    if isinstance(features, tfds.features.Translation):
        return tuple(features.languages)
    if isinstance(features, tfds.features.FeaturesDict):
        return tuple(k for k, f in features.items() if isinstance(f, tfds.features.Text))
    raise ConfigError(f"{builder.name} is not a translation dataset (features {type(features).__name__})")


def check_languages(builder: tfds.core.DatasetBuilder, source: str, target: str) -> None:
    """A ConfigError naming the languages the dataset has, if it lacks ``source`` or ``target``."""
    have = languages(builder)
    missing = [lang for lang in (source, target) if lang not in have]
    if missing:
        raise ConfigError(
            f"{builder.info.full_name} has no {' or '.join(repr(m) for m in missing)}: "
            f"its languages are {', '.join(have)}; choose --pair from them, e.g. {have[0]}-{have[-1]}"
        )


def split_name(builder: tfds.core.DatasetBuilder, split: str) -> str:
    """The dataset's name for one of our splits (train, validation, test); a CorpusError if it has none."""
    have = list(builder.info.splits)
    for name in SPLIT_NAMES[split]:
        if name in have:
            return name
    raise CorpusError(
        f"{builder.info.full_name} has no {split} split (it has {', '.join(have) or 'none'}); "
        "the stages need train, validation and test"
    )


def load(builder: tfds.core.DatasetBuilder, source: str, target: str, split: str) -> tf.data.Dataset:
    """One split as a tf.data.Dataset of (source, target) strings, in the dataset's order."""
    examples = builder.as_dataset(split=split_name(builder, split), shuffle_files=False, read_config=READ)
    return examples.map(lambda ex: (ex[source], ex[target]), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)  # fmt: skip
