"""Markdown tables for the README and docs/hybrid.md from the hybrid benchmarks' JSON.

    python benchmarks/hybrid_report.py --eval results/scifact/eval.json \\
        --defaults results/hybrid-defaults.json --latency results/hybrid-100k.json

Each argument is optional; each table is printed only when its JSON is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def eval_table(report: dict) -> str:
    """BM25, exact, funnel and hybrid rows of a ``langchain-matryoshka eval`` report."""
    k = report["k"]
    keep = ("full text (BM25)", "exact full", "funnel", "funnel calibrated", "hybrid rrf",
            "hybrid weighted")
    lines = [
        f"| method | rotation | candidates | nDCG@{k} | recall@{k} | ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        if r["method"] in keep:
            cands = "-" if r["candidates"] is None else str(r["candidates"])
            lines.append(
                f"| {r['method']} | {r['rotation']} | {cands} | {r['ndcg']:.4f} | "
                f"{r['recall']:.4f} | {r['latency_ms']:.1f} |"
            )
    return "\n".join(lines)


def defaults_tables(report: dict) -> str:
    train, test, chosen = report["train"], report["test"], report["chosen"]
    out = [f"Train split ({train['n_queries']} queries), nDCG@10 by depth per side:", ""]
    depths = list(train["rrf"])
    out.append("| fusion | " + " | ".join(f"depth {d}" for d in depths) + " |")
    out.append("|---|" + "---|" * len(depths))
    out.append("| RRF (60) | " + " | ".join(f"{train['rrf'][d]['ndcg@10']:.4f}"
                                          for d in depths) + " |")
    weights = sorted({key.split("/")[1] for key in train["weighted"]})
    for w in weights:
        out.append(f"| weighted, dense {w} | " + " | ".join(
            f"{train['weighted'][f'{d}/{w}']['ndcg@10']:.4f}" for d in depths) + " |")
    out.append("| Milvus hybrid_search (head + BM25, RRF) | " + " | ".join(
        f"{train['milvus_head_rrf'][d]['ndcg@10']:.4f}" for d in depths) + " |")
    out += [
        "",
        f"Train: BM25 alone {train['bm25']['ndcg@10']:.4f}, funnel "
        f"{train['funnel']['ndcg@10']:.4f}. Chosen: RRF depth {chosen['rrf_depth']}; "
        f"weighted depth {chosen['weighted_depth']}, weights {tuple(chosen['weights'])}.",
        "",
        f"Test split ({test['n_queries']} queries), once, with the chosen settings:",
        "",
        "| method | nDCG@10 | recall@10 |",
        "|---|---|---|",
    ]
    names = [("bm25", "BM25 alone"), ("exact", "dense exact"), ("funnel", "funnel"),
             ("rrf", f"hybrid RRF, depth {chosen['rrf_depth']}"),
             ("weighted", f"hybrid weighted, depth {chosen['weighted_depth']}"),
             ("milvus_head_rrf", "Milvus hybrid_search (head + BM25)")]
    for key, name in names:
        out.append(f"| {name} | {test[key]['ndcg@10']:.4f} | {test[key]['recall@10']:.4f} |")
    return "\n".join(out)


def latency_table(report: dict) -> str:
    names = {
        "funnel": "funnel (dense alone)",
        "full_text": "BM25 alone",
        "hybrid": "hybrid, the store's default (on Lite: one call after the other)",
        "hybrid_concurrent": "hybrid, two calls issued together",
        "hybrid_sequential": "hybrid, two calls one after the other",
        "milvus_hybrid": "one Milvus hybrid_search (head + BM25, no rerank)",
    }
    lines = ["| search | p50 ms | median ratio to funnel (paired) |", "|---|---|---|"]
    for m, name in names.items():
        if m not in report["p50_ms"]:  # runs before the store's Lite default was sequential
            continue
        lines.append(f"| {name} | {report['p50_ms'][m]:.1f} | "
                     f"{report['ratio_to_funnel'][m]:.2f} |")
    stages = ", ".join(f"{s} {v:.1f}" for s, v in report["hybrid_stages_ms"].items())
    return "\n".join(lines) + f"\n\nHybrid stages, median ms: {stages}."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval")
    ap.add_argument("--defaults")
    ap.add_argument("--latency")
    args = ap.parse_args()
    for path, fn in ((args.eval, eval_table), (args.defaults, defaults_tables),
                     (args.latency, latency_table)):
        if path:
            print(fn(json.loads(Path(path).read_text())))
            print()


if __name__ == "__main__":
    main()
