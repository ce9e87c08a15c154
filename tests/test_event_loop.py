"""Async searches leave the event loop free: a ticker keeps running while they work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np

from langchain_matryoshka import MatryoshkaMilvus

from .conftest import TableEmbeddings, matryoshka_like

N = 20000
BOUND_S = 0.25  # the longest the loop may go without running another task


async def _max_gap(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(longest gap between a 5 ms ticker's wake-ups, seconds ``work`` took)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)  # the ticker is running
    started = time.perf_counter()
    try:
        await work()
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        await task
    return max(gaps), elapsed


async def test_async_searches_never_block_the_loop_while_they_plan_and_search(
    tmp_path,
) -> None:
    vectors = matryoshka_like(N, 32, seed=3)
    texts = [f"doc {i}" for i in range(N)]
    queries = matryoshka_like(4, 32, seed=4)
    qtexts = [f"query {i}" for i in range(len(queries))]
    table = TableEmbeddings({**dict(zip(texts, vectors)), **dict(zip(qtexts, queries))})
    store = MatryoshkaMilvus(
        table, connection_args={"uri": str(tmp_path / "loop.db")}, search_dim=8
    )
    try:
        store.add_embeddings(
            texts, np.asarray(vectors).tolist(),
            metadatas=[{"group": i % 50} for i in range(N)], ids=[f"d{i}" for i in range(N)],
        )

        # Control: the same search run on the loop itself blocks the ticker for its
        # whole duration, so the ticker does see a blocked loop.
        async def blocking() -> object:
            return store.similarity_search(qtexts[0], k=5, filter={"group": 7})

        gap, elapsed = await _max_gap(blocking)
        assert gap >= 0.9 * elapsed

        # Each filter is new to the store: its row count (a Milvus call over every row
        # on Lite) is planned before the search, all of it off the loop.
        async def searches() -> object:
            for group in (1, 2, 3):
                docs = await store.asimilarity_search(qtexts[1], k=5, filter={"group": group})
                assert docs and all(d.metadata["group"] == group for d in docs)
            return await store.asimilarity_search_with_score(qtexts[2], k=5)

        gap, elapsed = await _max_gap(searches)
        assert gap < BOUND_S, f"the loop was blocked {gap:.3f} s of a {elapsed:.3f} s search"
    finally:
        store.close()
