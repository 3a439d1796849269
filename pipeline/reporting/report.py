"""The report stage: one table and four kinds of figures that compare the variants.

Reads the report folder of each variant (``<reports>/<variant>/``), which the evaluate and
analyse stages wrote, and the test split's file, which the split stage wrote
(``pipeline.corpus.write_split``); never a run, a SavedModel or the corpus, so a comparison can be
built from committed report folders alone, without TensorFlow. Writes ``compare.json``,
``compare.md`` and the PNG figures to one folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
from pipeline.config import make_config
from pipeline.constants import DEFAULT_CORPUS, DEFAULT_CORPUS_TITLE, DEFAULT_LENGTH_PENALTY, VARIANTS
from pipeline.errors import UserError
from pipeline.files import write_json, write_text
from pipeline.metrics import BOOTSTRAP_SAMPLES, bleu, check_pairs, paired_bootstrap
from pipeline.reporting import plots
from pipeline.reporting.lesson import CLAIMS

LENGTH_BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 25), (26, None))  # source words, inclusive
# What a variant's report folder holds, by what the report calls it.
REPORT_FILES = {"test": layout.result("test"), "greedy": layout.result("test", layout.GREEDY),
                "validation": layout.result("validation"), "train": layout.SUMMARY, "config": layout.CONFIG,
                "analysis": layout.ANALYSIS}  # fmt: skip
SPLIT = "test"  # the split the table scores
# A last epoch that raised a variant's validation BLEU by more than this share of the epoch before's:
# the run was cut off far from converged, and its row cannot test the lesson's claims.
RISING = 0.10
HYPOTHESES = layout.hypotheses(SPLIT)


def bucket_label(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high else f"{low}+"


def bleu_by_length(sources: list[str], hypotheses: list[str], references: list[str]) -> dict[str, dict]:
    """Corpus BLEU of the sentences whose source has a given number of words, per bucket."""
    result = {}
    for low, high in LENGTH_BUCKETS:
        chosen = [i for i, s in enumerate(sources) if low <= len(s.split()) <= (high or 10**9)]
        score = None  # an empty bucket has no score
        if chosen:
            score = round(bleu([hypotheses[i] for i in chosen], [references[i] for i in chosen]), 2)
        result[bucket_label(low, high)] = {"sentences": len(chosen), "bleu": score}
    return result


def bleu_cell(r: dict) -> str:
    """The beam-5 test BLEU, bold, with the half-width of its 95% confidence interval when known."""
    ci = r.get("test_bleu_ci")
    return f"**{r['test_bleu']}**" + ("" if ci is None else f" ± {ci}")


def p_cell(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}"  # 1000 resamples: three decimals are all there is


def table_cells(r: dict, buckets: list[str]) -> list:
    speed = r["tokens_per_second"]
    return [
        f"`{r['variant']}`", r["attention"] or "-", f"{r['parameters']:,}", r["epochs"], r["best_epoch"],
        f"{r['train_seconds'] / 60:.1f}", ceiling_cell(r.get("ceiling_gflops", [])),
        "-" if speed is None else f"{speed:,}",
        r["val_bleu"], r["test_bleu_greedy"], bleu_cell(r), r["test_bleu_lc"], r["test_chrf"],
        p_cell(r["p_vs_baseline"]), r["length_penalty"],
        *["-" if r["test_bleu_by_length"][b]["bleu"] is None else r["test_bleu_by_length"][b]["bleu"]
          for b in buckets],
    ]  # fmt: skip


def ceiling_cell(ceilings: list[float]) -> str:
    """The `make bench` ceiling of the machine of each training process: what the minutes mean."""
    if not ceilings:
        return "-"
    low, high = min(ceilings), max(ceilings)
    return f"{low}" if low == high else f"{low}-{high}"


def stopping_line(rows: list[dict]) -> str:
    """Which runs the wall-clock guard cut short: their numbers may be below what the recipe reaches."""
    by_reason: dict[str, list[str]] = {}
    for r in rows:
        by_reason.setdefault(r["stopped_by"], []).append(f"`{r['variant']}`")
    if "time budget" in by_reason:
        return f"The time guard ended the training of: {', '.join(by_reason['time budget'])}."
    named = "; ".join(
        f"{'epoch limit' if reason == 'epochs' else reason}: {', '.join(names)}"
        for reason, names in by_reason.items()
    )
    return f"Every variant stopped by early stopping or its epoch limit ({named})."


def still_rising(histories: dict[str, list[float]]) -> dict[str, float]:
    """Each variant whose last epoch raised its validation BLEU (greedy, ``train.json``'s history,
    one score an epoch) by more than ``RISING``, with that rise as a share of the epoch before's."""
    rises = {
        v: (bleus[-1] - bleus[-2]) / bleus[-2]
        for v, bleus in histories.items()
        if len(bleus) > 1 and bleus[-2]
    }
    return {v: rise for v, rise in rises.items() if rise > RISING}


def rising_line(rising: dict[str, float]) -> str:
    """The caption of a table whose variants were still rising: which, by how much, and which of the
    lesson's claims it therefore cannot read ("": every variant had levelled off)."""
    if not rising:
        return ""
    named = ", ".join(f"`{v}` {rise:+.0%}" for v, rise in rising.items())
    claims = dict.fromkeys(
        claim for (before, after), (_, claim) in CLAIMS.items() if {before, after} & set(rising)
    )
    unread = (
        f"; the lesson's claims on them ({'; '.join(claims)}) cannot be read from this table"
        if claims
        else ""
    )
    return (
        f"Far from converged: the last epoch still raised the validation BLEU (greedy) by more than "
        f"{RISING:.0%} ({named}), so these rows are early scores{unread}. "
        "`make all PRESET=converge` trains every variant until its validation BLEU levels off."
    )


def penalty_phrase(penalties: tuple[float, ...] | dict[str, tuple[float, ...]]) -> str:
    """The length penalties tried on validation: one grid for every variant, or each variant's
    (``config.json``), grouped when runs trained under different grids sit in one table."""
    if isinstance(penalties, dict) and len(set(penalties.values())) == 1:
        penalties = next(iter(penalties.values()))
    if not isinstance(penalties, dict):
        if len(penalties) == 1:
            return f"length penalty {penalties[0]} (not tuned in this preset)"
        return f"each model's length penalty chosen on validation from {', '.join(map(str, penalties))}"
    by_grid: dict[tuple[float, ...], list[str]] = {}
    for variant, grid in penalties.items():
        by_grid.setdefault(tuple(grid), []).append(f"`{variant}`")
    groups = "; ".join(f"{', '.join(map(str, g))} for {', '.join(names)}" for g, names in by_grid.items())
    return f"each model's length penalty chosen on validation ({groups})"


def markdown_table(
    rows: list[dict],
    pair: str,
    preset: str,
    sentences: int,
    baseline: str,
    corpus_title: str = "Multi30k",
    split_title: str = "test_2016_flickr",
    penalties: tuple[float, ...] | dict[str, tuple[float, ...]] = (DEFAULT_LENGTH_PENALTY,),
    caption: str = "",
) -> str:
    """``penalties``: the length penalties tried on validation (one: not tuned), for every variant
    or by variant; ``caption``: a paragraph after the table (``rising_line``), if any."""
    buckets = list(rows[0]["test_bleu_by_length"])
    header = [
        "variant", "attention", "parameters", "epochs", "best epoch", "train min", "ceiling GFLOP/s",
        "tokens/s", "val BLEU",
        "test BLEU greedy", "test BLEU", "test BLEU lc", "test chrF", f"p vs `{baseline}`", "length penalty",
        *[f"BLEU {b} words" for b in buckets],
    ]  # fmt: skip
    intro = (
        f"{corpus_title} {pair}, preset `{preset}`, {split_title} ({sentences} sentences), translated by the "
        f"exported SavedModels with beam 5 and {penalty_phrase(penalties)} (greedy in "
        "its own column); sacreBLEU, cased and detokenized, with the 95% bootstrap confidence interval; "
        '"test BLEU lc" is lowercased; "val BLEU" is the validation split translated the same way (beam 5 at '
        "the row's length penalty); p is paired bootstrap resampling "
        f'({BOOTSTRAP_SAMPLES} samples) against `{baseline}`; "ceiling" is the float32 matrix-product rate '
        "(`make bench`) of the machine of each training process."
    )
    lines = [intro, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in table_cells(r, buckets)) + " |" for r in rows]
    counts = ", ".join(f"{b}: {rows[0]['test_bleu_by_length'][b]['sentences']}" for b in buckets)
    lines += ["", f"Test sentences per source-length bucket: {counts}.", "", stopping_line(rows), ""]
    lines += [caption, ""] if caption else []
    return "\n".join(lines)


def compact_table(rows: list[dict], baseline: str, caption: str = "") -> str:
    """The README's view of the table: the scores that compare the variants, and what each cost;
    ``caption`` (``rising_line``), if any, below it."""
    header = ["variant", "attention", "test BLEU", f"p vs `{baseline}`", "test BLEU greedy", "val BLEU",
              "train min", "ceiling GFLOP/s"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"`{r['variant']}`", r["attention"] or "-", bleu_cell(r), p_cell(r["p_vs_baseline"]),
                 r["test_bleu_greedy"], r["val_bleu"], f"{r['train_seconds'] / 60:.1f}",
                 ceiling_cell(r.get("ceiling_gflops", []))]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n" + (f"\n{caption}\n" if caption else "")


def gradient_table(flows: dict[str, list[float]]) -> str:
    """The gradient-flow probe in numbers: mean |d loss / d h_t| at the first, middle and last
    source position, and first over last (below 1: a sentence's start gets less than its end)."""
    n = len(next(iter(flows.values())))
    mid = (n + 1) // 2
    header = ["variant", "position 1", f"position {mid}", f"position {n}", f"position 1 / position {n}"]
    intro = (
        f"Gradient reaching the forward encoder state at each source position (the Transformer's: its "
        f"encoder's output; test sentences of {n} pieces; `gradient_flow.png` draws every position): "
        "mean |d loss / d h_t| of the trained model."
    )
    lines = [intro, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, flow in flows.items():
        first, middle, last = float(flow[0]), float(flow[mid - 1]), float(flow[-1])
        lines.append(f"| `{variant}` | {first:.1e} | {middle:.1e} | {last:.1e} | {first / last:.2g} |")
    return "\n".join(lines) + "\n"


def read_reports(reports_dir: Path, variant: str, preset: str) -> dict:
    """What train, evaluate and analyse wrote for one variant: its JSON files by their key in
    ``REPORT_FILES``, and its beam-5 test translations. A folder that is missing, incomplete or of
    another preset is one line that says what to run."""
    folder = reports_dir / variant
    missing = [name for name in (*REPORT_FILES.values(), HYPOTHESES) if not (folder / name).is_file()]
    if missing:
        what = "is missing" if len(missing) == len(REPORT_FILES) + 1 else f"has no {', '.join(missing)}"
        raise UserError(
            f"the report folder of {variant}, {folder}, {what}: make evaluate VARIANT={variant} "
            f"PRESET={preset} writes it, or leave {variant} out with VARIANTS=..."
        )
    reports = {key: json.loads((folder / name).read_text()) for key, name in REPORT_FILES.items()}
    reports["hypotheses"] = (folder / HYPOTHESES).read_text(encoding="utf-8").splitlines()
    trained = reports["config"]["preset"]
    if trained != preset:
        raise UserError(f"{folder} holds a {trained} run, not {preset}: evaluate {variant} on {preset}")
    return reports


def read_split_file(
    split_file: Path, pair: str, limit: int | None, corpus_name: str = DEFAULT_CORPUS
) -> tuple[list[str], list[str], str]:
    """The first ``limit`` (None: all) sources and references of the test split, and its title,
    from the file of the split stage; a file that is missing or of another corpus, pair or split is
    one line that says what to run."""
    run = (f"make report writes it (nmt split --corpus {corpus_name} --pair {pair} --split {SPLIT} "
           f"--data-dir DATA --out {split_file})")  # fmt: skip
    if not Path(split_file).is_file():
        raise UserError(f"the {SPLIT} split file {split_file} is missing: {run}")
    try:
        found = json.loads(Path(split_file).read_text(encoding="utf-8"))
        held = " ".join(str(found.get(key)) for key in ("corpus", "pair", "split"))
    except (ValueError, AttributeError):  # not JSON, or not an object
        raise UserError(f"{split_file} is not a split file: {run}") from None
    wanted = f"{corpus_name} {pair} {SPLIT}"
    if held != wanted:
        raise UserError(f"{split_file} holds the {held} split, not {wanted}: {run}")
    sources, references = found["sources"], found["references"]
    if limit:  # as corpus.read_split's limit: None or 0 takes all
        sources, references = sources[:limit], references[:limit]
    return sources, references, found["title"]


def check_training_code(rows: list[dict]) -> None:
    """Every row trained by code that trains the same way (``train.json``'s ``training_code``):
    a comparison built run by run must not mix runs from before and after a change to training."""
    codes = {r["training_code"] for r in rows}
    if len(codes) > 1:
        by_code = "; ".join(
            f"code {c}: {', '.join(r['variant'] for r in rows if r['training_code'] == c)}"
            for c in sorted(codes, key=str)
        )
        raise UserError(
            f"the variants were trained by different training code ({by_code}): train the older ones again"
        )


def variant_row(variant: str, reports: dict, sources: list[str], references: list[str]) -> dict:
    check_pairs(reports["hypotheses"], references)
    test, summary = reports["test"], reports["train"]
    cell, attention = VARIANTS[variant]
    return {
        "variant": variant, "cell": cell, "attention": attention,
        "training_code": summary.get("training_code"),  # absent before it was recorded
        "parameters": summary["parameters"],
        "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],  # total over all processes
        "train_seconds": summary["train_seconds"], "tokens_per_second": summary["tokens_per_second"],
        "ceiling_gflops": list(summary.get("ceiling_gflops", {}).values()),  # one per process
        "stopped_by": summary["stopped_by"], "length_penalty": summary["length_penalty"],
        "val_bleu": reports["validation"]["bleu"], "val_chrf": reports["validation"]["chrf"],
        "test_bleu_greedy": reports["greedy"]["bleu"],
        "test_bleu": test["bleu"], "test_bleu_ci": test.get("bleu_ci"), "test_bleu_lc": test["bleu_lc"],
        "test_chrf": test["chrf"],
        "test_bleu_by_length": bleu_by_length(sources, reports["hypotheses"], references),
    }  # fmt: skip


def p_values(hypotheses: dict[str, list[str]], baseline: str, references: list[str]) -> dict:
    """Paired bootstrap p-value of each variant's test BLEU against the baseline's; None for the baseline."""
    others = {v: h for v, h in hypotheses.items() if v != baseline}
    found = paired_bootstrap(hypotheses[baseline], others, references) if others else {}
    return {v: found.get(v) for v in hypotheses}


def lesson_pairs(hypotheses: dict[str, list[str]], references: list[str]) -> list[dict]:
    """Each of the lesson's pairs (``pipeline.reporting.lesson.CLAIMS``) whose two variants are both there,
    with the paired bootstrap p-value of its test BLEU gap."""
    pairs = []
    for before, after in CLAIMS:
        if before in hypotheses and after in hypotheses:
            p = paired_bootstrap(hypotheses[before], {after: hypotheses[after]}, references)[after]
            pairs.append({"before": before, "after": after, "p": p})
    return pairs


def compare(
    pair: str,
    preset: str,
    variants: list[str],
    split_file: Path,
    reports_dir: Path,
    out_dir: Path,
    baseline: str = "gru_bahdanau",
    corpus_name: str = DEFAULT_CORPUS,
) -> Path:
    """Writes compare.json, compare.md, summary.md (its compact view, for the README) and the
    figures to ``out_dir`` from the report folders ``reports_dir/<variant>`` and the test split's
    file ``split_file`` (``pipeline.corpus.write_split``) alone; returns compare.json.

    p-values compare each variant with ``baseline``, or with the first variant if it is not one of them.
    """
    baseline = baseline if baseline in variants else variants[0]
    cfg = make_config(preset, pair, corpus=corpus_name)
    folders = {variant: read_reports(reports_dir, variant, preset) for variant in variants}  # all, first
    sources, references, split_title = read_split_file(split_file, pair, cfg.data.eval_limit, corpus_name)
    corpus_title = DEFAULT_CORPUS_TITLE if corpus_name == DEFAULT_CORPUS else corpus_name

    rows = [variant_row(variant, reports, sources, references) for variant, reports in folders.items()]
    check_training_code(rows)
    p = p_values({v: r["hypotheses"] for v, r in folders.items()}, baseline, references)
    for r in rows:
        r["p_vs_baseline"] = p[r["variant"]]
    flows = {v: r["analysis"]["gradient_flow"] for v, r in folders.items()}
    heatmaps = {v: r["analysis"]["attention"] for v, r in folders.items() if r["analysis"]["attention"]}

    report = {
        "corpus": corpus_name,
        "pair": pair,
        "preset": preset,
        "sentences": len(sources),
        "baseline": baseline,
        "variants": rows,
        "gradient_flow": flows,
        "pairs": lesson_pairs({v: r["hypotheses"] for v, r in folders.items()}, references),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = {v: tuple(r["config"]["train"]["length_penalties"]) for v, r in folders.items()}
    histories = {
        v: [h["val_bleu"] for h in r["train"].get("history", []) if "val_bleu" in h]
        for v, r in folders.items()
    }
    caption = rising_line(still_rising(histories))
    table = markdown_table(
        rows, pair, preset, len(sources), baseline, corpus_title, split_title, grids, caption
    )
    write_text(out_dir / layout.COMPARE_MD, table + "\n" + gradient_table(flows))
    write_text(out_dir / layout.SUMMARY_MD, compact_table(rows, baseline, caption))
    plots.plot_bleu_by_variant(rows, out_dir / layout.BLEU_BY_VARIANT)
    plots.plot_bleu_by_length(rows, out_dir / layout.BLEU_BY_LENGTH)
    plots.plot_gradient_flow(flows, out_dir / layout.GRADIENT_FLOW)
    for variant, examples in heatmaps.items():
        plots.plot_attention(examples, variant, out_dir / layout.attention_plot(variant))
    return write_json(out_dir / layout.COMPARE_JSON, report)
