"""The best stage: forward selection on validation, and the files it leaves for export and evaluate."""

import json

import pytest
from test_ensemble import write_run

from pipeline import corpus
from pipeline.decoding import best as best_stage
from pipeline.decoding.best import Tried, forward_selection
from pipeline.errors import UserError
from pipeline.layout import BEST_MEMBERS, DECODING, GREEDY, SELECTION_JSON, SELECTION_MD, result


def single(name: str, bleu: float) -> Tried:
    return Tried((name,), bleu, 0.6, {"0.6": bleu})


def scorer(scores: dict[frozenset, float]):
    """An ensemble's score by its set of members, and the ensembles asked for, in order."""
    asked = []

    def score_ensemble(members):
        asked.append(members)
        return Tried(members, scores[frozenset(members)], 1.0, {"1.0": scores[frozenset(members)]})

    return score_ensemble, asked


def test_a_candidate_joins_only_if_validation_improves():
    singles = [single("b", 20.0), single("a", 30.0), single("c", 25.0)]
    score_ensemble, asked = scorer({frozenset("ac"): 31.0, frozenset("acb"): 30.5})
    tried, chosen = forward_selection(singles, score_ensemble)
    assert asked == [("a", "c"), ("a", "c", "b")]  # from the best alone, by their own scores
    assert chosen.members == ("a", "c") and chosen.bleu == 31.0 and chosen.length_penalty == 1.0
    assert [t.members for t in tried] == asked


def test_an_ensemble_that_only_ties_is_not_chosen():
    singles = [single("a", 30.0), single("b", 20.0)]
    score_ensemble, _ = scorer({frozenset("ab"): 30.0})
    assert forward_selection(singles, score_ensemble)[1].members == ("a",)
    score_ensemble, _ = scorer({frozenset("ab"): 29.0})
    assert forward_selection(singles, score_ensemble)[1] == singles[0]


@pytest.fixture(scope="module")
def candidates(spm_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    seeded = ("train.seed=1", "data.seed=1")  # as make trains gru-seed1: another seed, the same data
    return [write_run(root / "gru_luong", "gru_luong", 0, spm_model),
            write_run(root / "transformer", "transformer", 1, spm_model),
            write_run(root / "gru-seed1", "gru", 2, spm_model, seeded)]  # fmt: skip


def test_the_stage_writes_every_candidate_and_ensemble_and_never_reads_test(
    candidates, prepared_data, tmp_path, monkeypatch
):
    read = corpus.read_split

    def validation_only(pair, split, *args, **kwargs):
        assert split == "validation", "the best stage read the test split"
        return read(pair, split, *args, **kwargs)

    monkeypatch.setattr(best_stage.corpus, "read_split", validation_only)
    out = best_stage.best(candidates, prepared_data, tmp_path / "best", beam_size=2)
    assert out == tmp_path / "best" / SELECTION_JSON
    selection = json.loads(out.read_text())
    assert sorted(m["members"][0] for m in selection["models"]) == ["gru-seed1", "gru_luong", "transformer"]
    assert len(selection["ensembles"]) == 2 and all(len(e["members"]) >= 2 for e in selection["ensembles"])
    tried = selection["models"] + selection["ensembles"]
    assert sum(t["chosen"] for t in tried) == 1
    chosen = selection["chosen"]
    assert chosen["validation_bleu"] == max(t["validation_bleu"] for t in tried)
    decoding = json.loads((out.parent / DECODING).read_text())
    assert decoding["length_penalty"] == chosen["length_penalty"] and decoding["beam_size"] == 2
    members = (out.parent / BEST_MEMBERS).read_text().split()
    assert members == [str(c) for m in chosen["members"] for c in candidates if c.name == m]
    table = (out.parent / SELECTION_MD).read_text()
    assert table.count("**chosen**") == 1 and table.count("\n") == 2 + len(tried)


def test_runs_of_another_pair_are_refused(candidates, prepared_data, tmp_path):
    import dataclasses
    import shutil

    from pipeline.config import load_config, save_config
    from pipeline.layout import CONFIG

    other = tmp_path / "other"
    shutil.copytree(candidates[0], other)
    cfg = load_config(other / CONFIG)
    save_config(dataclasses.replace(cfg, pair="fr-en"), other / CONFIG)
    with pytest.raises(UserError, match="one pair and preset"):
        best_stage.best([candidates[1], other], prepared_data, tmp_path / "best")


# The README's lines, from report folders alone.


def write_results(folder, beam: float, greedy: float, penalty: float = 1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.json").write_text(
        json.dumps({"bleu": beam, "bleu_ci": 1.5, "decoding": "beam5", "length_penalty": penalty})
    )
    (folder / result("test", GREEDY)).write_text(json.dumps({"bleu": greedy, "decoding": GREEDY}))


def test_the_readme_lines_say_not_built_until_the_best_folder_has_its_results(tmp_path):
    from pipeline.reporting.best import summarize_best

    pair = tmp_path / "de-en"
    out = summarize_best([pair], tmp_path / "best.md")
    assert out.read_text() == "- The best model of de-en is not built yet: `make best PAIR=de-en` builds it\n"
    selection = {"models": [{}] * 3, "ensembles": [{}] * 2,
                 "chosen": {"members": ["gru_luong", "transformer"], "validation_bleu": 41.23}}  # fmt: skip
    (pair / "best").mkdir(parents=True)
    (pair / "best" / SELECTION_JSON).write_text(json.dumps(selection))
    assert "not built yet" in summarize_best([pair], out).read_text()  # chosen, not yet evaluated
    write_results(pair / "best", 43.21, 40.12, 0.8)
    write_results(pair / "distilled" / "gru", 39.5, 38.25)
    write_results(pair / "converge" / "gru", 35.75, 33.5)
    (pair / "distilled" / "lstm").mkdir()  # a student still training: no line
    best, student = summarize_best([pair], out).read_text().splitlines()
    assert best.startswith("- The best model of de-en (`make best PAIR=de-en`, [selection](")
    assert "an ensemble of `gru_luong` + `transformer`, chosen among 5 models and ensembles" in best
    assert "validation BLEU (41.23); test BLEU 43.21 ± 1.5 (beam5, length penalty 0.8), 40.12 greedy" in best
    command = "(`make distill PAIR=de-en VARIANT=gru`)"
    assert student.startswith(f"- `gru` distilled from it {command}: test BLEU 39.5 ± 1.5")
    reference = "BLEU 35.75 ± 1.5 (beam5, length penalty 1.0), 33.5 greedy"
    assert student.endswith(f"trained on the references (converge): {reference}")


def test_the_readme_lines_give_each_pair_in_turn_its_best_model_then_its_students(tmp_path):
    from pipeline.reporting.best import summarize_best

    de_en, en_de = tmp_path / "de-en", tmp_path / "en-de"
    selection = {"models": [{}], "ensembles": [], "chosen": {"members": ["gru"], "validation_bleu": 30.5}}
    (de_en / "best").mkdir(parents=True)
    (de_en / "best" / SELECTION_JSON).write_text(json.dumps(selection))
    write_results(de_en / "best", 31.0, 29.0)
    write_results(de_en / "distilled" / "gru", 30.0, 29.5)
    lines = summarize_best([de_en, en_de], tmp_path / "best.md").read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith("- `gru` distilled from it")
    assert lines[0].startswith("- The best model of de-en (`make best")
    assert lines[2].startswith("- The best model of en-de is not built yet")
    assert "the single model `gru`, chosen among 1 models" in lines[0]
