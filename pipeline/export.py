"""The export stage: a SavedModel that takes source sentences and returns translations.

The layout is the one TensorFlow Serving watches: ``<base>/<version>/``, with
versions that only grow. SentencePiece runs inside the graph, so clients need
nothing but TensorFlow and tensorflow-text.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from pipeline.config import load_config
from pipeline.constants import EOS_ID
from pipeline.models import build_model
from pipeline.models.seq2seq import Seq2Seq
from pipeline.search import greedy_search
from pipeline.train import BEST_WEIGHTS, CONFIG, TOKENIZER

MAX_SOURCE_PIECES = 256  # longer inputs are cut, so one request cannot take the server down


class Translator(tf.Module):
    """Text in, text out: tokenize, encode, search, detokenize, all in the graph."""

    def __init__(self, model: Seq2Seq, sentencepiece_model: bytes):
        super().__init__()
        self.model = model
        self.tokenizer = tf_text.SentencepieceTokenizer(model=sentencepiece_model, out_type=tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sources")])
    def translate(self, sources):
        pieces = self.tokenizer.tokenize(sources)[:, : MAX_SOURCE_PIECES - 1]  # ragged (batch, None)
        eos = tf.fill([pieces.nrows(), 1], EOS_ID)
        source = tf.concat([pieces, eos], axis=1).to_tensor()  # (batch, src_len), PAD = 0
        ids, lengths = greedy_search(self.model, source)
        translations = self.tokenizer.detokenize(tf.RaggedTensor.from_tensor(ids, lengths=lengths))
        return {"translations": translations}


def latest_version(base: Path) -> Path | None:
    """The highest numbered version directory under ``base``, or None."""
    versions = [int(p.name) for p in Path(base).glob("*") if p.name.isdigit() and p.is_dir()]
    return Path(base) / str(max(versions)) if versions else None


def export(run_dir: Path, base: Path) -> Path:
    """Exports the best weights of ``run_dir`` as the next version under ``base``."""
    weights = run_dir / BEST_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} does not exist: train before exporting")
    cfg = load_config(run_dir / CONFIG)
    sentencepiece_model = (run_dir / TOKENIZER).read_bytes()
    vocab_size = tf_text.SentencepieceTokenizer(model=sentencepiece_model).vocab_size()
    model = build_model(cfg.model, int(vocab_size))
    model.load_weights(str(weights))
    translator = Translator(model, sentencepiece_model)

    latest = latest_version(base)
    version = int(latest.name) + 1 if latest else 1
    base.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed, so a server never sees a half-written version.
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=base))
    try:
        signatures = {"serving_default": translator.translate, "translate": translator.translate}
        tf.saved_model.save(translator, str(staging), signatures=signatures)
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a server may run as another user
        target = base / str(version)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
