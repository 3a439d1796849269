"""Shared fixtures: the real corpus (read in place), one prepared pair, one tiny tokenizer,
and a synthetic language pair that a tiny model learns perfectly in seconds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipeline.constants import BOS_ID, EOS_ID, PAD_ID

# Nothing above imports TensorFlow; test modules, collected after this file, do.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT = Path(__file__).resolve().parents[1]
# Beside the project, never copied into it: the corpus must not be committed.
SHARED_CORPUS = PROJECT.parent / "shared/data/multi30k"
PAIR = "de-en"

SYNTHETIC_VOCAB = 20  # ids 4..19 are words; 0..3 are PAD, UNK, BOS, EOS
FIRST_WORD = 4


def real_corpus_present() -> bool:
    return (SHARED_CORPUS / "train.de.gz").is_file()


@pytest.fixture(scope="session")
def shared_corpus(tmp_path_factory) -> Path:
    """The folder with the 12 raw Multi30k .gz files: the shared corpus beside the project, or
    on a machine without it a synthetic corpus in its layout, whose digest table the builder
    takes instead of the pinned one (in this process and in the ones the tests start)."""
    if real_corpus_present():
        return SHARED_CORPUS
    from synthetic_corpus import write_corpus

    from pipeline import corpus

    folder = tmp_path_factory.mktemp("multi30k")
    os.environ[corpus.DIGESTS_ENV] = str(write_corpus(folder))
    return folder


@pytest.fixture(scope="session")
def real_corpus(shared_corpus) -> Path:
    """The real Multi30k files, for the tests about them alone, or a skip."""
    if not real_corpus_present():
        pytest.skip(f"checks the pinned digests of the real Multi30k files, which are not at {SHARED_CORPUS}")
    return shared_corpus


@pytest.fixture(scope="session")
def prepared_data(shared_corpus, tmp_path_factory) -> Path:
    """A TFDS data dir with de-en prepared from the shared files (about 5 s, once)."""
    from pipeline import corpus

    data_dir = tmp_path_factory.mktemp("tfds")
    corpus.prepare(PAIR, data_dir, manual_dir=shared_corpus)
    return data_dir


@pytest.fixture(scope="session")
def spm_model(prepared_data, tmp_path_factory) -> Path:
    """A 400-piece SentencePiece model trained on the first 2000 training pairs."""
    from pipeline.config import TokenizerConfig
    from pipeline.tokenizer import train_tokenizer

    out_dir = tmp_path_factory.mktemp("spm")
    return train_tokenizer(TokenizerConfig(vocab_size=400, train_limit=2000), PAIR, prepared_data, out_dir)


@dataclass(frozen=True)
class SyntheticPairs:
    """Right-padded int32 arrays, shaped like the pipeline's batches."""

    source: np.ndarray  # (n, src_len): words, EOS, PAD...
    target_in: np.ndarray  # (n, tgt_len): BOS, words, PAD...
    target_out: np.ndarray  # (n, tgt_len): words, EOS, PAD...

    def targets(self) -> list[list[int]]:
        """Each target sentence as word ids, without EOS and padding."""
        return [[int(t) for t in row if t not in (PAD_ID, EOS_ID)] for row in self.target_out]

    def batches(self, batch_size: int, shuffle_seed: int | None = None):
        """A tf.data.Dataset of ({"source", "target_in"}, target_out) batches."""
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices(
            ({"source": self.source, "target_in": self.target_in}, self.target_out)
        )
        if shuffle_seed is not None:
            data = data.shuffle(len(self.source), seed=shuffle_seed)
        return data.batch(batch_size)


def translate_word(word: int, vocab_size: int = SYNTHETIC_VOCAB) -> int:
    """The synthetic dictionary: a fixed shift within the word ids, a bijection."""
    words = vocab_size - FIRST_WORD
    return FIRST_WORD + (word - FIRST_WORD + 5) % words


def make_synthetic(
    n: int, seed: int = 0, vocab_size: int = SYNTHETIC_VOCAB, min_len: int = 3, max_len: int = 8
) -> SyntheticPairs:
    """``n`` sentence pairs: the target translates word for word and reverses the order.

    The reversal makes the first target word depend on the last source word, so
    a model has to look across the whole sentence, which attention makes easy.
    """
    rng = np.random.default_rng(seed)
    source = np.full((n, max_len + 1), PAD_ID, np.int32)
    target_in = np.full((n, max_len + 1), PAD_ID, np.int32)
    target_out = np.full((n, max_len + 1), PAD_ID, np.int32)
    for i in range(n):
        words = rng.integers(FIRST_WORD, vocab_size, size=rng.integers(min_len, max_len + 1))
        translation = [translate_word(int(w), vocab_size) for w in words[::-1]]
        source[i, : len(words) + 1] = [*words, EOS_ID]
        target_in[i, : len(words) + 1] = [BOS_ID, *translation]
        target_out[i, : len(words) + 1] = [*translation, EOS_ID]
    return SyntheticPairs(source, target_in, target_out)


@pytest.fixture(scope="session")
def synthetic():
    """The synthetic pair generator: ``synthetic(n, seed=...) -> SyntheticPairs``."""
    return make_synthetic


@pytest.fixture(scope="session")
def tiny_run(spm_model, tmp_path_factory) -> Path:
    """A run directory as train() leaves it, with the untrained weights of a tiny model."""
    import shutil

    import keras

    from pipeline.config import make_config, save_config
    from pipeline.models import build_model
    from pipeline.tokenizer import load_tokenizer
    from pipeline.training.train import BEST_WEIGHTS, CONFIG, TOKENIZER

    run_dir = tmp_path_factory.mktemp("run")
    cfg = make_config("tiny")
    keras.utils.set_random_seed(0)
    model = build_model(cfg.model, load_tokenizer(spm_model).vocab_size())
    save_config(cfg, run_dir / CONFIG)
    shutil.copyfile(spm_model, run_dir / TOKENIZER)
    model.save_weights(run_dir / BEST_WEIGHTS)
    return run_dir


@pytest.fixture(scope="session")
def exported_tiny(tiny_run, tmp_path_factory) -> Path:
    """The tiny run exported once, for the tests that only read or load it: the text servable's
    version folder, ``<dir>/gru_bahdanau/1`` (the ids servable beside it, ``gru_bahdanau-ids/1``)."""
    from pipeline.decoding.export import export

    return export(tiny_run, tmp_path_factory.mktemp("exported") / "gru_bahdanau")


@dataclass(frozen=True)
class Served:
    port: int
    models: Path  # served: gru_bahdanau_converge (-ids), gru_bahdanau_quick, gru_converge, best (-ids)


@pytest.fixture(scope="session")
def served(exported_tiny, tiny_run, spm_model, tmp_path_factory):
    """``make serve`` over six tiny models, named as the Makefile names them: gru_bahdanau_converge
    and its ids servable (copies of ``exported_tiny``), gru_bahdanau_quick beside it (another copy:
    two presets of one variant, two names), gru_converge, a single context vector, and best with
    its ids servable, the ensemble of those two runs as `make best` exports it. Stopped with Ctrl-C
    (SIGINT) at the end."""
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import time

    import keras

    from pipeline.config import make_config, save_config
    from pipeline.decoding.export import export
    from pipeline.models import build_model
    from pipeline.serving.load import request
    from pipeline.tokenizer import load_tokenizer
    from pipeline.training.train import BEST_WEIGHTS, CONFIG, TOKENIZER

    models = tmp_path_factory.mktemp("served")
    copies = {"gru_bahdanau_converge": "gru_bahdanau", "gru_bahdanau_converge-ids": "gru_bahdanau-ids",
              "gru_bahdanau_quick": "gru_bahdanau"}  # fmt: skip
    for name, exported in copies.items():
        shutil.copytree(exported_tiny.parent.parent / exported, models / name)
    single = tmp_path_factory.mktemp("gru_run")
    cfg = make_config("tiny", variant="gru")
    keras.utils.set_random_seed(0)
    build_model(cfg.model, load_tokenizer(spm_model).vocab_size()).save_weights(single / BEST_WEIGHTS)
    save_config(cfg, single / CONFIG)
    shutil.copyfile(spm_model, single / TOKENIZER)
    export(single, models / "gru_converge")
    export([tiny_run, single], models / "best", length_penalty=1.0)  # one member attends: its map
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    installed = tmp_path_factory.mktemp("make") / "installed"
    installed.touch()  # this interpreter's environment is the installed one
    variables = [
        f"SAVED_DIR={models}",
        f"SERVE_PORT={port}",
        f"PYTHON={sys.executable}",
        f"INSTALLED={installed}",
    ]
    log = installed.with_name("serve.log")
    with log.open("w") as out:
        command = ["make", "--no-print-directory", "serve", *variables]
        make = subprocess.Popen(
            command, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while True:
        try:
            if request(port, "/page/models", timeout=2)[0] == 200:
                break
        except OSError:
            assert make.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    yield Served(port, models)
    os.killpg(make.pid, signal.SIGINT)  # Ctrl-C, to make and the server it started
    make.wait(30)
