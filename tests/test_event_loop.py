"""Async searches plan, rank and call Milvus off the event loop.

No wall-clock gap is measured: Milvus Lite's in-process server threads hold the GIL
for long stretches, so a loop can be late without being blocked. Two checks instead:

1. Threads. Every method of the real ``MilvusClient`` and the engine's planning and
   search steps are wrapped in pass-throughs (the real call still runs) that record
   the thread they ran on; none may be the loop's thread.
2. CPU. The loop thread's own CPU time (``time.thread_time`` read on the loop) over
   the async searches stays far below what the same searches cost it when run
   synchronously on the loop. Waiting for the GIL costs a thread no CPU time.

Each check has a control that runs search work on the loop and is caught.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import pytest
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka.llama_index import MatryoshkaMilvusVectorStore

from .conftest import TableEmbeddings, matryoshka_like
from .llama_support import corpus_nodes

N = 300
ENGINE_STEPS = ("plan", "refresh", "search")  # planning (new filters: row counts) and search
CPU_SHARE = 0.25  # the loop's CPU over async searches: under a quarter of the sync cost

Search = Callable[[], Awaitable[Any]]


class Threads:
    """Which thread each Milvus call and engine step ran on (pass-throughs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, int]] = []
        self._mp = monkeypatch
        self._watched: list[Any] = []  # stores may share one client: it is wrapped once

    def watch(self, obj: Any, names: list[str] | tuple[str, ...], label: str) -> None:
        for name in names:
            real = getattr(obj, name)

            def passthrough(*args: Any, _real: Any = real, _n: str = f"{label}.{name}",
                            **kwargs: Any) -> Any:
                self.seen.append((_n, threading.get_ident()))
                return _real(*args, **kwargs)

            self._mp.setattr(obj, name, passthrough)

    def watch_store(self, store: MatryoshkaMilvus) -> None:
        client = store._connection.client  # the real pymilvus MilvusClient
        methods = [n for n, _ in inspect.getmembers(type(client), inspect.isfunction)
                   if not n.startswith("_")]
        if not any(client is seen for seen in self._watched):
            self._watched.append(client)
            self.watch(client, methods, "milvus")
        self.watch(store._engine, ENGINE_STEPS, "engine")

    async def run(self, search: Search) -> dict[str, set[str]]:
        """Run ``search`` on the loop: the steps it made, and those on the loop's thread."""
        loop_thread = threading.get_ident()
        self.seen.clear()
        await search()
        return {
            "milvus": {n for n, _ in self.seen if n.startswith("milvus.")},
            "engine": {n for n, _ in self.seen if n.startswith("engine.")},
            "on_loop": {n for n, t in self.seen if t == loop_thread},
        }


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Iterator[tuple[MatryoshkaMilvus, MatryoshkaMilvusVectorStore]]:
    """A full-text store and a LlamaIndex store on one Milvus Lite client (read only)."""
    docs, queries = matryoshka_like(N, 32, seed=1), matryoshka_like(30, 32, seed=2)
    texts = [f"doc {i} {'cat' if i % 3 == 0 else 'dog'}" for i in range(N)]
    table = TableEmbeddings({**dict(zip(texts, docs)),
                             **{f"cat {i}": q for i, q in enumerate(queries)}})
    uri = str(tmp_path_factory.mktemp("loop") / "loop.db")
    store = MatryoshkaMilvus(table, connection_args={"uri": uri}, search_dim=8,
                             full_text_search=True)
    store.add_texts(texts, [{"g": i % 30, "h": i % 3} for i in range(N)],
                    ids=[f"d{i}" for i in range(N)])
    llama = MatryoshkaMilvusVectorStore(client=store.client, collection_name="llama",
                                        search_dim=8, full_text_search=True)
    llama.add(corpus_nodes(docs[:50]))
    yield store, llama
    llama._store.close()
    store.close()


def _searches(store: MatryoshkaMilvus, llama: MatryoshkaMilvusVectorStore,
              g: Iterator[int]) -> dict[str, Search]:
    """Every async search route, each with a filter new to the store (``next(g)``)."""

    def f() -> dict[str, int]:
        return {"g": next(g)}

    def lq(mode: VectorStoreQueryMode, i: int) -> VectorStoreQuery:
        return VectorStoreQuery(query_embedding=matryoshka_like(1, 32, seed=i)[0].tolist(),
                                query_str="node 3", similarity_top_k=3, mode=mode)

    def retriever(search_type: str, **kw: Any) -> Search:
        return lambda: store.as_retriever(search_type=search_type,
                                          search_kwargs={"k": 3, "filter": f(), **kw}
                                          ).ainvoke("cat 7")

    return {
        "asimilarity_search": lambda: store.asimilarity_search("cat 1", k=3, filter=f()),
        "asimilarity_search_with_score":
            lambda: store.asimilarity_search_with_score("cat 2", k=3, filter=f()),
        "asearch_batch_with_score":
            lambda: store.asearch_batch_with_score(["cat 3", "cat 4"], k=3, filter=f()),
        "amax_marginal_relevance_search":
            lambda: store.amax_marginal_relevance_search("cat 5", k=3, fetch_k=9, filter=f()),
        "afull_text_search": lambda: store.afull_text_search("cat", k=3, filter=f()),
        "ahybrid_search": lambda: store.ahybrid_search("cat 6", k=3, filter=f()),
        "ahybrid_max_marginal_relevance_search":
            lambda: store.ahybrid_max_marginal_relevance_search("cat 6", k=3, fetch_k=9,
                                                                filter=f()),
        "asearch(similarity)": lambda: store.asearch("cat 8", "similarity", k=3, filter=f()),
        "retriever similarity": retriever("similarity"),
        "retriever mmr": retriever("mmr", fetch_k=9),
        "retriever full_text": retriever("full_text"),
        "retriever hybrid": retriever("hybrid"),
        "retriever hybrid_mmr": retriever("hybrid_mmr", fetch_k=9),
        "retriever abatch": lambda: store.as_retriever(search_kwargs={"filter": f()}).abatch(
            ["cat 9", "cat 10"]),
        **{f"llama aquery {m.value}": (lambda m=m, i=i: llama.aquery(lq(m, i)))
           for i, m in enumerate((VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR,
                                  VectorStoreQueryMode.TEXT_SEARCH,
                                  VectorStoreQueryMode.HYBRID))},
    }


async def test_async_searches_make_every_milvus_call_and_plan_off_the_loop(
    stores, monkeypatch
) -> None:
    store, llama = stores
    threads = Threads(monkeypatch)
    threads.watch_store(store)
    threads.watch_store(llama._store)
    on_loop, idle = {}, []
    for name, search in _searches(store, llama, iter(range(30))).items():
        steps = await threads.run(search)
        if steps["on_loop"]:
            on_loop[name] = sorted(steps["on_loop"])
        if not steps["milvus"] or "engine.plan" not in steps["engine"]:
            idle.append(name)  # a route the check would not see
    assert on_loop == {}, f"ran on the event loop's thread: {on_loop}"
    assert idle == []


async def test_async_searches_open_an_empty_store_off_the_loop(stores, monkeypatch) -> None:
    """No collection yet: each search asks Milvus whether one appeared (engine.refresh)."""
    store, _ = stores
    empty = MatryoshkaMilvus(store.embedding, client=store.client, collection_name="empty",
                             full_text_search=True)
    threads = Threads(monkeypatch)
    threads.watch_store(empty)
    searches = {
        "asimilarity_search": lambda: empty.asimilarity_search("cat 1", k=3),
        "amax_marginal_relevance_search":
            lambda: empty.amax_marginal_relevance_search("cat 1", k=3, fetch_k=9),
        "afull_text_search": lambda: empty.afull_text_search("cat", k=3),
        "ahybrid_search": lambda: empty.ahybrid_search("cat 1", k=3),
        "ahybrid_max_marginal_relevance_search":
            lambda: empty.ahybrid_max_marginal_relevance_search("cat 1", k=3, fetch_k=9),
    }
    on_loop, idle = {}, []
    for name, search in searches.items():
        steps = await threads.run(search)
        if steps["on_loop"]:
            on_loop[name] = sorted(steps["on_loop"])
        if "engine.refresh" not in steps["engine"] or not steps["milvus"]:
            idle.append(name)
    assert on_loop == {}, f"ran on the event loop's thread: {on_loop}"
    assert idle == []


async def test_the_thread_check_catches_search_work_on_the_loop(stores, monkeypatch) -> None:
    store, _ = stores
    threads = Threads(monkeypatch)
    threads.watch_store(store)

    async def sync_on_the_loop() -> object:
        return store.similarity_search("cat 1", k=3, filter={"g": 101})

    async def search_on_the_loop() -> object:  # an async twin that forgot one to_thread
        vectors = np.asarray(await store._aembed(["cat 1"]))
        return store._engine.search(vectors, store._engine.plan(3, {"filter": {"g": 102}}))

    for control in (sync_on_the_loop, search_on_the_loop):
        steps = await threads.run(control)
        assert {"engine.plan", "engine.search"} <= steps["on_loop"]
        assert steps["milvus"] and steps["milvus"] <= steps["on_loop"]


QUERIES = [f"cat {i}" for i in range(8)]
K = 25  # results per search: client-side work the loop would do if it ran the search


def _routes(store: MatryoshkaMilvus) -> dict[str, tuple[Search, Search]]:
    """Per route, the same searches async and sync (run on the loop)."""

    async def similarity() -> None:  # batches: the loop's own share per search is least
        for h in range(3):
            await store.asearch_batch_with_score(QUERIES, k=K, filter={"h": h})

    async def similarity_sync() -> None:
        for h in range(3):
            store.search_batch_with_score(QUERIES, k=K, filter={"h": h})

    async def hybrid() -> None:
        await store.ahybrid_search_batch_with_score(QUERIES, k=K)

    async def hybrid_sync() -> None:
        store.hybrid_search_batch_with_score(QUERIES, k=K)

    async def mmr() -> None:
        for q in QUERIES:
            await store.amax_marginal_relevance_search(q, k=K, fetch_k=2 * K)

    async def mmr_sync() -> None:
        for q in QUERIES:
            store.max_marginal_relevance_search(q, k=K, fetch_k=2 * K)

    return {"similarity": (similarity, similarity_sync), "hybrid": (hybrid, hybrid_sync),
            "mmr": (mmr, mmr_sync)}


async def _loop_cpu(store: MatryoshkaMilvus, search: Search, rounds: int = 3) -> float:
    """The loop thread's least CPU time over ``rounds`` runs of ``search`` (seconds)."""
    spent = []
    for _ in range(rounds):
        store._engine.clear_caches()  # each round plans its filters' row counts again
        began = time.thread_time()
        await search()
        spent.append(time.thread_time() - began)
    return min(spent)


async def test_the_loop_thread_spends_little_cpu_on_async_searches(stores) -> None:
    store, _ = stores
    routes = _routes(store)
    for run_async, _ in routes.values():
        await run_async()  # warm: the worker threads exist, imports are done
    spent = {}
    for name, (run_async, run_sync) in routes.items():
        spent[name] = (await _loop_cpu(store, run_async), await _loop_cpu(store, run_sync))
    blocking = {n: f"{a:.4f} s async, {s:.4f} s sync" for n, (a, s) in spent.items()
                if a >= CPU_SHARE * s}
    assert blocking == {}, f"the loop thread's CPU time: {blocking}"

    # Control: async similarity searches that embed off the loop but plan and search
    # on it (a forgotten to_thread) are caught.
    async def leaky() -> None:
        engine = store._engine
        for h in range(3):
            vectors = np.asarray(await store._aembed(QUERIES))
            engine.search(vectors, engine.plan(K, {"filter": {"h": h}}))

    leaky_cpu, on_loop = await _loop_cpu(store, leaky), spent["similarity"][1]
    assert leaky_cpu >= CPU_SHARE * on_loop, f"{leaky_cpu:.4f} s leaky, {on_loop:.4f} s sync"
