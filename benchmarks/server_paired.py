"""Funnel search against full-dimension HNSW on a Milvus server, query by query.

Milvus Lite puts a per-search floor under every index (it walks every primary key in
Python, about 90 ms per 100k rows here; see scale.py), so on Lite the funnel's smaller
index cannot show as speed. A server has no such floor. This script loads the same
synthetic Matryoshka-like vectors as scale.py into two collections on one server:

    funnel      langchain-matryoshka (HNSW on the 128-dim head, float16 full vectors
                stored beside it), searched through the store, one row per candidate count
    full HNSW   a plain collection, the full vector as FLOAT_VECTOR with HNSW (M=16,
                efConstruction=200), one row per search ef

and searches every query with each setting back to back, in a rotating order (the
paired phase of scale.py), so the median per-query ratio to full HNSW compares like
with like on a shared machine. Every search gets the query embedding and returns ids,
texts and metadata. Recall@10 is against exact float32 search in numpy. Also: one
funnel query's stages, and batches of 32 queries in one call.

Run against a server you started (``python tests/server.py`` starts a throwaway
Embedded Milvus 2.3 on loopback and prints its uri):

    python benchmarks/server_paired.py --uri http://127.0.0.1:19530 --n 100000 \\
        --json results/server-100k.json

The collections are dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import centres_for, synthetic  # noqa: E402
from scale import (  # noqa: E402
    _plain_index,
    _plain_schema,
    exact_ids,
    paired,
    pct,
    recall,
    unit,
)

K = 10
FUNNEL = "bench_funnel"
PLAIN = "bench_hnsw"


def _wait_for_index(client: Any, collection: str, field: str, timeout: float = 1800) -> None:
    """A server builds indexes in the background: wait until every row is indexed and
    every segment is served through its index (see
    :func:`langchain_matryoshka._indexes.wait_for_served_index`)."""
    from langchain_matryoshka._indexes import wait_for_index, wait_for_served_index

    wait_for_index(client, collection, field, timeout)
    if not wait_for_served_index(client, collection, timeout):
        raise TimeoutError(f"{collection!r}: segments still served without their index")


def ingest(args: argparse.Namespace, docs: np.ndarray) -> dict[str, Any]:
    from langchain_core.embeddings import FakeEmbeddings
    from pymilvus import MilvusClient

    from langchain_matryoshka import MatryoshkaMilvus
    from langchain_matryoshka._milvus import create_index

    n = len(docs)
    out: dict[str, Any] = {}
    store = MatryoshkaMilvus(
        FakeEmbeddings(size=docs.shape[1]),
        collection_name=FUNNEL,
        connection_args={"uri": args.uri},
        search_dim=args.search_dim,
        drop_old=True,
    )
    t0 = time.perf_counter()
    chunk = 10000
    for start in tqdm(range(0, n, chunk), desc="funnel: ingesting", unit="chunk"):
        m = min(chunk, n - start)
        store.add_embeddings(
            [f"document {start + i}" for i in range(m)],
            np.asarray(docs[start : start + m]),
            metadatas=[{"i": start + i} for i in range(m)],
            ids=[f"d{start + i}" for i in range(m)],
        )
    store.build_index()
    _wait_for_index(store.client, FUNNEL, "head")
    out["funnel_ingest_and_index_s"] = time.perf_counter() - t0
    store.close()

    client = MilvusClient(uri=args.uri)
    if client.has_collection(PLAIN):
        client.drop_collection(PLAIN)
    client.create_collection(PLAIN, schema=_plain_schema(client, docs.shape[1]))
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, 1000), desc="full HNSW: ingesting", unit="batch"):
        vecs = unit(np.asarray(docs[start : start + 1000], dtype=np.float32))
        client.insert(
            PLAIN,
            [
                {"id": f"d{start + i}", "text": f"document {start + i}",
                 "metadata": {"i": start + i}, "vector": v}
                for i, v in enumerate(vecs.tolist())
            ],
        )
    client.flush(PLAIN)
    create_index(client, PLAIN, "vector", _plain_index(client, "hnsw"))
    _wait_for_index(client, PLAIN, "vector")
    client.load_collection(PLAIN)
    out["hnsw_ingest_and_index_s"] = time.perf_counter() - t0
    client.close()
    return out


def measure(args: argparse.Namespace, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    from langchain_core.embeddings import FakeEmbeddings
    from pymilvus import MilvusClient

    from langchain_matryoshka import MatryoshkaMilvus

    store = MatryoshkaMilvus(
        FakeEmbeddings(size=queries.shape[1]),
        collection_name=FUNNEL,
        connection_args={"uri": args.uri},
        consistency_level=args.consistency,
    )
    client = MilvusClient(uri=args.uri)
    engine = store._engine

    def funnel(c: int) -> Any:
        def one(q: np.ndarray) -> list[str]:
            hits = store.similarity_search_with_score_by_vector(q, k=K, candidates=c)
            return [d.id for d, _ in hits]

        def many(qs: np.ndarray) -> Any:
            return store.search_batch_with_score_by_vector(qs, k=K, candidates=c)

        return one, many

    def hnsw(ef: int) -> Any:
        sp = {"metric_type": "IP", "params": {"ef": max(ef, K)}}

        def search(qs: np.ndarray) -> list[list[str]]:
            hits = client.search(
                PLAIN, data=unit(qs).tolist(), anns_field="vector", limit=K,
                output_fields=["text", "metadata"], search_params=sp,
                consistency_level=args.consistency,
            )
            return [[str(h["id"]) for h in row] for row in hits]

        return (lambda q: search(q[None])[0]), search

    settings = {f"funnel {c}": funnel(c) for c in args.candidates}
    settings.update({f"full HNSW ef={ef}": hnsw(ef) for ef in args.hnsw_ef})
    names = list(settings)
    times, found = paired({name: one for name, (one, _) in settings.items()}, queries, warmup=10)
    base = np.asarray(times[f"full HNSW ef={args.hnsw_ef[0]}"])
    rows: dict[str, Any] = {}
    batches = [queries[s : s + 32] for s in range(0, len(queries) - 31, 32)]
    for name in names:
        t = times[name]
        batch = []
        for b in batches:
            t0 = time.perf_counter()
            settings[name][1](b)
            batch.append((time.perf_counter() - t0) / len(b))
        rows[name] = {
            "recall": recall(found[name], truth),
            "p50_ms": pct(t, 50) * 1000,
            "p95_ms": pct(t, 95) * 1000,
            "median_ratio_to_hnsw": float(np.median(np.asarray(t) / base)),
            "qps_single": 1 / statistics.mean(t),
            "qps_batch": 1 / statistics.mean(batch) if batch else None,
        }
    for c in args.candidates:  # where one funnel query's time goes
        stages: dict[str, list[float]] = {}
        for q in queries[:100]:
            timings: dict[str, float] = {}
            engine.search(q[None], engine.plan(K, {"candidates": c}), timings)
            for s, sec in timings.items():
                stages.setdefault(s, []).append(sec)
        rows[f"funnel {c}"]["stages_ms"] = {
            s: statistics.median(v) * 1000 for s, v in stages.items()
        }
    store.close()
    client.close()
    return rows


def _command(argv: list[str]) -> str:
    """The command line as the JSON records it, the server's uri as a placeholder."""
    out, args = [], iter(argv)
    for arg in args:
        if arg == "--uri":
            out.append("--uri URI")
            next(args, None)
        else:
            out.append("--uri=URI" if arg.startswith("--uri=") else arg)
    return " ".join(["python benchmarks/server_paired.py", *out])


def report(n: int, rows: dict[str, Any], uri_kind: str) -> str:
    lines = [
        f"\n{uri_kind}: {n:,} synthetic vectors, head search on 128 dims, k={K}",
        "| search | recall@10 | p50 ms | p95 ms | ratio to HNSW | QPS single | QPS batch 32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        batch = "-" if r["qps_batch"] is None else f"{r['qps_batch']:.1f}"
        lines.append(
            f"| {name} | {r['recall']:.4f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
            f"{r['median_ratio_to_hnsw']:.3f} | {r['qps_single']:.1f} | {batch} |"
        )
    for name, r in rows.items():
        if "stages_ms" in r:
            st = ", ".join(f"{k} {v:.2f}" for k, v in r["stages_ms"].items())
            lines.append(f"  {name}: stages (median ms) {st}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uri", required=True, help="a Milvus server, e.g. http://127.0.0.1:19530")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--search-dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--candidates", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--hnsw-ef", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--consistency", default="Bounded",
                    help="read consistency of every search, both engines (default Bounded; "
                    "the store's own default, Strong, waits about 200 ms per read on 2.3)")
    ap.add_argument("--reuse", action="store_true",
                    help="search the collections a --keep run left, without ingesting")
    ap.add_argument("--keep", action="store_true", help="keep the collections")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.uri.endswith(".db"):
        ap.error(f"--uri {args.uri!r} is a Milvus Lite file; scale.py measures Lite")

    centres = centres_for(args.dim, 1000, seed=7)
    docs, _ = synthetic(args.n, centres, seed=11)
    queries, _ = synthetic(args.queries, centres, seed=13)
    truth = exact_ids(unit(docs), unit(queries), K)
    result: dict[str, Any] = {
        "n": args.n, "dim": args.dim, "search_dim": args.search_dim, "queries": args.queries,
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "command": _command(sys.argv[1:]),
    }
    if not args.reuse:
        result.update(ingest(args, docs))
    result["rows"] = measure(args, queries, truth)
    from pymilvus import MilvusClient

    version_client = MilvusClient(uri=args.uri)
    result["server_version"] = str(version_client.get_server_version())
    version_client.close()
    result["consistency"] = args.consistency
    print(report(args.n, result["rows"], f"Milvus server, {args.consistency}"), flush=True)
    if not args.keep:
        from pymilvus import MilvusClient

        from langchain_matryoshka._milvus import META_SUFFIX

        client = MilvusClient(uri=args.uri)
        for name in (FUNNEL, FUNNEL + META_SUFFIX, PLAIN):
            client.drop_collection(name)
        client.close()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
