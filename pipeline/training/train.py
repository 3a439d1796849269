"""The train stage: Keras fit with the recipe's callbacks, resumable after any kill.

A run directory holds everything a later stage needs (``config.json``, ``spm.model``,
``best.weights.h5``, ``decoding.json``, ``train.json``) and, while training, one
checkpoint per epoch (``checkpoints/``). Started again with the same config after a kill,
the run goes on from its last finished epoch with everything it had decided: the best
epoch and its score, early stopping's patience, the learning rate, the time spent. It trains
on as if never stopped: each epoch's batches depend on its number alone, and the dropout masks
come from the checkpointed random streams, so its losses and weights are the uninterrupted run's.

Under a ``tf.distribute`` strategy (``pipeline.distribute``) the same code trains on several
devices or machines; with several workers only the chief writes the run directory, and every
worker resumes from the chief's last checkpoint, so the run directory must be shared.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import keras
import sentencepiece as spm
import tensorflow as tf
from keras.callbacks import TensorBoard

from pipeline import corpus, dataset, distribute
from pipeline.config import Config, load_config, save_config, to_dict
from pipeline.constants import DEFAULT_BEAM_SIZE, EOS_ID, TRAINING_CODE
from pipeline.errors import UserError
from pipeline.files import copy_file, replace_file, write_json
from pipeline.layout import (
    BEST_WEIGHTS,
    CHECKPOINTS,
    CONFIG,
    DECODING,
    LOG,
    SUMMARY,
    TOKENIZER,
    TRAINING_PLOT,
)
from pipeline.machine import matmul_rate, processor, processor_name
from pipeline.models import build_model
from pipeline.models.losses import MaskedCrossEntropy, masked_accuracy, masked_cross_entropy
from pipeline.progress import verbosity
from pipeline.reporting.plots import plot_history
from pipeline.tokenizer import load_tokenizer
from pipeline.training import checkpoints
from pipeline.training.callbacks import Clock, EpochCheckpoint, Plateau, Selection, ValidationBLEU
from pipeline.training.schedule import WarmupInverseSqrt


class RunError(UserError):
    """A run directory cannot be resumed with the requested config."""


def compile_model(model: keras.Model, cfg: Config) -> keras.Model:
    """Call in the strategy's scope: the optimizer and the metrics make variables."""
    rate = cfg.train.learning_rate
    if cfg.train.warmup_steps:  # the Transformer's: warmup, then 1/sqrt(step); never halved
        rate = WarmupInverseSqrt(rate, cfg.train.warmup_steps)
    optimizer = distribute.GlobalBatchAdam(rate, global_clipnorm=cfg.train.clipnorm)
    loss = MaskedCrossEntropy(cfg.train.label_smoothing)
    # xent: the plain cross-entropy, comparable across label smoothing settings
    model.compile(optimizer=optimizer, loss=loss, metrics=[masked_accuracy, xent])
    return model


def xent(y_true, y_pred):
    # y_true as Keras hands it to the loss (converted to the loss's float32): the same tensors
    # into the same softmax kernel, which TensorFlow's graph optimizer then runs once for both
    return masked_cross_entropy(keras.ops.convert_to_tensor(y_true, "float32"), y_pred)


def validation_bleu(
    cfg: Config, data_dir: Path, sp: spm.SentencePieceProcessor, agree=lambda score: score
) -> ValidationBLEU:
    sources, references = corpus.read_split(cfg.pair, "validation", data_dir, cfg.data.eval_limit, cfg.corpus)
    rows = [ids + [EOS_ID] for ids in sp.encode(sources)]
    return ValidationBLEU(rows, references, sp.decode, agree)


def check_config(cfg: Config, run_dir: Path) -> None:
    """A RunError if ``run_dir`` holds a run, finished or not, with another config."""
    if (run_dir / CONFIG).is_file() and to_dict(load_config(run_dir / CONFIG)) != to_dict(cfg):
        raise RunError(
            f"{run_dir} holds a run with another config; use another --run-dir, or --force to start afresh"
        )


def start_run(cfg: Config, run_dir: Path, tokenizer_path: Path, force: bool) -> None:
    """A new run directory, or the same config in an unfinished one; ``force`` starts afresh."""
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    check_config(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG)
    copy_file(tokenizer_path, run_dir / TOKENIZER)


class TrainingData(NamedTuple):
    """The batches fit reads, each placed for the strategy, and the size of one epoch."""

    train: tf.data.Dataset  # the epochs still to train, one after another
    validation: tf.data.Dataset
    steps_per_epoch: int
    tokens_per_epoch: int  # real (unpadded) target tokens


class Recipe(NamedTuple):
    """The training recipe's callbacks, in the order fit runs them: each reads what those before it logged."""

    bleu: ValidationBLEU
    selection: Selection
    plateau: Plateau
    clock: Clock
    checkpoint: EpochCheckpoint


class Choice(NamedTuple):
    """The weights ``finish`` keeps: one epoch, or the average of the best few."""

    epochs: list[int]  # the epochs whose weights they are
    val_bleu: float  # greedy, on validation
    averaging: dict | None  # the best checkpoints' average and its score, kept or not; None without


def train(
    cfg: Config,
    run_dir: Path,
    data_dir: Path,
    tokenizer_path: Path,
    force: bool = False,
    strategy: tf.distribute.Strategy | None = None,
) -> Path:
    """Trains ``cfg.model.variant`` until early stopping or ``cfg.train.epochs``; returns ``train.json``.

    A finished run (one with ``train.json``) is reused as it is; ``force`` redoes it.
    ``strategy`` is ``distribute.build(cfg.train.strategy)``, made before any other TensorFlow
    op of the process; without one it is made here, first.
    """
    strategy = strategy or distribute.build(cfg.train.strategy)
    chief = distribute.is_chief(strategy)  # the one process that writes the run directory
    if (run_dir / SUMMARY).is_file() and not force:
        return reuse_finished(cfg, run_dir)
    sp = load_tokenizer(tokenizer_path)  # a missing or corrupt model fails here, before any work
    corpus.prepared(cfg.pair, data_dir, cfg.corpus)  # and a corpus not prepared, or without the languages
    out = output_dir(cfg, run_dir, tokenizer_path, force, chief)
    keras.utils.set_random_seed(cfg.train.seed)
    chiefs, anyone = distribute.agreement(strategy)
    model, state = build_and_restore(cfg, run_dir, out, sp.vocab_size(), strategy, chiefs, anyone)
    done = state.get("epoch", 0)  # finished epochs: the next one is shuffled by its own number
    data = training_data(cfg, data_dir, tokenizer_path, done, strategy)
    announce(cfg, model, sp.vocab_size(), strategy)
    recipe = make_callbacks(cfg, data_dir, sp, out, state, chiefs, anyone)
    fit(cfg, model, data, recipe, done, out, strategy)
    summary = finish(cfg, out, model, recipe, data.tokens_per_epoch)
    if chief:
        return summary
    shutil.rmtree(out)
    print(f"trained; the chief writes {run_dir / SUMMARY}")
    return run_dir / SUMMARY


def reuse_finished(cfg: Config, run_dir: Path) -> Path:
    """The ``train.json`` of a run finished under ``cfg``; a RunError for one under another config."""
    check_config(cfg, run_dir)  # finished under this config, or refused like an unfinished run
    print(f"{run_dir} is trained already ({SUMMARY}); --force trains it again")
    return run_dir / SUMMARY


def output_dir(cfg: Config, run_dir: Path, tokenizer_path: Path, force: bool, chief: bool) -> Path:
    """Where this process writes: the run directory for the chief, a scratch folder for any other worker."""
    if not chief:
        return worker_dir(run_dir, force)
    start_run(cfg, run_dir, tokenizer_path, force)
    return run_dir


def worker_dir(run_dir: Path, force: bool) -> Path:
    """A scratch run directory for a worker other than the chief, with the chief's checkpoints.

    Such a worker does all that the chief does, writes included, and throws its files away at
    the end: saving weights reads variables (the optimizer's step count) through collective
    ops, which every worker must run together. It resumes from the chief's checkpoints, which
    the run directory, shared, holds.
    """
    out = Path(tempfile.mkdtemp(prefix="nmt-worker-"))
    if not force and (run_dir / CHECKPOINTS).is_dir():  # with --force the chief starts afresh
        shutil.copytree(run_dir / CHECKPOINTS, out / CHECKPOINTS, ignore=shutil.ignore_patterns(".*"))
    return out


def build_and_restore(
    cfg: Config,
    run_dir: Path,
    out: Path,
    vocab_size: int,
    strategy: tf.distribute.Strategy,
    chiefs: Callable[[float], float],
    anyone: Callable[[bool], bool],
) -> tuple[keras.Model, dict]:
    """The compiled model with the newest checkpoint of ``out`` restored, and that checkpoint's
    state (``{}`` for a fresh run); a RunError, on every worker, if the workers' newest differ."""
    newest = max(checkpoints.epochs(out / CHECKPOINTS), default=0)
    if anyone(chiefs(newest) != newest):  # all stop, before the first collective that would not pair up
        raise RunError(
            f"the workers resume from different epochs (the chief after epoch {chiefs(newest):.0f}, this "
            f"worker after {newest}): every worker must see the chief's run directory {run_dir}"
        )
    with strategy.scope():
        model = compile_model(build_model(cfg.model, vocab_size), cfg)
        state = checkpoints.restore(out / CHECKPOINTS, model)
    return model, state


def training_data(
    cfg: Config, data_dir: Path, tokenizer_path: Path, done: int, strategy: tf.distribute.Strategy
) -> TrainingData:
    """The training batches of the epochs after ``done`` and the validation batches."""
    # data.batch_size is the global batch, cut into one slice per replica; every worker reads
    # the same seeded order and keeps its slices.
    train_batches, steps_per_epoch, tokens_per_epoch = dataset.training_epochs(
        cfg.pair, data_dir, tokenizer_path, cfg.data, range(done, cfg.train.epochs), cfg.corpus
    )
    val_batches = dataset.batches(
        cfg.pair, "validation", data_dir, tokenizer_path, cfg.data, training=False, corpus_name=cfg.corpus
    )
    train_batches, val_batches = (distribute.for_strategy(d, strategy) for d in (train_batches, val_batches))
    return TrainingData(train_batches, val_batches, steps_per_epoch, tokens_per_epoch)


def announce(cfg: Config, model: keras.Model, vocab_size: int, strategy: tf.distribute.Strategy) -> None:
    """Prints the model's size and, with several replicas, how the batch is shared among them."""
    print(f"{cfg.model.variant}: {model.count_params():,} parameters, vocabulary {vocab_size}")
    if strategy.num_replicas_in_sync > 1:
        print(f"train.strategy={cfg.train.strategy}: {strategy.num_replicas_in_sync} replicas, "
              f"{cfg.data.batch_size // strategy.num_replicas_in_sync} sentences each per batch")  # fmt: skip


def make_callbacks(
    cfg: Config,
    data_dir: Path,
    sp: spm.SentencePieceProcessor,
    out: Path,
    state: dict,
    chiefs: Callable[[float], float],
    anyone: Callable[[bool], bool],
) -> Recipe:
    """The recipe's callbacks, each with what it had decided by the checkpoint ``state`` restored."""
    bleu = validation_bleu(cfg, data_dir, sp, chiefs)
    selection = Selection(cfg.train.patience)
    plateau = Plateau(cfg.train.plateau_patience, decay_from=cfg.train.decay_from)
    ceiling = round(matmul_rate(), 1)  # this machine's speed, beside every time the run reports
    clock = Clock(cfg.train.time_budget_minutes, anyone, ceiling)
    stateful = {"selection": selection, "plateau": plateau, "clock": clock}
    checkpoint = EpochCheckpoint(out / CHECKPOINTS, out / LOG, stateful, cfg.train.average, ceiling,
                                 processor=processor_name(processor()))  # fmt: skip
    if state:
        for name, callback in stateful.items():
            callback.restore(state["callbacks"][name])
        checkpoint.restore(state)
        print(f"resuming after epoch {state['epoch']} (process {checkpoint.process})")
    return Recipe(bleu, selection, plateau, clock, checkpoint)


def fit(
    cfg: Config,
    model: keras.Model,
    data: TrainingData,
    recipe: Recipe,
    done: int,
    out: Path,
    strategy: tf.distribute.Strategy,
) -> None:
    """Trains the epochs after ``done``, unless the run has ended: all epochs, early stopping or the time."""
    if done >= cfg.train.epochs or recipe.selection.stopped or recipe.clock.fired:
        return
    distribute.build_for_fit(model, data.train, strategy)
    with strategy.scope():
        model.fit(
            data.train,
            steps_per_epoch=data.steps_per_epoch,
            validation_data=data.validation,
            initial_epoch=done,
            epochs=cfg.train.epochs,
            callbacks=[*recipe, TensorBoard(out / "tb")],  # in the recipe's order
            shuffle=False,  # shuffled by tf.data
            verbose=verbosity(),  # a bar on a terminal, a line per epoch in a log
        )


def finish(cfg: Config, run_dir: Path, model: keras.Model, recipe: Recipe, tokens_per_epoch: int) -> Path:
    """Best weights (one checkpoint, or the average of the best few if that scores higher on
    validation), the length penalty tuned on validation, the figure and ``train.json``."""
    folder = run_dir / CHECKPOINTS
    choice = choose_weights(cfg, folder, model, recipe)
    replace_file(run_dir / BEST_WEIGHTS, lambda tmp: model.save_weights(tmp))
    alpha = tune_length_penalty(cfg, run_dir, model, recipe.bleu)
    plot_history(run_dir / LOG, run_dir / TRAINING_PLOT)
    out = write_json(run_dir / SUMMARY, summarize(cfg, model, recipe, choice, alpha, tokens_per_epoch))
    checkpoints.prune(folder, {recipe.selection.best_epoch})  # and the newest, to continue by hand
    return out


def choose_weights(cfg: Config, folder: Path, model: keras.Model, recipe: Recipe) -> Choice:
    """Loads into ``model`` the best epoch's weights, or the average of the ``cfg.train.average``
    best if that scores higher on validation, and says which it kept."""
    bleu, selection, history = recipe.bleu, recipe.selection, recipe.checkpoint.history
    checkpoints.load_weights(folder, selection.best_epoch, model)
    chosen, val_bleu, averaging = [selection.best_epoch], selection.best, None
    if cfg.train.average > 1:
        best = sorted(history, key=lambda r: -r["val_bleu"])[: cfg.train.average]
        epochs = sorted(r["epoch"] for r in best)
        checkpoints.average(folder, epochs, model)
        averaged = bleu.score(model)
        print(f"average of epochs {epochs}: validation BLEU {averaged} (best single epoch {val_bleu})")
        averaging = {"epochs": epochs, "val_bleu_greedy": averaged, "kept": averaged > val_bleu}
        if averaging["kept"]:
            chosen, val_bleu = epochs, averaged
        else:
            checkpoints.load_weights(folder, selection.best_epoch, model)
    return Choice(chosen, val_bleu, averaging)


def tune_length_penalty(cfg: Config, run_dir: Path, model: keras.Model, bleu: ValidationBLEU) -> float:
    """The length penalty of ``cfg.train.length_penalties`` that scores best on validation under
    beam search, written with every penalty's score to ``decoding.json``."""
    penalties = cfg.train.length_penalties  # one beam search; each penalty picks its winners
    by_alpha = dict(zip(map(str, penalties), bleu.scores(model, DEFAULT_BEAM_SIZE, penalties), strict=True))
    for alpha, score in by_alpha.items():
        print(f"length penalty {alpha}: validation BLEU {score} (beam {DEFAULT_BEAM_SIZE})")
    alpha = float(max(cfg.train.length_penalties, key=lambda a: by_alpha[str(a)]))
    write_json(run_dir / DECODING, {"beam_size": DEFAULT_BEAM_SIZE, "length_penalty": alpha,
                                    "validation_bleu_by_length_penalty": by_alpha})  # fmt: skip
    return alpha


def summarize(
    cfg: Config, model: keras.Model, recipe: Recipe, choice: Choice, alpha: float, tokens_per_epoch: int
) -> dict:
    """The contents of ``train.json``: what was trained, what was chosen, how long it took."""
    selection, clock, checkpoint = recipe.selection, recipe.clock, recipe.checkpoint
    history = checkpoint.history
    epochs = len(history)
    return {
        "variant": cfg.model.variant,
        "training_code": TRAINING_CODE,  # what trained it (constants.TRAINING_CODE)
        "parameters": model.count_params(),
        "epochs": epochs,
        "best_epoch": selection.best_epoch,
        "best_epoch_val_bleu_greedy": selection.best,
        "averaging": choice.averaging,  # the best checkpoints' average and its score, kept or not
        "averaged_epochs": choice.epochs if len(choice.epochs) > 1 else None,
        "val_bleu_greedy": choice.val_bleu,  # of the chosen weights
        "stopped_by": "early stopping" if selection.stopped else "time budget" if clock.fired else "epochs",
        "length_penalty": alpha,
        "train_seconds": round(clock.seconds, 1),  # whole epochs, all processes
        "processes": max((r["process"] for r in history), default=0),
        # the `make bench` ceiling (float32 matrix product, GFLOP/s) of the machine of each process
        "ceiling_gflops": checkpoint.ceilings,
        "processors": checkpoint.processors,  # the CPU of each process, AVX-512 or AVX2 only
        "target_tokens_per_epoch": tokens_per_epoch,
        # real (unpadded) target tokens per second of training steps, validation excluded
        "tokens_per_second": round(tokens_per_epoch * epochs / clock.step_seconds) if epochs else None,
        "history": history,
    }
