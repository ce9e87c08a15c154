"""The default "Session" read consistency on a real Milvus 2.3 server (see _consistency.py).

A store's reads see its own inserts, upserts and deletes (the delete-then-search case
pymilvus' own "Session" got wrong on 2.3) by reading at a server timestamp taken after
its last write; reads with no write pending run at "Bounded".
"""

from __future__ import annotations

import time

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_matryoshka import MatryoshkaMilvus

pytestmark = pytest.mark.server

DIM = 64


def _store(uri: str, name: str, **kwargs) -> MatryoshkaMilvus:
    return MatryoshkaMilvus(
        embedding=DeterministicFakeEmbedding(size=DIM),
        connection_args={"uri": uri},
        collection_name=name,
        **kwargs,
    )


def _ids(docs) -> set[str]:
    return {d.id for d in docs}


def test_default_is_session_and_a_read_after_a_write_uses_a_server_timestamp(
    server_uri: str, server_collection: str
) -> None:
    store = _store(server_uri, server_collection)
    assert _session(store).level == "Session" and _session(store).active
    store.add_texts(["alpha"], ids=["a"])
    session = _session(store)
    assert session.pending
    before = session.allocations
    assert "a" in _ids(store.similarity_search("alpha", k=3))
    assert session.allocations == before + 1
    assert not session.pending and session.timestamp is not None
    kwargs = session.read_kwargs()
    assert kwargs == {"consistency_level": "Customized", "guarantee_timestamp": session.timestamp}
    # Later reads reuse the timestamp: no further server call.
    store.similarity_search("alpha", k=3)
    assert session.allocations == before + 1


def _session(store: MatryoshkaMilvus):
    return store._engine.collection.session


def test_own_delete_then_search_never_returns_the_deleted_document(
    server_uri: str, server_collection: str
) -> None:
    store = _store(server_uri, server_collection)
    store.add_texts([f"text {i}" for i in range(20)], ids=[str(i) for i in range(20)])
    for i in range(20):
        store.delete(ids=[str(i)])
        found = _ids(store.similarity_search(f"text {i}", k=20))
        assert str(i) not in found, f"deleted {i} returned"
        assert found == {str(j) for j in range(20)} - {str(i)}
        store.add_texts([f"text {i}"], ids=[str(i)])
        assert str(i) in _ids(store.similarity_search(f"text {i}", k=20))


def test_own_upsert_is_seen_by_the_next_read(server_uri: str, server_collection: str) -> None:
    store = _store(server_uri, server_collection)
    store.add_texts(["first"], ids=["x"], metadatas=[{"v": 1}])
    for v in range(2, 8):
        store.add_texts(["first"], ids=["x"], metadatas=[{"v": v}])
        (doc,) = store.get_by_ids(["x"])
        assert doc.metadata["v"] == v


def test_reads_with_no_pending_write_run_at_bounded(
    server_uri: str, server_collection: str
) -> None:
    store = _store(server_uri, server_collection)
    store.add_texts(["alpha"], ids=["a"])
    session = _session(store)
    store.similarity_search("alpha", k=1)
    session.taken_at -= 60  # the window has passed
    assert session.read_kwargs() == {"consistency_level": "Bounded"}


def test_another_store_sees_the_write_within_bounded_staleness_or_at_strong(
    server_uri: str, server_collection: str
) -> None:
    writer = _store(server_uri, server_collection)
    writer.add_texts(["seed"], ids=["seed"])
    reader = _store(server_uri, server_collection)
    strong = _store(server_uri, server_collection, consistency_level="Strong")
    writer.add_texts(["fresh"], ids=["fresh"])
    assert "fresh" in _ids(strong.similarity_search("fresh", k=5))
    deadline = time.monotonic() + 10
    while "fresh" not in _ids(reader.similarity_search("fresh", k=5)):
        assert time.monotonic() < deadline, "another store's write not seen within 10 s"
        time.sleep(0.5)


def test_strong_and_bounded_stay_selectable(server_uri: str, server_collection: str) -> None:
    for level in ("Strong", "Bounded", "Eventually"):
        store = _store(server_uri, server_collection, consistency_level=level)
        assert _session(store).read_kwargs() == {"consistency_level": level}
