"""Every public sync method has an async twin, and the twins keep the event loop free."""

from __future__ import annotations

import inspect
import threading

import numpy as np

from langchain_matryoshka import MatryoshkaMilvus

# Sync methods with no I/O: nothing to await.
NO_IO = {"as_retriever", "structured_query_translator"}


def public_sync_methods() -> list[str]:
    names = []
    for name, member in inspect.getmembers(MatryoshkaMilvus):
        if name.startswith("_") or name in NO_IO or isinstance(
            inspect.getattr_static(MatryoshkaMilvus, name), property
        ):
            continue
        if callable(member) and not (
            inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
        ):
            names.append(name)
    return names


def test_every_public_sync_method_has_an_async_twin() -> None:
    names = public_sync_methods()
    assert {"add_embeddings", "add_texts", "search_by_metadata", "iter_documents", "count",
            "get_pks", "build_index", "calibrate", "close"} <= set(names)
    missing = []
    for name in names:
        twin = getattr(MatryoshkaMilvus, "a" + name, None)
        if not (inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin)):
            missing.append(name)
    assert missing == [], f"sync methods without an async twin: {missing}"


async def test_aadd_embeddings_stores_what_add_embeddings_stores(lite_uri, table, corpus) -> None:
    texts, docs, _, _ = corpus
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=8)
    ids = await store.aadd_embeddings(texts[:5], docs[:5], [{"n": i} for i in range(5)],
                                      ids=[f"e{i}" for i in range(5)], batch_size=2)
    assert ids == [f"e{i}" for i in range(5)]
    found, vectors = store.get_vectors(ids)
    unit = docs[:5] / np.linalg.norm(docs[:5], axis=1, keepdims=True)
    assert found == ids and np.allclose(vectors, unit, atol=1e-3)
    assert [d.metadata["n"] for d in await store.aget_by_ids(ids)] == list(range(5))
    store.close()


async def test_twins_run_planning_and_milvus_calls_off_the_event_loop(store, monkeypatch) -> None:
    loop_thread = threading.get_ident()
    threads: dict[str, set[int]] = {}
    engine = store._engine
    for name in ("plan", "search", "write", "read", "count", "documents", "delete"):
        real = getattr(engine, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            threads.setdefault(_name, set()).add(threading.get_ident())
            return _real(*args, **kwargs)

        monkeypatch.setattr(engine, name, spy)
    await store.asimilarity_search("query 1", k=3)
    await store.amax_marginal_relevance_search("query 1", k=3, fetch_k=8)
    await store.asearch_batch_with_score(["query 1", "query 2"], k=2)
    await store.aadd_texts(["doc 1"], ids=["x1"])
    await store.asearch_by_metadata(filter={"parity": "odd"}, limit=3)
    await store.acount()
    await store.aget_by_ids(["x1"])
    await store.adelete(["x1"])
    await store.as_retriever().ainvoke("query 1")
    assert set(threads) == {"plan", "search", "write", "read", "count", "documents", "delete"}
    assert all(loop_thread not in ids for ids in threads.values()), threads
