"""One store and retriever used from threads and asyncio tasks at once.

Concurrent use must give exactly the results of sequential use; concurrent writes of
disjoint ids must all land; racing first writes must create the collection once.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_matryoshka import MatryoshkaMilvus

from .conftest import TableEmbeddings, matryoshka_like

THREADS = 8


def count(store: MatryoshkaMilvus) -> int:
    rows = store.client.query(store.collection_name, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


def sequential(store: MatryoshkaMilvus, retriever, queries: list[str]) -> dict:
    return {
        "scored": [store.similarity_search_with_score(q, k=5) for q in queries],
        "filtered": [store.similarity_search(q, k=3, filter={"parity": "odd"}) for q in queries],
        "retriever": [retriever.invoke(q) for q in queries],
        "mmr": [store.max_marginal_relevance_search(q, k=3, fetch_k=10) for q in queries],
        "get": [store.get_by_ids([f"id{i}", f"id{i + 100}"]) for i in range(len(queries))],
    }


def one_task(store, retriever, kind: str, i: int, q: str):
    if kind == "scored":
        return store.similarity_search_with_score(q, k=5)
    if kind == "filtered":
        return store.similarity_search(q, k=3, filter={"parity": "odd"})
    if kind == "retriever":
        return retriever.invoke(q)
    if kind == "mmr":
        return store.max_marginal_relevance_search(q, k=3, fetch_k=10)
    return store.get_by_ids([f"id{i}", f"id{i + 100}"])


async def one_async_task(store, retriever, kind: str, i: int, q: str):
    if kind == "scored":
        return await store.asimilarity_search_with_score(q, k=5)
    if kind == "filtered":
        return await store.asimilarity_search(q, k=3, filter={"parity": "odd"})
    if kind == "retriever":
        return await retriever.ainvoke(q)
    if kind == "mmr":
        return await store.amax_marginal_relevance_search(q, k=3, fetch_k=10)
    return await store.aget_by_ids([f"id{i}", f"id{i + 100}"])


KINDS = ("scored", "filtered", "retriever", "mmr", "get")


def test_threads_and_tasks_at_once_match_sequential_use(store, corpus) -> None:
    queries = corpus[2]
    retriever = store.as_retriever(search_kwargs={"k": 4, "candidates": 64})
    expected = sequential(store, retriever, queries)
    jobs = [(kind, i, q) for _ in range(2) for kind in KINDS for i, q in enumerate(queries)]

    async def all_tasks():
        return await asyncio.gather(
            *(one_async_task(store, retriever, kind, i, q) for kind, i, q in jobs)
        )

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(one_task, store, retriever, kind, i, q) for kind, i, q in jobs]
        batch_future = pool.submit(retriever.batch, queries)
        async_results = asyncio.run(all_tasks())  # while the threads run
        thread_results = [f.result() for f in futures]
        assert batch_future.result() == expected["retriever"]
    for (kind, i, _), got_thread, got_task in zip(jobs, thread_results, async_results):
        assert got_thread == expected[kind][i], (kind, i)
        assert got_task == expected[kind][i], (kind, i)


def test_concurrent_writes_of_disjoint_ids_all_land(store, table) -> None:
    per_thread = 60
    vectors = matryoshka_like(THREADS * per_thread, 32, seed=7)
    for j, v in enumerate(vectors):
        table.table[f"new {j}"] = v
    before = count(store)
    barrier = threading.Barrier(THREADS, timeout=60)

    def write(t: int) -> list[str]:
        ids = []
        for start in range(t * per_thread, (t + 1) * per_thread, 5):  # 12 calls per thread
            rows = range(start, start + 5)
            barrier.wait()  # every thread writes (and flushes) at the same moment
            try:
                ids += store.add_texts(
                    [f"new {j}" for j in rows],
                    [{"t": t, "j": j} for j in rows],
                    ids=[f"new-{j}" for j in rows],
                )
            except BaseException:
                barrier.abort()  # release the other threads instead of hanging
                raise
        store.similarity_search("query 0", k=3)  # a read while others still write
        return ids

    with ThreadPoolExecutor(THREADS) as pool:
        written = [i for ids in pool.map(write, range(THREADS)) for i in ids]
    assert len(written) == THREADS * per_thread == len(set(written))
    assert count(store) == before + THREADS * per_thread
    docs = store.get_by_ids(written)
    assert [d.id for d in docs] == written
    assert all(d.page_content == f"new {d.metadata['j']}" for d in docs)
    top = store.similarity_search_with_score_by_vector(vectors[5].tolist(), k=1)
    assert top[0][0].id == "new-5" and top[0][1] == pytest.approx(1.0, abs=1e-5)


def test_concurrent_async_writes_of_disjoint_ids_all_land(store, table) -> None:
    vectors = matryoshka_like(8 * 25, 32, seed=8)
    for j, v in enumerate(vectors):
        table.table[f"anew {j}"] = v
    before = count(store)

    async def main():
        return await asyncio.gather(
            *(
                store.aadd_texts(
                    [f"anew {j}" for j in range(t * 25, (t + 1) * 25)],
                    ids=[f"anew-{j}" for j in range(t * 25, (t + 1) * 25)],
                )
                for t in range(8)
            ),
            *(store.asimilarity_search(f"query {i}", k=2) for i in range(8)),
        )

    results = asyncio.run(main())
    assert sum(len(r) for r in results[:8]) == 200
    assert count(store) == before + 200
    assert len(store.get_by_ids([f"anew-{j}" for j in range(200)])) == 200


@pytest.mark.parametrize("stores", ["one_store", "one_store_per_thread"])
def test_racing_first_writes_create_the_collection_once(lite_uri, stores) -> None:
    emb = TableEmbeddings({f"t{j}": v for j, v in enumerate(matryoshka_like(THREADS * 10, 24, 3))})
    first = MatryoshkaMilvus(emb, connection_args={"uri": lite_uri}, search_dim=6)
    client = first.client
    if stores == "one_store":
        targets = [first] * THREADS
    else:
        targets = [
            MatryoshkaMilvus(
                emb, client=client, collection_name=first.collection_name, search_dim=6
            )
            for _ in range(THREADS)
        ]
    created: list[str] = []
    create = client.create_collection

    def spy(name, *args, **kwargs):
        if name == first.collection_name:
            created.append(name)
        return create(name, *args, **kwargs)

    client.create_collection = spy
    barrier = threading.Barrier(THREADS, timeout=60)

    def write(t: int) -> list[str]:
        barrier.wait()
        return targets[t].add_texts(
            [f"t{j}" for j in range(t * 10, (t + 1) * 10)],
            ids=[f"r{j}" for j in range(t * 10, (t + 1) * 10)],
        )

    with ThreadPoolExecutor(THREADS) as pool:
        written = [i for ids in pool.map(write, range(THREADS)) for i in ids]
    assert len(set(written)) == THREADS * 10
    if stores == "one_store":
        assert created == [first.collection_name]  # the store's lock: one create call
    # whoever lost the race wrote into the winner's collection: one collection, all rows
    assert client.list_collections().count(first.collection_name) == 1
    assert count(first) == THREADS * 10
    reopened = MatryoshkaMilvus(emb, client=client, collection_name=first.collection_name)
    assert (reopened.dim, reopened.search_dim) == (24, 6)
    assert reopened.get_by_ids(["r0", "r79"]) == [
        Document(id="r0", page_content="t0"),
        Document(id="r79", page_content="t79"),
    ]
    assert [d.id for d in reopened.similarity_search("t33", k=1)] == ["r33"]
    first.close()


def test_results_do_not_depend_on_thread_count(store, corpus) -> None:
    """The same batch search from 1 and 8 threads: bit-identical scores."""
    queries = corpus[2]
    one = [store.similarity_search_with_score(q, k=8, candidates=32) for q in queries]
    with ThreadPoolExecutor(THREADS) as pool:
        many = list(
            pool.map(
                lambda q: store.similarity_search_with_score(q, k=8, candidates=32), queries * 3
            )
        )
    assert many == one * 3
    assert all(np.all(np.diff([s for _, s in pairs]) <= 0) for pairs in one)


def test_racing_first_writes_with_rotation_agree_on_one_basis(lite_uri) -> None:
    """Each racer fits a basis on its own texts; the collection's creator's basis wins."""
    n = 4
    emb = TableEmbeddings({f"t{j}": v for j, v in enumerate(matryoshka_like(n * 30, 24, 5))})
    first = MatryoshkaMilvus(emb, connection_args={"uri": lite_uri}, search_dim=6)
    targets = [
        MatryoshkaMilvus(
            emb, client=first.client, collection_name="rot", search_dim=6, rotation="pca"
        )
        for _ in range(n)
    ]
    barrier = threading.Barrier(n, timeout=60)

    def write(t: int) -> None:
        barrier.wait()
        targets[t].add_texts(
            [f"t{j}" for j in range(t * 30, (t + 1) * 30)],
            ids=[f"r{j}" for j in range(t * 30, (t + 1) * 30)],
        )

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(write, range(n)))
    reopened = MatryoshkaMilvus(emb, client=first.client, collection_name="rot")
    assert reopened.rotation is not None
    for store in targets:  # every writer rotated with the one stored basis
        np.testing.assert_array_equal(store.rotation, reopened.rotation)
    for j in range(0, n * 30, 7):  # so every row is found by its own embedding
        assert [d.id for d in reopened.similarity_search(f"t{j}", k=1, candidates=120)] == [
            f"r{j}"
        ]
    # the losers' bases were removed: one basis (24 rows) and the config remain
    meta = reopened._engine.meta.name
    rows = first.client.query(meta, filter="", output_fields=["count(*)"])
    assert rows[0]["count(*)"] == 24 + 1
    first.close()


def test_lite_write_locks_are_per_file_and_collection(tmp_path, table, corpus) -> None:
    """Two Lite files holding a collection of the same name get two locks (a write to one
    does not wait for the other); the same file, however its path is spelt, gets one."""
    from langchain_matryoshka._milvus import lite_writes

    texts = corpus[0][:10]
    (tmp_path / "sub").mkdir()
    a = MatryoshkaMilvus(table, collection_name="docs", search_dim=8,
                         connection_args={"uri": str(tmp_path / "a.db")})
    b = MatryoshkaMilvus(table, collection_name="docs", search_dim=8,
                         connection_args={"uri": str(tmp_path / "b.db")})
    lock_a = lite_writes(True, "docs", a._connection.uri)
    assert lock_a is not lite_writes(True, "docs", b._connection.uri)
    assert lock_a is lite_writes(True, "docs", a._connection.uri)
    assert lock_a is lite_writes(True, "docs", str(tmp_path / "sub" / ".." / "a.db"))
    assert lock_a is not lite_writes(True, "other", a._connection.uri)

    a.add_texts(texts[:5])  # both collections exist: what follows waits on locks only
    b.add_texts(texts[:5])
    with lock_a:  # a write to b runs while a's lock is held; a write to a waits for it
        to_b = threading.Thread(target=b.add_texts, args=(texts[5:],))
        to_a = threading.Thread(target=a.add_texts, args=(texts[5:],))
        to_b.start()
        to_a.start()
        to_b.join(timeout=60)
        assert not to_b.is_alive()
        assert count(b) == 10
        to_a.join(timeout=1)
        assert to_a.is_alive()
        assert count(a) == 5
    to_a.join(timeout=60)
    assert not to_a.is_alive()
    assert count(a) == 10
    a.close()
    b.close()
