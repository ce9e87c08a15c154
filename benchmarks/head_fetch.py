"""One round trip or two for the head search: which brings the candidates' vectors faster.

The funnel's head search asks Milvus for the candidates' full vectors with the hits (one
call). The alternative is a search returning ids only, then a primary-key lookup of those
ids' vectors (two calls). Every query runs both, in alternating order, and the median of
the per-query time ratio (two calls / one call) is printed per candidate count.

Run on a store that ``benchmarks/scale.py --keep --workdir W`` left behind:

    python benchmarks/scale.py --real DATA/scifact --sizes --engines funnel --keep --workdir W
    python benchmarks/head_fetch.py W/real/funnel.db W/real/queries.npy --candidates 64 256

Measured (2-core x86_64, Milvus Lite 3.2.2, SciFact passages, 52,743 rows, MiniLM 384 dims
rotated, head 64, 200 queries; two runs): two calls took 1.08x and 1.09x the time of one
at 64 candidates (p50 48.3 vs 43.4 ms, 46.3 vs 40.8 ms) and 1.20x and 1.22x at 256 (72.0
vs 59.0 ms, 53.1 vs 44.0 ms), so the store keeps one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from langchain_core.embeddings import FakeEmbeddings

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._milvus import search_params_for
from langchain_matryoshka.funnel import head_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", help="a Milvus Lite file holding a funnel collection")
    ap.add_argument("queries", help="query embeddings (.npy, one row per query)")
    ap.add_argument("--collection", default="bench")
    ap.add_argument("--candidates", type=int, nargs="+", default=[64, 256])
    args = ap.parse_args()

    queries = np.load(args.queries)
    store = MatryoshkaMilvus(
        FakeEmbeddings(size=queries.shape[1]),
        collection_name=args.collection,
        connection_args={"uri": args.db},
    )
    engine, client, name = store._engine, store.client, args.collection
    layout = engine.layout

    def head(q: np.ndarray) -> np.ndarray:
        return head_of(engine.query_vectors(q[None], layout), layout.search_dim)

    def one_call(q: np.ndarray, c: int) -> object:  # the store's own head search
        return engine.collection.search(head(q), c, "", with_documents=False)

    def two_calls(q: np.ndarray, c: int) -> object:
        hits = client.search(name, data=head(q).tolist(), anns_field="head", limit=c,
                             output_fields=["id"], search_params=search_params_for("HNSW", None, c))
        return client.get(name, ids=[h.id for h in hits[0]], output_fields=["full"])

    for c in args.candidates:
        times: dict[str, list[float]] = {"one": [], "two": []}
        for i, q in enumerate(queries):
            order = [("one", one_call), ("two", two_calls)][:: 1 if i % 2 else -1]
            for label, fn in order:
                t0 = time.perf_counter()
                fn(q, c)
                times[label].append(time.perf_counter() - t0)
        ratio = float(np.median(np.asarray(times["two"]) / np.asarray(times["one"])))
        print(f"{c} candidates: one call p50 {statistics.median(times['one']) * 1e3:.1f} ms, "
              f"two calls p50 {statistics.median(times['two']) * 1e3:.1f} ms, "
              f"median ratio two/one {ratio:.3f}")
    store.close()


if __name__ == "__main__":
    main()
