"""Distillation: a teacher's translations of the training split, and a student trained on them."""

import dataclasses

import numpy as np
import pytest
from conftest import SyntheticPairs
from test_search import train_on_synthetic

from pipeline import corpus, dataset
from pipeline.config import DataConfig
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.decoding import teach as teach_stage
from pipeline.decoding.search import compile_search, translate_rows
from pipeline.errors import UserError
from pipeline.layout import TEACHER_JSON, TEACHER_SHARDS, teacher_shard, teacher_targets
from pipeline.metrics import bleu

SOURCES = [f"Ein Hund läuft {i} Mal." for i in range(10)]


@pytest.fixture
def small_training_split(monkeypatch):
    """The teach stage reads ten training sentences, and nothing else."""

    def read_split(pair, split, *args, **kwargs):
        assert split == "train"
        return SOURCES, ["unused"] * len(SOURCES)

    monkeypatch.setattr(teach_stage.corpus, "read_split", read_split)


def test_the_teacher_translates_in_shards_resumes_and_is_reused(
    exported_tiny, small_training_split, tmp_path
):
    folder = tmp_path / f"{exported_tiny.parent.name}-{exported_tiny.name}"  # gru_bahdanau-1
    shards = folder / TEACHER_SHARDS
    shards.mkdir(parents=True)
    (shards / teacher_shard(1)).write_text("".join(f"kept {i}\n" for i in range(4)))  # a killed run's
    target = teach_stage.teach(exported_tiny, "de-en", tmp_path, tmp_path, chunk=4)
    assert target == folder / teacher_targets("en")
    lines = target.read_text().splitlines()
    assert len(lines) == len(SOURCES) and lines[4:8] == [f"kept {i}" for i in range(4)]
    translator, _ = teach_stage.load_translator(exported_tiny)
    expected = teach_stage.translate_all(translator, SOURCES[:4], progress=False)
    assert lines[:4] == list(expected)  # beam 5 and the model's default penalty
    assert not shards.exists() and (folder / TEACHER_JSON).is_file()
    target.write_text("reused\n")
    assert teach_stage.teach(exported_tiny, "de-en", tmp_path, tmp_path, chunk=4).read_text() == "reused\n"


def test_the_student_reads_the_teachers_targets_and_the_real_sources(prepared_data, spm_model, tmp_path):
    size = corpus.split_size("de-en", "train", prepared_data)
    targets = tmp_path / "train.en"
    targets.write_text("".join(f"Line {i}.\n" for i in range(size)))
    cfg = DataConfig(train_limit=3)
    taught = dataset.encoded_pairs("de-en", "train", prepared_data, spm_model, 3, targets=str(targets))
    plain = dataset.encoded_pairs("de-en", "train", prepared_data, spm_model, cfg.train_limit)
    tokenizer = dataset.load_sentencepiece(spm_model)
    for i, ((source, target_in, target_out), (real_source, _, _)) in enumerate(
        zip(taught, plain, strict=True)
    ):
        np.testing.assert_array_equal(source, real_source)
        ids = tokenizer.tokenize(f"Line {i}.").numpy().tolist()
        assert target_in.numpy().tolist() == [BOS_ID, *ids] and target_out.numpy().tolist() == [*ids, EOS_ID]
    both = dataclasses.replace(cfg, train_targets=str(targets), eval_limit=2)
    batch = next(
        iter(dataset.epoch_maker("de-en", "validation", prepared_data, spm_model, both, False)[0](0))
    )
    references = corpus.read_split("de-en", "validation", prepared_data, 2)[1]
    got = [[t for t in row if t not in (PAD_ID, EOS_ID)] for row in batch[1].numpy().tolist()]
    assert sorted(tokenizer.detokenize(row).numpy().decode() for row in got) == sorted(references)  # its own
    targets.write_text("Too few.\n")
    with pytest.raises(UserError, match="1 lines for the split's"):
        dataset.encoded_pairs("de-en", "train", prepared_data, spm_model, 3, targets=str(targets))


def words(rows) -> list[str]:
    return [" ".join(map(str, row)) for row in rows]


@pytest.mark.slow
def test_a_student_distilled_on_the_synthetic_task_learns_it(synthetic):
    teacher = train_on_synthetic("gru_bahdanau", synthetic)
    train, held_out = synthetic(2000, seed=0), synthetic(200, seed=1)
    rows = [[int(t) for t in row if t != PAD_ID] for row in train.source]
    taught = translate_rows(compile_search(teacher), rows, beam_size=5, alphas=(0.6,))[0]
    width = max(map(len, taught)) + 1
    target_in, target_out = np.full((2, len(taught), width), PAD_ID, np.int32)
    for i, ids in enumerate(taught):
        target_in[i, : len(ids) + 1], target_out[i, : len(ids) + 1] = [BOS_ID, *ids], [*ids, EOS_ID]
    student = train_on_synthetic(
        "gru_luong", lambda n, seed: SyntheticPairs(train.source, target_in, target_out)
    )
    held_rows = [[int(t) for t in row if t != PAD_ID] for row in held_out.source]
    hypotheses = translate_rows(compile_search(student), held_rows, beam_size=5, alphas=(0.6,))[0]
    assert bleu(words(hypotheses), words(held_out.targets())) >= 90
