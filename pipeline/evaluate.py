"""The evaluate stage: translate a split through the exported SavedModel and score it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import tensorflow as tf
from sacrebleu.metrics import BLEU, CHRF

from pipeline import corpus
from pipeline.constants import DEFAULT_BEAM_SIZE, DEFAULT_LENGTH_PENALTY
from pipeline.export import latest_version


def load_translator(model: Path):
    """A SavedModel from its version directory, or the latest version under a base directory."""
    model = Path(model)
    if not (model / "saved_model.pb").is_file():
        version = latest_version(model)
        if version is None:
            raise FileNotFoundError(f"no SavedModel in {model} nor any numbered version under it")
        model = version
    return tf.saved_model.load(str(model)), model


def decoding_name(beam_size: int, length_penalty: float) -> str:
    """``greedy``, ``beam5``, or ``beam5-lp1.0`` when the length penalty is not the default."""
    if beam_size == 1:
        return "greedy"  # one beam: the length penalty cannot change the ranking
    name = f"beam{beam_size}"
    return name if length_penalty == DEFAULT_LENGTH_PENALTY else f"{name}-lp{length_penalty}"


def translate_all(
    translator,
    sources: list[str],
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    batch_size: int = 64,
    progress: bool = True,
) -> list[str]:
    """Translations of ``sources``, in order, ``batch_size`` sentences per call."""
    bar = keras.utils.Progbar(len(sources), unit_name="sentence") if progress else None
    beam, alpha = tf.constant(beam_size, tf.int32), tf.constant(length_penalty, tf.float32)
    hypotheses = []
    for start in range(0, len(sources), batch_size):
        batch = sources[start : start + batch_size]
        out = translator.translate(tf.constant(batch), beam, alpha)["translations"].numpy()
        hypotheses += [h.decode("utf-8") for h in out]
        if bar:
            bar.add(len(batch))
    return hypotheses


def score(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU and chrF, cased and on detokenized text, with sacreBLEU's signatures."""
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "bleu_detail": str(bleu_score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def evaluate(
    model: Path,
    pair: str,
    split: str,
    data_dir: Path,
    out_dir: Path,
    limit: int | None = None,
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
) -> Path:
    """Writes ``<split>.hyp.txt`` and ``<split>.json`` (BLEU, chrF, timing) to ``out_dir``.

    The export's default decoding (beam 5, alpha 0.6) writes ``test.json``; any other
    writes ``test.<decoding>.json``, for example ``test.greedy.json``.
    """
    translator, model_dir = load_translator(model)
    sources, references = corpus.read_split(pair, split, data_dir, limit)

    start = time.monotonic()
    hypotheses = translate_all(translator, sources, beam_size, length_penalty)
    seconds = time.monotonic() - start

    decoding = decoding_name(beam_size, length_penalty)
    default = decoding_name(DEFAULT_BEAM_SIZE, DEFAULT_LENGTH_PENALTY)
    stem = split if decoding == default else f"{split}.{decoding}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.hyp.txt").write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    report = {
        "model": str(model_dir),
        "pair": pair,
        "split": corpus.SPLITS[split],
        "sentences": len(sources),
        "decoding": decoding,
        "beam_size": beam_size,
        "length_penalty": length_penalty,
        **score(hypotheses, references),
        "translate_seconds": round(seconds, 1),
    }
    out = out_dir / f"{stem}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"{pair} {corpus.SPLITS[split]} ({len(sources)} sentences, {decoding}): {report['bleu_detail']}")
    print(f"chrF2 = {report['chrf']}   signature: {report['bleu_signature']}")
    return out
