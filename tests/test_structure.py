"""The layout of pipeline/ as the code's own imports and definitions give it: a small core, stage
folders, no import running back up, short functions, and the folders' file names defined once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from import_graph import FOLDERS, MAX_CORE_MODULES, PIPELINE, cycle, graph, rank

from pipeline import layout

MAX_FUNCTION_LINES = 80


def test_the_core_has_at_most_twelve_modules_and_the_rest_lives_in_stage_folders():
    core = sorted(p.stem for p in PIPELINE.glob("*.py") if p.name != "__init__.py")
    assert len(core) <= MAX_CORE_MODULES, core
    folders = {p.name for p in PIPELINE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders == set(FOLDERS)


def test_no_import_runs_back_up_and_none_goes_round_in_a_circle():
    edges = graph()
    upward = [f"{a} -> {b}" for a, targets in edges.items() for b in targets if rank(b) > rank(a)]
    assert not upward
    # Within the core and within a folder, imports go one way too.
    assert cycle(edges) == []


def test_the_checks_see_an_import_back_up_and_a_circle():
    # The helpers above, on a made-up graph: what they would report of a bad layout.
    assert rank("pipeline.training.train") > rank("pipeline.decoding.search") > rank("pipeline.config")
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    lazy = "def f():\n    from pipeline.training import train\n"
    source = PIPELINE / "reporting" / "_probe_for_test.py"
    source.write_text(lazy)
    try:
        edges = graph()
        assert "pipeline.training.train" in edges["pipeline.reporting._probe_for_test"]
    finally:
        source.unlink()


def long_functions(root: Path = PIPELINE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_eighty_lines(tmp_path):
    assert long_functions() == []
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "long.py").write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert long_functions(tmp_path / "pipeline") == ["pipeline/long.py:1 f (81 lines)"]


FILE_NAMES = {
    value
    for name, value in vars(layout).items()
    if name.isupper() and isinstance(value, str) and "." in value and " " not in value
}


def typed_file_names(root: Path = PIPELINE) -> list[str]:
    """Every string in the code that is one of layout's file names, outside layout.py."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "layout.py" and path.parent == root:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in FILE_NAMES:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.value!r}")
    return found


def test_the_folders_file_names_are_defined_once_in_the_layout_module(tmp_path):
    assert {"train.json", "config.json", "exported.txt", "analysis.json", "compare.json"} <= FILE_NAMES
    assert typed_file_names() == []
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "stage.py").write_text('SUMMARY = "train.json"\n')
    assert typed_file_names(tmp_path / "pipeline") == ["pipeline/stage.py:1 'train.json'"]


@pytest.mark.parametrize("split, decoding, name", [("test", None, "test.json"),
                                                   ("test", "greedy", "test.greedy.json"),
                                                   ("validation", None, "validation.json")])  # fmt: skip
def test_a_splits_result_is_named_by_its_split_and_decoding(split, decoding, name):
    assert layout.result(split, decoding) == name
    assert layout.hypotheses(split, decoding) == name.replace(".json", ".hyp.txt")
