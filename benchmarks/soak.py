"""Soak: 8 threads and 64 asyncio tasks of mixed traffic on one store, for a bounded time.

Every worker loops over a mix of single searches (45%), batch searches of 4 queries (20%),
adds of 10 documents (20%) and deletes of up to 10 of its own documents (15%), through
the store's sync API (threads) or its async API (tasks on one event loop, in a thread of
their own, running at the same time). 1,000 "stable" documents are never touched; their
queries' results, taken once sequentially before the soak, must come back identical
(ids and scores) from every concurrent search. The head index is FLAT, so a difference
can only come from concurrency, never from an approximate index. The documents the
workers add lie in the opposite half of the space, so they never enter those results.

At the end every acknowledged add that was not deleted must be readable with its text,
every acknowledged delete gone, and the row count exact. Resident memory (VmRSS) is
sampled every second.

Run (the figures in the report; 2-core x86_64, no GPU, 24 GiB):

    python benchmarks/soak.py --backend lite --seconds 600 --json results/soak-lite.json
    python benchmarks/soak.py --backend server --seconds 600 --json results/soak-server.json

``--backend server`` starts the test server (tests/server.py: Embedded Milvus 2.3 in a
private network namespace) unless ``--uri`` names one. The CI runs a short version
(tests/test_soak.py, ``MATRYOSHKA_SOAK_SECONDS``, default 20).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from langchain_matryoshka import MatryoshkaMilvus  # noqa: E402

DIM, SEARCH_DIM, K = 32, 8, 5
N_STABLE, N_QUERIES = 1000, 48
THREADS, TASKS = 8, 64
MIX = (("search", 0.45), ("batch", 0.20), ("add", 0.20), ("delete", 0.15))


class SoakEmbeddings(Embeddings):
    """A fixed vector per text (seeded by its crc32): stable documents and queries in the
    half-space dim0 > 0, the workers' documents ("m-...") in dim0 < 0."""

    def _one(self, text: str) -> list[float]:
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        v = rng.standard_normal(DIM) / np.sqrt(1.0 + np.arange(DIM) / 4.0)
        v[0] = -8.0 if text.startswith("m-") else 8.0
        return v.astype(np.float32).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Soak:
    def __init__(self, store: MatryoshkaMilvus, seconds: float, seed: int = 0) -> None:
        self.store = store
        self.seconds = seconds
        self.seed = seed
        self.queries = [f"q-{i}" for i in range(N_QUERIES)]
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, str] = {}
        self.mismatches = 0
        self.first_mismatch: dict[str, Any] | None = None
        self.live: dict[str, set[str]] = defaultdict(set)  # worker -> its acknowledged ids
        self.deleted: dict[str, set[str]] = defaultdict(set)
        self.rss: list[tuple[float, float]] = []
        self.stop = threading.Event()

    # -- setup
    def populate(self) -> None:
        texts = [f"s-{i}" for i in range(N_STABLE)]
        for start in range(0, N_STABLE, 500):
            self.store.add_texts(texts[start : start + 500], ids=texts[start : start + 500])
        self.store.build_index()
        self.baseline = {
            q: self._key(self.store.similarity_search_with_score(q, k=K)) for q in self.queries
        }
        batch = self.store.search_batch_with_score(self.queries, k=K)
        assert [self._key(r) for r in batch] == [self.baseline[q] for q in self.queries]

    @staticmethod
    def _key(pairs: list) -> list[tuple[str, float]]:
        return [(d.id, float(s)) for d, s in pairs]

    def _check(self, query: str, pairs: list) -> None:
        got, want = self._key(pairs), self.baseline[query]
        same = [i for i, _ in got] == [i for i, _ in want] and all(
            abs(a - b) <= 1e-5 for (_, a), (_, b) in zip(got, want)
        )
        if not same:
            with self.lock:
                self.mismatches += 1
                if self.first_mismatch is None:
                    self.first_mismatch = {"query": query, "got": got, "want": want}

    def _record(self, kind: str, began: float) -> None:
        with self.lock:
            self.ops[kind] += 1
            self.latency[kind].append(time.perf_counter() - began)

    def _failed(self, kind: str, exc: BaseException) -> None:
        name = f"{kind}: {type(exc).__module__}.{type(exc).__name__}"
        with self.lock:
            self.errors[name] += 1
            self.first_error.setdefault(name, str(exc)[:500])

    def _pick(self, rng: random.Random) -> str:
        r, acc = rng.random(), 0.0
        for kind, weight in MIX:
            acc += weight
            if r < acc:
                return kind
        return MIX[-1][0]

    def _plan(self, rng: random.Random, worker: str, counter: list[int]) -> tuple[str, Any]:
        kind = self._pick(rng)
        if kind == "search":
            return kind, rng.choice(self.queries)
        if kind == "batch":
            return kind, rng.sample(self.queries, 4)
        if kind == "add":
            ids = [f"m-{worker}-{counter[0] + j}" for j in range(10)]
            counter[0] += 10
            return kind, ids
        live = sorted(self.live[worker])
        return kind, rng.sample(live, min(10, len(live)))

    def _done(self, kind: str, worker: str, arg: Any, result: Any) -> None:
        if kind == "search":
            self._check(arg, result)
        elif kind == "batch":
            for q, pairs in zip(arg, result):
                self._check(q, pairs)
        elif kind == "add":
            self.live[worker].update(arg)
        else:
            self.live[worker].difference_update(arg)
            self.deleted[worker].update(arg)

    # -- workers
    def thread_worker(self, n: int) -> None:
        rng, worker, counter = random.Random(self.seed * 1000 + n), f"t{n}", [0]
        store = self.store
        while not self.stop.is_set():
            kind, arg = self._plan(rng, worker, counter)
            began = time.perf_counter()
            try:
                if kind == "search":
                    result = store.similarity_search_with_score(arg, k=K)
                elif kind == "batch":
                    result = store.search_batch_with_score(arg, k=K)
                elif kind == "add":
                    result = store.add_texts(arg, ids=arg, metadatas=[{"w": worker}] * len(arg))
                else:
                    result = store.delete(arg) if arg else None
            except Exception as exc:  # noqa: BLE001 - counted and reported
                self._failed(kind, exc)
                continue
            self._record(kind, began)
            self._done(kind, worker, arg, result)

    async def task_worker(self, n: int) -> None:
        rng, worker, counter = random.Random(self.seed * 1000 + 500 + n), f"a{n}", [0]
        store = self.store
        while not self.stop.is_set():
            kind, arg = self._plan(rng, worker, counter)
            began = time.perf_counter()
            try:
                if kind == "search":
                    result = await store.asimilarity_search_with_score(arg, k=K)
                elif kind == "batch":
                    result = await store.asearch_batch_with_score(arg, k=K)
                elif kind == "add":
                    meta = [{"w": worker}] * len(arg)
                    result = await store.aadd_texts(arg, ids=arg, metadatas=meta)
                else:
                    result = await store.adelete(arg) if arg else None
            except Exception as exc:  # noqa: BLE001 - counted and reported
                self._failed(kind, exc)
                continue
            self._record(kind, began)
            self._done(kind, worker, arg, result)

    def _tasks(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(self.task_worker(n) for n in range(TASKS)))

        asyncio.run(main())

    def _sample_rss(self) -> None:
        began = time.monotonic()
        while not self.stop.wait(1.0):
            self.rss.append((round(time.monotonic() - began, 1), round(rss_mb(), 1)))

    # -- run
    def run(self) -> dict[str, Any]:
        rss_start = rss_mb()
        workers = [threading.Thread(target=self.thread_worker, args=(n,)) for n in range(THREADS)]
        workers.append(threading.Thread(target=self._tasks))
        sampler = threading.Thread(target=self._sample_rss, daemon=True)
        began = time.monotonic()
        for w in [*workers, sampler]:
            w.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for w in workers:
            w.join(300)
        duration = time.monotonic() - began
        rss_end = rss_mb()
        return {
            "duration_s": round(duration, 1),
            "ops": dict(self.ops),
            "ops_total": sum(self.ops.values()),
            "latency_ms": {
                k: {
                    "p50": round(1000 * float(np.median(v)), 1),
                    "p95": round(1000 * float(np.percentile(v, 95)), 1),
                }
                for k, v in self.latency.items()
            },
            "errors": dict(self.errors),
            "first_error": self.first_error,
            "mismatches": self.mismatches,
            "first_mismatch": self.first_mismatch,
            "rss_mb": {
                "start": round(rss_start, 1),
                "end": round(rss_end, 1),
                "max": max([r for _, r in self.rss] + [rss_end]),
            },
            "rss_samples": self.rss[:: max(1, len(self.rss) // 40)],
            **self.verify(),
        }

    def verify(self) -> dict[str, Any]:
        """Every acknowledged, undeleted add readable with its text; deletes gone."""
        live = sorted(set().union(*self.live.values())) if self.live else []
        deleted = sorted(set().union(*self.deleted.values())) if self.deleted else []
        found = {d.id: d.page_content for d in self._get(live)}
        lost = [i for i in live if found.get(i) != i]
        back = [d.id for d in self._get(deleted)]
        count = self.store._engine.collection.count()
        batch = self.store.search_batch_with_score(self.queries, k=K)  # one call for all
        after = {q: self._key(pairs) for q, pairs in zip(self.queries, batch)}
        return {
            "acknowledged_live": len(live),
            "acknowledged_deleted": len(deleted),
            "lost": len(lost),
            "first_lost": lost[:5],
            "resurrected": len(back),
            "rows_expected": N_STABLE + len(live),
            "rows_found": count,
            "stable_after_equal": after == self.baseline,
        }

    def _get(self, ids: list[str]) -> list:
        out = []
        for start in range(0, len(ids), 1000):
            out += self.store.get_by_ids(ids[start : start + 1000])
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("lite", "server"), default="lite")
    parser.add_argument("--seconds", type=float, default=20.0, help="soak duration (default 20)")
    parser.add_argument("--uri", help="a running server (--backend server); default: start one")
    parser.add_argument("--collection", default="soak", help="collection name (default soak)")
    parser.add_argument("--workdir", help="folder for the Milvus Lite file (default: a temp dir)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    server = None
    if args.backend == "lite":
        workdir = args.workdir or tempfile.mkdtemp(prefix="soak-")
        connection = {"uri": os.path.join(workdir, "soak.db")}
        consistency = "Strong"  # Milvus Lite reads are always current
    else:
        if args.uri:
            uri = args.uri
        else:
            from tests.server import MilvusTestServer

            server = MilvusTestServer().start()
            uri = server.uri
        connection = {"uri": uri}
        consistency = "Session"  # sees this client's writes; "Strong" waits ~200 ms a read
    try:
        store = MatryoshkaMilvus(
            SoakEmbeddings(),
            collection_name=args.collection,
            connection_args=connection,
            search_dim=SEARCH_DIM,
            index_type="FLAT",
            consistency_level=consistency,
            candidates=64,
            drop_old=True,
        )
        soak = Soak(store, args.seconds, args.seed)
        soak.populate()
        result = {"backend": args.backend, "threads": THREADS, "tasks": TASKS, **soak.run()}
        if args.backend == "server":
            store.close()
            # the end state as any other client sees it
            store = MatryoshkaMilvus(
                SoakEmbeddings(),
                collection_name=args.collection,
                connection_args=connection,
                consistency_level="Strong",
                candidates=64,  # the same funnel as the soak's store
            )
            soak.store = store
            result["other_client"] = soak.verify()
        store.close()
    finally:
        if server is not None:
            server.stop()
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
