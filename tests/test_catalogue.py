"""A TFDS catalogue dataset as the corpus: languages to source and target, splits, errors, and the
whole chain from data to a BLEU score on ted_hrlr_translate through tfds.testing.mock_data."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from pipeline import corpus
from pipeline.corpus import synthetic
from pipeline.errors import ConfigError, CorpusError

TED = "ted_hrlr_translate/pt_to_en"
SYNTHETIC = f"synthetic_translate/{synthetic.config_name(200)}"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory) -> Path:
    """The 200-pair synthetic corpus, generated for real (a second or two)."""
    data_dir = tmp_path_factory.mktemp("tfds")
    corpus.prepare("xx-yy", data_dir, corpus_name=SYNTHETIC)
    return data_dir


def write_metadata(data_dir: Path, name: str, splits: dict[str, int]) -> None:
    """The dataset_info.json a real build would leave, with these split sizes: under mock_data the
    builder then reads as prepared, with these splits, and yields random examples."""
    builder = tfds.builder(name, data_dir=str(data_dir))
    infos = [tfds.core.SplitInfo(name=s, shard_lengths=[n], num_bytes=0) for s, n in splits.items()]
    builder.info.set_splits(tfds.core.SplitDict(infos))
    Path(builder.data_dir).mkdir(parents=True)
    builder.info.write_to_directory(builder.data_dir)


def test_the_pair_picks_source_and_target_either_way(synthetic_data):
    sources, targets = corpus.read_split("xx-yy", "test", synthetic_data, corpus_name=SYNTHETIC)
    assert len(sources) == synthetic.held_out_pairs(200)
    assert sources[0] == synthetic.sentence("test", 0)  # in the dataset's order
    assert all(t == synthetic.translate(s) for s, t in zip(sources, targets, strict=True))

    swapped = corpus.read_split("yy-xx", "test", synthetic_data, corpus_name=SYNTHETIC)
    assert swapped == (targets, sources)
    assert swapped[0][0].isupper()  # the yy side is the upper-cased one


def test_split_sizes_come_from_the_builder(synthetic_data):
    assert corpus.split_size("xx-yy", "train", synthetic_data, corpus_name=SYNTHETIC) == 200
    assert corpus.split_title("xx-yy", "validation", synthetic_data, corpus_name=SYNTHETIC) == "validation"


@pytest.mark.parametrize("pair, missing", [("pt-de", "'de'"), ("fr-es", "'fr' or 'es'")])
def test_a_language_the_dataset_lacks_is_named_with_the_ones_it_has(tmp_path, pair, missing):
    with pytest.raises(ConfigError, match=f"has no {missing}: its languages are en, pt"):
        corpus.open_builder(pair, tmp_path, TED)
    assert list(tmp_path.iterdir()) == []  # nothing downloaded, nothing written


def test_any_two_of_its_languages_are_a_pair_and_the_direction_is_free(tmp_path):
    for pair in ("pt-en", "en-pt"):
        _, source, target = corpus.open_builder(pair, tmp_path, TED)
        assert f"{source}-{target}" == pair


@pytest.mark.parametrize(
    "name, pair, message",
    [
        ("no_such_dataset", "pt-en", "no such dataset in the TFDS catalogue"),
        ("ted_hrlr_translate/xx_to_yy", "pt-en", "xx_to_yy not found"),
        (TED, "pt", "must be two different languages"),
        (TED, "en-en", "must be two different languages"),
    ],
)
def test_an_unknown_corpus_or_malformed_pair_is_a_config_error(tmp_path, name, pair, message):
    with pytest.raises(ConfigError, match=message):
        corpus.open_builder(pair, tmp_path, name)


def test_a_missing_split_is_a_clear_error_at_the_data_stage(tmp_path):
    write_metadata(tmp_path, TED, {"train": 10, "test": 10})
    with tfds.testing.mock_data(num_examples=10, data_dir=str(tmp_path)):
        with pytest.raises(CorpusError, match="has no validation split .it has train, test"):
            corpus.prepare("pt-en", tmp_path, corpus_name=TED)


def test_the_cli_refuses_a_missing_language_before_any_work(tmp_path):
    from test_cli import assert_one_line_error, environment

    command = [
        sys.executable,
        "-m",
        "pipeline",
        "data",
        "--corpus",
        TED,
        "--pair",
        "pt-de",
        "--data-dir",
        "x",
    ]
    # this checkout's pipeline, whatever the environment installed
    env = {**environment(), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert_one_line_error(result, "has no 'de'", "its languages are en, pt")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_whole_chain_runs_on_a_catalogue_dataset_offline(tmp_path):
    """data -> tokenize -> train (tiny) -> export -> evaluate on ted_hrlr_translate pt->en, whose
    examples mock_data makes up (random letters): the score means nothing, the chain is the test."""
    from pipeline.config import load_config, make_config
    from pipeline.decoding.evaluate import evaluate
    from pipeline.decoding.export import export
    from pipeline.tokenizer import train_tokenizer
    from pipeline.training.train import CONFIG, train

    examples = 40  # mock_data yields this many in every split
    data_dir = tmp_path / "tfds"
    write_metadata(data_dir, TED, {"train": examples, "validation": examples, "test": examples})
    cfg = make_config("tiny", "pt-en", corpus=TED)
    with tfds.testing.mock_data(num_examples=examples, data_dir=str(data_dir)):
        prepared = corpus.prepare(cfg.pair, data_dir, corpus_name=TED)
        assert prepared.parent.parent == data_dir / "ted_hrlr_translate"
        spm_model = train_tokenizer(cfg.tokenizer, cfg.pair, data_dir, tmp_path / "spm", TED)
        run_dir = tmp_path / "run"
        train(cfg, run_dir, data_dir, spm_model)
        version = export(run_dir, tmp_path / "saved")
        out = evaluate(version, cfg.pair, "test", data_dir, tmp_path / "reports", cfg.data.eval_limit,
                       beam_size=1, corpus_name=TED)  # fmt: skip

    report = json.loads(out.read_text())
    assert isinstance(report["bleu"], float) and not math.isnan(report["bleu"])
    assert 0 <= report["bleu"] <= 100
    assert report["corpus"] == TED and report["split"] == "test" and report["sentences"] == examples
    hypotheses = (tmp_path / "reports" / "test.greedy.hyp.txt").read_text().splitlines()
    assert len(hypotheses) == examples
    assert load_config(run_dir / CONFIG).corpus == TED
    assert json.loads((run_dir / CONFIG).read_text())["corpus"] == TED
