import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.protobuf import saved_model_pb2

from pipeline.config import load_config, make_config
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.decoding.export import MAX_SOURCE_PIECES, MAX_WORK, bounds_table, export, ids_base, memory_bound
from pipeline.decoding.search import beam_search
from pipeline.errors import UserError
from pipeline.files import latest_version
from pipeline.models import VARIANTS, build_model
from pipeline.tokenizer import load_tokenizer
from pipeline.training.train import BEST_WEIGHTS, CONFIG, TOKENIZER

# The last is longer than MAX_SOURCE_PIECES and is cut, in the graph as here.
SOURCES = ["Ein Hund läuft über eine grüne Wiese.", "Zwei Männer spielen Fußball.", "", "Hunde " * 300]
DECODINGS = [(1, 0.0), (5, 0.6)]  # (beam size, length penalty)

# A client that has TensorFlow, and tensorflow-text for the text signatures, but not this project.
CLIENT = """
import json, sys
import tensorflow as tf
if sys.argv[2] == "text":
    import tensorflow_text  # registers the SentencePiece ops the text signatures use

model = tf.saved_model.load(sys.argv[1])
request = json.loads(sys.argv[3])
out = {"imported_pipeline": any(m.split(".")[0] == "pipeline" for m in sys.modules)}
for k, alpha in request["decodings"]:
    k, alpha = tf.constant(k), tf.constant(alpha)
    if sys.argv[2] == "text":
        sources = tf.constant(request["sources"])
        result = model.signatures["translate"](sources=sources, beam_size=k, length_penalty=alpha)
        out[f"text {k}"] = [t.decode("utf-8") for t in result["translations"].numpy()]
        out["serving_default"] = [t.decode() for t in model.serve(sources)["translations"].numpy()]
    else:
        ids, lengths = tf.constant(request["ids"]), tf.constant(request["lengths"])
        result = model.signatures["translate_ids"](
            source_ids=ids, source_lengths=lengths, beam_size=k, length_penalty=alpha)
        rows = zip(result["ids"].numpy(), result["lengths"].numpy())
        out[f"ids {k}"] = [row[:n].tolist() for row, n in rows]
        out["outputs"] = sorted(result)
        aligned = model.signatures["align_ids"](
            source_ids=ids, source_lengths=lengths, beam_size=k, length_penalty=alpha)
        out["align outputs"] = sorted(aligned)
print(json.dumps(out))
"""


def in_process_search(run_dir, sources: list[str], beam_size: int, alpha: float) -> list[list[int]]:
    """The same model searched here: Python SentencePiece, then beam_search on the ids."""
    sp = load_tokenizer(run_dir / TOKENIZER)
    model = build_model(load_config(run_dir / CONFIG).model, sp.vocab_size())
    model.load_weights(run_dir / BEST_WEIGHTS)
    rows = [sp.encode(s)[: MAX_SOURCE_PIECES - 1] + [EOS_ID] for s in sources]
    assert max(map(len, rows)) == MAX_SOURCE_PIECES
    source = np.full((len(rows), max(map(len, rows))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        source[i, : len(row)] = row
    ids, lengths, _, _ = beam_search(model, tf.constant(source), beam_size, alpha)
    return [[int(t) for t in row[:n]] for row, n in zip(ids.numpy(), lengths.numpy(), strict=True)]


def run_client(model_dir, kind: str, request: dict, cwd) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(model_dir), kind, json.dumps(request)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def signature_op_types(model_dir, signature: str) -> set[str]:
    """Op types the signature's graph runs, read from saved_model.pb, nested functions included."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    nodes = {n.name: n for n in graph.node}
    types, seen = set(), set()

    def visit(node):
        if node.op in functions:
            visit_function(node.op)
        else:
            types.add(node.op)
        for attr in node.attr.values():
            for name in [attr.func.name, *(f.name for f in attr.list.func)]:
                if name:
                    visit_function(name)

    def visit_function(name):
        if name not in seen:
            seen.add(name)
            for node in functions[name].node_def:
                visit(node)

    outputs = saved.meta_graphs[0].signature_def[signature].outputs.values()
    for node in {nodes[t.name.split(":")[0]].name for t in outputs}:
        visit(nodes[node])
        for inp in nodes[node].input:
            visit(nodes[inp.lstrip("^").split(":")[0]])
    return types


@pytest.fixture(scope="module")
def exported(exported_tiny):
    """The tiny run's export (conftest), for the tests that only read or load it: the text
    servable's version folder (the ids servable is beside it, at ids_base)."""
    return exported_tiny


def test_versions_grow_and_nothing_is_left_staged(tiny_run, tmp_path):
    base = tmp_path / "gru_bahdanau"
    first = export(tiny_run, base)
    assert first == base / "1" and (first / "saved_model.pb").is_file()
    second = export(tiny_run, base)
    assert second == base / "2" and (second / "saved_model.pb").is_file()
    assert latest_version(base) == second
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no '.export-*' staging dir
    ids = ids_base(base)
    assert (
        sorted(p.name for p in ids.iterdir()) == ["1", "2"] and (ids / "2" / "assets" / TOKENIZER).is_file()
    )


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
    with pytest.raises(UserError, match=BEST_WEIGHTS):
        export(run_dir, base)
    assert not base.exists() or list(base.iterdir()) == []


def test_moved_exports_search_exactly_as_in_process(tiny_run, tmp_path):
    version = export(tiny_run, tmp_path / "base")
    moved = tmp_path / "elsewhere"
    shutil.move(version, moved / "text")  # the SavedModels must not refer to where they were written
    shutil.move(ids_base(tmp_path / "base") / version.name, moved / "ids")
    sp = load_tokenizer(moved / "ids" / "assets" / TOKENIZER)  # the client's tokenizer travels with it
    pieces = [sp.encode(s) for s in SOURCES]
    width = max(map(len, pieces))
    request = {
        "sources": SOURCES,
        "decodings": DECODINGS,
        "ids": [row + [PAD_ID] * (width - len(row)) for row in pieces],
        "lengths": [len(row) for row in pieces],
    }
    text = run_client(moved / "text", "text", request, cwd=tmp_path)
    ids = run_client(moved / "ids", "ids", request, cwd=tmp_path)
    assert text["imported_pipeline"] is ids["imported_pipeline"] is False

    for k, alpha in DECODINGS:
        expected = in_process_search(tiny_run, SOURCES, k, alpha)
        assert ids[f"ids {k}"] == expected
        assert text[f"text {k}"] == [sp.decode(row) for row in expected]
    assert text["serving_default"] == text["text 5"]  # the defaults: beam 5, alpha 0.6
    assert len({tuple(row) for row in expected}) > 1  # an untrained model still writes something
    assert ids["outputs"] == ["beam_size", "ids", "lengths", "scores"]  # alignments only when asked for
    assert ids["align outputs"] == ["alignments", "beam_size", "ids", "lengths", "scores"]


def test_translate_ids_runs_only_core_tensorflow_ops(exported):
    ids_only = ids_base(exported.parent) / exported.name
    graphs = {
        "text translate_ids": signature_op_types(exported, "translate_ids"),
        "ids translate_ids": signature_op_types(ids_only, "translate_ids"),
        "ids serving_default": signature_op_types(ids_only, "serving_default"),
        "ids align_ids": signature_op_types(ids_only, "align_ids"),
        "text translate": signature_op_types(exported, "translate"),
    }
    assert {"TopKV2", "While"} <= graphs["text translate_ids"]  # the walk reaches into the search loop
    # Registered in a process that imports TensorFlow alone: the core ops.
    check = "import json, sys\nfrom tensorflow.python.framework import op_def_registry\n" \
            "print(json.dumps({k: sorted(t for t in v if op_def_registry.get(t) is None) " \
            "for k, v in json.loads(sys.argv[1]).items()}))"  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    request = json.dumps({k: sorted(v) for k, v in graphs.items()})
    result = subprocess.run([sys.executable, "-c", check, request],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outside_core = json.loads(result.stdout.strip().splitlines()[-1])
    assert outside_core["text translate_ids"] == []
    assert outside_core["ids translate_ids"] == outside_core["ids serving_default"] == []
    assert outside_core["ids align_ids"] == []
    assert "SentencepieceOp" in outside_core["text translate"]  # the check sees tensorflow-text ops


def test_evaluate_loads_the_text_servable_in_a_process_without_the_export_module(exported):
    # The evaluate and translate stages never import pipeline.decoding.export (nor, through it,
    # tensorflow_text): evaluate must register the SentencePiece ops itself.
    code = ("import sys\nfrom pipeline.decoding.evaluate import load_translator\n"
            "load_translator(sys.argv[1])\nprint('pipeline.decoding.export' in sys.modules)")  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code, str(exported.parent)],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_hostile_inputs_are_bounded(exported):
    loaded = tf.saved_model.load(str(exported))
    beam, alpha = tf.constant(5), tf.constant(0.6)
    empty = loaded.translate(tf.constant([], tf.string), beam, alpha)
    assert empty["translations"].shape == (0,)
    out = loaded.translate_ids(
        tf.constant([[-7, 10**6, 5], [5, 0, 0]]), tf.constant([99, -3]), tf.constant(0), alpha
    )  # ids outside the vocabulary, lengths outside the tensor, beam size 0
    assert out["ids"].shape[0] == 2 and np.all(np.isfinite(out["scores"]))
    same = loaded.translate_ids(
        tf.constant([[1, 1, 5], [5, 0, 0]]), tf.constant([3, 0]), tf.constant(1), alpha
    )
    np.testing.assert_array_equal(out["ids"], same["ids"])  # as UNK, clipped, and beam 1


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_trains_a_step_and_exports(variant, spm_model, tmp_path):
    from pipeline.config import make_config, save_config
    from pipeline.training.train import compile_model

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
    out = loaded.serve(tf.constant(["Ein Hund läuft."]))
    assert out["translations"].shape == (1,) and "alignments" not in out
    aligned = loaded.align(tf.constant(["Ein Hund läuft."]), tf.constant(2), tf.constant(0.6))
    attends = VARIANTS[variant][1] is not None  # without attention: no source positions to weigh
    assert aligned["alignments"].shape[0] == 1 and (aligned["alignments"].shape[2] > 0) == attends
    # The pieces the weights are over: the source's and EOS across, the translation's down.
    source_pieces = [p.decode() for p in aligned["source_pieces"].numpy()[0]]
    assert source_pieces == [sp.id_to_piece(i) for i in sp.encode("Ein Hund läuft.")] + ["</s>"]
    assert not attends or aligned["alignments"].shape[2] == len(source_pieces)
    output_pieces = [p.decode() for p in aligned["output_pieces"].numpy()[0] if p]
    assert sp.decode_pieces(output_pieces) == aligned["translations"].numpy()[0].decode()
    assert aligned["alignments"].shape[1] >= len(output_pieces)  # one row per piece, then EOS's


# Hostile requests: whatever a client sends, one output per input, bounded lengths, no crash.

MAX_OUTPUT = 256  # search.max_output_lengths' cap


@pytest.fixture(scope="module")
def servables(tiny_run, exported):
    """Both exported servables of the tiny run, loaded as a server would."""
    text = tf.saved_model.load(str(exported))
    ids = tf.saved_model.load(str(ids_base(exported.parent) / exported.name))
    return text, ids, load_tokenizer(tiny_run / TOKENIZER).vocab_size()


HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),  # any Unicode, control characters and NUL included
    st.sampled_from(
        ["", " ", "\t\n ", "x" * 10_000, "Ein Hund " * 1500, "\u200f\u202eتجربة\u200e", "🐕🚲🏖️👩‍👩‍👧"]
    ),
    st.binary(max_size=40),  # bytes that need not be UTF-8
)
BEAMS = st.sampled_from([0, -1, 1, 2, 33, 10**6])
PENALTIES = st.sampled_from([float("nan"), float("inf"), float("-inf"), -1.0, 0.0, 0.6, 1e9])


def check_outputs(ids: np.ndarray, lengths: np.ndarray, scores: np.ndarray, batch: int, vocab: int) -> None:
    assert ids.shape[0] == lengths.shape[0] == scores.shape[0] == batch
    assert np.all((lengths >= 0) & (lengths <= MAX_OUTPUT)) and ids.shape[1] <= MAX_OUTPUT
    assert np.all((ids >= 0) & (ids < vocab)) and np.all(np.isfinite(scores))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sources=st.lists(HOSTILE_TEXT, min_size=1, max_size=6), beam=BEAMS, penalty=PENALTIES)
def test_the_text_servable_answers_any_strings(servables, sources, beam, penalty):
    text, _, vocab = servables
    for signature in (text.translate, text.align):
        out = signature(tf.constant(sources, tf.string), tf.constant(beam), tf.constant(penalty))
        assert out["translations"].shape == (len(sources),)
        assert out["scores"].shape == (len(sources),) and np.all(np.isfinite(out["scores"]))
    assert (
        out["alignments"].shape[0]
        == out["source_pieces"].shape[0]
        == out["output_pieces"].shape[0]
        == len(sources)
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=12), min_size=1, max_size=6),
    lengths=st.lists(st.integers(-5, 300), min_size=6, max_size=6),
    beam=BEAMS,
    penalty=PENALTIES,
)
def test_the_ids_servable_answers_any_ids_and_lengths(servables, rows, lengths, beam, penalty):
    _, ids_model, vocab = servables
    width = max(map(len, rows))
    source = np.array([row + [0] * (width - len(row)) for row in rows], np.int32).reshape(len(rows), width)
    args = (
        tf.constant(source),
        tf.constant(lengths[: len(rows)], tf.int32),
        tf.constant(beam),
        tf.constant(penalty),
    )
    for signature in (ids_model.signatures["translate_ids"], ids_model.signatures["align_ids"]):
        out = signature(source_ids=args[0], source_lengths=args[1], beam_size=args[2], length_penalty=args[3])
        check_outputs(out["ids"].numpy(), out["lengths"].numpy(), out["scores"].numpy(), len(rows), vocab)


def test_batches_of_one_and_of_512_mixed_lengths(servables):
    text, ids_model, vocab = servables
    rng = np.random.default_rng(0)
    words = ["Ein", "Hund", "läuft", "über", "die", "Wiese", "und", "bellt"]
    sources = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(0, 60, size=512)]
    for batch in (sources[:1], sources):
        out = text.translate(tf.constant(batch), tf.constant(4), tf.constant(0.6))
        assert out["translations"].shape == (len(batch),) and np.all(np.isfinite(out["scores"]))


def test_a_request_too_large_for_one_beam_is_refused_and_the_server_goes_on(servables):
    _, ids_model, vocab = servables
    translate = ids_model.signatures["translate_ids"]
    too_large = dict(source_ids=tf.fill([600, 256], 5), source_lengths=tf.fill([600], 256),
                     beam_size=tf.constant(1), length_penalty=tf.constant(0.6))  # fmt: skip
    with pytest.raises(tf.errors.InvalidArgumentError, match="request too large"):
        translate(**too_large)
    out = translate(source_ids=tf.fill([2, 3], 5), source_lengths=tf.constant([3, 1]),
                    beam_size=tf.constant(5), length_penalty=tf.constant(0.6))  # fmt: skip
    check_outputs(out["ids"].numpy(), out["lengths"].numpy(), out["scores"].numpy(), 2, vocab)


def test_every_request_says_the_beam_it_was_searched_with(servables):
    text, ids_model, _ = servables
    small = text.translate(tf.constant(["Ein Hund.", "Zwei Katzen."]), tf.constant(5), tf.constant(0.6))
    assert small["beam_size"].numpy().tolist() == [5, 5]
    # 128 sentences of 63 pieces and EOS: 8192 rows x pieces at one beam, so MAX_WORK fits 16.
    for signature in ("translate_ids", "align_ids"):
        out = ids_model.signatures[signature](
            source_ids=tf.fill([128, 63], 5),
            source_lengths=tf.fill([128], 63),
            beam_size=tf.constant(32),
            length_penalty=tf.constant(0.6),
        )
        assert out["beam_size"].numpy().tolist() == [MAX_WORK // (128 * 64)] * 128 == [16] * 128


# A server process: warm up on a small request, then the extreme one; prints the growth of the
# process's peak resident memory (bytes) and the output shapes.
EXTREME = """
import json, resource, sys
import tensorflow as tf
if sys.argv[2] == "text":
    import tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
beam, alpha = tf.constant(32), tf.constant(0.6)
if sys.argv[2] == "text":
    small, large = tf.constant(["Ein Hund."]), tf.constant(["Hund " * 400] * 512)
    run = lambda s, f: model.signatures[f](sources=s, beam_size=beam, length_penalty=alpha)
else:
    small, large = tf.fill([1, 3], 5), tf.fill([512, 400], 5)  # cut to 255 pieces and EOS
    run = lambda s, f: model.signatures[f](
        source_ids=s, source_lengths=tf.fill([tf.shape(s)[0]], tf.shape(s)[1]), beam_size=beam,
        length_penalty=alpha)
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for signature in sys.argv[3:]:
    run(small, signature)
before = peak()
shapes = {s: {k: v.shape.as_list() for k, v in run(large, s).items()} for s in sys.argv[3:]}
print(json.dumps({"growth": peak() - before, "shapes": shapes}))
"""


@pytest.mark.parametrize(
    "variant, overrides, bound",
    [
        ("transformer", ["model.layers=2", "model.decoder_layers=1", "model.heads=4"], 845_152_256),
        ("gru_luong", [], 687_865_856),
        ("gru", [], 637_534_208),
    ],
)
def test_each_model_gives_the_memory_bound_its_search_width(variant, overrides, bound):
    # The bounds of the tiny models as export computed them before the models answered for themselves.
    cfg = make_config("tiny", variant=variant, overrides=overrides)
    assert memory_bound(build_model(cfg.model, 30)) == bound


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, signatures", [("ids", ["translate_ids", "align_ids"]), ("text", ["translate", "align"])]
)
def test_the_extreme_request_stays_under_the_memory_bound(tiny_run, exported, kind, signatures):
    # 512 sentences of 256 pieces at beam 32: the beam is lowered to 1 to fit MAX_WORK.
    folder = exported if kind == "text" else ids_base(exported.parent) / exported.name
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", EXTREME, str(folder), kind, *signatures],
                            capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    cfg = load_config(tiny_run / CONFIG)
    bound = memory_bound(build_model(cfg.model, load_tokenizer(tiny_run / TOKENIZER).vocab_size()))
    assert 0 <= measured["growth"] < bound
    for shapes in measured["shapes"].values():
        assert shapes["scores"] == [512]


def test_the_bounds_table_gives_each_variants_own_bound(tmp_path):
    text = bounds_table(tmp_path / "bounds.md", presets=("tiny",)).read_text()
    cells = {line.split(" | ")[0].strip("| `"): float(line.split(" | ")[1].strip(" |"))
             for line in text.splitlines() if line.startswith("| `")}  # fmt: skip
    assert list(cells) == list(VARIANTS)
    for variant, gb in cells.items():
        cfg = make_config("tiny", variant=variant)
        assert gb == round(memory_bound(build_model(cfg.model, cfg.tokenizer.vocab_size)) / 1e9, 2)
    # A search keeps more per row with attention than without, and most in the Transformer's layers.
    assert cells["gru"] < cells["gru_bahdanau"] < cells["transformer"]
