"""The Make chain end to end on the tiny preset: data -> tokenize -> train -> export -> evaluate."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import layout
from pipeline.config import TUNING_RUNS
from pipeline.constants import VARIANT_NAMES
from pipeline.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


VARIANTS = ("gru", "gru_bahdanau")  # one of each kind keeps the chain short


def make(target: str, tmp: Path, corpus: Path, **extra) -> subprocess.CompletedProcess:
    installed = tmp / "installed"  # this interpreter's environment is the installed one
    if not installed.exists():
        installed.touch()
    variables = {
        "PRESET": "tiny",
        "VARIANTS": " ".join(VARIANTS),
        "PYTHON": sys.executable,
        "INSTALLED": installed,
        "SHARED_CORPUS": corpus,
        "DATA_DIR": tmp / "data",
        "RUNS_DIR": tmp / "runs",
        "SAVED_DIR": tmp / "saved",
        "REPORTS_DIR": tmp / "reports",
        "COMPARE_DIR": tmp / "compare",
        **extra,
    }
    command = ["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def dry_run(target: str, tmp: Path, **extra) -> list[str]:
    """The commands ``make -n target`` prints, one a line (continuation lines joined)."""
    plan = make(target, tmp, tmp / "corpus", MAKEFLAGS="--dry-run", **extra)
    assert plan.returncode == 0, plan.stderr[-3000:]
    return plan.stdout.replace("\\\n", " ").splitlines()


def trains(plan: list[str]) -> list[str]:
    return [line for line in plan if "-m pipeline train" in line]


@pytest.mark.slow
def test_make_all_runs_every_stage_once(tmp_path, shared_corpus):
    # A report committed to the repository, as on a fresh clone: it must not stop the variant's run.
    committed = tmp_path / "reports" / VARIANTS[0] / layout.result("test")
    committed.parent.mkdir(parents=True)
    committed.write_text("{}")
    first = make("all", tmp_path, shared_corpus)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("data", "tokenize", "split", "train", "export", "evaluate", "analyse", "report"):
        assert f"-m pipeline {stage}" in first.stdout
    for variant in VARIANTS:
        assert f"--variant {variant}" in first.stdout
    # Progress in a log (stdout is not a terminal here): one line per epoch, no redraws, no colours.
    assert "\r" not in first.stdout and "\x1b" not in first.stdout

    for variant in VARIANTS:
        assert (tmp_path / "saved" / f"{variant}_tiny" / "1" / "saved_model.pb").is_file()
        assert (tmp_path / "saved" / f"{variant}_tiny-ids" / "1" / "saved_model.pb").is_file()
        greedy = json.loads(
            (tmp_path / "reports" / variant / layout.result("test", layout.GREEDY)).read_text()
        )
        assert greedy["decoding"] == "greedy" and greedy["sentences"] == 64
        report = json.loads((tmp_path / "reports" / variant / layout.result("test")).read_text())
        assert report["sentences"] == 64  # the tiny preset's eval_limit
        assert report["beam_size"] == report["beam_size_used"] == 5  # 64 sentences fit beam 5
        assert 0 <= report["bleu"] <= 100 and report["bleu_signature"].startswith("nrefs:1")
        assert (
            len((tmp_path / "reports" / variant / layout.hypotheses("test")).read_text().splitlines()) == 64
        )
        assert (tmp_path / "reports" / variant / layout.result("validation")).is_file()
    assert (tmp_path / "data" / "splits" / "de-en" / layout.result("test")).is_file()  # what the report reads

    compare = json.loads((tmp_path / "compare" / layout.COMPARE_JSON).read_text())
    assert [row["variant"] for row in compare["variants"]] == list(VARIANTS)
    assert set(compare["gradient_flow"]) == set(VARIANTS)
    figures = {p.name for p in (tmp_path / "compare").glob("*.png")}
    assert figures == {"bleu_by_variant.png", "bleu_by_length.png", "gradient_flow.png",
                       "attention_gru_bahdanau.png"}  # fmt: skip
    assert "| `gru_bahdanau` |" in first.stdout  # make all ends by printing the table

    second = make("all", tmp_path, shared_corpus)  # everything is up to date: no stage runs again
    assert second.returncode == 0, second.stderr[-3000:]
    assert "-m pipeline" not in second.stdout
    assert not (tmp_path / "saved" / "gru_bahdanau_tiny" / "2").exists()
    (tmp_path / "installed").touch()  # a reinstall (setup.cfg changed) leaves every stage up to date
    third = make("all", tmp_path, shared_corpus)
    assert third.returncode == 0 and "-m pipeline" not in third.stdout, third.stdout[-3000:]

    bench = make(
        "bench", tmp_path, shared_corpus, BENCH_DIR=tmp_path / "bench", BENCH_STEPS=2, BENCH_BATCH1=3
    )
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    assert "-m pipeline train" not in bench.stdout  # it measures what is there
    result = json.loads((tmp_path / "bench" / layout.BENCH_JSON).read_text())
    assert result["matmul_gflops"] > 0 and [r["variant"] for r in result["variants"]] == list(VARIANTS)
    for row in result["variants"]:
        assert row["step_seconds"] > 0 and row["ratio_to_floor"] > 0
        assert row["translation"]["beam5_b64_seconds"] > 0
    assert "| `gru_bahdanau` |" in bench.stdout

    # The comparison again from the report folders alone, as on a fresh clone of committed reports.
    shutil.rmtree(tmp_path / "runs")
    shutil.rmtree(tmp_path / "saved")
    built = {p.name: p.read_bytes() for p in (tmp_path / "compare").iterdir()}
    shutil.rmtree(tmp_path / "compare")
    again = make("report", tmp_path, shared_corpus)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "-m pipeline train" not in again.stdout and "| `gru_bahdanau` |" in again.stdout
    rebuilt = {p.name: p.read_bytes() for p in (tmp_path / "compare").iterdir()}
    assert rebuilt.keys() == built.keys()
    for name in (layout.COMPARE_MD, layout.COMPARE_JSON, layout.SUMMARY_MD):
        assert rebuilt[name] == built[name], name
    subset = make("report", tmp_path, shared_corpus, VARIANTS="gru", COMPARE_DIR=tmp_path / "subset")
    assert subset.returncode == 0, subset.stderr[-3000:]
    assert [
        r["variant"] for r in json.loads((tmp_path / "subset" / layout.COMPARE_JSON).read_text())["variants"]
    ] == ["gru"]


def test_make_deletes_no_run_of_a_finished_target(tmp_path):
    # A run's train.json that only a pattern rule names is an intermediate to make: deleted when the
    # target is built (a line "rm ...train.json" in the plan), and trained again by the next make.
    for target in ("all", "seeds", "tune"):
        plan = make(target, tmp_path, tmp_path / "corpus", MAKEFLAGS="--dry-run")
        assert plan.returncode == 0, plan.stderr[-3000:]
        assert "-m pipeline train" in plan.stdout, target
        assert not [line for line in plan.stdout.splitlines() if line.startswith("rm ")], target


def test_make_all_trains_every_variant_the_registry_builds():
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("VARIANTS ?="))
    assert tuple(line.split("?=")[1].split()) == VARIANT_NAMES


def test_the_transformers_tune_runs_train_it_on_the_converge_budget(tmp_path):
    runs = ["transformer_peak1e3", "transformer_peak5e4", "transformer_6x1", "transformer_tiny"]
    plan = dry_run("tune-transformer", tmp_path)
    tokenizer = tmp_path / "data" / "spm" / "de-en-converge" / layout.TOKENIZER  # make tune PRESET=converge's
    assert trains(plan) == [
        f"{sys.executable} -m pipeline train --tuning-run {run} --pair de-en --data-dir {tmp_path}/data/tfds"
        f" --tokenizer {tokenizer} --run-dir runs/tune/{run}"
        for run in runs
    ]
    # What each run trains is config.TUNING_RUNS's: converge's budget, one change from the Transformer.
    assert {(TUNING_RUNS[r].preset, TUNING_RUNS[r].variant) for r in runs} == {("converge", "transformer")}
    assert TUNING_RUNS[runs[0]].settings == ("train.learning_rate=1e-3",)
    assert TUNING_RUNS[runs[1]].settings == ("train.learning_rate=5e-4",)
    assert TUNING_RUNS[runs[2]].settings == ("model.layers=6", "model.decoder_layers=1")
    assert "model.embedding_dim=128" in TUNING_RUNS[runs[3]].settings
    assert not [r for r in runs[2:] if "learning_rate" in " ".join(TUNING_RUNS[r].overrides)]  # 2e-3
    # beside the converge run itself, read from its committed report folder
    assert any("--runs reports/de-en/converge/transformer runs/tune/transformer_peak1e3" in x for x in plan)


def test_make_tune_trains_every_tuning_run_of_the_config_with_this_presets_tokenizer(tmp_path):
    # Make names the runs (their presets, variants and settings are config.TUNING_RUNS) and gives
    # each the tokenizer of the PRESET it runs under, whatever the run's own preset.
    tune, transformer = trains(dry_run("tune", tmp_path)), trains(dry_run("tune-transformer", tmp_path))
    names = [line.split("--tuning-run ")[1].split()[0] for line in tune + transformer]
    assert sorted(names) == sorted(TUNING_RUNS)
    assert {TUNING_RUNS[r].variant for r in names[: len(tune)]} == {"gru_bahdanau"}
    tokenizer = tmp_path / "data" / "spm" / "de-en-tiny" / layout.TOKENIZER
    assert all(f"--tokenizer {tokenizer} " in line for line in tune)


def test_the_report_reads_the_test_split_from_its_file_not_tfds(tmp_path):
    split = tmp_path / "data" / "splits" / "de-en" / layout.result("test")
    for target in ("all", "report"):
        plan = dry_run(target, tmp_path)
        stages = [line.split("-m pipeline ")[1].split()[0] for line in plan if "-m pipeline " in line]
        assert stages.index("data") < stages.index("split") < stages.index("report"), target
        (line,) = [x for x in plan if "-m pipeline split" in x]
        assert line.endswith(f"--split test --data-dir {tmp_path}/data/tfds --out {split}")
        (line,) = [x for x in plan if "-m pipeline report" in x]
        assert f"--split-file {split} " in line and "--data-dir" not in line, target


def targets() -> set[str]:
    """Every target a user types (make's database: the phony ones, and any rule on a plain word)."""
    database = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile", ":"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    phony = next(line for line in database if line.startswith(".PHONY:")).split(":", 1)[1].split()
    rules = {
        m.group(1)
        for before, line in zip(["", *database], database, strict=False)
        if (m := re.match(r"([A-Za-z][-\w]*):(?!=)", line)) and before != "# Not a target:"
    }
    return set(phony) | rules


def test_make_help_lists_every_target_with_its_comment(tmp_path):
    # From another folder too: make -C finds the file names and the included files.
    command = ["make", "--no-print-directory", "-C", str(ROOT), "help"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listed = dict(m.groups() for m in re.finditer(r"^  (\S+) +(\S.*)$", result.stdout, re.MULTILINE))
    expected = targets()
    assert {"all", "help", "compare", "report", "tune", "bench", "serve", "readme", "mutate"} <= expected
    assert sorted(expected - listed.keys()) == [], "a target without a ## comment above it"
    assert sorted(listed.keys() - expected) == [], "a ## comment above no target"
    headings = [line for line in result.stdout.splitlines() if line and not line.startswith(" ")]
    assert headings[0] == "Makefile" and all(h.startswith("mk/") for h in headings[1:])
    # `make` alone is `make all`, whatever comes first in the listing.
    database = subprocess.run(["make", "-pRrq", ":"], cwd=ROOT, capture_output=True, text=True).stdout
    assert ".DEFAULT_GOAL := all" in database.splitlines()


def test_make_tags_tags_each_version_at_the_commit_its_changelog_heading_names(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    commits = []
    for n in range(3):
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", f"c{n}")
        commits.append(git("rev-parse", "HEAD").strip())
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## 0.3.0 (unreleased)\n\n"
        f"## 0.2.0 ({commits[1][:7]}): the second\n\n## 0.1.0 ({commits[0][:7]}): the first\n"
    )
    command = ["make", "--no-print-directory", "-f", str(ROOT / "mk" / "dev.mk"), "tags"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert git("tag", "--list").split() == ["v0.1.0", "v0.2.0"]
    assert [git("rev-parse", f"v0.{n + 1}.0^{{commit}}").strip() for n in range(2)] == commits[:2]


def test_each_preset_and_pair_exports_under_a_name_of_its_own_and_make_serve_passes_the_flags(tmp_path):
    # The quick and converge models of one variant are two servables, never versions of one.
    names = {}
    for preset in ("quick", "converge"):
        for pair in ("de-en", "en-de"):
            plan = dry_run(f"{tmp_path}/runs/gru/{layout.EXPORTED}", tmp_path, PRESET=preset, PAIR=pair,
                           RUNS_DIR=tmp_path / "runs")  # fmt: skip
            [line] = [line for line in plan if "-m pipeline export" in line]
            names[preset, pair] = Path(line.split("--out ")[1].split()[0]).name
    assert names == {
        ("quick", "de-en"): "gru_quick",
        ("quick", "en-de"): "gru_quick_en_de",
        ("converge", "de-en"): "gru_converge",
        ("converge", "en-de"): "gru_converge_en_de",
    }
    assert not {"best", "best_en_de"} & set(names.values())  # the ensemble's
    flags = "--deadline-ms 5000 --max-batch-size 8"
    plan = dry_run("serve", tmp_path, SERVE_MODELS="gru_quick gru_converge", SERVE_FLAGS=flags)
    [serve] = [line for line in plan if "-m pipeline serve" in line]
    assert "--models gru_quick gru_converge --deadline-ms 5000 --max-batch-size 8" in serve


@pytest.mark.slow
def test_a_reversed_direction_prepares_trains_and_exports(tmp_path, shared_corpus):
    # The data, tokenizer, run and SavedModel names carry the pair.
    result = make("export", tmp_path, shared_corpus, PAIR="en-de", VARIANT="gru")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "data" / "tfds" / "multi30k" / "en-de" / "1.0.0" / "dataset_info.json").is_file()
    assert (tmp_path / "data" / "spm" / "en-de-tiny" / layout.TOKENIZER).is_file()
    summary = json.loads((tmp_path / "runs" / "gru" / layout.SUMMARY).read_text())
    assert summary["epochs"] == 1
    for servable in ("gru_tiny_en_de", "gru_tiny_en_de-ids"):
        assert (tmp_path / "saved" / servable / "1" / "saved_model.pb").is_file()
    config = json.loads((tmp_path / "runs" / "gru" / layout.CONFIG).read_text())
    assert config["pair"] == "en-de"


@pytest.mark.slow
@pytest.mark.parametrize("pair", ["fr-en", "cs-en"])
def test_every_other_language_prepares_and_tokenizes(tmp_path, shared_corpus, pair):
    # What depends on the language is the data and the tokenizer; training and export do not
    # (the reversed direction above and make all cover them).
    result = make("tokenize", tmp_path, shared_corpus, PAIR=pair)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "data" / "tfds" / "multi30k" / pair / "1.0.0" / "dataset_info.json").is_file()
    sp = load_tokenizer(tmp_path / "data" / "spm" / f"{pair}-tiny" / layout.TOKENIZER)
    for language in pair.split("-"):  # trained on both sides of this pair: their letters are known
        with gzip.open(shared_corpus / f"train.{language}.gz", "rt", encoding="utf-8") as f:
            first = f.readline().strip()
        ids = sp.encode(first)
        assert sp.unk_id() not in ids and sp.decode(ids) == first, (language, first)


def test_make_best_trains_missing_candidates_then_chooses_exports_and_evaluates(tmp_path):
    best = tmp_path / "best"
    plan = dry_run("best", tmp_path, BEST_PRESET="tiny", BEST_CANDIDATES="gru gru_luong-seed1", BEST_DIR=best)
    plan = [" ".join(line.split()) for line in plan]
    runs = tmp_path / "runs"
    assert [line.split("--variant ")[1].split(" --data-dir")[0] for line in trains(plan)] == [
        "gru", "gru_luong --set train.seed=1 --set data.seed=1"
    ]  # fmt: skip
    stages = [line.split("-m pipeline ")[1].split()[0] for line in plan if "-m pipeline " in line]
    assert stages[-8:] == ["train", "train", "best", "export", "evaluate", "evaluate", "evaluate", "exchange"]
    (choose,) = [x for x in plan if "-m pipeline best" in x]
    assert f"--runs {runs}/gru {runs}/gru_luong-seed1 " in choose and choose.endswith(f"--out-dir {best}")
    (export,) = [x for x in plan if "-m pipeline export" in x]
    assert f"{best}/{layout.BEST_MEMBERS})" in export and f"--decoding {best}/{layout.DECODING}" in export
    assert f"--out {tmp_path}/saved/best --record {runs}/best/{layout.EXPORTED}" in export
    evaluations = [x for x in plan if "-m pipeline evaluate" in x]
    assert [x.split("--split ")[1].split(" --out-dir")[0] for x in evaluations] == [
        "validation", "test --beam-size 1", "test"
    ]  # fmt: skip
    (exchange,) = [x for x in plan if "-m pipeline exchange" in x]  # the README's serving example
    assert f"--model-dir {tmp_path}/saved --model best " in exchange
    assert exchange.endswith(f"--out {best}/{layout.SERVE_EXCHANGE}")
    assert not [line for line in plan if line.startswith("rm ")]
    en_de = [
        x for x in dry_run("best", tmp_path, BEST_PRESET="tiny", PAIR="en-de") if "-m pipeline export" in x
    ]
    assert f"--out {tmp_path}/saved/best_en_de " in en_de[0]


def test_make_distill_teaches_once_then_trains_the_student_on_the_translations(tmp_path):
    reports = tmp_path / "distilled"
    plan = dry_run("distill", tmp_path, BEST_PRESET="tiny", BEST_CANDIDATES="gru", VARIANT="gru_luong",
                   DISTILL_DIR=reports, BEST_DIR=tmp_path / "best")  # fmt: skip
    plan = [" ".join(line.split()) for line in plan]
    runs, teacher = tmp_path / "runs", tmp_path / "runs" / "best" / layout.TEACHER_RECORD
    (teach,) = [x for x in plan if "-m pipeline teach" in x]
    assert f"--out-root {tmp_path}/data/distill/de-en --record {teacher}" in teach
    (student,) = [x for x in trains(plan) if "distilled-" in x]
    assert (
        "--preset tiny --variant gru_luong" in student and f"--run-dir {runs}/distilled-gru_luong" in student
    )
    assert f"--set data.train_targets=$(cat {teacher})" in student
    (export,) = [x for x in plan if "-m pipeline export --run-dir" in x and "distilled" in x]
    assert f"--out {tmp_path}/saved/gru_luong_distilled_tiny " in export
    evaluations = [x for x in plan if "-m pipeline evaluate" in x and "distilled" in x]
    assert len(evaluations) == 3 and all(x.endswith(f"--out-dir {reports}/gru_luong") for x in evaluations)
    assert any(f"-m pipeline analyse --run-dir {runs}/distilled-gru_luong" in x for x in plan)
    # Beside the same variant trained on the references, trained here too since it is missing.
    assert any(
        "--variant gru_luong --data-dir" in x and f"--run-dir {runs}/gru_luong" in x for x in trains(plan)
    )
    (against,) = [x for x in plan if "-m pipeline student" in x]
    assert f"--student {reports}/gru_luong --references " in against
    assert against.endswith(f"--out {reports}/gru_luong/{layout.AGAINST_REFERENCES_JSON}")
    assert not [line for line in plan if line.startswith("rm ")]


def test_make_bench_times_the_best_model_and_a_student_in_the_same_run(tmp_path):
    runs = tmp_path / "runs"
    plan = dry_run(
        "bench", tmp_path, BENCH_MODELS="best distilled-gru", BEST_CANDIDATES="gru", BENCH_MODELS_DIR=runs
    )
    plan = [" ".join(line.split()) for line in plan]
    (bench,) = [x for x in plan if "-m pipeline bench" in x]
    assert (
        bench.endswith(f"--models best distilled-gru --models-dir {runs}")
        and "--variants gru gru_bahdanau" in bench
    )
    stages = [line.split("-m pipeline ")[1].split()[0] for line in plan if "-m pipeline " in line]
    assert {"best", "teach"} <= set(stages) and stages[-1] == "bench"
    # The converge runs' best model and student beside this preset's variants: read where they are.
    converge = tmp_path / "converge"
    for name in ("best", "distilled-gru"):
        (converge / name).mkdir(parents=True)
        (converge / name / layout.EXPORTED).write_text("saved/x/1\n")
    plan = dry_run("bench", tmp_path, BENCH_MODELS="best distilled-gru", BENCH_MODELS_DIR=converge)
    plan = [" ".join(line.split()) for line in plan]
    (bench,) = [x for x in plan if "-m pipeline bench" in x]
    assert bench.endswith(f"--models best distilled-gru --models-dir {converge}")
    assert not [x for x in plan if "-m pipeline best" in x or "-m pipeline teach" in x]
