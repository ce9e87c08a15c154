"""Hybrid search latency against funnel latency on Milvus Lite, paired per query.

A store with ``full_text_search=True`` holds ``--n`` synthetic documents: Matryoshka-like
vectors (``_synthetic.py``, 384 dims, head 64) and texts of 40 to 120 words drawn from a
Zipf-distributed vocabulary of 30,000 words (so posting lists have realistic lengths:
a few words are in most documents, most words in few). A query is 2 to 6 words of one
document plus a vector from the same cluster. Every query runs, in a rotating order:

- ``funnel``: the store's similarity search (the dense side alone);
- ``full_text``: BM25 alone;
- ``hybrid``: the store's hybrid search at its default (on Milvus Lite the two calls one
  after the other, on servers issued together);
- ``hybrid_concurrent``: the BM25 call on a worker thread while the funnel runs;
- ``hybrid_sequential``: the same two calls one after the other;
- ``milvus_hybrid``: one Milvus ``hybrid_search`` call fusing the head search and BM25
  with Milvus' RRFRanker (one round trip, but no funnel rerank: the dense side is the
  64-dim head's ranking).

It prints medians, per-stage timings of the store's hybrid search (from the same
calls) and the median of the per-query ratios to ``funnel``, and writes them as JSON.

    python benchmarks/hybrid.py --n 100000 --queries 100 --json results/hybrid-100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import centres_for, synthetic  # noqa: E402

from langchain_matryoshka import MatryoshkaMilvus, _hybrid  # noqa: E402


class _Table(Embeddings):
    """Query embeddings looked up by text (documents come with their vectors)."""

    def __init__(self) -> None:
        self.table: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.table[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.table[text]


def texts_for(n: int, rng: np.random.Generator, vocab: int = 30000) -> list[str]:
    ranks = np.arange(1, vocab + 1)
    p = 1.0 / ranks
    p /= p.sum()
    lengths = rng.integers(40, 121, n)
    words = rng.choice(vocab, size=int(lengths.sum()), p=p)
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(f"w{w}" for w in words[at : at + length]))
        at += length
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--search-dim", type=int, default=64)
    ap.add_argument("--workdir", default=None, help="keep the Lite file here (reused)")
    ap.add_argument("--json", default="results/hybrid-latency.json")
    args = ap.parse_args()

    rng = np.random.default_rng(7)
    centres = centres_for(args.dim, 1000, seed=1)
    work = Path(args.workdir or tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    uri = str(work / f"hybrid-{args.n}.db")
    emb = _Table()
    fresh = not Path(uri).exists()
    store = MatryoshkaMilvus(
        emb, collection_name="bench", connection_args={"uri": uri},
        search_dim=args.search_dim, full_text_search=True,
    )
    texts = texts_for(args.n, rng)
    ingest_s = None
    if fresh:
        vectors, _ = synthetic(args.n, centres, seed=2)
        t0 = time.perf_counter()
        for start in range(0, args.n, 50000):  # large writes: few Lite segments
            store.add_embeddings(
                texts[start : start + 50000], vectors[start : start + 50000],
                ids=[f"d{i}" for i in range(start, min(args.n, start + 50000))],
            )
        store.build_index()
        ingest_s = time.perf_counter() - t0
        print(f"ingested {args.n} rows in {ingest_s:.0f} s", flush=True)
    qvecs, _ = synthetic(args.queries, centres, seed=3)
    queries = []
    for i in range(args.queries):
        words = texts[int(rng.integers(args.n))].split()
        pick = rng.choice(len(words), size=int(rng.integers(2, 7)), replace=False)
        q = " ".join(words[j] for j in sorted(pick))
        queries.append(q)
        emb.table[q] = qvecs[i].tolist()

    engine, client, k = store.engine, store.client, args.k
    from pymilvus import AnnSearchRequest, RRFRanker

    from langchain_matryoshka.funnel import head_of

    def funnel(q: str) -> object:
        return store.similarity_search_with_score(q, k=k)

    def full_text(q: str) -> object:
        return store.full_text_search_with_score(q, k=k)

    def hybrid(q: str, timings: dict | None = None, concurrent: bool | None = None) -> object:
        planned, hp = _hybrid.plan_hybrid(engine, k, {})
        vec = np.asarray([emb.table[q]])
        return _hybrid.hybrid_search(engine, vec, [q], planned, hp, timings,
                                     concurrent=concurrent)

    def hybrid_sequential(q: str) -> object:
        return hybrid(q, concurrent=False)

    def hybrid_concurrent(q: str) -> object:
        return hybrid(q, concurrent=True)

    def milvus_hybrid(q: str) -> object:
        layout = engine.layout
        head = head_of(engine.query_vectors(np.asarray([emb.table[q]]), layout), layout.search_dim)
        depth = max(k, _hybrid.DEFAULT_DEPTH)
        reqs = [
            AnnSearchRequest(data=head.tolist(), anns_field="head", param={}, limit=depth),
            AnnSearchRequest(data=[q], anns_field="sparse", param={}, limit=depth),
        ]
        return client.hybrid_search("bench", reqs, RRFRanker(60), limit=k,
                                    output_fields=["id", "text", "metadata"])

    methods = {"funnel": funnel, "full_text": full_text, "hybrid": hybrid,
               "hybrid_concurrent": hybrid_concurrent, "hybrid_sequential": hybrid_sequential,
               "milvus_hybrid": milvus_hybrid}
    for q in queries[:3]:  # warm up (Lite builds its BM25 index of each segment once)
        for f in methods.values():
            f(q)
    times: dict[str, list[float]] = {m: [] for m in methods}
    stages: list[dict[str, float]] = []  # the store's hybrid search, per stage
    names = list(methods)
    for i, q in enumerate(queries):
        order = names[i % len(names):] + names[: i % len(names)]
        for m in order:
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            hybrid(q, t) if m == "hybrid" else methods[m](q)
            times[m].append(1000 * (time.perf_counter() - t0))
            if m == "hybrid":
                stages.append(t)
    ratios = {
        m: statistics.median(a / b for a, b in zip(times[m], times["funnel"])) for m in methods
    }
    report = {
        "n": args.n, "queries": args.queries, "k": k, "dim": args.dim,
        "search_dim": args.search_dim, "ingest_s": ingest_s,
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "p50_ms": {m: statistics.median(v) for m, v in times.items()},
        "ratio_to_funnel": ratios,
        "hybrid_stages_ms": {s: 1000 * statistics.median(t[s] for t in stages)
                             for s in stages[0]},
        "command": " ".join(sys.argv),
    }
    store.close()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
