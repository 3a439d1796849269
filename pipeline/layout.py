"""The names of the files in a run folder, a report folder and a comparison folder, defined once.

Every stage, test and Make rule takes them from here (``python -m pipeline.layout`` prints them as
Make variables). Nothing here imports anything: the Makefile reads it with the system's Python.

A run folder (``runs/<pair>-<preset>/<variant>``), written by train and export::

    config.json  spm.model  log.csv  training.png  checkpoints/<epoch>/{model.weights.h5,state.json}
    best.weights.h5  decoding.json  train.json (last: a run with it is finished)  exported.txt

A report folder (``reports/<pair>/<preset>/<variant>``, ``reports/<pair>/distilled/<variant>``),
written by evaluate and analyse::

    validation.json  test.greedy.json  test.json  <split>.hyp.txt  analysis.json
    and the run's log.csv, training.png, train.json, config.json, decoding.json (copied)
"""

from __future__ import annotations

import sys

# A run folder.
CONFIG = "config.json"
TOKENIZER = "spm.model"
VOCABULARY = "spm.vocab"
LOG = "log.csv"
TRAINING_PLOT = "training.png"
CHECKPOINTS = "checkpoints"  # one folder per epoch, each written whole or not at all
WEIGHTS = "model.weights.h5"  # in each epoch's folder
STATE = "state.json"  # in each epoch's folder: the callbacks', the data's and the dropout's state
BEST_WEIGHTS = "best.weights.h5"
DECODING = "decoding.json"  # the beam size and the length penalty tuned on validation
SUMMARY = "train.json"  # written last: a run with it is finished
EXPORTED = "exported.txt"  # the SavedModel version the export stage wrote

# A report folder: one result per split and decoding, the hypotheses beside it.
ANALYSIS = "analysis.json"
GREEDY = "greedy"  # the decoding name of beam size 1 at the default penalty
COPIED_FROM_RUN = (LOG, TRAINING_PLOT, SUMMARY, CONFIG, DECODING)


def result_stem(split: str, decoding: str | None = None) -> str:
    """``test``, ``test.greedy``, ``validation``: one split's result under the export's default
    decoding (``decoding`` None) or another one, without a suffix."""
    return split if decoding is None else f"{split}.{decoding}"


def result(split: str, decoding: str | None = None) -> str:
    """``test.json``, ``test.greedy.json``: the BLEU, chrF and decoding of one split."""
    return f"{result_stem(split, decoding)}.json"


def hypotheses(split: str, decoding: str | None = None) -> str:
    """``test.hyp.txt``: one translation a line, in the split's order."""
    return f"{result_stem(split, decoding)}.hyp.txt"


# A comparison folder (reports/<pair>/<preset>).
COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
SUMMARY_MD = "summary.md"  # the compact table the README shows
BLEU_BY_VARIANT = "bleu_by_variant.png"
BLEU_BY_LENGTH = "bleu_by_length.png"
GRADIENT_FLOW = "gradient_flow.png"
LESSON_MD = "lesson.md"
LESSON_DIRECTIONS_MD = "lesson-directions.md"  # under reports/: the claims' verdicts, a column per pair


def attention_plot(variant: str) -> str:
    return f"attention_{variant}.png"


# The other stages' outputs.
SEEDS_JSON, SEEDS_MD = "seeds.json", "seeds.md"
TUNING_JSON, TUNING_MD, TUNING_PLOT = "tuning.json", "tuning.md", "tuning.png"
BENCH_JSON, BENCH_MD = "bench.json", "bench.md"
MEMORY_JSON, MEMORY_MD = "memory.json", "memory.md"
TIMINGS_JSON, TIMINGS_MD = "timings.json", "timings.md"
SERVE_JSON, SERVE_MD, SERVE_EXCHANGE = "serve.json", "serve.md", "serve-exchange.md"
# Under reports/: the report folders not trained by the current training code, each with why it is
# kept (tests/test_drift.py holds every other folder to the current code), and their table.
ARCHIVED_JSON, ARCHIVED_MD = "archived.json", "archived.md"
REPRODUCE_MD = "reproduce.md"  # under reports/: each command, what it writes, its minutes
BOUNDS_MD = "memory-bound.md"  # under reports/: the memory one request may add, by variant and preset

# The best model's folder (reports/<pair>/best), written by the best stage, then evaluate's files as
# in a report folder; decoding.json (DECODING) holds the ensemble's length penalty.
SELECTION_JSON, SELECTION_MD = "selection.json", "selection.md"  # every candidate and ensemble tried
BEST_MEMBERS = "members.txt"  # the chosen runs' folders, one a line
BEST_LINES_MD = "best.md"  # in reports/: the README's lines on each pair's best model and its students
# In a student's report folder (reports/<pair>/distilled/<variant>): its test BLEU against the same
# variant's trained on the references, greedy and beam, with paired bootstrap p-values.
AGAINST_REFERENCES_JSON = "against_references.json"


# A teacher's translations of the training split (data/distill/<pair>/<teacher>-<version>/), written
# by the teach stage in shards, then whole.
TEACHER_SHARDS = "shards"
TEACHER_JSON = "teacher.json"  # which SavedModel, which decoding
TEACHER_RECORD = "teacher.txt"  # beside the best model's exported.txt: where its translations are


def teacher_targets(language: str) -> str:
    """``train.en``: the teacher's translation of each training source, one a line, in order."""
    return f"train.{language}"


def teacher_shard(index: int) -> str:
    return f"{index:05d}.txt"


# Make's names for the files its rules are keyed on.
MAKE_VARIABLES = {
    "SUMMARY": SUMMARY,
    "EXPORTED": EXPORTED,
    "TOKENIZER_FILE": TOKENIZER,
    "TEST_JSON": result("test"),
    "ANALYSIS": ANALYSIS,
    "COMPARE_JSON": COMPARE_JSON,
    "COMPARE_MD": COMPARE_MD,
    "SEEDS_JSON": SEEDS_JSON,
    "SEEDS_MD": SEEDS_MD,
    "TUNING_JSON": TUNING_JSON,
    "TUNING_MD": TUNING_MD,
    "RUN_FILES_COPIED": " ".join(COPIED_FROM_RUN),
    "SUMMARY_MD": SUMMARY_MD,
    "LESSON_MD": LESSON_MD,
    "LESSON_DIRECTIONS_MD": LESSON_DIRECTIONS_MD,
    "BENCH_MD": BENCH_MD,
    "MEMORY_MD": MEMORY_MD,
    "TIMINGS_MD": TIMINGS_MD,
    "SERVE_MD": SERVE_MD,
    "SERVE_EXCHANGE": SERVE_EXCHANGE,
    "ARCHIVED_JSON": ARCHIVED_JSON,
    "ARCHIVED_MD": ARCHIVED_MD,
    "REPRODUCE_MD": REPRODUCE_MD,
    "BOUNDS_MD": BOUNDS_MD,
    "DECODING_JSON": DECODING,
    "SELECTION_JSON": SELECTION_JSON,
    "SELECTION_MD": SELECTION_MD,
    "BEST_MEMBERS": BEST_MEMBERS,
    "BEST_LINES_MD": BEST_LINES_MD,
    "AGAINST_REFERENCES_JSON": AGAINST_REFERENCES_JSON,
    "TEACHER_RECORD": TEACHER_RECORD,
}


if __name__ == "__main__":  # the Makefile's: NAME := value, one a line
    sys.stdout.write("".join(f"{name} := {value}\n" for name, value in MAKE_VARIABLES.items()))
