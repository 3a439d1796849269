"""The shared pair reader: a corpus by name and a language pair, as (source, target) strings.

``multi30k`` (the default) is this package's own builder; any other name is a dataset of the
TFDS catalogue (``catalogue.py``), the synthetic one of ``synthetic.py`` included. The stages
call only the functions here, so they do not care which corpus it is. ``write_split`` leaves a
whole split in one JSON file, for the stages that must not load TensorFlow (the report).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from pipeline.config import check_pair
from pipeline.constants import DEFAULT_CORPUS, DEFAULT_CORPUS_TITLE
from pipeline.corpus import catalogue, multi30k, synthetic  # noqa: F401  synthetic: registers its builder
from pipeline.errors import UserError
from pipeline.files import write_json


def pair_languages(pair: str, corpus_name: str) -> tuple[str, str]:
    """``pt-en`` -> ("pt", "en"): checked for its form here, against the corpus's languages later."""
    check_pair(pair, corpus_name)
    source, target = pair.split("-")
    return source, target


def open_builder(pair: str, data_dir: Path, corpus_name: str = DEFAULT_CORPUS):
    """(builder, source language, target language); a ConfigError if the corpus lacks a language.

    Only metadata is read (the catalogue defines features in code), so this runs before any work.
    """
    if corpus_name == DEFAULT_CORPUS:
        source, target = multi30k.split_pair(pair)
        return multi30k.Multi30k(config=pair, data_dir=str(data_dir)), source, target
    source, target = pair_languages(pair, corpus_name)
    builder = catalogue.builder(corpus_name, data_dir)
    catalogue.check_languages(builder, source, target)
    return builder, source, target


def prepare(
    pair: str, data_dir: Path, manual_dir: Path | None = None, corpus_name: str = DEFAULT_CORPUS
) -> Path:
    """The data stage: builds (downloads, generates) the TFDS dataset and returns its directory."""
    builder, _, _ = open_builder(pair, data_dir, corpus_name)
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
    builder.download_and_prepare(download_config=config)
    if corpus_name != DEFAULT_CORPUS:
        for split in catalogue.SPLIT_NAMES:  # a missing split is an error now, not at training time
            catalogue.split_name(builder, split)
    return Path(builder.data_dir)


def prepared(pair: str, data_dir: Path, corpus_name: str = DEFAULT_CORPUS):
    """``open_builder``'s triple, or a UserError if the data stage has not built the dataset."""
    builder, source, target = open_builder(pair, data_dir, corpus_name)
    if not builder.is_prepared():
        name = DEFAULT_CORPUS_TITLE if corpus_name == DEFAULT_CORPUS else corpus_name
        raise UserError(f"{name} {pair} is not prepared in {data_dir}: run the data stage first (make data)")
    return builder, source, target


def load_split(pair: str, split: str, data_dir: Path, corpus_name: str = DEFAULT_CORPUS) -> tf.data.Dataset:
    """A prepared split (train, validation, test) as a tf.data.Dataset of (source, target) strings."""
    builder, source, target = prepared(pair, data_dir, corpus_name)
    if corpus_name == DEFAULT_CORPUS:
        return builder.as_dataset(
            split=split, as_supervised=True, shuffle_files=False, read_config=catalogue.READ
        )
    return catalogue.load(builder, source, target, split)


def split_size(pair: str, split: str, data_dir: Path, corpus_name: str = DEFAULT_CORPUS) -> int:
    """The number of sentence pairs in a prepared split, from the builder's metadata (no pass)."""
    builder, _, _ = prepared(pair, data_dir, corpus_name)
    name = split if corpus_name == DEFAULT_CORPUS else catalogue.split_name(builder, split)
    return builder.info.splits[name].num_examples


def split_title(pair: str, split: str, data_dir: Path, corpus_name: str = DEFAULT_CORPUS) -> str:
    """What reports call a split: Multi30k's file stem (test_2016_flickr), or the TFDS split's name."""
    if corpus_name == DEFAULT_CORPUS:
        return multi30k.SPLITS[split]
    return catalogue.split_name(prepared(pair, data_dir, corpus_name)[0], split)


def read_split(
    pair: str, split: str, data_dir: Path, limit: int | None = None, corpus_name: str = DEFAULT_CORPUS
) -> tuple[list[str], list[str]]:
    """The first ``limit`` (default: all) sentence pairs of a split, as source and target lists."""
    pairs = load_split(pair, split, data_dir, corpus_name)
    pairs = pairs.take(limit) if limit else pairs
    sources, targets = [], []
    for source, target in pairs.as_numpy_iterator():
        sources.append(source.decode("utf-8"))
        targets.append(target.decode("utf-8"))
    return sources, targets


def write_split(pair: str, split: str, data_dir: Path, out: Path, corpus_name: str = DEFAULT_CORPUS) -> Path:
    """The split stage: a whole prepared split as JSON, what the report reads instead of the corpus:
    ``{"corpus", "pair", "split", "title" (split_title's), "sources": [...], "references": [...]}``."""
    sources, references = read_split(pair, split, data_dir, None, corpus_name)
    title = split_title(pair, split, data_dir, corpus_name)
    return write_json(out, {"corpus": corpus_name, "pair": pair, "split": split, "title": title,
                            "sources": sources, "references": references})  # fmt: skip
