"""The split stage: a whole prepared split as one JSON file, what the report reads instead of the corpus."""

from __future__ import annotations

import json

import pytest

from pipeline import corpus
from pipeline.corpus import synthetic
from pipeline.errors import UserError

SYNTHETIC = f"synthetic_translate/{synthetic.config_name(200)}"
KEYS = ["corpus", "pair", "split", "title", "sources", "references"]


def test_a_split_file_holds_the_whole_split_as_read_split_reads_it(prepared_data, tmp_path):
    out = corpus.write_split("de-en", "test", prepared_data, tmp_path / "splits" / "de-en" / "test.json")
    written = json.loads(out.read_text(encoding="utf-8"))
    assert list(written) == KEYS
    assert written["corpus"] == "multi30k" and written["pair"] == "de-en" and written["split"] == "test"
    assert written["title"] == corpus.split_title("de-en", "test", prepared_data) == "test_2016_flickr"
    sources, references = corpus.read_split("de-en", "test", prepared_data)  # every pair, in order
    assert (written["sources"], written["references"]) == (sources, references)
    assert len(sources) == corpus.split_size("de-en", "test", prepared_data) == 1000
    assert "ä" in "".join(sources)  # kept as text, not escaped or as bytes
    assert "ä" in out.read_text(encoding="utf-8")


def test_a_catalogue_corpus_keeps_its_name_its_split_name_and_the_pair_s_direction(tmp_path):
    data_dir = tmp_path / "tfds"
    corpus.prepare("xx-yy", data_dir, corpus_name=SYNTHETIC)
    out = corpus.write_split("yy-xx", "validation", data_dir, tmp_path / "v.json", corpus_name=SYNTHETIC)
    written = json.loads(out.read_text(encoding="utf-8"))
    assert [written[k] for k in KEYS[:4]] == [SYNTHETIC, "yy-xx", "validation", "validation"]
    targets, sources = corpus.read_split("xx-yy", "validation", data_dir, corpus_name=SYNTHETIC)
    assert (written["sources"], written["references"]) == (sources, targets)
    assert written["sources"][0].isupper()  # the yy side is the upper-cased one


def test_an_unprepared_corpus_writes_nothing(tmp_path):
    with pytest.raises(UserError, match=r"not prepared in .*\(make data\)"):
        corpus.write_split("de-en", "test", tmp_path / "tfds", tmp_path / "test.json")
    assert not (tmp_path / "test.json").exists()
