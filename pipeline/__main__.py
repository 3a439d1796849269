"""python -m pipeline <stage> ...: parses arguments and calls one stage function."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.constants import DEFAULT_BEAM_SIZE, DEFAULT_CORPUS, PAIRS, VARIANT_NAMES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter


class Parser(argparse.ArgumentParser):
    """A usage mistake in one line (status 2), with where to look, instead of the whole usage."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


DESCRIPTION = """\
Neural machine translation in stages, each a subcommand: data -> tokenize -> train -> export ->
evaluate -> analyse -> report, and around them serve, translate, seeds, bench and more. The
Makefile calls them in order (make all); each can also be run alone. A mistake is one line on
stderr (exit 1; usage mistakes exit 2); --debug shows the traceback."""


def beam_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a beam size from 1 to 32")
    return int(text)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 up")
    return int(text)


def build_parser() -> Parser:
    """Every stage with its options, each with a line of help (``nmt <stage> --help``)."""
    parser = Parser(prog="nmt", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def stage(name: str, help: str, pair: bool = True, preset: bool = False, corpus: bool = False):
        p = stages.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        if pair:
            p.add_argument("--pair", default="de-en",
                           help=f"source-target (default de-en): for Multi30k one of {', '.join(PAIRS)}; "
                           "for another corpus two of its languages, e.g. pt-en")  # fmt: skip
        if corpus:
            catalogue = "or a TFDS translation dataset: ted_hrlr_translate/pt_to_en"
            p.add_argument("--corpus", default=DEFAULT_CORPUS, help=f"{DEFAULT_CORPUS} (default) {catalogue}")
        if preset:
            p.add_argument("--preset", default="quick", help="tiny, quick (default), converge or full")
            p.add_argument(
                "--set",
                dest="overrides",
                action="append",
                default=[],
                metavar="SECTION.KEY=VALUE",
                help="override a setting of the preset, e.g. train.epochs=3 (repeatable)",
            )
        return p

    def data_dir(p, what: str = "the prepared TFDS datasets") -> None:
        p.add_argument("--data-dir", type=Path, default=Path("data/tfds"), help=f"{what} (default data/tfds)")

    def decoding(p) -> None:
        p.add_argument(
            "--beam-size", type=beam_size, default=DEFAULT_BEAM_SIZE, help="1 is greedy (default 5)"
        )
        p.add_argument("--length-penalty", type=float, default=None,
                       help="GNMT alpha (default: the model's, tuned on validation)")  # fmt: skip

    run_dir = {"type": Path, "required": True, "help": "the run's folder (runs/<pair>-<preset>/<variant>)"}
    model = {
        "type": Path,
        "required": True,
        "help": "a SavedModel's version folder, or its base folder (newest version)",
    }

    p = stage("data", "build the TFDS dataset of one language pair", corpus=True)
    data_dir(p, "where to build it")
    p.add_argument(
        "--manual-dir",
        type=Path,
        default=None,
        help="the raw Multi30k .gz files (or a TFDS manual dir); missing ones are downloaded",
    )
    p.add_argument("--record", type=Path, default=None, help="file to write the prepared dataset's path to")

    p = stage("tokenize", "train SentencePiece on the training split", preset=True, corpus=True)
    data_dir(p)
    p.add_argument("--out-dir", type=Path, required=True, help="where spm.model and spm.vocab go")

    p = stage(
        "train", "train one model variant, resuming where a killed run stopped", preset=True, corpus=True
    )
    p.add_argument(
        "--variant",
        default="gru_bahdanau",
        help=", ".join(f"{v} (default)" if v == "gru_bahdanau" else v for v in VARIANT_NAMES),
    )
    data_dir(p)
    p.add_argument("--tokenizer", type=Path, required=True, help="the SentencePiece .model file")
    p.add_argument("--run-dir", **run_dir)
    p.add_argument("--force", action="store_true", help="train again even if the run has finished")

    p = stage(
        "export", "export a trained run as the next SavedModel version (text, and ids only)", pair=False
    )
    p.add_argument("--run-dir", **run_dir)
    p.add_argument("--out", type=Path, required=True, help="model base folder; versions go below it")
    p.add_argument("--record", type=Path, default=None, help="file to write the exported version's path to")

    p = stage("evaluate", "translate a split through a SavedModel and score it", preset=True, corpus=True)
    p.add_argument("--model", **model)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"], help="(default test)")
    data_dir(p)
    p.add_argument("--out-dir", type=Path, required=True, help="the variant's report folder")
    decoding(p)

    p = stage(
        "analyse", "probe a trained run: gradient flow and attention, into its report folder", pair=False
    )
    p.add_argument("--run-dir", **run_dir)
    data_dir(p)
    p.add_argument("--out-dir", type=Path, required=True, help="the variant's report folder")

    p = stage(
        "report", "compare variants from their report folders: table and figures", preset=True, corpus=True
    )
    p.add_argument("--variants", nargs="+", required=True, help="the variants, in the table's order")
    data_dir(p)
    p.add_argument("--reports-dir", type=Path, required=True, help="holds one report folder per variant")
    p.add_argument("--out-dir", type=Path, required=True, help="where compare.{json,md} and the figures go")
    p.add_argument("--baseline", default="gru_bahdanau", help="the variant p-values compare against")

    p = stage("seeds", "mean and spread of one variant trained with several seeds", pair=False)
    p.add_argument(
        "--runs", nargs="+", required=True, help="report folders of the runs, e.g. gru_bahdanau-seed1"
    )
    p.add_argument("--reports-dir", type=Path, required=True, help="holds the runs' report folders")
    p.add_argument("--out-dir", type=Path, required=True, help="where seeds.{json,md} go")

    p = stage("lesson", "read a comparison against the lesson's claims, from its numbers", pair=False)
    p.add_argument("--compare", type=Path, required=True, help="compare.json")
    p.add_argument("--seeds", type=Path, default=None, help="seeds.json, when there is one")
    p.add_argument("--out", type=Path, required=True, help="the Markdown file to write")

    p = stage("tuning", "compare tuning runs on the validation split", pair=False)
    p.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders")
    p.add_argument("--out-dir", type=Path, required=True, help="where tuning.{json,md} go")

    p = stage("bench", "measure training steps against the CPU's floor, and translation speed", preset=True)
    p.add_argument("--variants", nargs="+", required=True, help="the variants to time")
    data_dir(p)
    p.add_argument("--tokenizer", type=Path, required=True, help="the SentencePiece .model file")
    p.add_argument("--runs-dir", type=Path, required=True, help="holds <variant>/exported.txt")
    p.add_argument(
        "--out-dir", type=Path, default=Path("reports"), help="where bench.{json,md} go (default reports)"
    )
    p.add_argument("--steps", type=int, default=50, help="training batches timed per variant (default 50)")
    p.add_argument(
        "--batch1-sentences", type=int, default=None, help="test sentences at batch 1 (default all)"
    )
    p.add_argument("--plain", action="store_true", help="time the plain Keras layers, not the fused loops")
    p.add_argument("--no-translation", action="store_true", help="time training steps only")

    p = stage(
        "readme", "copy a table (compare.md, bench.md) into a Markdown file between its markers", pair=False
    )
    p.add_argument("--compare", type=Path, required=True, help="the Markdown file to copy")
    p.add_argument(
        "--readme", type=Path, default=Path("README.md"), help="the file to copy it into (default README.md)"
    )
    p.add_argument("--marker", default="compare", help="<!-- MARKER:start --> ... <!-- MARKER:end -->")

    p = stage("translate", "translate stdin to stdout, one line per line", pair=False)
    p.add_argument("--model", **model)
    p.add_argument("--batch-size", type=positive, default=64, help="sentences per request (default 64)")
    decoding(p)

    p = stage(
        "serve",
        "serve the exported models over HTTP (TensorFlow Serving's REST API), a page at /",
        pair=False,
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=Path("saved_models"),
        help="holds <model>/<version>/ (default saved_models)",
    )
    p.add_argument(
        "--models", nargs="+", default=None, help="the models to serve (default every one in --model-dir)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)"
    )
    p.add_argument(
        "--port", type=positive, default=8501, help="TCP port (default 8501, TensorFlow Serving's REST port)"
    )
    p.add_argument(
        "--max-batch-size",
        type=positive,
        default=64,
        help="sentences merged into one call, at most (default 64)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to join it (default 5)",
    )
    p.add_argument(
        "--max-queued",
        type=positive,
        default=2048,
        help="sentences waiting, at most; more get 503 (default 2048)",
    )
    p.add_argument(
        "--poll-seconds", type=float, default=2.0, help="how often to look for new versions (default 2)"
    )

    p = stage("servebench", "load-test the server: N concurrent clients, requests/s, latency, memory")
    p.add_argument("--model-dir", type=Path, default=Path("saved_models"), help="holds <model>/<version>/")
    p.add_argument("--model", required=True, help="the model to load-test, e.g. gru_bahdanau")
    data_dir(p, "the test split's sentences are sent from here")
    p.add_argument("--clients", type=positive, nargs="+", default=[1, 8, 32], help="levels (default 1 8 32)")
    p.add_argument("--seconds", type=float, default=20.0, help="per level (default 20)")
    p.add_argument("--port", type=positive, default=8599, help="for the server it starts (default 8599)")
    p.add_argument("--out-dir", type=Path, default=Path("reports"), help="where serve.json and serve.md go")
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
        if args.debug or os.environ.get("NMT_DEBUG") == "1":
            raise
        # An OSError is the machine's answer (a folder that cannot be written, a full disk): its words.
        problem = error if isinstance(error, UserError) else f"{error.strerror}: {error.filename}"
        print(f"error: {problem}", file=sys.stderr)
        return 1


# Stages that read only JSON and Markdown: no TensorFlow.
LIGHT_STAGES = ("readme", "seeds", "tuning", "lesson")


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


def check_inputs(args: argparse.Namespace) -> None:
    """The tokenizer or SavedModel a stage reads, checked before TensorFlow loads (seconds), so that
    a missing or corrupt one is reported at once."""
    if args.stage == "train":
        from pipeline.tokenizer import load_tokenizer

        load_tokenizer(args.tokenizer)
    elif args.stage in ("evaluate", "translate"):
        from pipeline.files import saved_model_dir

        saved_model_dir(args.model)
    elif args.stage == "analyse" and not (args.run_dir / "train.json").is_file():
        from pipeline.errors import UserError

        raise UserError(f"{args.run_dir} is not a finished run (no train.json): make train trains it")


def run(args: argparse.Namespace) -> int:
    # Imported here so that --help answers at once, without loading TensorFlow; the config is
    # checked before TensorFlow loads, so that a mistake in it is reported at once.
    from pipeline.config import check_pair, make_config

    corpus_name = getattr(args, "corpus", DEFAULT_CORPUS)
    if getattr(args, "pair", None) is not None:
        check_pair(args.pair, corpus_name)
    if getattr(args, "preset", None) is not None:
        cfg = make_config(args.preset, args.pair, getattr(args, "variant", None), args.overrides, corpus_name)
    if args.stage == "report":
        from pipeline.config import check_variants

        check_variants(args.variants)
    check_inputs(args)
    if args.stage == "translate":  # bytes that are not UTF-8 become U+FFFD: every line is translated
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    if args.stage not in LIGHT_STAGES:
        load_tensorflow(quiet=not (args.debug or os.environ.get("NMT_DEBUG") == "1"))
    if hasattr(args, "corpus"):
        from pipeline.corpus import open_builder

        open_builder(args.pair, args.data_dir, corpus_name)  # has the pair's languages? before any work
    if args.stage == "data":
        from pipeline.corpus import prepare

        path = prepare(args.pair, args.data_dir, args.manual_dir, corpus_name)
        if args.record:
            args.record.parent.mkdir(parents=True, exist_ok=True)
            args.record.write_text(f"{path}\n")
        print(path)
    elif args.stage == "tokenize":
        from pipeline.tokenizer import train_tokenizer

        print(train_tokenizer(cfg.tokenizer, args.pair, args.data_dir, args.out_dir, corpus_name))
    elif args.stage == "train":
        from pipeline.distribute import build

        # Before any other TensorFlow op: a multi-worker strategy sets up the process's collectives.
        strategy = build(cfg.train.strategy)
        from pipeline.train import train

        print(train(cfg, args.run_dir, args.data_dir, args.tokenizer, force=args.force, strategy=strategy))
    elif args.stage == "export":
        from pipeline.export import export

        path = export(args.run_dir, args.out)
        if args.record:
            args.record.write_text(f"{path}\n")
        print(path)
    elif args.stage == "evaluate":
        from pipeline.evaluate import evaluate

        evaluate(args.model, args.pair, args.split, args.data_dir, args.out_dir, cfg.data.eval_limit,
                 args.beam_size, args.length_penalty, corpus_name)  # fmt: skip
    elif args.stage == "analyse":
        from pipeline.analysis import analyse

        print(analyse(args.run_dir, args.data_dir, args.out_dir))
    elif args.stage == "report":
        from pipeline.report import compare

        out = compare(args.pair, args.preset, args.variants, args.data_dir, args.reports_dir, args.out_dir,
                      args.baseline, corpus_name)  # fmt: skip
        print(out)
    elif args.stage == "seeds":
        from pipeline.variance import seeds

        print(seeds(args.runs, args.reports_dir, args.out_dir))
    elif args.stage == "lesson":
        from pipeline.lesson import reading

        print(reading(args.compare, args.seeds, args.out))
    elif args.stage == "tuning":
        from pipeline.tuning import summarize

        print(summarize(args.runs, args.out_dir))
    elif args.stage == "bench":
        from pipeline.bench import bench

        print(bench(args.pair, args.preset, args.variants, args.data_dir, args.tokenizer, args.runs_dir,
                    args.out_dir, args.steps, args.batch1_sentences, args.overrides,
                    fused=not args.plain, translation=not args.no_translation))  # fmt: skip
    elif args.stage == "readme":
        from pipeline.readme import splice_readme

        print(splice_readme(args.readme, args.compare, args.marker))
    elif args.stage == "serve":
        from pipeline.serving.app import serve

        serve(args.model_dir, args.models, args.host, args.port, args.max_batch_size, args.batch_wait_ms,
              args.max_queued, args.poll_seconds)  # fmt: skip
    elif args.stage == "servebench":
        from pipeline.serving.load import load_test

        levels = tuple(args.clients)
        out = load_test(args.model_dir, args.model, args.pair, args.data_dir, args.out_dir, levels,
                        args.seconds, args.port)  # fmt: skip
        print(out)
    elif args.stage == "translate":
        from pipeline.translate import translate_stream

        translate_stream(args.model, beam_size=args.beam_size, length_penalty=args.length_penalty,
                         batch_size=args.batch_size)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
