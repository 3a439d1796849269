import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import load_config
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.export import MAX_SOURCE_PIECES, export, latest_version
from pipeline.models import VARIANTS, build_model
from pipeline.search import greedy_search
from pipeline.tokenizer import load_tokenizer
from pipeline.train import BEST_WEIGHTS, CONFIG, TOKENIZER

# The last is longer than MAX_SOURCE_PIECES and is cut, in the graph as here.
SOURCES = ["Ein Hund läuft über eine grüne Wiese.", "Zwei Männer spielen Fußball.", "", "Hunde " * 300]

# A client that has TensorFlow and tensorflow-text but not this project.
CLIENT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece ops the graph uses

model = tf.saved_model.load(sys.argv[1])
sources = tf.constant(json.loads(sys.argv[2]))
translate = model.translate(sources)["translations"].numpy()
serving = model.signatures["serving_default"](sources=sources)["translations"].numpy()
print(json.dumps({
    "translate": [t.decode("utf-8") for t in translate],
    "serving_default": [t.decode("utf-8") for t in serving],
    "imported_pipeline": "pipeline" in sys.modules,
}))
"""


def in_process_greedy(run_dir, sources: list[str]) -> list[str]:
    """The same model decoded eagerly: Python SentencePiece, greedy_search, decode."""
    sp = load_tokenizer(run_dir / TOKENIZER)
    model = build_model(load_config(run_dir / CONFIG).model, sp.vocab_size())
    model.load_weights(run_dir / BEST_WEIGHTS)
    rows = [sp.encode(s)[: MAX_SOURCE_PIECES - 1] + [EOS_ID] for s in sources]
    assert max(map(len, rows)) == MAX_SOURCE_PIECES
    source = np.full((len(rows), max(map(len, rows))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        source[i, : len(row)] = row
    ids, lengths = greedy_search(model, tf.constant(source))
    return [sp.decode([int(t) for t in row[:n]]) for row, n in zip(ids.numpy(), lengths.numpy(), strict=True)]


def test_versions_grow_and_nothing_is_left_staged(tiny_run, tmp_path):
    base = tmp_path / "gru_bahdanau"
    first = export(tiny_run, base)
    assert first == base / "1" and (first / "saved_model.pb").is_file()
    second = export(tiny_run, base)
    assert second == base / "2" and (second / "saved_model.pb").is_file()
    assert latest_version(base) == second
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no '.export-*' staging dir


def test_latest_version_is_numeric_not_lexical(tmp_path):
    assert latest_version(tmp_path) is None
    for name in ("2", "10", "9", ".export-abc", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "11").write_text("a file, not a version")
    assert latest_version(tmp_path) == tmp_path / "10"


def test_export_without_weights_is_refused(tiny_run, tmp_path):
    run_dir = tmp_path / "untrained"
    run_dir.mkdir()
    for name in (CONFIG, TOKENIZER):
        shutil.copyfile(tiny_run / name, run_dir / name)
    base = tmp_path / "model"
    with pytest.raises(FileNotFoundError, match=BEST_WEIGHTS):
        export(run_dir, base)
    assert not base.exists() or list(base.iterdir()) == []


def test_moved_export_serves_the_same_translations(tiny_run, tmp_path):
    version = export(tiny_run, tmp_path / "base")
    moved = tmp_path / "elsewhere" / "model"
    shutil.move(version, moved)  # the SavedModel must not refer to where it was written
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(moved), json.dumps(SOURCES)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["imported_pipeline"] is False

    expected = in_process_greedy(tiny_run, SOURCES)
    assert served["translate"] == expected
    assert served["serving_default"] == expected
    assert len(expected) == len(SOURCES) and any(expected)  # an untrained model still writes something


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_trains_a_step_and_exports(variant, spm_model, tmp_path):
    from pipeline.config import make_config, save_config
    from pipeline.train import compile_model

    cfg = make_config("tiny", variant=variant, overrides=["model.units=8", "model.embedding_dim=8"])
    sp = load_tokenizer(spm_model)
    model = compile_model(build_model(cfg.model, sp.vocab_size()), cfg)
    source = np.array([sp.encode("Ein Hund läuft.") + [EOS_ID]], np.int32)
    target = sp.encode("A dog runs.")
    x = {"source": source, "target_in": np.array([[BOS_ID] + target], np.int32)}
    y = np.array([target + [EOS_ID]], np.int32)
    before = float(model.evaluate(x, y, verbose=0)[0])
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)  # one step
    assert float(model.evaluate(x, y, verbose=0)[0]) < before

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(cfg, run_dir / CONFIG)
    shutil.copyfile(spm_model, run_dir / TOKENIZER)
    model.save_weights(run_dir / BEST_WEIGHTS)
    version = export(run_dir, tmp_path / variant)
    loaded = tf.saved_model.load(str(version))  # kept: its functions need the object alive
    assert loaded.translate(tf.constant(["Ein Hund läuft."]))["translations"].shape == (1,)
