"""The import graph of pipeline/, read from the code's own imports (ast), by layer; and its picture.

    python tests/import_graph.py docs/layout.png

draws each layer as a row of boxes (the core's modules, each stage folder with its modules) with
an arrow for every folder that imports from another, the number of imports on it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"
MAX_CORE_MODULES = 12

# The layers, lowest first: a module imports from its own layer and those before it, never from
# one after it. The core is two: what every stage uses, then the two modules that read a corpus
# (the tokenizer trains on it, the dataset batches it). __main__ stands above them all.
FOLDERS = ("corpus", "models", "decoding", "reporting", "training", "serving", "bench")
READS_A_CORPUS = ("pipeline.tokenizer", "pipeline.dataset")


def modules(root: Path = PIPELINE) -> dict[str, Path]:
    """Every module by dotted name: pipeline.config, pipeline.training.train, ..."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, names: set[str]) -> set[str]:
    """The project modules a module imports, anywhere in it (a function's lazy import counts)."""
    package = ".".join(path.relative_to(PIPELINE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
            for alias in node.names:  # from pipeline import corpus: the module pipeline.corpus
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base)
    return {name for name in found if name in names}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name, "pipeline"} for name, path in found.items()}


def rank(module: str) -> float:
    """0 for the core, then the folders in FOLDERS' order, __main__ last."""
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return len(FOLDERS) + 1
    if module in READS_A_CORPUS:
        return FOLDERS.index("corpus") + 1.5
    return FOLDERS.index(parts[1]) + 1 if len(parts) > 1 and parts[1] in FOLDERS else 0


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle, or []: a depth-first search that meets a module already on its path."""
    state, path = {}, []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for other in sorted(edges.get(node, ())):
            if state.get(other) == "open":
                return path[path.index(other) :] + [other]
            if other not in state and (found := visit(other)):
                return found
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def box(module: str) -> str:
    """The box a module is drawn in: its folder, or the core's half it belongs to."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in FOLDERS:
        return parts[1]
    if module in READS_A_CORPUS:
        return "core: reads a corpus"
    return "__main__" if parts[1:] == ["__main__"] else "core"


def box_edges() -> dict[tuple[str, str], int]:
    """Imports from one box into another, counted."""
    counts: dict[tuple[str, str], int] = {}
    for a, targets in graph().items():
        for b in targets:
            if box(a) != box(b):
                counts[(box(a), box(b))] = counts.get((box(a), box(b)), 0) + 1
    return counts


def depths(counts: dict[tuple[str, str], int], names: list[str]) -> dict[str, int]:
    """A box's row: the longest chain of imports below it (0: imports no other box)."""
    below = {name: {b for (a, b) in counts if a == name} for name in names}
    depth: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((of(b) for b in below[name]), default=-1)
        return depth[name]

    return {name: of(name) for name in names}


def draw(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boxes: dict[str, list[str]] = {}
    for name in modules():
        package = name == "pipeline" or name.removeprefix("pipeline.") in FOLDERS  # an __init__
        if not package:
            boxes.setdefault(box(name), []).append(name.split(".")[-1])
    counts = box_edges()
    depth = depths(counts, sorted(boxes))
    rows = max(depth.values()) + 1
    fig, ax = plt.subplots(figsize=(13, 1.5 * rows), dpi=100)
    centre = {}
    for y in range(rows):
        names = sorted(n for n in boxes if depth[n] == y)
        for i, name in enumerate(names):
            centre[name] = ((i + 1) / (len(names) + 1), y)
    for (a, b), n in sorted(counts.items()):
        if b == "core":  # every box imports the core: its arrows would hide the others
            continue
        ax.annotate("", xy=centre[b], xytext=centre[a], arrowprops={
            "arrowstyle": "-|>", "color": "#8895ad", "lw": 0.5 + 0.12 * n, "shrinkA": 22, "shrinkB": 22,
            "connectionstyle": "arc3,rad=0.12"})  # fmt: skip
    for name, (x, y) in centre.items():
        title = f"{name}/" if name in FOLDERS else name
        inside = [] if name == "__main__" else _wrap(" ".join(sorted(boxes[name])), 40)
        label = "\n".join([title, *inside])
        colour = "#e4ecf9" if name in FOLDERS else "#f1f1f1"
        ax.text(x, y, label, ha="center", va="center", fontsize=8.5,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": colour, "edgecolor": "#556"})  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, rows - 0.4)
    ax.axis("off")
    ax.set_title(
        "pipeline/: each arrow an import from one box into another, pointing down "
        "(every box imports the core: those arrows are left out)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines = []
    for line in text.split("\n"):
        current = ""
        for word in line.split():
            if current and len(current) + 1 + len(word) > width:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}".strip()
        lines.append(current)
    return lines


if __name__ == "__main__":
    print(draw(Path(sys.argv[1])))
