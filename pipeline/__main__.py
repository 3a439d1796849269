"""python -m pipeline <stage> ...: one table of stages (``STAGES``), each with its line of help, its
options and the function it calls; ``build_parser`` reads the table and ``run`` looks a stage up in it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import layout  # names only: imports nothing
from pipeline.constants import DEFAULT_BEAM_SIZE, DEFAULT_CORPUS, PAIRS, VARIANT_NAMES

if TYPE_CHECKING:
    from pipeline.config import Config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

DESCRIPTION = """\
Neural machine translation in stages, each a subcommand: data -> tokenize -> train -> export ->
evaluate -> analyse -> report, and around them serve, translate, seeds, bench and more. The
Makefile calls them in order (make all); each can also be run alone. A mistake is one line on
stderr (exit 1; usage mistakes exit 2); --debug shows the traceback."""

Namespace = argparse.Namespace
Result = Path | str | int | None  # what a stage's call returns: printed, or (an int) the exit status


class Parser(argparse.ArgumentParser):
    """A usage mistake in one line (status 2), with where to look, instead of the whole usage."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


class Default(str):
    """A default that the command line did not give, told apart from the same value given: while
    parsing only (``StageParser`` hands on plain strings)."""


class StageParser(Parser):
    """One stage's parser; ``refuse`` names options that are each allowed but not together."""

    def __init__(self, *args: Any, refuse: Callable[[Namespace], str | None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.refuse = refuse

    def parse_known_args(
        self, args: list[str] | None = None, namespace: Namespace | None = None
    ) -> tuple[Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        problem = self.refuse(namespace) if self.refuse else None
        if problem:
            self.error(problem)
        for name, value in list(vars(namespace).items()):
            if isinstance(value, Default):
                setattr(namespace, name, str(value))
        return namespace, extras


def beam_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a beam size from 1 to 32")
    return int(text)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 up")
    return int(text)


@dataclass(frozen=True)
class Option:
    """One ``add_argument``: its flags (or a positional's name) and its keywords."""

    flags: tuple[str, ...]
    settings: dict[str, Any]


def option(*flags: str, **settings: Any) -> Option:
    return Option(flags, settings)


def data_dir(what: str = "the prepared TFDS datasets", default: str = "data/tfds") -> Option:
    return option("--data-dir", type=Path, default=Path(default), help=f"{what} (default {default})")


def out_dir(help: str) -> Option:
    return option("--out-dir", type=Path, required=True, help=help)


# Options that several stages share, declared once.
PAIR = option("--pair", default="de-en",
              help=f"source-target (default de-en): for Multi30k one of {', '.join(PAIRS)}; "
              "for another corpus two of its languages, e.g. pt-en")  # fmt: skip
CATALOGUE = "or a TFDS translation dataset: ted_hrlr_translate/pt_to_en"
CORPUS = option("--corpus", default=DEFAULT_CORPUS, help=f"{DEFAULT_CORPUS} (default) {CATALOGUE}")
PRESET = (
    option("--preset", default=Default("quick"), help="tiny, quick (default), converge or full"),
    option("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
           help="override a setting of the preset, e.g. train.epochs=3 (repeatable)"),
)  # fmt: skip
DATA_DIR = data_dir()
DECODING = (
    option("--beam-size", type=beam_size, default=DEFAULT_BEAM_SIZE, help="1 is greedy (default 5)"),
    option("--length-penalty", type=float, default=None,
           help="GNMT alpha (default: the model's, tuned on validation)"),
)  # fmt: skip
SPLIT = option("--split", default="test", choices=["train", "validation", "test"], help="(default test)")
RUN_DIR = option("--run-dir", type=Path, required=True,
                 help="the run's folder (runs/<pair>-<preset>/<variant>)")  # fmt: skip
MODEL = option("--model", type=Path, required=True,
               help="a SavedModel's version folder, or its base folder (newest version)")  # fmt: skip
TOKENIZER = option("--tokenizer", type=Path, required=True, help="the SentencePiece .model file")
REPORT_FOLDER = out_dir("the variant's report folder")
VARIANT_HELP = ", ".join(f"{v} (default)" if v == "gru_bahdanau" else v for v in VARIANT_NAMES)
VARIANT = option("--variant", default=Default("gru_bahdanau"), help=VARIANT_HELP)


# Checks of what a stage reads, before TensorFlow loads (seconds), so that a missing or corrupt
# tokenizer, SavedModel or run is reported at once.
def check_tokenizer(args: Namespace) -> None:
    from pipeline.tokenizer import load_tokenizer

    load_tokenizer(args.tokenizer)


def check_saved_model(args: Namespace) -> None:
    from pipeline.files import saved_model_dir

    saved_model_dir(args.model)


def check_finished_run(args: Namespace) -> None:
    from pipeline.errors import UserError

    if not (args.run_dir / layout.SUMMARY).is_file():
        raise UserError(f"{args.run_dir} is not a finished run (no {layout.SUMMARY}): make train trains it")


def check_variants(args: Namespace) -> None:
    from pipeline.config import check_variants

    check_variants(args.variants)


# Usage mistakes that argparse cannot see option by option: one line, exit 2.
def refuse_tuning_run_with_preset(args: Namespace) -> str | None:
    if args.tuning_run and not (isinstance(args.preset, Default) and isinstance(args.variant, Default)):
        return "--tuning-run sets the preset and the variant: give neither --preset nor --variant with it"
    return None


def timed_command(args: Namespace) -> list[str]:
    return args.command[1:] if args.command[:1] == ["--"] else args.command


def refuse_timings_without_command(args: Namespace) -> str | None:
    if not args.table and not (args.label and timed_command(args)):
        return "give --label and, after --, the command to time (or --table)"
    return None


# The calls: each imports its stage function only when it runs, so that --help and the light
# stages import no TensorFlow.
def call_data(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.corpus import prepare

    path = prepare(args.pair, args.data_dir, args.manual_dir, args.corpus)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(f"{path}\n")
    return path


def call_tokenize(args: Namespace, cfg: Config) -> Path:
    from pipeline.tokenizer import train_tokenizer

    return train_tokenizer(cfg.tokenizer, args.pair, args.data_dir, args.out_dir, args.corpus)


def call_train(args: Namespace, cfg: Config) -> Path:
    from pipeline.distribute import build

    # Before any other TensorFlow op: a multi-worker strategy sets up the process's collectives.
    strategy = build(cfg.train.strategy)
    from pipeline.training.train import train

    return train(cfg, args.run_dir, args.data_dir, args.tokenizer, force=args.force, strategy=strategy)


def call_export(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.decoding.export import export

    path = export(args.run_dirs, args.out, args.length_penalty, args.decoding)
    if args.record:
        args.record.write_text(f"{path}\n")
    return path


def call_best(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.decoding.best import best

    return best(args.runs, args.data_dir, args.out_dir, args.beam_size)


def call_teach(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.decoding.teach import teach

    path = teach(args.model, args.pair, args.data_dir, args.out_root, args.corpus, args.beam_size)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(f"{path}\n")
    return path


def call_evaluate(args: Namespace, cfg: Config) -> None:
    from pipeline.decoding.evaluate import evaluate

    evaluate(args.model, args.pair, args.split, args.data_dir, args.out_dir, cfg.data.eval_limit,
             args.beam_size, args.length_penalty, args.corpus)  # fmt: skip


def call_analyse(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.decoding.analysis import analyse

    return analyse(args.run_dir, args.data_dir, args.out_dir)


def call_split(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.corpus import write_split

    return write_split(args.pair, args.split, args.data_dir, args.out, args.corpus)


def call_report(args: Namespace, cfg: Config) -> Path:
    from pipeline.reporting.report import compare

    return compare(args.pair, args.preset, args.variants, args.split_file, args.reports_dir, args.out_dir,
                   args.baseline, args.corpus)  # fmt: skip


def call_seeds(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.variance import seeds

    return seeds(args.runs, args.reports_dir, args.out_dir)


def call_lesson(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.lesson import reading

    return reading(args.compare, args.seeds, args.out, args.students)


def call_student(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.student import against_references

    return against_references(
        args.student, args.references, args.split_file, args.pair, args.corpus, args.out
    )


def call_directions(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.lesson import side_by_side

    return side_by_side(dict(args.compare), args.out)


def pair_path(text: str) -> tuple[str, Path]:
    pair, _, path = text.partition("=")
    if not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not PAIR=PATH")
    return pair, Path(path)


def call_bounds(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.decoding.export import bounds_table

    return bounds_table(args.out)


def call_reproduce(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.reproduce import reproduce_table

    return reproduce_table(args.reports, args.out)


def call_archive(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.archive import archive_table

    return archive_table(args.reports, args.out)


def call_tuning(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.tuning import summarize

    return summarize(args.runs, args.out_dir)


def call_bench(args: Namespace, cfg: Config) -> str:
    from pipeline.bench.bench import bench

    return bench(args.pair, args.preset, args.variants, args.data_dir, args.tokenizer, args.runs_dir,
                 args.out_dir, args.steps, args.batch1_sentences, args.overrides,
                 fused=not args.plain, translation=not args.no_translation, models=args.models,
                 models_dir=args.models_dir)  # fmt: skip


def call_membench(args: Namespace, cfg: Config | None) -> Path | None:
    from pipeline.bench import membench

    if args.one_pass:  # the measured child that membench starts for each size
        membench.one_pass(args.one_pass, args.data_dir, args.spm_model)
        return None
    return membench.membench(args.sizes, args.data_dir, args.out_dir)


def call_readme(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.readme import splice_readme

    return splice_readme(args.readme, args.compare, args.marker)


def call_bestline(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.reporting.best import summarize_best

    return summarize_best(args.reports_dir, args.out)


def call_timings(args: Namespace, cfg: Config | None) -> Path | int:
    from pipeline.bench import timings

    if args.table:
        return timings.table(args.out_dir)
    return timings.record(args.label, timed_command(args), args.out_dir)  # the command's exit status


def call_translate(args: Namespace, cfg: Config | None) -> None:
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # not UTF-8: U+FFFD, every line translated
    from pipeline.decoding.translate import translate_stream

    translate_stream(args.model, beam_size=args.beam_size, length_penalty=args.length_penalty,
                     batch_size=args.batch_size)  # fmt: skip


def call_serve(args: Namespace, cfg: Config | None) -> None:
    from pipeline.serving.app import serve

    serve(args.model_dir, args.models, args.host, args.port, args.max_batch_size, args.batch_wait_ms,
          args.max_queued, args.poll_seconds, args.deadline_ms)  # fmt: skip


def call_servebench(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.serving.load import load_test

    return load_test(args.model_dir, args.model, args.pair, args.data_dir, args.out_dir, tuple(args.clients),
                     args.seconds, args.port, flood_clients=args.flood_clients)  # fmt: skip


def call_exchange(args: Namespace, cfg: Config | None) -> Path:
    from pipeline.serving.load import write_exchange

    return write_exchange(args.model_dir, args.model, args.pair, args.data_dir, args.out, args.port)


@dataclass(frozen=True)
class Stage:
    """One subcommand: ``nmt <name> <options>`` calls ``call(args, cfg)`` (``cfg`` when it has a
    --preset), then prints the path or table it returns, or exits with the status it returns.

    ``light``: no TensorFlow loaded for it (it reads only JSON and Markdown; membench and timings
    import it themselves, where they measure). ``check``: what it reads, checked before TensorFlow
    loads. ``refuse``: options allowed one by one but not together, a usage mistake (exit 2).
    A stage with --corpus that is not light has its pair's languages checked before any work."""

    name: str
    help: str
    options: tuple[Option, ...]
    call: Callable[[Namespace, Config | None], Result]
    light: bool = False
    check: Callable[[Namespace], None] | None = None
    refuse: Callable[[Namespace], str | None] | None = None


STAGES: tuple[Stage, ...] = (
    Stage("data", "build the TFDS dataset of one language pair", (
        PAIR, CORPUS, data_dir("where to build it"),
        option("--manual-dir", type=Path, default=None,
               help="the raw Multi30k .gz files (or a TFDS manual dir); missing ones are downloaded"),
        option("--record", type=Path, default=None, help="file to write the prepared dataset's path to"),
    ), call_data),
    Stage("tokenize", "train SentencePiece on the training split", (
        PAIR, CORPUS, *PRESET, DATA_DIR, out_dir("where spm.model and spm.vocab go"),
    ), call_tokenize),
    Stage("train", "train one model variant, resuming where a killed run stopped", (
        PAIR, CORPUS, *PRESET, VARIANT,
        option("--tuning-run", default=None, metavar="NAME",
               help="a tuning run of pipeline/config.py (TUNING_RUNS), e.g. A_d01: its preset, variant "
               "and settings, then --set's"),
        DATA_DIR, TOKENIZER, RUN_DIR,
        option("--force", action="store_true", help="train again even if the run has finished"),
    ), call_train, check=check_tokenizer, refuse=refuse_tuning_run_with_preset),
    Stage("export", "export a trained run, or an ensemble of runs, as the next SavedModel version "
          "(text, and ids only)", (
        option("--run-dir", dest="run_dirs", type=Path, action="append", required=True,
               help="the run's folder (runs/<pair>-<preset>/<variant>); repeated, an ensemble of the "
               "runs (one tokenizer)"),
        option("--out", type=Path, required=True, help="model base folder; versions go below it"),
        option("--length-penalty", type=float, default=None,
               help="the default length penalty (default: --decoding's, or the single run's own)"),
        option("--decoding", type=Path, default=None,
               help="a decoding.json whose length_penalty is the default (the best stage's)"),
        option("--record", type=Path, default=None, help="file to write the exported version's path to"),
    ), call_export),
    Stage("best", "choose the ensemble of trained runs that scores best on validation, greedily", (
        option("--runs", nargs="+", type=Path, required=True,
               help="the candidates' finished run folders, of one pair and preset"),
        DATA_DIR,
        out_dir("the best model's report folder: selection.{json,md}, decoding.json, members.txt"),
        option("--beam-size", type=beam_size, default=DEFAULT_BEAM_SIZE, help="(default 5)"),
    ), call_best),
    Stage("teach", "translate the training split with a teacher SavedModel: a student's targets", (
        PAIR, CORPUS, MODEL, DATA_DIR,
        option("--out-root", type=Path, required=True,
               help="the translations go to <out-root>/<model>-<version>/train.<target language>"),
        option("--beam-size", type=beam_size, default=DEFAULT_BEAM_SIZE, help="(default 5)"),
        option("--record", type=Path, default=None, help="file to write the translations' path to"),
    ), call_teach, check=check_saved_model),
    Stage("evaluate", "translate a split through a SavedModel and score it", (
        PAIR, CORPUS, *PRESET, MODEL, SPLIT, DATA_DIR, REPORT_FOLDER, *DECODING,
    ), call_evaluate, check=check_saved_model),
    Stage("analyse", "probe a trained run: gradient flow and attention, into its report folder", (
        RUN_DIR, DATA_DIR, REPORT_FOLDER,
    ), call_analyse, check=check_finished_run),
    Stage("split", "write one split's sentences and title as JSON, for the stages that read no TensorFlow", (
        PAIR, CORPUS, SPLIT, DATA_DIR,
        option("--out", type=Path, required=True, help="the JSON file to write"),
    ), call_split),
    Stage("report", "compare variants from their report folders: table and figures", (
        PAIR, CORPUS, *PRESET,
        option("--variants", nargs="+", required=True, help="the variants, in the table's order"),
        option("--split-file", type=Path, required=True,
               help="the test split's sentences, written by the split stage"),
        option("--reports-dir", type=Path, required=True, help="holds one report folder per variant"),
        out_dir("where compare.{json,md} and the figures go"),
        option("--baseline", default="gru_bahdanau", help="the variant p-values compare against"),
    ), call_report, light=True, check=check_variants),
    Stage("seeds", "mean and spread of one variant trained with several seeds", (
        option("--runs", nargs="+", required=True,
               help="report folders of the runs, e.g. gru_bahdanau-seed1"),
        option("--reports-dir", type=Path, required=True, help="holds the runs' report folders"),
        out_dir("where seeds.{json,md} go"),
    ), call_seeds, light=True),
    Stage("lesson", "read a comparison against the lesson's claims, from its numbers", (
        option("--compare", type=Path, required=True, help=layout.COMPARE_JSON),
        option("--seeds", type=Path, default=None, help="seeds.json, when there is one"),
        option("--students", type=Path, default=None,
               help="reports/<pair>/distilled: each student's against_references.json, when there is one"),
        option("--out", type=Path, required=True, help="the Markdown file to write"),
    ), call_lesson, light=True),
    Stage("student", "a distilled student against its variant trained on the references: BLEU gaps, p", (
        CORPUS, PAIR,
        option("--student", type=Path, required=True, help="the student's report folder"),
        option("--references", type=Path, required=True,
               help="the report folder of the same variant trained on the references"),
        option("--split-file", type=Path, required=True, help="the test split (make split)"),
        option("--out", type=Path, required=True, help="the JSON file to write"),
    ), call_student, light=True),
    Stage("directions", "the lesson's claims with a column of verdicts per direction (language pair)", (
        option("--compare", nargs="+", type=pair_path, required=True,
               help="PAIR=compare.json, one per direction; a file not there yet is 'not run'"),
        option("--out", type=Path, required=True, help="the Markdown file to write"),
    ), call_directions, light=True),
    Stage("bounds", "the memory one request may add to the server, by variant and preset", (
        option("--out", type=Path, required=True, help="the Markdown file to write"),
    ), call_bounds),
    Stage("reproduce", "each command behind a figure, what it writes, its minutes from the committed files", (
        option("--reports", type=Path, default=Path("reports"), help="the committed reports"),
        option("--out", type=Path, required=True, help="the Markdown file to write"),
    ), call_reproduce, light=True),
    Stage("archive", "the report folders of earlier training code, and why each is kept, as a table", (
        option("--reports", type=Path, default=Path("reports"), help=f"holds {layout.ARCHIVED_JSON}"),
        option("--out", type=Path, required=True, help="the Markdown file to write"),
    ), call_archive, light=True),
    Stage("tuning", "compare tuning runs on the validation split", (
        option("--runs", nargs="+", type=Path, required=True, help="run folders"),
        out_dir("where tuning.{json,md} go"),
    ), call_tuning, light=True),
    Stage("bench", "measure training steps against the CPU's floor, and translation speed", (
        PAIR, *PRESET,
        option("--variants", nargs="+", required=True, help="the variants to time"),
        DATA_DIR, TOKENIZER,
        option("--runs-dir", type=Path, required=True, help="holds <variant>/exported.txt"),
        option("--out-dir", type=Path, default=Path("reports"),
               help="where bench.{json,md} go (default reports)"),
        option("--steps", type=int, default=50, help="training batches timed per variant (default 50)"),
        option("--batch1-sentences", type=int, default=None, help="test sentences at batch 1 (default all)"),
        option("--plain", action="store_true", help="time the plain Keras layers, not the fused loops"),
        option("--no-translation", action="store_true", help="time training steps only"),
        option("--models", nargs="*", default=[],
               help="other exports under --models-dir (<name>/exported.txt), timed for translation only: "
               "best, distilled-<variant>"),
        option("--models-dir", type=Path, default=None,
               help="the runs folder of --models (default --runs-dir), e.g. runs/de-en-converge"),
    ), call_bench),
    Stage("membench", "peak memory and time of tokenize and of one pass of the input pipeline, on the "
          "synthetic corpus", (
        option("--sizes", nargs="+", type=int, default=[100_000, 1_000_000],
               help="training pairs, one measurement each (default 100000 1000000)"),
        data_dir("where the synthetic corpus is prepared", "data/membench"),
        option("--out-dir", type=Path, default=Path("reports"),
               help="where memory.{json,md} go (default reports)"),
        option("--one-pass", type=int, default=None, help=argparse.SUPPRESS),  # the measured child
        option("--spm-model", type=Path, default=None, help=argparse.SUPPRESS),
    ), call_membench, light=True),
    Stage("readme", "copy a table (compare.md, bench.md) into a Markdown file between its markers", (
        option("--compare", type=Path, required=True, help="the Markdown file to copy"),
        option("--readme", type=Path, default=Path("README.md"),
               help="the file to copy it into (default README.md)"),
        option("--marker", default="compare", help="<!-- MARKER:start --> ... <!-- MARKER:end -->"),
    ), call_readme, light=True),
    Stage("bestline", "the README's lines on each pair's best model and its distilled students", (
        option("--reports-dir", type=Path, nargs="+", required=True,
               help="each pair's reports (reports/<pair>): best/, distilled/<variant>/, converge/<variant>/"),
        option("--out", type=Path, required=True, help="the Markdown file to write"),
    ), call_bestline, light=True),
    Stage("timings", "time a command and record it in reports/timings.{json,md}", (
        option("--label", help='what the README calls it, e.g. "make test"'),
        option("--table", action="store_true", help="only write timings.md again, timing nothing"),
        option("--out-dir", type=Path, default=Path("reports"), help="where timings.{json,md} go"),
        option("command", nargs=argparse.REMAINDER, help="-- then the command to time"),
    ), call_timings, light=True, refuse=refuse_timings_without_command),
    Stage("translate", "translate stdin to stdout, one line per line", (
        MODEL,
        option("--batch-size", type=positive, default=64, help="sentences per request (default 64)"),
        *DECODING,
    ), call_translate, check=check_saved_model),
    Stage("serve", "serve the exported models over HTTP (TensorFlow Serving's REST API), a page at /", (
        option("--model-dir", type=Path, default=Path("saved_models"),
               help="holds <model>/<version>/ (default saved_models)"),
        option("--models", nargs="+", default=None,
               help="the models to serve (default every one in --model-dir)"),
        option("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)"),
        option("--port", type=positive, default=8501,
               help="TCP port (default 8501, TensorFlow Serving's REST port)"),
        option("--max-batch-size", type=positive, default=64,
               help="sentences merged into one call, at most (default 64)"),
        option("--batch-wait-ms", type=float, default=5.0,
               help="how long a request waits for others to join it (default 5)"),
        option("--max-queued", type=positive, default=2048,
               help="sentences waiting, at most; more get 503 (default 2048)"),
        option("--poll-seconds", type=float, default=2.0,
               help="how often to look for new versions (default 2)"),
        option("--deadline-ms", type=float, default=30000.0,
               help="each request's deadline: unanswered by then, 504 (default 30000, TF Serving's)"),
    ), call_serve),
    Stage("servebench", "load-test the server: N concurrent clients, requests/s, latency, memory", (
        PAIR,
        option("--model-dir", type=Path, default=Path("saved_models"), help="holds <model>/<version>/"),
        option("--model", required=True, help="the model to load-test, e.g. gru_bahdanau_converge"),
        data_dir("the test split's sentences are sent from here"),
        option("--clients", type=positive, nargs="+", default=[1, 8, 32], help="levels (default 1 8 32)"),
        option("--seconds", type=float, default=20.0, help="per level (default 20)"),
        option("--flood-clients", type=int, default=16,
               help="clients sending the heaviest requests beside one (default 16; 0: no flood)"),
        option("--port", type=positive, default=8599, help="for the server it starts (default 8599)"),
        option("--out-dir", type=Path, default=Path("reports"), help="where serve.json and serve.md go"),
    ), call_servebench),
    Stage("exchange", "the README's curl requests sent to a served model, with its answers, as Markdown", (
        PAIR,
        option("--model-dir", type=Path, default=Path("saved_models"), help="holds <model>/<version>/"),
        option("--model", required=True, help="the model, served with its ids servable, e.g. best"),
        data_dir("the first test sentence is sent from here"),
        option("--port", type=positive, default=8599, help="for the server it starts (default 8599)"),
        option("--out", type=Path, required=True, help="the Markdown file to write"),
    ), call_exchange),
)  # fmt: skip
STAGE_NAMED = {stage.name: stage for stage in STAGES}


def build_parser() -> Parser:
    """Every stage of ``STAGES`` with its options, each with a line of help (``nmt <stage> --help``)."""
    parser = Parser(prog="nmt", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE", parser_class=StageParser)
    for stage in STAGES:
        description = stage.help[0].upper() + stage.help[1:] + "."
        sub = stages.add_parser(stage.name, help=stage.help, description=description, refuse=stage.refuse)
        for choice in stage.options:
            sub.add_argument(*choice.flags, **choice.settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one stage; a user's mistake (``UserError``) is one line on stderr and exit status 1,
    with the traceback only under ``--debug`` or ``NMT_DEBUG=1``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from pipeline.errors import UserError  # no TensorFlow behind it

    try:
        return run(args)
    except (UserError, OSError) as error:
        if debugging(args):
            raise
        # An OSError is the machine's answer (a folder that cannot be written, a full disk): its words.
        problem = error if isinstance(error, UserError) else f"{error.strerror}: {error.filename}"
        print(f"error: {problem}", file=sys.stderr)
        return 1


def debugging(args: Namespace) -> bool:
    return args.debug or os.environ.get("NMT_DEBUG") == "1"


def load_tensorflow(quiet: bool) -> None:
    """Imports TensorFlow, with its C++ start-up notes (CUDA probes, oneDNN) kept off stderr when
    ``quiet``: TF_CPP_MIN_LOG_LEVEL no longer reaches them (tensorflow/tensorflow#100442)."""
    if not quiet:
        import tensorflow  # noqa: F401

        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe, here rather than at the first op
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def configure(args: Namespace) -> Config | None:
    """The pair and, for a stage with --preset, its config: the preset, the variant, --tuning-run's
    settings, then --set's. Checked before TensorFlow loads, so that a mistake is reported at once."""
    from pipeline.config import check_pair, make_config, tuning_run

    corpus_name = getattr(args, "corpus", DEFAULT_CORPUS)
    if getattr(args, "pair", None) is not None:
        check_pair(args.pair, corpus_name)
    if getattr(args, "tuning_run", None):
        chosen = tuning_run(args.tuning_run)
        args.preset, args.variant = chosen.preset, chosen.variant
        args.overrides = [*chosen.overrides, *args.overrides]
    if getattr(args, "preset", None) is None:
        return None
    return make_config(args.preset, args.pair, getattr(args, "variant", None), args.overrides, corpus_name)


def run(args: Namespace) -> int:
    """The stage's config and inputs checked, TensorFlow loaded unless it is light, then its call."""
    stage = STAGE_NAMED[args.stage]
    cfg = configure(args)
    if stage.check:
        stage.check(args)
    if not stage.light:
        load_tensorflow(quiet=not debugging(args))
        if hasattr(args, "corpus"):
            from pipeline.corpus import open_builder

            open_builder(args.pair, args.data_dir, args.corpus)  # has the pair's languages? before any work
    return finish(stage.call(args, cfg))


def finish(result: Result) -> int:
    """Prints the path or table a stage returned; an int is its exit status."""
    if isinstance(result, int):
        return result
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
