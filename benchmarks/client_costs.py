"""Two client-side costs: a store's first write, and decoding the candidates' full vectors.

first write   ``add_texts`` of three documents into a new collection (its creation, the
              indexes and the load included), median of ``--rounds`` new collections, on
              Milvus Lite (a temporary file each) or on the server at ``--uri``
decode        the float16 base64 text of ``--candidates`` hits of ``--dim`` dims turned
              into float32, as every funnel search does: the package's ``decode_full``
              beside the standard library's ``binascii`` (what 0.3.0 used)
candidates    one head search's ``--candidates`` hits (text and JSON metadata with each,
              as on a server) turned into candidates and the top 10 documents: the
              package's way, which decodes only those 10 hits' metadata, beside every
              hit's decoded first (pymilvus' iteration; what 0.3.0 did), median of 200
              fresh results, alternating
funnel        the same hits turned into the top 10 documents the way a search does: the
              candidates, the funnel's rerank on the plan's default stages and the
              documents (the whole client side after the Milvus call), median of 200
              fresh results

Run it under two checkouts (``PYTHONPATH=OLD`` and the current one) to compare versions:

    python benchmarks/client_costs.py                        # Milvus Lite
    python benchmarks/client_costs.py --uri http://127.0.0.1:19530
"""

from __future__ import annotations

import argparse
import binascii
import json
import statistics
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable

import numpy as np
from langchain_core.embeddings import FakeEmbeddings

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._layout import STORAGE_FLOAT16, Layout, decode_full, encode_full


def first_writes(uri: str | None, rounds: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            name = "first_write_" + uuid.uuid4().hex[:8]
            store = MatryoshkaMilvus(
                FakeEmbeddings(size=64),
                connection_args={"uri": uri or f"{tmp}/{i}.db"},
                collection_name=name,
            )
            start = time.perf_counter()
            store.add_texts(["a", "b", "c"], ids=["1", "2", "3"])
            times.append(time.perf_counter() - start)
            store.close()
            if uri:  # a server keeps them: drop the collection and its settings
                from pymilvus import MilvusClient

                client = MilvusClient(uri=uri)
                for collection in client.list_collections():
                    if collection.startswith(name):
                        client.drop_collection(collection)
                client.close()
    return times


def decode_ms(candidates: int, dim: int) -> dict[str, float]:
    vectors = np.random.default_rng(0).standard_normal((candidates, dim)).astype(np.float32)
    values = encode_full(vectors, STORAGE_FLOAT16)
    layout = Layout(dim=dim, search_dim=max(1, dim // 6))

    def stdlib() -> np.ndarray:
        raw = b"".join(map(binascii.a2b_base64, values))
        return np.frombuffer(raw, dtype=np.float16).reshape(candidates, dim).astype(np.float32)

    def best(fn: Callable[[], np.ndarray]) -> float:
        return min(timeit.repeat(fn, number=100, repeat=7)) / 100 * 1000

    return {"decode_full_ms": best(lambda: decode_full(values, layout)),
            "binascii_ms": best(stdlib)}


def candidates_ms(uri: str | None, candidates: int, dim: int) -> dict[str, float]:
    from langchain_matryoshka._candidates import hits_to_candidates
    from langchain_matryoshka.funnel import funnel_rerank, head_of

    rows = max(1000, 2 * candidates)
    vectors = np.random.default_rng(1).standard_normal((rows, dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        name = "candidates_" + uuid.uuid4().hex[:8]
        store = MatryoshkaMilvus(
            FakeEmbeddings(size=dim),
            connection_args={"uri": uri or f"{tmp}/c.db"},
            collection_name=name,
            search_dim=max(1, dim // 6),
            fetch_documents="with_candidates",
        )
        store.add_embeddings(
            [f"passage {i} " * 30 for i in range(rows)], vectors,
            metadatas=[{"source": f"docs/file{i}.pdf", "page": i % 50, "title": "A title"}
                       for i in range(rows)],
        )  # fmt: skip
        engine = store.engine
        layout = engine.layout
        heads = head_of(engine.query_vectors(vectors[:1], layout), layout.search_dim)

        def convert(materialize_all: bool) -> float:
            hits = engine.collection.search(heads, candidates, "", with_documents=True)
            start = time.perf_counter()
            if materialize_all:
                hits.materialize()
            cands = hits_to_candidates(hits, layout)
            for j in range(min(10, len(cands.ids[0]))):
                cands.document(0, j, layout)
            return time.perf_counter() - start

        plan = engine.plan(10, {})[0]
        query = engine.query_vectors(vectors[:1], layout)

        def funnel() -> float:
            hits = engine.collection.search(heads, candidates, "", with_documents=True)
            start = time.perf_counter()
            cands = hits_to_candidates(hits, layout)
            ranked = funnel_rerank(query, cands.vectors, cands.n_valid, plan)
            for j in ranked.indices[0].tolist():
                cands.document(0, j, layout)
                np.asarray(cands.vectors[0, j], dtype=np.float32)  # a hit keeps its vector
            return time.perf_counter() - start

        lazy, eager, whole = [], [], []
        for _ in range(200):
            lazy.append(convert(False))
            eager.append(convert(True))
            whole.append(funnel())
        engine.drop()
        store.close()
    return {"candidates_ms": statistics.median(lazy) * 1000,
            "candidates_all_metadata_ms": statistics.median(eager) * 1000,
            "funnel_ms": statistics.median(whole) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", default=None, help="a Milvus server; default: Milvus Lite")
    ap.add_argument("--rounds", type=int, default=10, help="new collections to time")
    ap.add_argument("--candidates", type=int, default=128)
    ap.add_argument("--dim", type=int, default=768)
    args = ap.parse_args()
    writes = first_writes(args.uri, args.rounds)
    result = {
        "backend": "server" if args.uri else "Milvus Lite",
        "first_write_median_ms": statistics.median(writes) * 1000,
        "first_write_ms": [round(t * 1000, 1) for t in writes],
        **decode_ms(args.candidates, args.dim),
        **candidates_ms(args.uri, args.candidates, args.dim),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
