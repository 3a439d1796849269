"""The export stage: SavedModels that translate, for TensorFlow Serving and ``tf.saved_model.load``.

Each export writes two servables, side by side, in the layout TensorFlow Serving
watches (``<base>/<version>/``, versions that only grow):

- ``<base>/<version>/``: text in, text out, with SentencePiece in the graph, so it needs
  tensorflow-text to load. Signatures ``serving_default`` (sources only: beam 5 and the
  tuned length penalty), ``translate`` (sources, beam_size, length_penalty), ``align``
  (the same, with the attention weights), ``translate_ids`` and ``align_ids``.
- ``<base>-ids/<version>/``: ``translate_ids`` (also ``serving_default``) and ``align_ids``,
  core TensorFlow ops only, so a stock TensorFlow Serving binary loads it. Clients tokenize
  with ``assets/spm.model``.

Both carry the SentencePiece model in their assets, and ``default_length_penalty``, the
length penalty tuned on validation when the run was trained (``decoding.json``).

Several runs of one pair and preset (one tokenizer) export as one ``Ensemble``, with the same
signatures: its search averages the members' log-probabilities at every step, ``align`` returns
the mean of the attending members' weights, and its memory bound counts every member. Its
default length penalty is given, or read from the ``decoding.json`` the best stage writes. Every
input is bounded (``IdTranslator.search``), and so is the memory of one request
(``memory_bound``): alignments are computed only by the ``align`` signatures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from pipeline.config import load_config, make_config
from pipeline.constants import (
    DEFAULT_BEAM_SIZE,
    DEFAULT_LENGTH_PENALTY,
    EOS_ID,
    IDS_SUFFIX,
    PAD_ID,
    UNK_ID,
    VARIANT_NAMES,
)
from pipeline.decoding.search import beam_search
from pipeline.errors import UserError
from pipeline.files import latest_version, replace_dir, write_text
from pipeline.layout import BEST_WEIGHTS, CONFIG, DECODING, TOKENIZER
from pipeline.models import Ensemble, Model, build_model
from pipeline.tokenizer import load_tokenizer

MAX_SOURCE_PIECES = 256  # longer inputs are cut (EOS included), so one request cannot take the server down
MAX_BEAM_SIZE = 32
MAX_LENGTH_PENALTY = 10.0
# Rows (sentences x beams) times source pieces in one search: what the search's memory grows with
# (the tiled encoder states, the attention, the alignments). Beam size is lowered to fit; a batch
# that does not fit even at beam 1 is refused. 512 sentences of 256 pieces fit at beam 1.
MAX_WORK = 2**17

SOURCES = tf.TensorSpec([None], tf.string, name="sources")
BEAM_SIZE = tf.TensorSpec([], tf.int32, name="beam_size")
LENGTH_PENALTY = tf.TensorSpec([], tf.float32, name="length_penalty")
SOURCE_IDS = tf.TensorSpec([None, None], tf.int32, name="source_ids")
SOURCE_LENGTHS = tf.TensorSpec([None], tf.int32, name="source_lengths")


def memory_bound(model: Model) -> int:
    """Bytes one request may add to the server's memory, at most (docs/faults.md).

    Per row and source piece, float32: what the model's search keeps (``model.search_width()``:
    the encoder states and the attention keys; for the Transformer, every decoder layer's keys,
    values and scores), tiled per beam, the attention's hidden layer and scores of a step (so three
    times their sizes), and the alignment history of up to 256 output steps, twice while a step
    gathers it; then 256 MiB for everything that does not grow with the request.
    """
    return MAX_WORK * 4 * (3 * model.search_width() + 2 * MAX_SOURCE_PIECES) + 256 * 2**20


def bounds_table(out: Path, presets: tuple[str, ...] = ("tiny", "quick", "converge", "full")) -> Path:
    """``memory_bound`` of every variant built at each preset's size, as a Markdown table (GB)."""
    header = "| variant | " + " | ".join(f"`{p}`" for p in presets) + " |"
    lines = [
        "The memory one request may add (`memory_bound`, GB), by variant and preset:",
        "",
        header,
        "|---|" + "---|" * len(presets),
    ]
    for variant in VARIANT_NAMES:
        cells = []
        for preset in presets:
            cfg = make_config(preset, variant=variant)
            cells.append(f"{memory_bound(build_model(cfg.model, cfg.tokenizer.vocab_size)) / 1e9:.2f}")
        lines.append(f"| `{variant}` | " + " | ".join(cells) + " |")
    return write_text(out, "\n".join(lines) + "\n")


class IdTranslator(tf.Module):
    """Ids in, ids out: the model and beam search, nothing outside core TensorFlow."""

    def __init__(
        self, model: Model, sentencepiece_model: Path, length_penalty: float = DEFAULT_LENGTH_PENALTY
    ):
        super().__init__()
        self.model = model
        self.sentencepiece_model = tf.saved_model.Asset(str(sentencepiece_model))  # copied to assets/
        self.default_length_penalty = tf.Variable(length_penalty, trainable=False, dtype=tf.float32)

    def search(self, pieces: tf.RaggedTensor, beam_size, length_penalty, alignments: bool) -> dict:
        """pieces: ragged (batch, None) ids without EOS -> the signature's outputs.

        Every input is bounded here: sources cut at MAX_SOURCE_PIECES, ids outside the
        vocabulary read as UNK, the beam size clipped to [1, MAX_BEAM_SIZE] and lowered until
        the request fits MAX_WORK (the output ``beam_size`` says which it used), a NaN length
        penalty replaced by the default and any other clipped to [0, MAX_LENGTH_PENALTY]. A batch
        too large even for one beam is refused (InvalidArgumentError), never run out of memory.
        """
        pieces = pieces[:, : MAX_SOURCE_PIECES - 1]
        pieces = tf.ragged.map_flat_values(
            lambda t: tf.where((t >= 0) & (t < self.model.vocab_size), t, UNK_ID), pieces
        )
        eos = tf.fill([pieces.nrows(), 1], EOS_ID)
        source = tf.concat([pieces, eos], axis=1).to_tensor(default_value=PAD_ID)  # (batch, src_len)
        source = tf.pad(source, [[0, 0], [0, tf.maximum(1 - tf.shape(source)[1], 0)]])  # an empty batch too
        work = tf.shape(source)[0] * tf.shape(source)[1]  # rows x pieces at one beam
        tf.debugging.assert_less_equal(
            work, MAX_WORK, f"request too large: sentences x source pieces must be at most {MAX_WORK}"
        )
        beam_size = tf.clip_by_value(beam_size, 1, MAX_BEAM_SIZE)
        beam_size = tf.minimum(beam_size, tf.maximum(MAX_WORK // tf.maximum(work, 1), 1))
        length_penalty = tf.where(
            tf.math.is_nan(length_penalty),
            self.default_length_penalty,
            tf.clip_by_value(length_penalty, 0.0, MAX_LENGTH_PENALTY),
        )
        found = beam_search(self.model, source, beam_size, length_penalty, return_alignments=alignments)
        # The beam this request was searched with, one per sentence (every output has the batch
        # first, as TensorFlow Serving's row format needs): lower than asked when lowered to fit.
        used = tf.fill([tf.shape(source)[0]], beam_size)  # (batch,)
        outputs = {"ids": found.ids, "lengths": found.lengths, "scores": found.scores, "beam_size": used}
        if alignments:  # (batch, out_len, src_len): over the pieces and EOS; src_len 0 without attention
            outputs["alignments"] = found.alignments
        return outputs

    def ids_search(self, source_ids, source_lengths, beam_size, length_penalty, alignments: bool) -> dict:
        lengths = tf.clip_by_value(source_lengths, 0, tf.shape(source_ids)[1])
        pieces = tf.RaggedTensor.from_tensor(source_ids, lengths=lengths)
        return self.search(pieces, beam_size, length_penalty, alignments)

    @tf.function(input_signature=[SOURCE_IDS, SOURCE_LENGTHS, BEAM_SIZE, LENGTH_PENALTY])
    def translate_ids(self, source_ids, source_lengths, beam_size, length_penalty):
        """source_ids (batch, width) right-padded pieces without EOS; source_lengths (batch,)."""
        return self.ids_search(source_ids, source_lengths, beam_size, length_penalty, alignments=False)

    @tf.function(input_signature=[SOURCE_IDS, SOURCE_LENGTHS, BEAM_SIZE, LENGTH_PENALTY])
    def align_ids(self, source_ids, source_lengths, beam_size, length_penalty):
        """``translate_ids`` with the attention weights behind each output piece."""
        return self.ids_search(source_ids, source_lengths, beam_size, length_penalty, alignments=True)


class Translator(IdTranslator):
    """Text in, text out: tokenize, search, detokenize, all in the graph."""

    def __init__(
        self, model: Model, sentencepiece_model: Path, length_penalty: float = DEFAULT_LENGTH_PENALTY
    ):
        super().__init__(model, sentencepiece_model, length_penalty)
        self.tokenizer = tf_text.SentencepieceTokenizer(
            model=Path(sentencepiece_model).read_bytes(), out_type=tf.int32
        )

    def text_search(self, sources, beam_size, length_penalty, alignments: bool) -> dict:
        pieces = self.tokenizer.tokenize(sources)  # ragged (batch, None)
        outputs = self.search(pieces, beam_size, length_penalty, alignments)
        ids = tf.RaggedTensor.from_tensor(outputs.pop("ids"), lengths=outputs.pop("lengths"))
        result = {"translations": self.tokenizer.detokenize(ids), **outputs}
        if alignments:  # what the weights are over: output pieces down, source pieces (and EOS) across
            source = pieces[:, : MAX_SOURCE_PIECES - 1]
            source = tf.concat([source, tf.fill([source.nrows(), 1], EOS_ID)], axis=1)
            result["source_pieces"] = self.piece_strings(source)  # (batch, src_len)
            result["output_pieces"] = self.piece_strings(ids)  # (batch, out_len), EOS not included
        return result

    def piece_strings(self, ids: tf.RaggedTensor) -> tf.Tensor:
        """Ragged ids -> their SentencePiece pieces, right-padded with empty strings."""
        return tf.ragged.map_flat_values(self.tokenizer.id_to_string, ids).to_tensor(default_value="")

    @tf.function(input_signature=[SOURCES, BEAM_SIZE, LENGTH_PENALTY])
    def translate(self, sources, beam_size, length_penalty):
        """sources (batch,) strings -> translations (batch,) strings and scores."""
        return self.text_search(sources, beam_size, length_penalty, alignments=False)

    @tf.function(input_signature=[SOURCES, BEAM_SIZE, LENGTH_PENALTY])
    def align(self, sources, beam_size, length_penalty):
        """``translate`` with the attention weights behind each output piece, and the pieces they are
        over (``source_pieces``, ``output_pieces``)."""
        return self.text_search(sources, beam_size, length_penalty, alignments=True)

    @tf.function(input_signature=[SOURCES])
    def serve(self, sources):
        """``translate`` with the default decoding: beam 5 and the length penalty tuned on validation."""
        return self.translate(sources, DEFAULT_BEAM_SIZE, self.default_length_penalty)


def ids_base(base: Path) -> Path:
    """Where the core-ops servable of ``base`` goes: ``saved_models/gru`` -> ``saved_models/gru-ids``."""
    return base.with_name(base.name + IDS_SUFFIX)


def save_atomically(module: tf.Module, signatures: dict, target: Path) -> None:
    """Writes aside and renames, so a server never sees a half-written version."""
    replace_dir(target, lambda staging: tf.saved_model.save(module, str(staging), signatures=signatures))


def load_run_model(run_dir: Path) -> Model:
    """The trained model of a run folder: its config, its tokenizer's vocabulary, its best weights."""
    weights = run_dir / BEST_WEIGHTS
    if not weights.is_file():
        raise UserError(f"{weights} does not exist: train the run (make train) before exporting it")
    cfg = load_config(run_dir / CONFIG)
    model = build_model(cfg.model, load_tokenizer(run_dir / TOKENIZER).vocab_size())
    model.load_weights(str(weights))
    return model


def shared_tokenizer(run_dirs: Sequence[Path]) -> Path:
    """The SentencePiece model every run of ``run_dirs`` was trained with; a UserError if they differ."""
    first = run_dirs[0] / TOKENIZER
    for run_dir in run_dirs[1:]:
        if (run_dir / TOKENIZER).read_bytes() != first.read_bytes():
            raise UserError(f"{run_dir} and {run_dirs[0]} have different tokenizers ({TOKENIZER}): "
                            "an ensemble's runs must share one (one pair and preset)")  # fmt: skip
    return first


def load_ensemble(run_dirs: Sequence[Path]) -> Model:
    """The model of one run, or the Ensemble of several runs' models (one tokenizer checked)."""
    shared_tokenizer(run_dirs)
    models = [load_run_model(run_dir) for run_dir in run_dirs]
    return models[0] if len(models) == 1 else Ensemble(models, name="ensemble")


def read_length_penalty(decoding: Path) -> float:
    return float(json.loads(decoding.read_text())["length_penalty"])


def default_penalty(run_dirs: Sequence[Path], length_penalty: float | None, decoding: Path | None) -> float:
    """The export's default length penalty: given, or a decoding.json's (``decoding``, else a single
    run's own, else DEFAULT_LENGTH_PENALTY for a run without one); an ensemble must be told."""
    if length_penalty is not None:
        return length_penalty
    if decoding is not None:
        return read_length_penalty(decoding)
    if len(run_dirs) > 1:
        raise UserError(f"an ensemble's default length penalty is its own: give --length-penalty, or "
                        f"--decoding with the {DECODING} the best stage wrote")  # fmt: skip
    own = run_dirs[0] / DECODING
    return read_length_penalty(own) if own.is_file() else DEFAULT_LENGTH_PENALTY


def export(
    run_dirs: Path | Sequence[Path],
    base: Path,
    length_penalty: float | None = None,
    decoding: Path | None = None,
) -> Path:
    """Exports the best weights of a run, or the ensemble of several runs of one tokenizer, as the
    next version under ``base`` and ``ids_base(base)``; the default length penalty is
    ``default_penalty``'s. Returns the text servable's version directory.
    """
    run_dirs = [run_dirs] if isinstance(run_dirs, Path) else list(run_dirs)
    alpha = default_penalty(run_dirs, length_penalty, decoding)  # before the models load: a mistake at once
    model = load_ensemble(run_dirs)
    sentencepiece_model = shared_tokenizer(run_dirs)

    versions = [int(latest.name) for b in (base, ids_base(base)) if (latest := latest_version(b))]
    version = max(versions, default=0) + 1
    ids_only = IdTranslator(model, sentencepiece_model, alpha)
    ids_signatures = {"translate_ids": ids_only.translate_ids, "align_ids": ids_only.align_ids}
    save_atomically(
        ids_only, {"serving_default": ids_only.translate_ids, **ids_signatures}, ids_base(base) / str(version)
    )
    text = Translator(model, sentencepiece_model, alpha)
    signatures = {"serving_default": text.serve, "translate": text.translate, "align": text.align,
                  "translate_ids": text.translate_ids, "align_ids": text.align_ids}  # fmt: skip
    save_atomically(text, signatures, base / str(version))  # last: its version marks the export done
    return base / str(version)
