"""What ``record_queries`` costs a search: the in-memory append, and paired latency.

Two stores on one Milvus Lite collection (same client), one recording the last N
queries, searched alternately with the same query vectors; reports the median latency
of each, their paired ratio, and the cost of one ``QueryLog.record`` call alone
(including the background batch writes it triggers).

Usage::

    python benchmarks/query_log_cost.py [--rows 20000] [--dim 384] [--queries 400] \\
        [--out benchmarks/results/query-log-cost-20000.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
from langchain_core.embeddings import FakeEmbeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--search-dim", type=int, default=64)
    parser.add_argument("--record", type=int, default=1000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from langchain_matryoshka import MatryoshkaMilvus
    from langchain_matryoshka._querylog import QueryLog

    rng = np.random.default_rng(0)
    docs = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        uri = os.path.join(tmp, "cost.db")
        plain = MatryoshkaMilvus(
            FakeEmbeddings(size=args.dim), connection_args={"uri": uri}, search_dim=args.search_dim
        )
        plain.add_embeddings([f"d{i}" for i in range(args.rows)], docs)
        plain.build_index()
        rec = MatryoshkaMilvus(plain.embedding, client=plain.client, record_queries=args.record)
        times = {"plain": [], "recording": []}
        for i, q in enumerate(queries):
            pair = [("plain", plain), ("recording", rec)]
            for name, store in pair if i % 2 == 0 else pair[::-1]:
                t0 = time.perf_counter()
                store.similarity_search_by_vector(q.tolist(), k=10)
                times[name].append(1000 * (time.perf_counter() - t0))
        rec.close()
        ratios = [r / p for p, r in zip(times["plain"], times["recording"])]
        log = QueryLog(plain.engine.meta, args.record)
        one = queries[:1]
        t0 = time.perf_counter()
        n_calls = 20000
        for _ in range(n_calls):
            log.record(one)
        append_us = 1e6 * (time.perf_counter() - t0) / n_calls
        log.close()
        plain.close()
    report = {
        "rows": args.rows,
        "dim": args.dim,
        "queries": args.queries,
        "search_dim": args.search_dim,
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "median_ms_plain": statistics.median(times["plain"]),
        "median_ms_recording": statistics.median(times["recording"]),
        "median_paired_ratio": statistics.median(ratios),
        "record_call_us": append_us,
        "command": "python benchmarks/query_log_cost.py"
        + "".join(
            f" --{name.replace('_', '-')} {value}"
            for name, value in vars(args).items()
            if value is not None and value != parser.get_default(name)
        ),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
