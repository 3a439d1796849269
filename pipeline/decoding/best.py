"""The best stage: the ensemble of trained runs that scores best on validation, chosen greedily.

Every candidate run is searched alone on the validation split (beam 5, one search for every length
penalty of the runs' grid, ``compile_search``), then the candidates join the best of them one by
one, in the order of their own scores: a candidate stays only if the ensemble's validation BLEU
rises (forward selection, as in Caruana et al., 2004). Each model and ensemble is scored at its
best length penalty, which the chosen one keeps as its default. The test split chooses nothing:
this stage never reads it.

Written to the output folder: ``selection.json`` and ``selection.md`` (every candidate and
ensemble tried, its validation BLEU, the choice marked), ``decoding.json`` (the chosen length
penalty) and ``members.txt`` (the chosen runs, one a line, for the export stage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import keras

from pipeline import corpus
from pipeline.config import Config, load_config
from pipeline.constants import DEFAULT_BEAM_SIZE, EOS_ID
from pipeline.decoding.export import load_run_model, shared_tokenizer
from pipeline.decoding.search import compile_search, translate_rows
from pipeline.errors import UserError
from pipeline.files import write_json, write_text
from pipeline.layout import BEST_MEMBERS, CONFIG, DECODING, SELECTION_JSON, SELECTION_MD
from pipeline.metrics import bleu
from pipeline.models import Ensemble, Model
from pipeline.progress import verbosity
from pipeline.tokenizer import load_tokenizer


class Tried(NamedTuple):
    """One model or ensemble scored on validation: its runs' names and its best length penalty."""

    members: tuple[str, ...]  # run folder names, in the order they joined
    bleu: float  # at its best length penalty
    length_penalty: float
    by_length_penalty: dict[str, float]


class Validation(NamedTuple):
    """The validation split as search reads it, and how it is scored."""

    rows: list[list[int]]  # each source's ids, EOS last
    references: list[str]
    detokenize: Callable[[list[int]], str]
    penalties: tuple[float, ...]
    beam_size: int


def shared_config(runs: Sequence[Path]) -> Config:
    """The first run's config; a UserError unless every run has the same pair, corpus and validation
    split (``data.eval_limit``). Their seeds, variants and recipes may differ."""
    configs = [load_config(run / CONFIG) for run in runs]
    first = configs[0]
    for run, cfg in zip(runs, configs, strict=True):
        if (cfg.pair, cfg.corpus, cfg.data.eval_limit) != (first.pair, first.corpus, first.data.eval_limit):
            raise UserError(f"{run} and {runs[0]} differ in pair, corpus or validation split: candidates "
                            "must be of one pair and preset")  # fmt: skip
    return first


def read_validation(runs: Sequence[Path], data_dir: Path, beam_size: int) -> Validation:
    """The runs' validation split (their preset's ``eval_limit``) and length penalties."""
    cfg = shared_config(runs)
    sp = load_tokenizer(shared_tokenizer(runs))
    sources, references = corpus.read_split(cfg.pair, "validation", data_dir, cfg.data.eval_limit, cfg.corpus)
    rows = [ids + [EOS_ID] for ids in sp.encode(sources)]
    return Validation(rows, references, sp.decode, cfg.train.length_penalties, beam_size)


def score(model: Model, members: tuple[str, ...], validation: Validation) -> Tried:
    """Validation BLEU under every length penalty, from one beam search; the best penalty's."""
    bar = keras.utils.Progbar(len(validation.rows), unit_name="sentence", verbose=verbosity())
    search = compile_search(model)
    outputs = translate_rows(
        search, validation.rows, validation.beam_size, validation.penalties, on_batch=bar.add
    )
    by_alpha = {
        str(alpha): round(bleu([validation.detokenize(ids) for ids in rows], validation.references), 2)
        for alpha, rows in zip(validation.penalties, outputs, strict=True)
    }
    alpha = max(validation.penalties, key=lambda a: by_alpha[str(a)])  # the first of equals
    tried = Tried(members, by_alpha[str(alpha)], float(alpha), by_alpha)
    print(f"{' + '.join(members)}: validation BLEU {tried.bleu} (beam {validation.beam_size}, "
          f"length penalty {tried.length_penalty})")  # fmt: skip
    return tried


def forward_selection(
    singles: list[Tried], score_ensemble: Callable[[tuple[str, ...]], Tried]
) -> tuple[list[Tried], Tried]:
    """Starts from the best single model; each next candidate (by its own score) joins only if the
    ensemble's score rises. Returns the ensembles tried, in order, and the chosen one."""
    order = sorted(singles, key=lambda t: -t.bleu)  # stable: ties keep the candidates' order
    chosen, tried = order[0], []
    for candidate in order[1:]:
        trial = score_ensemble(chosen.members + candidate.members)
        tried.append(trial)
        if trial.bleu > chosen.bleu:
            chosen = trial
    return tried, chosen


def selection_table(singles: list[Tried], ensembles: list[Tried], chosen: Tried, beam_size: int) -> str:
    """selection.md: every candidate and ensemble tried, in order, the chosen one marked."""
    lines = [f"| tried | members | validation BLEU (beam {beam_size}) | length penalty | chosen |",
             "|---|---|---:|---:|---|"]  # fmt: skip
    for kind, group in (("model", singles), ("ensemble", ensembles)):
        for t in group:
            mark = "**chosen**" if t.members == chosen.members else ""
            lines.append(f"| {kind} | {' + '.join(t.members)} | {t.bleu} | {t.length_penalty} | {mark} |")
    return "\n".join(lines) + "\n"


def as_json(t: Tried, chosen: Tried) -> dict:
    return {"members": list(t.members), "validation_bleu": t.bleu, "length_penalty": t.length_penalty,
            "validation_bleu_by_length_penalty": t.by_length_penalty,
            "chosen": t.members == chosen.members}  # fmt: skip


def write_selection(
    out_dir: Path, runs: dict[str, Path], singles: list[Tried], ensembles: list[Tried], chosen: Tried,
    validation: Validation,
) -> Path:  # fmt: skip
    """selection.json and .md, decoding.json and members.txt; returns selection.json."""
    write_text(out_dir / SELECTION_MD, selection_table(singles, ensembles, chosen, validation.beam_size))
    write_text(out_dir / BEST_MEMBERS, "".join(f"{runs[name]}\n" for name in chosen.members))
    decoding = {
        "beam_size": validation.beam_size,
        "length_penalty": chosen.length_penalty,
        "validation_bleu_by_length_penalty": chosen.by_length_penalty,
        "members": list(chosen.members),
    }
    write_json(out_dir / DECODING, decoding)
    return write_json(out_dir / SELECTION_JSON, {
        "sentences": len(validation.rows), "beam_size": validation.beam_size,
        "length_penalties": list(validation.penalties),
        "candidates": {name: str(path) for name, path in runs.items()},
        "models": [as_json(t, chosen) for t in singles], "ensembles": [as_json(t, chosen) for t in ensembles],
        "chosen": as_json(chosen, chosen),
    })  # fmt: skip


def best(runs: Sequence[Path], data_dir: Path, out_dir: Path, beam_size: int = DEFAULT_BEAM_SIZE) -> Path:
    """Chooses the best ensemble of ``runs`` (finished runs of one pair and preset) on validation;
    writes the selection to ``out_dir`` and returns its ``selection.json``."""
    named = {run.name: run for run in runs}
    if len(named) != len(runs):
        raise UserError("two candidate runs have the same folder name: give each its own")
    validation = read_validation(runs, data_dir, beam_size)
    models = {name: load_run_model(run) for name, run in named.items()}

    def score_ensemble(members: tuple[str, ...]) -> Tried:
        return score(Ensemble([models[m] for m in members]), members, validation)

    singles = [score(models[name], (name,), validation) for name in named]
    ensembles, chosen = forward_selection(singles, score_ensemble)
    print(f"chosen: {' + '.join(chosen.members)}, validation BLEU {chosen.bleu}")
    return write_selection(out_dir, named, singles, ensembles, chosen, validation)
