"""The report stage: one table and four kinds of figures that compare the variants.

Reads what the evaluate stage wrote for each variant (``<reports>/<variant>/``) and
the trained weights (``<runs>/<variant>/``), and writes ``compare.json``,
``compare.md`` and the PNG figures to one folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from sacrebleu.metrics import BLEU

from pipeline import corpus, plots
from pipeline.config import load_config, make_config
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.models import VARIANTS, build_model
from pipeline.probe import gradient_flow
from pipeline.search import beam_search
from pipeline.tokenizer import load_tokenizer
from pipeline.train import BEST_WEIGHTS, CONFIG, TOKENIZER

LENGTH_BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 25), (26, None))  # source words, inclusive
PROBE_LENGTH = 20  # source pieces (EOS included) of the sentences the gradient probe uses
PROBE_SENTENCES = 32
HEATMAP_SENTENCES = 3


def bucket_label(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high else f"{low}+"


def bleu_by_length(sources: list[str], hypotheses: list[str], references: list[str]) -> dict[str, dict]:
    """Corpus BLEU of the sentences whose source has a given number of words, per bucket."""
    result = {}
    for low, high in LENGTH_BUCKETS:
        chosen = [i for i, s in enumerate(sources) if low <= len(s.split()) <= (high or 10**9)]
        bleu = None  # an empty bucket has no score
        if chosen:
            score = BLEU().corpus_score([hypotheses[i] for i in chosen], [[references[i] for i in chosen]])
            bleu = round(score.score, 2)
        result[bucket_label(low, high)] = {"sentences": len(chosen), "bleu": bleu}
    return result


def load_trained(run_dir: Path):
    """The model of a run with its best weights, and the run's SentencePiece processor."""
    sp = load_tokenizer(run_dir / TOKENIZER)
    model = build_model(load_config(run_dir / CONFIG).model, sp.vocab_size())
    model.load_weights(str(run_dir / BEST_WEIGHTS))
    return model, sp


def pad(rows: list[list[int]]) -> np.ndarray:
    out = np.full((len(rows), max(map(len, rows))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def probe_batch(sp, sources: list[str], targets: list[str]):
    """Test pairs whose source is exactly PROBE_LENGTH pieces long: (source, target_in, target_out)."""
    chosen = [i for i, s in enumerate(sources) if len(sp.encode(s)) + 1 == PROBE_LENGTH][:PROBE_SENTENCES]
    if not chosen:  # tiny corpora: the most common length instead
        lengths = [len(sp.encode(s)) + 1 for s in sources]
        common = max(set(lengths), key=lengths.count)
        chosen = [i for i, n in enumerate(lengths) if n == common][:PROBE_SENTENCES]
    source = pad([sp.encode(sources[i]) + [EOS_ID] for i in chosen])
    target = [sp.encode(targets[i]) for i in chosen]
    return source, pad([[BOS_ID] + t for t in target]), pad([t + [EOS_ID] for t in target])


def attention_examples(model, sp, sources: list[str]) -> list[dict]:
    """Beam-5 translations of the first few short test sentences with their attention weights."""
    chosen = [s for s in sources if len(sp.encode(s)) <= 14][:HEATMAP_SENTENCES]
    examples = []
    for sentence in chosen:
        source = sp.encode(sentence) + [EOS_ID]
        ids, lengths, _, alignments = beam_search(model, tf.constant([source]), return_alignments=True)
        n = int(lengths[0])
        output = [int(t) for t in ids[0, :n]]
        examples.append({
            "source": [sp.id_to_piece(i) for i in source],
            "output": [sp.id_to_piece(i) for i in output] + ["</s>"] * (n < alignments.shape[1]),
            "weights": alignments[0, : n + (n < alignments.shape[1])].numpy(),  # (out_len, src_len)
        })  # fmt: skip
    return examples


def markdown_table(rows: list[dict], pair: str, preset: str, sentences: int) -> str:
    buckets = list(rows[0]["test_bleu_by_length"])
    header = [
        "variant",
        "attention",
        "parameters",
        "epochs",
        "train min",
        "tokens/s",
        "val BLEU",
        "val chrF",
        "test BLEU greedy",
        "test BLEU",
        "test chrF",
        *[f"BLEU {b} words" for b in buckets],
    ]
    lines = [f"Multi30k {pair}, preset `{preset}`, test_2016_flickr ({sentences} sentences), translated by "
             "the exported SavedModels with beam 5 and length penalty 0.6 (greedy in its own column); "
             "sacreBLEU, cased, detokenized.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    for r in rows:
        cells = [f"`{r['variant']}`", r["attention"] or "-", f"{r['parameters']:,}", r["epochs"],
                 f"{r['train_seconds'] / 60:.1f}", f"{r['tokens_per_second']:,}",
                 r["val_bleu"], r["val_chrf"], r["test_bleu_greedy"], f"**{r['test_bleu']}**", r["test_chrf"],
                 *["-" if r["test_bleu_by_length"][b]["bleu"] is None else r["test_bleu_by_length"][b]["bleu"]
                   for b in buckets]]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    counts = ", ".join(
        f"{b}: {n}" for b, n in ((b, rows[0]["test_bleu_by_length"][b]["sentences"]) for b in buckets)
    )
    lines += ["", f"Test sentences per source-length bucket: {counts}.", ""]
    return "\n".join(lines)


def compare(
    pair: str,
    preset: str,
    variants: list[str],
    data_dir: Path,
    runs_dir: Path,
    reports_dir: Path,
    out_dir: Path,
) -> Path:
    """Writes compare.json, compare.md and the figures to ``out_dir``; returns compare.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    limit = make_config(preset, pair).data.eval_limit
    sources, references = corpus.read_split(pair, "test", data_dir, limit)

    rows, flows, heatmaps = [], {}, {}
    for variant in variants:
        folder, run_dir = reports_dir / variant, runs_dir / variant
        test = json.loads((folder / "test.json").read_text())
        greedy = json.loads((folder / "test.greedy.json").read_text())
        validation = json.loads((folder / "validation.json").read_text())
        summary = json.loads((folder / "train.json").read_text())
        hypotheses = (folder / "test.hyp.txt").read_text(encoding="utf-8").splitlines()
        cell, attention = VARIANTS[variant]
        rows.append({
            "variant": variant, "cell": cell, "attention": attention,
            "parameters": summary["parameters"], "epochs": summary["epochs_this_process"],
            "train_seconds": summary["train_seconds_this_process"],
            "tokens_per_second": summary["tokens_per_second"],
            "val_bleu": validation["bleu"], "val_chrf": validation["chrf"],
            "test_bleu_greedy": greedy["bleu"], "test_bleu": test["bleu"], "test_chrf": test["chrf"],
            "test_bleu_by_length": bleu_by_length(sources, hypotheses, references),
        })  # fmt: skip
        model, sp = load_trained(run_dir)
        flows[variant] = gradient_flow(model, *probe_batch(sp, sources, references))
        if attention:
            heatmaps[variant] = attention_examples(model, sp, sources)

    report = {"pair": pair, "preset": preset, "sentences": len(sources), "variants": rows,
              "gradient_flow": {v: [float(x) for x in f] for v, f in flows.items()}}  # fmt: skip
    (out_dir / "compare.md").write_text(markdown_table(rows, pair, preset, len(sources)), encoding="utf-8")
    plots.plot_bleu_by_variant(rows, out_dir / "bleu_by_variant.png")
    plots.plot_bleu_by_length(rows, out_dir / "bleu_by_length.png")
    plots.plot_gradient_flow(flows, out_dir / "gradient_flow.png")
    for variant, examples in heatmaps.items():
        plots.plot_attention(examples, variant, out_dir / f"attention_{variant}.png")
    out = out_dir / "compare.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def splice_readme(readme: Path, compare_md: Path, marker: str = "compare") -> Path:
    """Replaces the text between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` in the README."""
    text = readme.read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = compare_md.read_text(encoding="utf-8").strip()
    readme.write_text(f"{head}{start}\n{body}\n{end}{tail}", encoding="utf-8")
    return readme
