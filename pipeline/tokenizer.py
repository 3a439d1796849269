"""SentencePiece, trained jointly on both sides of the training split only."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import sentencepiece as spm

from pipeline import corpus
from pipeline.config import TokenizerConfig
from pipeline.constants import BOS_ID, BOS_PIECE, EOS_ID, EOS_PIECE, PAD_ID, PAD_PIECE, UNK_ID, UNK_PIECE
from pipeline.errors import UserError


def train_tokenizer(cfg: TokenizerConfig, pair: str, data_dir: Path, out_dir: Path) -> Path:
    """The tokenize stage: trains SentencePiece on the train split, returns the .model path.

    Trained aside and renamed into place, .vocab first: a killed run leaves no spm.model.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sentences = corpus.load_split(pair, "train", data_dir)
    if cfg.train_limit:
        sentences = sentences.take(cfg.train_limit)
    staging = tempfile.mkdtemp(prefix=".spm-", dir=out_dir)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", dir=staging) as text:
        for source, target in sentences.as_numpy_iterator():
            text.write(source.decode("utf-8") + "\n" + target.decode("utf-8") + "\n")
        text.flush()
        spm.SentencePieceTrainer.train(
            input=text.name,
            model_prefix=str(Path(staging) / "spm"),
            vocab_size=cfg.vocab_size,
            model_type=cfg.model_type,
            character_coverage=1.0,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            pad_piece=PAD_PIECE,
            unk_piece=UNK_PIECE,
            bos_piece=BOS_PIECE,
            eos_piece=EOS_PIECE,
            hard_vocab_limit=False,  # tiny corpora in tests cannot fill a large vocabulary
            num_threads=2,
            minloglevel=2,
        )
    for name in ("spm.vocab", "spm.model"):
        os.replace(Path(staging) / name, out_dir / name)
    shutil.rmtree(staging)
    return out_dir / "spm.model"


def load_tokenizer(model_path: Path) -> spm.SentencePieceProcessor:
    """The SentencePiece model at ``model_path``; a UserError if it is missing or not one."""
    if not Path(model_path).is_file():
        raise UserError(f"{model_path} does not exist: run the tokenize stage first (make tokenize)")
    try:
        return spm.SentencePieceProcessor(model_file=str(model_path))
    except (OSError, RuntimeError) as error:
        raise UserError(
            f"{model_path} is not a SentencePiece model ({error}); run make tokenize again"
        ) from error
