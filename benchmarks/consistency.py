"""Read latency of the default "Session" consistency against "Strong", on a server.

One collection, two stores on it (``consistency_level`` "Session" and "Strong"); per
round, paired: a Session search with no write pending, a Strong search, and a Session
search right after a one-row write of that store. Writes JSON with the command.

    python benchmarks/consistency.py --uri http://127.0.0.1:19530 --n 20000 --rounds 50
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_matryoshka import MatryoshkaMilvus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    name = "bench_consistency_" + uuid.uuid4().hex[:8]
    emb = DeterministicFakeEmbedding(size=args.dim)
    common = {"connection_args": {"uri": args.uri}, "collection_name": name}
    session = MatryoshkaMilvus(emb, **common)
    texts = [f"doc {i}" for i in range(args.n)]
    for start in range(0, args.n, 5000):
        session.add_texts(texts[start : start + 5000], ids=texts[start : start + 5000])
    strong = MatryoshkaMilvus(emb, consistency_level="Strong", **common)
    times: dict[str, list[float]] = {
        "session_no_write": [],
        "strong": [],
        "session_after_write": [],
    }
    rng = np.random.default_rng(0)
    try:
        session.similarity_search("doc 0", k=10)
        strong.similarity_search("doc 0", k=10)
        for r in range(args.rounds):
            q = f"doc {int(rng.integers(args.n))}"
            t = time.perf_counter()
            session.similarity_search(q, k=10)
            times["session_no_write"].append(time.perf_counter() - t)
            t = time.perf_counter()
            strong.similarity_search(q, k=10)
            times["strong"].append(time.perf_counter() - t)
            session.add_texts([f"new {r}"], ids=[f"new {r}"])
            t = time.perf_counter()
            found = session.similarity_search(f"new {r}", k=10)
            times["session_after_write"].append(time.perf_counter() - t)
            assert any(d.id == f"new {r}" for d in found), "own write not seen"
    finally:
        from pymilvus import MilvusClient

        client = MilvusClient(uri=args.uri)
        for c in (name, name + "_mrl_meta"):
            if client.has_collection(c):
                client.drop_collection(c)
    out = {
        "command": " ".join(["python", *sys.argv]),
        "hardware": f"{platform.machine()}, 2-core shared machine",
        "n": args.n,
        "dim": args.dim,
        "rounds": args.rounds,
        "ms": {
            k: {
                "p50": 1000 * statistics.median(v),
                "p95": 1000 * float(np.percentile(v, 95)),
            }
            for k, v in times.items()
        },
    }
    print(json.dumps(out["ms"], indent=1))
    path = Path(args.json or Path(__file__).parent / "results" / f"consistency-{args.n}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
