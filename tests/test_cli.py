import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import config, corpus, layout
from pipeline.__main__ import STAGES, build_parser, configure, main
from pipeline.corpus import PAIRS

# Every stage there is: a stage dropped from the table fails the help tests.
STAGE_NAMES = ("data", "tokenize", "train", "export", "best", "teach", "evaluate", "analyse", "split",
               "report", "seeds", "lesson", "student", "directions", "bounds", "reproduce", "archive",
               "tuning", "bench", "membench", "readme", "bestline", "timings", "translate", "serve",
               "servebench", "exchange")  # fmt: skip


def environment() -> dict:
    """This process's environment as it is now: the shared_corpus fixture may have added the
    synthetic corpus's digest table (MULTI30K_SHA256SUMS) after this module was imported.
    COLUMNS: help lines unwrapped."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "1000"}


def pipeline_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=cwd,
        timeout=120,
    )


# Runs one command in a fresh interpreter, then prints its exit status and whether TensorFlow got imported.
PROBE = """
import json, sys
from pipeline.__main__ import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:
    status = exit.code
print(json.dumps([status, "tensorflow" in sys.modules]))
"""


def probe(args: tuple[str, ...], cwd) -> tuple[subprocess.CompletedProcess, list]:
    command = [sys.executable, "-c", PROBE, *args]
    result = subprocess.run(command, capture_output=True, text=True, env=environment(), cwd=cwd, timeout=60)
    return result, json.loads(result.stdout.strip().splitlines()[-1])


def test_help_exits_zero_quickly_and_lists_every_stage_with_its_line(tmp_path):
    start = time.monotonic()
    result = pipeline_cli("--help", cwd=tmp_path)
    assert time.monotonic() - start < 10  # importing TensorFlow alone takes seconds
    assert result.returncode == 0
    assert [stage.name for stage in STAGES] == list(STAGE_NAMES)
    listed = " ".join(result.stdout.split())
    for stage in STAGES:
        assert f" {stage.name} {stage.help} " in f"{listed} ", stage.name


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.name)
def test_a_stage_help_lists_every_option_of_the_table(stage, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as exit:
        main([stage.name, "--help"])
    assert exit.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"{stage.help[0].upper()}{stage.help[1:]}." in shown
    assert stage.options
    for choice in stage.options:
        help = choice.settings["help"]
        if help == argparse.SUPPRESS:  # the internal options of membench's measured child
            assert not any(flag in shown for flag in choice.flags), choice.flags
            continue
        assert all(flag in shown for flag in choice.flags) and help in shown, (stage.name, choice.flags)


# Each light stage run to its end (status 0) or to its error on missing inputs (status 1).
LIGHT = [
    (("readme", "--compare", "compare.md"), 0),
    (("timings", "--table", "--out-dir", "o"), 0),
    (("bestline", "--reports-dir", "nowhere", "elsewhere", "--out", "o/best.md"), 0),
    (("seeds", "--runs", "a", "--reports-dir", "nowhere", "--out-dir", "o"), 1),
    (("tuning", "--runs", "nowhere", "--out-dir", "o"), 1),
    (("lesson", "--compare", "nowhere/compare.json", "--out", "o/lesson.md"), 1),
    (("directions", "--compare", "de-en=nowhere/compare.json", "--out", "o/directions.md"), 0),
    (("reproduce", "--reports", "nowhere", "--out", "o/reproduce.md"), 0),
    (("archive", "--reports", "nowhere", "--out", "o/archived.md"), 1),
    (("report", "--variants", "gru", "--split-file", "t.json", "--reports-dir", "r", "--out-dir", "o"), 1),
]


@pytest.mark.parametrize("args, expected", LIGHT, ids=[args[0] for args, _ in LIGHT])
def test_the_light_stages_import_no_tensorflow(tmp_path, args, expected):
    (tmp_path / "README.md").write_text("# x\n<!-- compare:start -->\n<!-- compare:end -->\n")
    (tmp_path / layout.COMPARE_MD).write_text("| a |\n")
    result, (status, loaded) = probe(args, tmp_path)
    assert status == expected and not loaded, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") if status else not result.stderr, result.stderr[-2000:]


def test_the_table_says_which_stages_are_light():
    light = {stage.name for stage in STAGES if stage.light}
    assert light == {"readme", "seeds", "tuning", "lesson", "student", "directions", "reproduce", "archive",
                     "report", "timings", "membench", "bestline"}  # fmt: skip


def test_help_does_not_load_tensorflow(tmp_path):
    result, (status, loaded) = probe(("train", "--help"), tmp_path)
    assert status == 0 and not loaded, result.stderr
    assert "--run-dir" in result.stdout


def test_a_missing_or_corrupt_input_is_reported_before_tensorflow_loads(tmp_path):
    (tmp_path / "bad.model").write_bytes(b"not a model")
    for args in [
        ("train", "--tokenizer", "spm.model", "--run-dir", "run"),
        ("train", "--tokenizer", "bad.model", "--run-dir", "run"),
        ("evaluate", "--model", "nowhere", "--out-dir", "r"),
        ("translate", "--model", "nowhere"),
    ]:
        result, (status, loaded) = probe(args, tmp_path)
        assert status == 1 and not loaded, (args, result.stderr[-2000:])
        assert result.stderr.startswith("error: ")


def test_missing_stage_is_a_usage_error(tmp_path):
    assert_one_line_usage_error(pipeline_cli(cwd=tmp_path), "required: STAGE", "see nmt --help")


def test_unknown_pair_fails_with_a_clear_message(tmp_path):
    result = pipeline_cli("data", "--pair", "xx-yy", "--data-dir", str(tmp_path / "tfds"), cwd=tmp_path)
    assert result.returncode != 0
    assert "xx-yy" in result.stderr
    assert all(pair in result.stderr for pair in PAIRS)  # says what would have worked
    assert "Traceback" not in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 1, one line on stderr that names the problem, and no traceback."""
    assert result.returncode == 1, result.stderr[-2000:]
    # Progress bars (the data stage's) may come before it; the error is the last line, and the only one.
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in errors[0], errors[0]


TRAIN = ("train", "--tokenizer", "spm.model", "--run-dir", "run")


@pytest.mark.parametrize(
    "args, words",
    [
        (("--variant", "gur"), ["model.variant must be one of", "gru_bahdanau"]),
        (("--preset", "huge"), ["unknown preset 'huge'", "quick"]),
        (("--set", "train.epoch=3"), ["unknown setting 'train.epoch'", "train.epochs"]),
        (("--set", "train.epochs=abc"), ["train.epochs must be int, not 'abc'"]),
        (("--set", "data.batch_size=0"), ["data.batch_size must be at least 1"]),
        (("--set", "model.dropout=1.5"), ["model.dropout must be in [0, 1)"]),
        (("--set", "tokenizer.vocab_size=4"), ["tokenizer.vocab_size must be at least 16"]),
        (("--set", "train.learning_rate=0"), ["train.learning_rate must be in (0, 1]"]),
        (("--set", "train.time_budget_minutes=-5"), ["train.time_budget_minutes must be None or positive"]),
    ],
)
def test_config_mistakes_are_one_line_before_any_work(tmp_path, args, words):
    start = time.monotonic()
    result = pipeline_cli(*TRAIN, *args, cwd=tmp_path)
    assert_one_line_error(result, *words)
    assert time.monotonic() - start < 10  # refused before TensorFlow loads, let alone the data
    assert not (tmp_path / "run").exists()


def test_a_missing_tokenizer_or_saved_model_is_one_line(tmp_path):
    assert_one_line_error(pipeline_cli(*TRAIN, cwd=tmp_path), "spm.model does not exist", "make tokenize")
    (tmp_path / "bad.model").write_bytes(b"not a model")
    corrupt = pipeline_cli("train", "--tokenizer", "bad.model", "--run-dir", "run", cwd=tmp_path)
    assert_one_line_error(corrupt, "bad.model is not a SentencePiece model")
    assert_one_line_error(
        pipeline_cli("export", "--run-dir", "run", "--out", "saved", cwd=tmp_path), "train the run"
    )
    assert_one_line_error(
        pipeline_cli("evaluate", "--model", "nowhere", "--out-dir", "r", cwd=tmp_path),
        "no SavedModel in nowhere",
    )


@pytest.mark.parametrize("given", [("--preset", "tiny"), ("--preset", "quick"), ("--variant", "lstm")])
def test_a_tuning_run_with_a_preset_or_a_variant_is_a_usage_error(tmp_path, given):
    result = pipeline_cli(*TRAIN, "--tuning-run", "A_d01", *given, cwd=tmp_path)
    assert_one_line_usage_error(result, "nmt train", "--tuning-run sets the preset and the variant")


def test_an_unknown_tuning_run_is_one_line(tmp_path):
    result = pipeline_cli(*TRAIN, "--tuning-run", "Z_none", cwd=tmp_path)
    assert_one_line_error(result, "unknown tuning run 'Z_none'", "A_d01")


def test_a_tuning_run_gives_its_preset_variant_and_settings_then_the_command_lines():
    chosen = config.tuning_run("C_d03_ls")
    args = build_parser().parse_args([*TRAIN, "--tuning-run", "C_d03_ls", "--set", "train.epochs=2"])
    overrides = [*chosen.overrides, "train.epochs=2"]
    expected = config.make_config(chosen.preset, "de-en", chosen.variant, overrides)
    assert configure(args) == expected and expected.train.epochs == 2
    assert (args.preset, args.variant) == (chosen.preset, chosen.variant)
    again = build_parser().parse_args([*TRAIN, "--tuning-run", "C_d03_ls", "--set", "model.dropout=0.25"])
    assert configure(again).model.dropout == 0.25  # --set comes after the run's own settings
    plain = build_parser().parse_args(list(TRAIN))
    assert type(plain.preset) is str and type(plain.variant) is str  # no parsing sentinel left over
    assert configure(plain) == config.make_config("quick", "de-en", "gru_bahdanau")


def test_the_children_membench_measures_are_nmt_stages(tmp_path, monkeypatch, capsys):
    from pipeline.bench import membench

    started = []

    def measure(command: list[str]) -> dict:
        started.append(command)
        seen = {"batches": 1, "examples": 2, "build_seconds": 0.1, "cached": True}
        return {"peak_rss_mib": 10.0, "seconds": 1.0, "stdout": json.dumps(seen) + "\n"}

    monkeypatch.setattr(membench, "measure", measure)
    monkeypatch.setattr("pipeline.machine.matmul_rate", lambda: 100.0)
    folders = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    assert main(["membench", "--sizes", "10", "20", *folders]) == 0
    assert capsys.readouterr().out.strip().endswith("memory.json")
    assert [command[:3] for command in started] == [["-m", "pipeline", name] for name in
                                                    ("data", "tokenize", "membench")] * 2  # fmt: skip
    children = [build_parser().parse_args(command[2:]) for command in started]  # exit 2 if one did not parse
    child = children[2]
    assert (child.one_pass, child.data_dir, child.spm_model.name) == (10, tmp_path / "data", "spm.model")


def test_debug_shows_the_traceback(tmp_path):
    result = pipeline_cli("--debug", *TRAIN, "--variant", "gur", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigError" in result.stderr
    command = [sys.executable, "-m", "pipeline", *TRAIN, "--variant", "gur"]
    env = {**environment(), "NMT_DEBUG": "1"}
    env_debug = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert "Traceback" in env_debug.stderr


def test_a_bad_beam_size_is_a_usage_error(tmp_path):
    result = pipeline_cli("translate", "--model", "m", "--beam-size", "0", cwd=tmp_path)
    assert result.returncode == 2 and "'0' is not a beam size from 1 to 32" in result.stderr
    assert "Traceback" not in result.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_stage(raw: Path, tmp_path, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline", "data", "--data-dir", "tfds", "--manual-dir", str(raw)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.fixture
def offline(monkeypatch) -> dict:
    """The environment of a machine whose downloads fail at once."""
    return {**environment(), corpus.BASE_URL_ENV: f"http://127.0.0.1:{closed_port()}/"}


def test_corpus_files_missing_corrupt_or_misaligned_are_one_line(shared_corpus, tmp_path, offline):
    raw = tmp_path / "raw"
    raw.mkdir()
    missing = data_stage(raw, tmp_path, offline)
    assert_one_line_error(missing, "could not download", "manual dir", "train.de.gz")

    for name in corpus.file_names("de-en"):
        shutil.copy(shared_corpus / name, raw / name)
    data = bytearray((raw / "val.de.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (raw / "val.de.gz").write_bytes(bytes(data))
    assert_one_line_error(data_stage(raw, tmp_path, offline), "val.de.gz has SHA-256", "corrupt")

    # One line fewer on one side, with digests that match the files: the digests cannot tell.
    shutil.copy(shared_corpus / "val.de.gz", raw / "val.de.gz")
    lines = gzip.decompress((raw / "val.en.gz").read_bytes()).decode().splitlines(keepends=True)
    (raw / "val.en.gz").write_bytes(gzip.compress("".join(lines[:-1]).encode()))
    table = tmp_path / "SHA256SUMS"
    table.write_text("".join(f"{corpus.sha256(raw / n)}  {n}\n" for n in corpus.file_names("de-en")))
    misaligned = data_stage(raw, tmp_path, {**offline, corpus.DIGESTS_ENV: str(table)})
    assert_one_line_error(misaligned, "val: 1014 de lines but 1013 en lines")


def test_a_stage_before_the_data_stage_is_one_line(spm_model, tmp_path):
    result = pipeline_cli("train", "--tokenizer", str(spm_model), "--data-dir", "nowhere", "--run-dir", "run",
                          "--preset", "tiny", cwd=tmp_path)  # fmt: skip
    assert_one_line_error(result, "is not prepared in nowhere", "make data")


def report_folder(
    reports: Path,
    variant: str,
    preset: str = "tiny",
    training_code: int = 2,
    hypotheses: str = "A dog.\nA cat.\n",
) -> Path:
    """A variant's report folder as train, evaluate and analyse leave it, with made-up numbers."""
    folder = reports / variant
    folder.mkdir(parents=True)
    scores = {"bleu": 1.0, "bleu_lc": 1.0, "chrf": 1.0}
    summary = {"parameters": 1, "epochs": 1, "best_epoch": 1, "train_seconds": 1.0, "tokens_per_second": 1,
               "stopped_by": "epochs", "length_penalty": 0.6, "training_code": training_code}  # fmt: skip
    analysis = {"gradient_flow": [1.0, 2.0], "attention": None}
    files = {"test": scores, "test.greedy": scores, "validation": scores, "train": summary,
             "config": {"preset": preset}, "analysis": analysis}  # fmt: skip
    for name, content in files.items():
        (folder / f"{name}.json").write_text(json.dumps(content))
    (folder / layout.hypotheses("test")).write_text(hypotheses)
    return folder


@pytest.fixture(scope="module")
def split_file(prepared_data, tmp_path_factory) -> Path:
    """The test split as the split stage writes it: what the report stage reads instead of the data."""
    if not hasattr(corpus, "write_split"):
        pytest.skip("pipeline.corpus.write_split, the split stage's function, is not there yet")
    return corpus.write_split(
        "de-en", "test", prepared_data, tmp_path_factory.mktemp("split") / layout.result("test")
    )


def report_cli(split_file: Path, tmp_path: Path, *variants: str) -> subprocess.CompletedProcess:
    folders = ("--split-file", str(split_file), "--reports-dir", "reports", "--out-dir", "out")
    return pipeline_cli("report", "--preset", "tiny", "--variants", *variants, *folders, cwd=tmp_path)


def test_hypotheses_that_do_not_pair_with_the_references_are_one_line(split_file, tmp_path):
    # A report folder whose translations are of another (shorter) split: the report stage says so.
    report_folder(tmp_path / "reports", "gru")
    assert_one_line_error(
        report_cli(split_file, tmp_path, "gru"), "2 hypotheses for 64 references", "make evaluate"
    )


def test_a_comparison_with_a_variant_missing_names_it_and_how_to_leave_it_out(split_file, tmp_path):
    report_folder(tmp_path / "reports", "gru")
    result = report_cli(split_file, tmp_path, "gru", "lstm")
    advice = "make evaluate VARIANT=lstm PRESET=tiny"
    assert_one_line_error(result, "report folder of lstm", "is missing", advice, "VARIANTS=")
    (tmp_path / "reports" / "lstm").mkdir()
    (tmp_path / "reports" / "lstm" / layout.result("test")).write_text("{}")  # evaluate stopped part way
    result = report_cli(split_file, tmp_path, "gru", "lstm")
    assert_one_line_error(result, "report folder of lstm", "has no test.greedy.json", "analysis.json")
    assert not (tmp_path / "out").exists()  # nothing written before every folder is there


def test_a_comparison_refuses_rows_of_another_preset_or_other_training_code(
    prepared_data, split_file, tmp_path
):
    report_folder(tmp_path / "reports", "gru", preset="quick")
    assert_one_line_error(report_cli(split_file, tmp_path, "gru"), "holds a quick run, not tiny")
    references = corpus.read_split("de-en", "test", prepared_data, 64)[1]
    lines = "".join(f"{r}\n" for r in references)
    report_folder(tmp_path / "reports", "lstm", training_code=1, hypotheses=lines)
    report_folder(tmp_path / "reports", "rnn", hypotheses=lines)
    result = report_cli(split_file, tmp_path, "lstm", "rnn")
    assert_one_line_error(
        result, "different training code", "code 1: lstm; code 2: rnn", "train the older ones"
    )


def assert_one_line_usage_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 2 (a command line argparse refuses), one line that names the problem."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help" in lines[0], result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("size", ["0", "-1", "two"])
def test_a_batch_size_below_one_is_a_usage_error(tmp_path, size):
    result = pipeline_cli("translate", "--model", "m", "--batch-size", size, cwd=tmp_path)
    assert_one_line_usage_error(result, f"{size!r} is not a whole number from 1 up")


def test_missing_folders_and_unknown_variants_of_the_light_stages_are_one_line(tmp_path):
    folders = ("--split-file", "s.json", "--reports-dir", "r", "--out-dir", "o")
    report = ("report", "--variants", "gru", "gur", *folders)
    assert_one_line_error(pipeline_cli(*report, cwd=tmp_path), "unknown variant 'gur'", "gru_bahdanau")
    readme = pipeline_cli("readme", "--compare", "nowhere/compare.md", "--readme", "nowhere.md", cwd=tmp_path)
    assert_one_line_error(readme, "nowhere.md does not exist")
    (tmp_path / "README.md").write_text("# x\n")
    assert_one_line_error(pipeline_cli("readme", "--compare", "nowhere/compare.md", cwd=tmp_path),
                          "nowhere/compare.md does not exist")  # fmt: skip
    assert_one_line_error(pipeline_cli("readme", "--compare", "README.md", cwd=tmp_path),
                          "has no <!-- compare:start -->")  # fmt: skip
    tuning = pipeline_cli("tuning", "--runs", "nowhere", "--out-dir", "o", cwd=tmp_path)
    assert_one_line_error(tuning, "nowhere is not a run directory")
    seeds = pipeline_cli(
        "seeds", "--runs", "a", "b", "--reports-dir", "nowhere", "--out-dir", "o", cwd=tmp_path
    )
    assert_one_line_error(seeds, "nowhere/a/test.json does not exist")
    assert not (tmp_path / "o").exists()


def test_an_empty_or_corrupt_saved_model_is_one_line(tmp_path):
    (tmp_path / "empty" / "1").mkdir(parents=True)
    (tmp_path / "empty" / "1" / "saved_model.pb").write_bytes(b"")
    empty = pipeline_cli("translate", "--model", "empty", cwd=tmp_path)
    assert_one_line_error(empty, "empty/1/saved_model.pb is missing or empty", "export the run again")
    (tmp_path / "corrupt" / "3").mkdir(parents=True)
    (tmp_path / "corrupt" / "3" / "saved_model.pb").write_bytes(bytes(range(256)) * 4)
    corrupt = pipeline_cli("evaluate", "--model", "corrupt", "--out-dir", "r", cwd=tmp_path)
    assert_one_line_error(corrupt, "corrupt/3 holds no readable SavedModel", "export the run again")


@pytest.fixture(scope="module")
def exported_base(exported_tiny) -> Path:
    return exported_tiny.parent  # a base folder, its newest version found as translate finds it


def test_the_ids_servable_given_to_translate_is_one_line(exported_base, tmp_path):
    ids = exported_base.with_name(exported_base.name + "-ids")
    result = pipeline_cli("translate", "--model", str(ids), cwd=tmp_path)
    assert_one_line_error(result, "is the ids-only servable", "without -ids")


def test_invalid_utf8_on_stdin_is_replaced_and_every_line_translated(exported_base, tmp_path):
    lines = [b"Ein Hund rennt.", b"Zwei \xff\xfe Kinder \xc3 spielen.", b"", b"Eine Frau liest."]
    command = [sys.executable, "-m", "pipeline", "translate", "--model", str(exported_base)]
    result = subprocess.run(command, input=b"\n".join(lines) + b"\n", capture_output=True, env=environment(),
                            cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout.decode("utf-8").split("\n")[:-1]
    assert len(out) == len(lines) and out[2] == "" and all(out[i] for i in (0, 1, 3))
    assert b"Traceback" not in result.stderr


def test_an_export_to_a_folder_that_cannot_be_written_is_one_line(tiny_run, tmp_path):
    (tmp_path / "a_file").write_text("not a folder\n")
    result = pipeline_cli("export", "--run-dir", str(tiny_run), "--out", "a_file/model", cwd=tmp_path)
    assert_one_line_error(result, "Not a directory", "a_file/model")


def test_every_stage_and_every_option_has_a_line_of_help():
    parser = build_parser()
    assert parser.prog == "nmt" and "make all" in parser.description
    stages = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = {choice.dest: choice.help for choice in stages._choices_actions}
    assert set(listed) == set(stages.choices) and all(listed.values())
    for name, sub in stages.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"nmt {name} {'/'.join(action.option_strings)} has no help"
