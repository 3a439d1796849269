"""SentencePiece, trained jointly on both sides of the training split only.

On a corpus larger than ``tokenizer.sample_sentences`` SentencePiece reads a random sample of
that many sentences (its reservoir sampling), so its memory does not grow with the corpus;
the text file it samples from is on disk and written a batch at a time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import sentencepiece as spm

from pipeline.config import TokenizerConfig
from pipeline.constants import (
    BOS_ID,
    BOS_PIECE,
    DEFAULT_CORPUS,
    EOS_ID,
    EOS_PIECE,
    PAD_ID,
    PAD_PIECE,
    UNK_ID,
    UNK_PIECE,
)
from pipeline.errors import UserError
from pipeline.files import sync
from pipeline.layout import TOKENIZER, VOCABULARY

SAMPLE_SEED = 1234  # SentencePiece's sampler is seeded from the clock otherwise


def sampling(cfg: TokenizerConfig, pairs: int) -> dict:
    """SentencePiece's sampling arguments for ``pairs`` training pairs (two sentences each): none
    when every sentence fits in the sample, so such a model is the one trained without them."""
    if 2 * pairs <= cfg.sample_sentences:
        return {}
    spm.set_random_generator_seed(SAMPLE_SEED)
    return {"input_sentence_size": cfg.sample_sentences, "shuffle_input_sentence": True}


def train_tokenizer(
    cfg: TokenizerConfig, pair: str, data_dir: Path, out_dir: Path, corpus_name: str = DEFAULT_CORPUS
) -> Path:
    """The tokenize stage: trains SentencePiece on the train split, returns the .model path.

    Trained aside and renamed into place, .vocab first: a killed run leaves no spm.model.
    """
    from pipeline import corpus  # TensorFlow Datasets: here, so that load_tokenizer stays light

    out_dir.mkdir(parents=True, exist_ok=True)
    sentences = corpus.load_split(pair, "train", data_dir, corpus_name=corpus_name)
    pairs = corpus.split_size(pair, "train", data_dir, corpus_name=corpus_name)
    if cfg.train_limit:
        sentences = sentences.take(cfg.train_limit)
        pairs = min(pairs, cfg.train_limit)
    staging = tempfile.mkdtemp(prefix=".spm-", dir=out_dir)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", dir=staging) as text:
        for sources, targets in sentences.batch(4096).as_numpy_iterator():  # (4096,) each
            text.writelines(
                s.decode("utf-8") + "\n" + t.decode("utf-8") + "\n"
                for s, t in zip(sources, targets, strict=True)
            )
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
            **sampling(cfg, pairs),
        )
    for name in (VOCABULARY, TOKENIZER):
        sync(Path(staging) / name)
        os.replace(Path(staging) / name, out_dir / name)
        sync(out_dir)
    shutil.rmtree(staging)
    return out_dir / TOKENIZER


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
