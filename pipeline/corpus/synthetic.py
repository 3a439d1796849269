"""A synthetic translation dataset of any size, in the TFDS layout: the memory benchmark's corpus,
and a test corpus whose target is a known function of its source.

Registered in the TFDS catalogue as ``synthetic_translate`` when this module is imported (the
reader imports it), so it is a corpus by name like any other:
``--corpus synthetic_translate/pairs_1000000 --pair xx-yy``. Sentences are drawn from a fixed
vocabulary of pseudo-words with Zipf-like frequencies, each from its own seed, so every size
and every run generates the same text. The ``yy`` side is ``translate(xx)``: the words in
reverse order, upper-cased.
"""

from __future__ import annotations

import itertools
import random

import tensorflow_datasets as tfds

LANGUAGES = ("xx", "yy")
SIZES = (200, 2_000, 100_000, 1_000_000)  # training pairs of each config
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70
# 4,900 two-syllable words and the 70 one-syllable ones; the shortest words are the most frequent.
WORDS = SYLLABLES + [a + b for a in SYLLABLES for b in SYLLABLES]
CUMULATIVE_WEIGHTS = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(WORDS))))
SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


def config_name(train_pairs: int) -> str:
    return f"pairs_{train_pairs}"


def translate(sentence: str) -> str:
    """The synthetic target of a source sentence."""
    return " ".join(word.upper() for word in reversed(sentence.split()))


def sentence(split: str, index: int) -> str:
    """Example ``index`` of ``split``: 3 to 24 words, the same on every machine."""
    rng = random.Random(SPLIT_SEEDS[split] * 10**9 + index)
    return " ".join(rng.choices(WORDS, cum_weights=CUMULATIVE_WEIGHTS, k=rng.randint(3, 24)))


def held_out_pairs(train_pairs: int) -> int:
    """Validation and test size: a tenth of the training split, from 20 to 1,000 pairs."""
    return min(1000, max(20, train_pairs // 10))


class SyntheticTranslateConfig(tfds.core.BuilderConfig):
    def __init__(self, *, train_pairs: int, **kwargs):
        super().__init__(name=config_name(train_pairs), description=f"{train_pairs:,} pairs", **kwargs)
        self.train_pairs = train_pairs


class SyntheticTranslate(tfds.core.GeneratorBasedBuilder):
    """Pseudo-sentences ``xx`` and their reversed, upper-cased ``yy``: train, validation, test."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [SyntheticTranslateConfig(train_pairs=n) for n in SIZES]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.Translation(languages=LANGUAGES),
            supervised_keys=LANGUAGES,
            disable_shuffling=True,  # generated in order; shuffling a million examples costs time and disk
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        held_out = held_out_pairs(self.builder_config.train_pairs)
        sizes = {"train": self.builder_config.train_pairs, "validation": held_out, "test": held_out}
        return {split: self._generate_examples(split, n) for split, n in sizes.items()}

    def _generate_examples(self, split: str, n: int):
        for index in range(n):
            xx = sentence(split, index)
            yield index, {"xx": xx, "yy": translate(xx)}
