"""Faults on a real Milvus 2.3 server: a hung or slow server, a restart, a kill mid-ingest.

Every call the store makes on a server has a deadline (``call_timeout``; ``index_timeout``
for flush, load and index creation) and fails with :class:`MilvusConnectionError` naming
the uri; reads are retried with backoff, so the same store and retriever work again once
a restarted server answers. The hung and slow servers are a loopback relay in front of
the session's server (tests/relay.py); the restarts use a server of this module's own
(tests/server.py), SIGKILLed and started again on the same data and port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_matryoshka import MatryoshkaMilvus, MilvusConnectionError

from .conftest import TableEmbeddings, matryoshka_like
from .relay import Relay

pytestmark = pytest.mark.server


def _port(uri: str) -> int:
    return int(uri.rsplit(":", 1)[1])


def _fails_in_time(call: Callable[[], object], uri: str, limit: float, match: str) -> float:
    """``call`` raises the package's connection error naming ``uri`` within ``limit`` s
    (plus slack for a loaded machine); returns the seconds it took."""
    began = time.monotonic()
    with pytest.raises(MilvusConnectionError, match=match) as info:
        call()
    elapsed = time.monotonic() - began
    assert repr(uri) in str(info.value)
    assert elapsed < limit + 3, f"{elapsed:.1f} s for a {limit} s limit"
    return elapsed


@pytest.fixture
def corpus32() -> tuple[TableEmbeddings, list[str]]:
    docs = matryoshka_like(200, 32, seed=5)
    texts = [f"doc {i}" for i in range(len(docs))]
    return TableEmbeddings(dict(zip(texts, docs))), texts


# ---------------------------------------------------------------------------- hung and slow


def test_every_call_to_a_hung_server_is_bounded(server_uri, server_collection, corpus32):
    """The relay stops passing bytes: search, retriever, get, write, delete, build_index,
    calibrate, an async search and opening a second store each fail within their limit."""
    table, texts = corpus32
    writer = MatryoshkaMilvus(
        table,
        collection_name=server_collection,
        connection_args={"uri": server_uri},
        search_dim=8,
    )
    writer.add_texts(texts, ids=[f"id{i}" for i in range(len(texts))])
    writer.close()
    relay = Relay(_port(server_uri))
    args = {"uri": relay.uri, "call_timeout": 1.5, "index_timeout": 2.5, "timeout": 2}
    store = MatryoshkaMilvus(
        table,
        collection_name=server_collection,
        connection_args=args,
    )
    try:
        retriever = store.as_retriever(search_kwargs={"k": 3})
        assert [d.id for d in retriever.invoke("doc 7")][:1] == ["id7"]
        relay.paused.set()
        calls: dict[str, tuple[Callable[[], object], float]] = {
            "search": (lambda: store.similarity_search("doc 7", k=1), 1.5),
            "retriever": (lambda: retriever.invoke("doc 7"), 1.5),
            "async search": (lambda: asyncio.run(store.asimilarity_search("doc 7", k=1)), 1.5),
            "get": (lambda: store.get_by_ids(["id1"]), 1.5),
            "write": (lambda: store.add_texts(["doc 1"], ids=["again"]), 1.5),
            "delete": (lambda: store.delete(["id3"]), 1.5),
            "build_index": (store.build_index, 2.5),
            "calibrate": (lambda: store.calibrate(k=3, n_pseudo=20), 1.5),
            "open": (
                lambda: MatryoshkaMilvus(
                    table, collection_name=server_collection, connection_args=args
                ),
                2,
            ),
        }
        took = {}
        for name, (call, limit) in calls.items():
            took[name] = _fails_in_time(
                call, relay.uri, limit, rf"did not answer \w+ within {limit:g} s"
            )
        print("\nhung server, seconds to the error:", {k: round(v, 2) for k, v in took.items()})
    finally:
        relay.close()
        store.close()


def test_a_slow_server_is_waited_for_within_the_limit(server_uri, server_collection, corpus32):
    """Every chunk delayed 50 ms: the same answers as without the relay; delayed past the
    limit: the package's error, in time."""
    table, texts = corpus32
    direct = MatryoshkaMilvus(
        table,
        collection_name=server_collection,
        connection_args={"uri": server_uri},
        search_dim=8,
    )
    relay = Relay(_port(server_uri), delay=0.05)
    slow = MatryoshkaMilvus(
        table,
        collection_name=server_collection,
        connection_args={"uri": relay.uri, "call_timeout": 20, "index_timeout": 30},
        search_dim=8,
        consistency_level="Session",  # sees its own writes without Strong's 200 ms a read
    )
    try:
        began = time.monotonic()
        slow.add_texts(texts, ids=[f"id{i}" for i in range(len(texts))])
        slow.delete(["id0"])
        slow.build_index()
        queries = [f"doc {i}" for i in range(1, 40, 7)]
        assert slow.search_batch_with_score(queries, k=5) == direct.search_batch_with_score(
            queries, k=5
        )
        assert slow.get_by_ids(["id0", "id1"]) == direct.get_by_ids(["id1"])
        # the same calibration as through a direct connection (pseudo-queries are seeded)
        result = slow.calibrate(k=3, n_pseudo=10, persist=False)
        reference = direct.calibrate(k=3, n_pseudo=10, persist=False)
        assert (result.reached, result.candidates, [p.recall for p in result.curve]) == (
            reference.reached,
            reference.candidates,
            [p.recall for p in reference.curve],
        )
        assert result.n_queries == 10 and result.curve
        print(
            f"\nslow server (50 ms per chunk): write, delete, build_index, search, get, "
            f"calibrate in {time.monotonic() - began:.1f} s"
        )

        tight = MatryoshkaMilvus(
            table,
            collection_name=server_collection,
            connection_args={"uri": relay.uri, "call_timeout": 1.5},
        )
        relay.delay = 2.0  # a round trip now takes >= 4 s
        _fails_in_time(
            lambda: tight.similarity_search("doc 8", k=1),
            relay.uri,
            1.5,
            "did not answer search within 1.5 s",
        )
        _fails_in_time(
            lambda: tight.add_texts(["doc 8"], ids=["x"]),
            relay.uri,
            1.5,
            r"did not answer \w+ within 1.5 s",
        )
        tight.close()
    finally:
        relay.close()
        slow.close()
        direct.close()


# ---------------------------------------------------------------------------- restarts


def _until_it_answers(call: Callable[[], object], within: float = 60) -> tuple[object, float]:
    """Call until it works; every failure meanwhile must be the package's connection error."""
    began = time.monotonic()
    while True:
        try:
            return call(), time.monotonic() - began
        except MilvusConnectionError:
            if time.monotonic() - began > within:
                raise


@pytest.fixture
def restart_store(restartable_server) -> Iterator[MatryoshkaMilvus]:
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        collection_name="restart",
        connection_args={"uri": restartable_server.uri, "call_timeout": 2},
        search_dim=4,
        drop_old=True,
    )
    yield store
    store.close()


def test_store_and_retriever_work_again_after_a_server_restart(
    restartable_server, restart_store
) -> None:
    server, store = restartable_server, restart_store
    store.add_texts([f"text {i}" for i in range(300)], ids=[f"d{i}" for i in range(300)])
    retriever = store.as_retriever(search_kwargs={"k": 2})
    assert [d.id for d in retriever.invoke("text 7")][0] == "d7"

    server.kill()
    down = {}
    for name, call in {
        "search": lambda: store.similarity_search("text 7", k=1),
        "retriever": lambda: retriever.invoke("text 7"),
        "get": lambda: store.get_by_ids(["d1"]),
        "add_texts": lambda: store.add_texts(["text new"], ids=["new"]),
        "delete": lambda: store.delete(["d3"]),
    }.items():
        down[name] = _fails_in_time(call, server.uri, 2, "could not be reached")
    restart = server.restart()

    top, first = _until_it_answers(lambda: store.similarity_search("text 7", k=1))
    assert [d.id for d in top] == ["d7"]
    assert [d.id for d in retriever.invoke("text 8")][0] == "d8"
    # acknowledged writes are all there; the refused ones were not applied
    assert store._engine.collection.count() == 300
    assert store.get_by_ids(["new"]) == [] and store.get_by_ids(["d3"])[0].id == "d3"
    store.add_texts(["text new"], ids=["new"])
    store.delete(["d3"])
    assert [d.id for d in store.get_by_ids(["new", "d3"])] == ["new"]
    print(
        f"\nserver down: errors after {', '.join(f'{k} {v:.1f} s' for k, v in down.items())}; "
        f"restart {restart:.1f} s; the same store answered {first:.1f} s after it"
    )


class _Counting(DeterministicFakeEmbedding):
    """Counts the documents embedded, so the test knows how far an ingestion got."""

    embedded: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out = super().embed_documents(texts)
        self.embedded += len(texts)
        return out


def test_server_killed_mid_ingestion_and_the_rerun_holds_every_row_once(
    restartable_server,
) -> None:
    """A bulk ingestion through the store (12 add_texts calls of 250) loses its server
    mid-way; the server comes back; the same ingestion run again ends with every row
    exactly once, and the index serves."""
    server, n, batch = restartable_server, 3000, 250
    embedding = _Counting(size=16)
    store = MatryoshkaMilvus(
        embedding,
        collection_name="ingest",
        search_dim=4,
        drop_old=True,
        connection_args={"uri": server.uri, "call_timeout": 5},
    )
    ids = [f"doc-{i:05d}" for i in range(n)]

    def ingest(acked: list[int], errors: list[BaseException]) -> None:
        try:
            for start in range(0, n, batch):
                store.add_texts(
                    [f"text {i}" for i in range(start, start + batch)],
                    metadatas=[{"i": i} for i in range(start, start + batch)],
                    ids=ids[start : start + batch],
                )
                acked.append(start + batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            failed_at.append(time.monotonic())

    acked: list[int] = []
    errors: list[BaseException] = []
    failed_at: list[float] = []
    writer = threading.Thread(target=ingest, args=(acked, errors))
    writer.start()
    while embedding.embedded < n // 2 and writer.is_alive():
        time.sleep(0.01)
    server.kill()  # a call is in flight or about to be
    killed_at = time.monotonic()
    writer.join(60)
    assert not writer.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], MilvusConnectionError), errors
    acked_rows = acked[-1] if acked else 0
    assert 0 < acked_rows < n

    server.restart()
    found, _ = _until_it_answers(store._engine.collection.count)
    present = {d.id for d in store.get_by_ids(ids[:acked_rows])}
    assert len(present) == acked_rows  # every acknowledged row survived the kill
    assert acked_rows <= found <= acked_rows + batch  # at most the batch in flight more

    rerun: list[int] = []
    ingest(rerun, errors)
    assert len(errors) == 1 and rerun[-1] == n
    store.build_index()
    count = store._engine.collection.count()
    stored = store._engine.collection.all_ids()
    print(
        f"\nkilled mid-ingest: the writer got {type(errors[0]).__name__} "
        f"{failed_at[0] - killed_at:.1f} s after the kill ({str(errors[0])[:160]}...); "
        f"acknowledged {acked_rows} rows, {found} found after the "
        f"restart; after the rerun expected {n}, found {count} ({len(set(stored))} distinct)"
    )
    assert count == n and len(stored) == n and set(stored) == set(ids)
    rng = np.random.default_rng(0)
    for i in rng.choice(n, 5, replace=False):
        assert [d.id for d in store.similarity_search(f"text {i}", k=1)] == [f"doc-{i:05d}"]
    docs = store.get_by_ids([ids[0], ids[-1]])
    assert [(d.page_content, d.metadata) for d in docs] == [
        ("text 0", {"i": 0}),
        (f"text {n - 1}", {"i": n - 1}),
    ]
    store.close()
