"""The analysis stage: what a variant's row and figures need from its trained model, written
beside its reports, so that a comparison can be built from report folders alone.

A comparison is built run by run, on separate days and machines, and ``runs/`` does not last;
so what the report stage once read from the weights is measured here, once, and kept in
``analysis.json``:

- the gradient-flow probe: mean |d loss / d h_t| at each source position of test sentences of
  ``PROBE_LENGTH`` pieces (``pipeline.decoding.probe``);
- for a variant with attention, the beam-5 translations of the first few short test sentences
  with their attention weights, which the report draws as heatmaps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import corpus
from pipeline.config import load_config
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.decoding.probe import gradient_flow
from pipeline.decoding.search import beam_search
from pipeline.files import write_json
from pipeline.layout import ANALYSIS, BEST_WEIGHTS, CONFIG, TOKENIZER
from pipeline.models import VARIANTS, build_model
from pipeline.tokenizer import load_tokenizer

PROBE_LENGTH = 20  # source pieces (EOS included) of the sentences the gradient probe uses
PROBE_SENTENCES = 32
HEATMAP_SENTENCES = 3
HEATMAP_PIECES = 14  # at most, so that a heatmap stays readable


def load_trained(run_dir: Path):
    """The model of a run with its best weights, and the run's SentencePiece processor."""
    sp = load_tokenizer(run_dir / TOKENIZER)
    model = build_model(load_config(run_dir / CONFIG).model, sp.vocab_size())
    model.load_weights(str(run_dir / BEST_WEIGHTS))
    return model, sp


def pad(rows: list[list[int]]) -> np.ndarray:
    out = np.full((len(rows), max(map(len, rows))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def probe_batch(sp, sources: list[str], targets: list[str]):
    """Test pairs whose source is exactly PROBE_LENGTH pieces long: (source, target_in, target_out)."""
    chosen = [i for i, s in enumerate(sources) if len(sp.encode(s)) + 1 == PROBE_LENGTH][:PROBE_SENTENCES]
    if not chosen:  # tiny corpora: the most common length instead
        lengths = [len(sp.encode(s)) + 1 for s in sources]
        common = max(set(lengths), key=lengths.count)
        chosen = [i for i, n in enumerate(lengths) if n == common][:PROBE_SENTENCES]
    source = pad([sp.encode(sources[i]) + [EOS_ID] for i in chosen])  # (batch, src_len)
    target = [sp.encode(targets[i]) for i in chosen]
    return source, pad([[BOS_ID] + t for t in target]), pad([t + [EOS_ID] for t in target])


def attention_examples(model, sp, sources: list[str]) -> list[dict]:
    """Beam-5 translations of the first few short test sentences with their attention weights:
    each ``{"source": pieces, "output": pieces, "weights": (out_len, src_len) nested lists}``."""
    chosen = [s for s in sources if len(sp.encode(s)) <= HEATMAP_PIECES][:HEATMAP_SENTENCES]
    if not chosen:  # a tokenizer of short pieces: the shortest sentences instead
        chosen = sorted(sources, key=lambda s: len(sp.encode(s)))[:HEATMAP_SENTENCES]
    examples = []
    for sentence in chosen:
        source = sp.encode(sentence) + [EOS_ID]
        ids, lengths, _, alignments = beam_search(model, tf.constant([source]), return_alignments=True)
        n = int(lengths[0])
        ended = n < alignments.shape[1]  # the row of the end-of-sentence step, when there is one
        weights = alignments[0, : n + ended].numpy()  # (out_len, src_len)
        examples.append({
            "source": [sp.id_to_piece(i) for i in source],
            "output": [sp.id_to_piece(int(t)) for t in ids[0, :n]] + ["</s>"] * ended,
            "weights": [[round(float(w), 4) for w in row] for row in weights],
        })  # fmt: skip
    return examples


def analyse(run_dir: Path, data_dir: Path, out_dir: Path) -> Path:
    """Probes the run's best weights on its pair's test split; writes ``out_dir/analysis.json``
    (``{"variant", "gradient_flow": [per source position], "attention": [examples] or None}``)."""
    cfg = load_config(run_dir / CONFIG)
    sources, references = corpus.read_split(cfg.pair, "test", data_dir, cfg.data.eval_limit, cfg.corpus)
    model, sp = load_trained(run_dir)
    flow = gradient_flow(model, *probe_batch(sp, sources, references))
    variant = cfg.model.variant
    attention = attention_examples(model, sp, sources) if VARIANTS[variant][1] else None
    result = {"variant": variant, "gradient_flow": [float(x) for x in flow], "attention": attention}
    return write_json(out_dir / ANALYSIS, result)
