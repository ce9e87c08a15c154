"""The head index ``calibrate(memory_budget_mb=...)`` chooses, per budget, judged on other queries.

Synthetic Matryoshka-like unit vectors (``_synthetic.py``) in one store. For each budget
(a fraction of the estimated HNSW head index), ``calibrate`` runs on one set of queries
(``--calib-queries``, seed 13) with target recall@10 0.99 and chooses the head index
type, its ``nprobe`` and the funnel; the store is then judged on a second set (seed 17,
never seen by calibration): recall@10 against exact numpy search, p50 of single-query
searches at the store's new defaults, the head index estimate and, on a server whose
data folder is given (``--server-data``), the size of the index files it built.

Run:  python benchmarks/calibrate_budget.py --workdir W --n 100000 \\
          --json benchmarks/results/calibrate-budget-lite-100000.json
      python benchmarks/calibrate_budget.py --uri URI --server-data DIR --n 100000 \\
          --json benchmarks/results/calibrate-budget-server-100000.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import FakeEmbeddings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import centres_for, synthetic  # noqa: E402
from scale import exact_ids, unit  # noqa: E402
from vs_langchain_milvus import index_files_mb, recorded_command  # noqa: E402

from langchain_matryoshka import MatryoshkaMilvus  # noqa: E402
from langchain_matryoshka._head_choice import head_index_mb  # noqa: E402
from langchain_matryoshka.errors import ConfigurationError  # noqa: E402

K = 10
COLLECTION = "budget"


def judge(store: MatryoshkaMilvus, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Recall@10 and single-query latency of the store at its (new) defaults."""
    found, times = [], []
    for q, row in zip(queries, truth):
        t0 = time.perf_counter()
        docs = store.similarity_search_by_vector(q.tolist(), k=K)
        times.append(1000 * (time.perf_counter() - t0))
        found.append(len({d.id for d in docs} & {f"d{j}" for j in row}) / K)
    return {"recall_at_10": float(np.mean(found)), "p50_ms": float(np.median(times))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--workdir", help="folder for the Milvus Lite file")
    where.add_argument("--uri", help="a Milvus server's uri")
    ap.add_argument("--server-data", default=None, help="the server's data folder")
    ap.add_argument("--n", type=int, default=100_000, help="rows")
    ap.add_argument("--dim", type=int, default=768, help="full dimensions")
    ap.add_argument("--search-dim", type=int, default=128, help="head dimensions")
    ap.add_argument("--calib-queries", type=int, default=300, help="queries calibrated on")
    ap.add_argument("--eval-queries", type=int, default=200, help="queries judged on")
    ap.add_argument("--target", type=float, default=0.99, help="target recall@10")
    ap.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[1.05, 0.6, 0.3, 0.1],
        help="budgets as fractions of the estimated HNSW head index",
    )
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)

    centres = centres_for(args.dim, 1000, seed=7)
    docs = unit(synthetic(args.n, centres, seed=11)[0]).astype(np.float32)
    calib = unit(synthetic(args.calib_queries, centres, seed=13)[0]).astype(np.float32)
    held = unit(synthetic(args.eval_queries, centres, seed=17)[0]).astype(np.float32)
    truth = exact_ids(docs, held, K)
    conn = {"uri": args.uri} if args.uri else {"uri": str(Path(args.workdir) / "budget.db")}
    hnsw_mb = head_index_mb(args.n, args.search_dim, "HNSW", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = MatryoshkaMilvus(
            FakeEmbeddings(size=args.dim),
            collection_name=COLLECTION,
            connection_args=conn,
            search_dim=args.search_dim,
            drop_old=True,
        )
        t0 = time.perf_counter()
        for start in range(0, args.n, 10_000):
            part = docs[start : start + 10_000]
            store.add_embeddings(
                [f"d{i}" for i in range(start, start + len(part))],
                part,
                ids=[f"d{i}" for i in range(start, start + len(part))],
            )
        store.build_index()
        ingest_s = time.perf_counter() - t0
    rows = []
    for fraction in args.budgets:
        budget = fraction * hnsw_mb
        t0 = time.perf_counter()
        try:
            result = store.calibrate(
                query_vectors=calib, k=K, target_recall=args.target, memory_budget_mb=budget
            )
        except ConfigurationError as exc:
            rows.append({"budget_fraction": fraction, "budget_mb": budget, "error": str(exc)})
            print(f"budget {budget:.1f} MiB: {exc}")
            continue
        seconds = time.perf_counter() - t0
        row = {
            "budget_fraction": fraction,
            "budget_mb": budget,
            "reached": result.reached,
            "index_type": result.index_type,
            "index_params": result.index_params,
            "head_search_params": result.head_search_params,
            "candidates": result.candidates,
            "prune_ratio": result.prune_ratio,
            "scales": list(result.scales or ()),
            "calibration_recall_lower": result.recall_lower,
            "trials": result.index_trials,
            "calibration_s": seconds,
            "head_index_estimate_mb": head_index_mb(
                args.n, args.search_dim, result.index_type or "HNSW", result.index_params
            ),
            "index_files_mb": index_files_mb(store.client, args.server_data, COLLECTION),
            **judge(store, held, truth),
        }
        rows.append(row)
        print(
            f"budget {budget:.1f} MiB: {row['index_type']} {row['head_search_params']} "
            f"{row['candidates']} candidates; held-out recall@10 {row['recall_at_10']:.3f}, "
            f"p50 {row['p50_ms']:.1f} ms, head index {row['head_index_estimate_mb']:.1f} MiB "
            f"(est.), calibration {seconds:.0f} s"
        )
    store.close()
    out = {
        "backend": "server" if args.uri else "lite",
        "server_version": store.engine.collection.backend.describe() if args.uri else None,
        "n": args.n,
        "dim": args.dim,
        "search_dim": args.search_dim,
        "calib_queries": args.calib_queries,
        "eval_queries": args.eval_queries,
        "target_recall": args.target,
        "hnsw_head_estimate_mb": hnsw_mb,
        "ingest_s": ingest_s,
        "rows": rows,
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": recorded_command(
            sys.argv[1:] if argv is None else argv, "benchmarks/calibrate_budget.py"
        ),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
