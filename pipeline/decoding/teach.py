"""The teach stage: a teacher SavedModel's translations of the training split, the targets a student
is distilled from (sequence-level knowledge distillation, Kim and Rush, 2016).

The translations go to ``<out_root>/<teacher>-<version>/train.<target language>``, one a line in the
split's order: keyed on the teacher's export, so a second student of the same teacher reuses them,
and a new export of the teacher is translated afresh. They are written in shards of ``chunk``
sentences, each whole or not at all, so a killed run goes on from its last finished shard.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras

from pipeline import corpus
from pipeline.constants import DEFAULT_BEAM_SIZE, DEFAULT_CORPUS
from pipeline.decoding.evaluate import default_length_penalty, load_translator, translate_all
from pipeline.files import write_json, write_text
from pipeline.layout import TEACHER_JSON, TEACHER_SHARDS, teacher_shard, teacher_targets
from pipeline.progress import verbosity


def teacher_folder(model_dir: Path, out_root: Path) -> Path:
    """``data/distill/de-en/best-3`` for the SavedModel ``saved_models/best/3``."""
    return out_root / f"{model_dir.parent.name}-{model_dir.name}"


def translate_shards(translator, sources: list[str], shards: Path, chunk: int, beam_size: int) -> list[Path]:
    """Each ``chunk`` of ``sources`` translated into its shard, unless that shard is written already."""
    paths = [shards / teacher_shard(i) for i in range(-(-len(sources) // chunk))]
    bar = keras.utils.Progbar(len(sources), unit_name="sentence", verbose=verbosity())
    for i, path in enumerate(paths):
        part = sources[i * chunk : (i + 1) * chunk]
        if not path.is_file():
            lines = translate_all(translator, part, beam_size, progress=False)
            write_text(path, "".join(line + "\n" for line in lines))
        bar.add(len(part))
    return paths


def teach(
    model: Path,
    pair: str,
    data_dir: Path,
    out_root: Path,
    corpus_name: str = DEFAULT_CORPUS,
    beam_size: int = DEFAULT_BEAM_SIZE,
    chunk: int = 1024,
) -> Path:
    """Translates the training split with the SavedModel ``model`` (beam ``beam_size``, its default
    length penalty); returns the translations' file, reused if it exists."""
    translator, model_dir = load_translator(model)
    folder = teacher_folder(model_dir, out_root)
    target = folder / teacher_targets(corpus.pair_languages(pair, corpus_name)[1])
    if target.is_file():
        print(f"{target} is translated already by {model_dir}")
        return target
    sources, _ = corpus.read_split(pair, "train", data_dir, None, corpus_name)
    paths = translate_shards(translator, sources, folder / TEACHER_SHARDS, chunk, beam_size)
    text = "".join(path.read_text(encoding="utf-8") for path in paths)
    write_json(folder / TEACHER_JSON, {"model": str(model_dir), "pair": pair, "corpus": corpus_name,
                                       "sentences": len(sources), "beam_size": beam_size,
                                       "length_penalty": default_length_penalty(translator)})  # fmt: skip
    write_text(target, text)  # last: with it the translations are done
    shutil.rmtree(folder / TEACHER_SHARDS)
    return target
