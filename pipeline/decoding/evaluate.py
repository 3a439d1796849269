"""The evaluate stage: translate a split through the exported SavedModel and score it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the SentencePiece ops of the text SavedModel
from google.protobuf.message import DecodeError

from pipeline import corpus, layout
from pipeline.constants import DEFAULT_BEAM_SIZE, DEFAULT_CORPUS, DEFAULT_LENGTH_PENALTY, IDS_SUFFIX
from pipeline.errors import UserError
from pipeline.files import saved_model_dir, write_json, write_text
from pipeline.metrics import BOOTSTRAP_SAMPLES, score
from pipeline.progress import verbosity


def load_translator(model: Path):
    """The text SavedModel in its version directory, or the latest version under a base directory;
    a UserError for anything else (an unreadable SavedModel, the ids-only servable)."""
    model = saved_model_dir(model)
    try:
        translator = tf.saved_model.load(str(model))
    except (DecodeError, OSError, ValueError, tf.errors.OpError) as error:
        raise UserError(
            f"{model} holds no readable SavedModel ({type(error).__name__}): export the run again"
        ) from error
    if not hasattr(translator, "translate"):
        raise UserError(
            f"{model} is the ids-only servable (ids in, ids out, for TensorFlow Serving): translate and "
            f"evaluate read the text servable beside it, without {IDS_SUFFIX}"
        )
    return translator, model


def default_length_penalty(translator) -> float:
    """The length penalty the model was tuned with; DEFAULT_LENGTH_PENALTY if the export does not say."""
    if not hasattr(translator, "default_length_penalty"):
        return DEFAULT_LENGTH_PENALTY
    return round(float(translator.default_length_penalty.numpy()), 4)


def decoding_name(beam_size: int, length_penalty: float, default_penalty: float) -> str:
    """``greedy``, ``beam5``, or ``beam5-lp1.0`` when the length penalty is not the model's default."""
    if beam_size == 1:
        return "greedy"  # one beam: the length penalty cannot change the ranking
    name = f"beam{beam_size}"
    return name if length_penalty == default_penalty else f"{name}-lp{length_penalty}"


class Translations(list):
    """Translations in order (a list of str), and the smallest beam any batch was searched with."""

    beam_size: int


def translate_all(
    translator,
    sources: list[str],
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> Translations:
    """Translations of ``sources``, in order, ``batch_size`` sentences per call; ``length_penalty``
    None is the model's default.

    The calls take the sentences by length (of their text: the pieces are the SavedModel's), so a
    batch pads little and its search runs as many steps as its own longest sentence needs, not
    the longest of a batch drawn at random; the translations come back in the order given.

    The SavedModel lowers the beam of a request too large for its memory bound: then a line on
    stderr says so, and ``.beam_size`` of the result is the smallest beam used.
    """
    if length_penalty is None:
        length_penalty = default_length_penalty(translator)
    bar = keras.utils.Progbar(len(sources), unit_name="sentence", verbose=verbosity()) if progress else None
    beam, alpha = tf.constant(beam_size, tf.int32), tf.constant(length_penalty, tf.float32)
    by_length = sorted(range(len(sources)), key=lambda i: len(sources[i]))  # stable: ties keep their order
    translated, lowered, smallest = [""] * len(sources), 0, beam_size
    for start in range(0, len(sources), batch_size):
        rows = by_length[start : start + batch_size]
        out = translator.translate(tf.constant([sources[i] for i in rows]), beam, alpha)
        for i, text in zip(rows, out["translations"].numpy(), strict=True):
            translated[i] = text.decode("utf-8")
        used = int(out["beam_size"].numpy().min()) if "beam_size" in out and rows else beam_size
        if used < beam_size:
            lowered += 1
            smallest = min(smallest, used)
        if bar:
            bar.add(len(rows))
    hypotheses = Translations(translated)
    hypotheses.beam_size = smallest
    if lowered:
        print(f"warning: beam {beam_size} lowered to {hypotheses.beam_size} in {lowered} batch(es) of "
              f"{batch_size} sentences, too large for the model's memory bound: use a smaller --batch-size",
              file=sys.stderr)  # fmt: skip
    return hypotheses


def evaluate(
    model: Path,
    pair: str,
    split: str,
    data_dir: Path,
    out_dir: Path,
    limit: int | None = None,
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float | None = None,
    corpus_name: str = DEFAULT_CORPUS,
) -> Path:
    """Writes ``<split>.hyp.txt`` and ``<split>.json`` (BLEU, chrF, timing) to ``out_dir``.

    The export's default decoding (beam 5, the length penalty tuned on validation, also
    when ``length_penalty`` is None) writes ``test.json``; any other writes
    ``test.<decoding>.json``, for example ``test.greedy.json``. The test split's BLEU comes
    with its 95% bootstrap confidence interval.
    """
    translator, model_dir = load_translator(model)
    default_penalty = default_length_penalty(translator)
    length_penalty = default_penalty if length_penalty is None else length_penalty
    sources, references = corpus.read_split(pair, split, data_dir, limit, corpus_name)
    split_title = corpus.split_title(pair, split, data_dir, corpus_name)

    start = time.monotonic()
    hypotheses = translate_all(translator, sources, beam_size, length_penalty)
    seconds = time.monotonic() - start

    decoding = decoding_name(beam_size, length_penalty, default_penalty)
    default = decoding_name(DEFAULT_BEAM_SIZE, default_penalty, default_penalty)
    named = None if decoding == default else decoding
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / layout.hypotheses(split, named), "".join(h + "\n" for h in hypotheses))
    report = {
        "model": str(model_dir),
        "corpus": corpus_name,
        "pair": pair,
        "split": split_title,
        "sentences": len(sources),
        "decoding": decoding,
        "beam_size": beam_size,
        "beam_size_used": hypotheses.beam_size,  # the smallest, where the model lowered it to fit
        "length_penalty": length_penalty,
        **score(hypotheses, references, bootstrap=BOOTSTRAP_SAMPLES if split == "test" else 0),
        "translate_seconds": round(seconds, 1),
    }
    out = write_json(out_dir / layout.result(split, named), report)
    print(f"{pair} {split_title} ({len(sources)} sentences, {decoding}): {report['bleu_detail']}")
    print(f"chrF2 = {report['chrf']}   signature: {report['bleu_signature']}")
    return out
