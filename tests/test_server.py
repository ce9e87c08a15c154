"""The store and the retriever on a real Milvus 2.3 server (Embedded Milvus, on loopback).

The server is started once per session by tests/server_fixtures.py in a private network
namespace; each test gets its own collection, dropped afterwards. Run only these with
``pytest -m server``; skip them with ``-m "not server"``.
"""

from __future__ import annotations

import socket
import time
import uuid
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_matryoshka import (
    ConfigurationError,
    MatryoshkaMilvus,
    MilvusConnectionError,
    _milvus,
)
from langchain_matryoshka._milvus import FLOAT16_COSINE_ERROR

from .conftest import corpus_data, table_of
from .test_standard import FunnelRetrieverSuite

pytestmark = pytest.mark.server

#: Strings a metadata filter must match exactly: quotes, backslashes, escapes, unicode.
TRICKY = [
    "plain",
    'a"b',
    "a\\b",
    'a\\"b',
    "it's",
    "new\nline",
    "tab\tx",
    "\\",
    '"',
    "x\\",
    "\\n",
    'x" or metadata["src"] != "',
    "ünï©ødé 🙂",
    "",
]


def _client(uri: str, **kwargs):
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri, timeout=10, **kwargs)


def _count(uri: str, name: str, **kwargs) -> int:
    client = _client(uri, **kwargs)
    try:
        rows = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- standard suites


class TestServerVectorStoreStandard(VectorStoreIntegrationTests):
    """LangChain's vector store suite, unmodified, on the server (6 dims, head 3)."""

    @pytest.fixture
    def vectorstore(  # type: ignore[override]
        self, server_uri: str, server_collection: str
    ) -> Iterator[VectorStore]:
        store = MatryoshkaMilvus(
            self.get_embeddings(),
            collection_name=server_collection,
            connection_args={"uri": server_uri},
            search_dim=3,
        )
        try:
            yield store
        finally:
            store.close()


class TestServerRetrieverStandard(FunnelRetrieverSuite):
    def connection(self, request) -> dict:
        return {
            "collection_name": request.getfixturevalue("server_collection"),
            "connection_args": {"uri": request.getfixturevalue("server_uri")},
        }


# ---------------------------------------------------------------------------- fixtures


def _server_store(uri: str, name: str, table, corpus) -> MatryoshkaMilvus:
    """The conftest corpus (200 docs, 32 dims, head 8) in a server collection."""
    texts, _, _, _ = corpus
    store = MatryoshkaMilvus(
        table,
        collection_name=name,
        connection_args={"uri": uri},
        search_dim=8,
    )
    store.add_texts(
        texts,
        metadatas=[{"i": i, "parity": "even" if i % 2 == 0 else "odd"} for i in range(len(texts))],
        ids=[f"id{i}" for i in range(len(texts))],
    )
    return store


@pytest.fixture
def server_store(server_uri, server_collection, table, corpus) -> Iterator[MatryoshkaMilvus]:
    """A store of the test's own, for the tests that write, calibrate or release it."""
    store = _server_store(server_uri, server_collection, table, corpus)
    yield store
    store.close()


@pytest.fixture(scope="module")
def shared_store(milvus_server, module_server_collections) -> Iterator[MatryoshkaMilvus]:
    """The same corpus in one store for the tests that only read it (built once)."""
    corpus = corpus_data()
    store = _server_store(milvus_server.uri, module_server_collections(), table_of(corpus), corpus)
    yield store
    store.close()


def _exact_top(docs: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    d = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    scores = d @ (query / np.linalg.norm(query))
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


# ---------------------------------------------------------------------------- search


def test_funnel_on_server_matches_exact_search(shared_store, corpus) -> None:
    _, docs, qtexts, queries = corpus
    for qtext, query in zip(qtexts[:5], queries[:5]):
        hits = shared_store.similarity_search_with_score(qtext, k=10, candidates=len(docs))
        assert [d.id for d, _ in hits] == [f"id{i}" for i in _exact_top(docs, query, 10)]
        top = docs[int(hits[0][0].id[2:])]
        cos = float(top @ query / (np.linalg.norm(top) * np.linalg.norm(query)))
        assert hits[0][1] == pytest.approx(cos, abs=FLOAT16_COSINE_ERROR)


def test_exact_scan_and_calibration_on_a_server(server_store, corpus) -> None:
    """The exact pass pages through a server collection with a query iterator (pages of
    up to 16,384 rows, the server's largest query); calibration builds on it."""
    _, docs, _, queries = corpus
    ids, _ = server_store.engine.exact(queries[:5], 10)
    assert ids == [[f"id{i}" for i in _exact_top(docs, q, 10)] for q in queries[:5]]
    # the table embeddings know only the corpus' texts: perturbed pseudo-queries
    result = server_store.calibrate(k=5, target_recall=0.8, pseudo="perturbed")
    assert result.reached
    assert server_store.funnel_defaults["candidates"] == result.candidates


def test_documents_after_the_rerank_on_a_server(shared_store, server_uri, corpus) -> None:
    _, _, qtexts, _ = corpus
    assert not shared_store._engine.fetch_after_rerank  # "auto": one read on servers
    lazy = MatryoshkaMilvus(
        shared_store.embeddings,
        collection_name=shared_store.collection_name,
        connection_args={"uri": server_uri},
        fetch_documents="after_rerank",
    )
    for kwargs in ({}, {"filter": {"parity": "even"}}):
        assert lazy.search_batch_with_score(qtexts[:6], k=5, **kwargs) == (
            shared_store.search_batch_with_score(qtexts[:6], k=5, **kwargs)
        )
    lazy.close()


def test_many_candidates_and_batches(shared_store, corpus) -> None:
    """ef >= limit on HNSW: 256 candidates (more than the rows) and a batch of queries."""
    _, docs, qtexts, _ = corpus
    results = shared_store.search_batch_with_score(qtexts[:8], k=5, candidates=256)
    assert [len(r) for r in results] == [5] * 8
    assert len(shared_store.similarity_search(qtexts[0], k=len(docs), candidates=256)) == len(docs)


def test_reopen_from_a_second_client(server_store, server_uri, server_collection, table, corpus):
    _, _, qtexts, _ = corpus
    second = MatryoshkaMilvus(
        table, collection_name=server_collection, connection_args={"uri": server_uri}
    )
    client = _client(server_uri)
    third = MatryoshkaMilvus(table, collection_name=server_collection, client=client)
    try:
        assert (second.dim, second.search_dim) == (32, 8)  # read from the schema
        assert (third.dim, third.search_dim) == (32, 8)
        assert not _milvus.client_is_lite(client)  # Embedded Milvus says "v2.3.5-lite"
        for q in qtexts[:3]:
            want = [(d.id, round(s, 5)) for d, s in server_store.similarity_search_with_score(q)]
            assert [(d.id, round(s, 5)) for d, s in second.similarity_search_with_score(q)] == want
            assert [(d.id, round(s, 5)) for d, s in third.similarity_search_with_score(q)] == want
        # a write through one client is seen by the others: at once at "Strong", within
        # the server's bounded staleness at the default "Session" (docs/speed.md)
        second.add_texts(["doc 7"], metadatas=[{"via": "second"}], ids=["id7"])
        strong = MatryoshkaMilvus(
            table, collection_name=server_collection, client=client, consistency_level="Strong"
        )
        assert strong.get_by_ids(["id7"])[0].metadata == {"via": "second"}
        deadline = time.monotonic() + 10
        while server_store.get_by_ids(["id7"])[0].metadata != {"via": "second"}:
            assert time.monotonic() < deadline, "another client's write unseen after 10 s"
            time.sleep(0.5)
    finally:
        second.close()
        third.close()
        client.close()


def test_released_collection_is_loaded_when_opened(
    server_store, server_uri, server_collection, table, corpus
) -> None:
    _, _, qtexts, _ = corpus
    client = _client(server_uri)
    try:
        client.release_collection(server_collection)
    finally:
        client.close()
    reopened = MatryoshkaMilvus(
        table, collection_name=server_collection, connection_args={"uri": server_uri}
    )
    try:
        assert len(reopened.similarity_search(qtexts[0], k=3)) == 3
    finally:
        reopened.close()


# ---------------------------------------------------------------------------- filters


@pytest.fixture(scope="module")
def tricky_store(milvus_server, module_server_collections) -> Iterator[MatryoshkaMilvus]:
    """Values with quotes and backslashes, for the tests that only search them."""
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        collection_name=module_server_collections(),
        connection_args={"uri": milvus_server.uri},
        search_dim=4,
    )
    store.add_texts(
        [f"text {i}" for i in range(len(TRICKY))],
        metadatas=[{"src": v, 'we"ird\\key': v} for v in TRICKY],
        ids=[f"t{i}" for i in range(len(TRICKY))],
    )
    yield store
    store.close()


@pytest.mark.parametrize("key", ["src", 'we"ird\\key'])
def test_filter_matches_quotes_and_backslashes_exactly(tricky_store, key) -> None:
    n = len(TRICKY)
    for i, value in enumerate(TRICKY):
        got = tricky_store.similarity_search("text 0", k=n, filter={key: value})
        assert [d.id for d in got] == [f"t{i}"], repr(value)
    pair = tricky_store.similarity_search("text 0", k=n, filter={key: [TRICKY[1], TRICKY[2]]})
    assert sorted(d.id for d in pair) == ["t1", "t2"]


def test_expr_with_quoted_literals(tricky_store) -> None:
    n = len(TRICKY)
    for i, value in enumerate(TRICKY):
        expr = f'metadata["src"] == {_milvus.quote(value)}'
        assert [d.id for d in tricky_store.similarity_search("text 1", k=n, expr=expr)] == [f"t{i}"]
    # an injection attempt is a plain value that matches nothing
    assert tricky_store.similarity_search("text 1", k=n, filter={"src": '" or "" == "'}) == []


def test_expr_and_filter_together(shared_store, corpus) -> None:
    _, _, qtexts, _ = corpus
    hits = shared_store.similarity_search(
        qtexts[0], k=200, expr='metadata["i"] >= 100', filter={"parity": "even"}
    )
    assert {d.metadata["i"] for d in hits} == set(range(100, 200, 2))
    # `in` on a JSON path works on servers (Milvus Lite refuses it)
    hits = shared_store.similarity_search(qtexts[0], k=10, expr='metadata["i"] in [1, 2, 3]')
    assert sorted(d.id for d in hits) == ["id1", "id2", "id3"]


# ---------------------------------------------------------------------------- writes


def test_delete_by_ids_filter_and_expr(server_store, server_uri, server_collection, corpus):
    _, _, qtexts, _ = corpus
    assert server_store.delete(ids=["id0", "id1", "missing"])
    assert server_store.get_by_ids(["id0", "id1", "id2"])[0].id == "id2"
    assert _count(server_uri, server_collection) == 198
    server_store.delete(filter={"parity": "odd"})
    assert _count(server_uri, server_collection) == 99
    server_store.delete(expr='metadata["i"] >= 100')
    assert _count(server_uri, server_collection) == 49
    left = {d.id for d in server_store.similarity_search(qtexts[0], k=200, candidates=256)}
    assert left == {f"id{i}" for i in range(2, 100, 2)}


def test_upsert_replaces_rows(server_store, server_uri, server_collection) -> None:
    server_store.add_texts(["doc 5"], metadatas=[{"v": 2}], ids=["id5"])
    assert _count(server_uri, server_collection) == 200
    assert server_store.get_by_ids(["id5"])[0].metadata == {"v": 2}
    # new content under an old id: it is found as the new text, once
    server_store.add_texts(["doc 6"], metadatas=[{"v": 3}], ids=["id5"])
    assert _count(server_uri, server_collection) == 200
    hits = server_store.similarity_search("doc 6", k=2)
    assert sorted(d.id for d in hits) == ["id5", "id6"]
    assert [d.page_content for d in hits] == ["doc 6", "doc 6"]


def test_adapter_query_and_count(shared_store, server_uri) -> None:
    """An empty filter needs a limit on servers: the adapter's query() handles it."""
    client = _client(server_uri)
    try:
        coll = _milvus.MilvusCollection(client, shared_store.collection_name, lite=False)
        assert coll.count() == 200
        assert len(coll.query("")) == 200
        assert len(coll.query("", limit=7)) == 7
    finally:
        client.close()


# ---------------------------------------------------------------------------- connection options


@pytest.mark.parametrize(
    "options",
    [
        {"token": "root:Milvus"},
        {"user": "root", "password": "Milvus"},
        {"db_name": "default"},
        {"timeout": 3},
        {"token": "root:Milvus", "db_name": "default", "timeout": 5.5},
    ],
    ids=["token", "user-password", "db_name", "timeout", "all"],
)
def test_connection_options(server_uri, server_collection, options) -> None:
    emb = DeterministicFakeEmbedding(size=8)
    store = MatryoshkaMilvus(
        emb,
        collection_name=server_collection,
        connection_args={"uri": server_uri, **options},
        search_dim=2,
    )
    try:
        store.add_texts(["alpha", "beta"], ids=["a", "b"])
        assert [d.id for d in store.similarity_search("alpha", k=1)] == ["a"]
    finally:
        store.close()


def test_db_name_selects_the_database(server_uri, table, corpus) -> None:
    texts, _, _, _ = corpus
    db, name = f"mm_{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:12]}"
    admin = _client(server_uri)
    admin.create_database(db)
    try:
        in_db = MatryoshkaMilvus(
            table,
            collection_name=name,
            connection_args={"uri": server_uri, "db_name": db},
            search_dim=8,
        )
        in_db.add_texts(texts[:10], ids=[f"id{i}" for i in range(10)])
        in_default = MatryoshkaMilvus(
            table, collection_name=name, connection_args={"uri": server_uri}
        )
        assert in_default.dim is None  # no such collection in the default database
        assert in_default.similarity_search(texts[0], k=3) == []
        assert _count(server_uri, name, db_name=db) == 10
        in_db.close()
        in_default.close()
    finally:
        scoped = _client(server_uri, db_name=db)
        for coll in scoped.list_collections():
            scoped.drop_collection(coll)
        scoped.close()
        admin.drop_database(db)
        admin.close()


def test_missing_database_is_a_connection_error(server_uri) -> None:
    with pytest.raises(MilvusConnectionError, match=r"db_name='no_such_db'") as info:
        MatryoshkaMilvus(
            DeterministicFakeEmbedding(size=8),
            connection_args={"uri": server_uri, "db_name": "no_such_db"},
        )
    assert server_uri in str(info.value)


@pytest.mark.parametrize("level", ["Session", "bounded", "Eventually", "Strong"])
def test_consistency_level_is_passed(server_uri, server_collection, level) -> None:
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=8),
        collection_name=server_collection,
        connection_args={"uri": server_uri},
        consistency_level=level,
        search_dim=2,
    )
    try:
        store.add_texts(["alpha", "beta"], ids=["a", "b"])
        name = _milvus.consistency_level_name(level)
        client = _client(server_uri)
        created = client.describe_collection(server_collection)["consistency_level"]
        client.close()
        # Milvus' proto numbers: Strong 0, Session 1, Bounded 2, Eventually 3
        assert created == {"Strong": 0, "Session": 1, "Bounded": 2, "Eventually": 3}[name]
        if name in ("Session", "Strong"):  # both see this client's own writes at once
            assert {d.id for d in store.similarity_search("alpha", k=2)} == {"a", "b"}
    finally:
        store.close()


@pytest.mark.parametrize("level", ["strongest", "", 1, None])
def test_invalid_consistency_level(server_uri, level) -> None:
    with pytest.raises(ConfigurationError, match="consistency_level"):
        MatryoshkaMilvus(
            DeterministicFakeEmbedding(size=8),
            connection_args={"uri": server_uri},
            consistency_level=level,
        )


@pytest.mark.parametrize("key", ["timeout", "call_timeout"])
@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_invalid_timeout(key, value) -> None:
    with pytest.raises(ConfigurationError, match=key):
        MatryoshkaMilvus(
            DeterministicFakeEmbedding(size=8),
            connection_args={"uri": f"http://127.0.0.1:{_closed_port()}", key: value},
        )


def test_unreachable_server_is_a_connection_error() -> None:
    """Nothing listens on the port: refused at once, well within the timeout."""
    uri = f"http://127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    with pytest.raises(MilvusConnectionError) as info:
        MatryoshkaMilvus(DeterministicFakeEmbedding(size=8), connection_args={"uri": uri})
    elapsed = time.monotonic() - began
    assert uri in str(info.value)
    assert elapsed < 5, f"refused connection took {elapsed:.1f} s"


def test_unresponsive_server_honours_the_timeout() -> None:
    """A port that accepts but never answers: the connect timeout ends the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(MilvusConnectionError, match=r"within 2 s") as info:
            MatryoshkaMilvus(
                DeterministicFakeEmbedding(size=8), connection_args={"uri": uri, "timeout": 2}
            )
        elapsed = time.monotonic() - began
    assert uri in str(info.value)
    assert 1.5 <= elapsed < 6, f"timeout=2 took {elapsed:.1f} s"


# ---------------------------------------------------------------------------- index settings


def test_index_build_parameters_reach_the_server(server_uri, server_collection) -> None:
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=8),
        collection_name=server_collection,
        connection_args={"uri": server_uri},
        index_params={"M": 8, "efConstruction": 64},
        search_dim=2,
    )
    try:
        store.add_texts(["alpha"], ids=["a"])
        client = _client(server_uri)
        desc = client.describe_index(server_collection, _milvus.FIELD_HEAD)
        client.close()
        assert desc["index_type"] == "HNSW" and desc["metric_type"] == "IP"
        assert (str(desc["M"]), str(desc["efConstruction"])) == ("8", "64")
    finally:
        store.close()


def test_ivf_index_on_server(server_uri, server_collection, table, corpus) -> None:
    texts, docs, qtexts, queries = corpus
    store = MatryoshkaMilvus(
        table,
        collection_name=server_collection,
        connection_args={"uri": server_uri},
        index_type="IVF_FLAT",
        index_params={"nlist": 4},
        search_params={"nprobe": 4},
        search_dim=8,
    )
    try:
        store.add_texts(texts, ids=[f"id{i}" for i in range(len(texts))])
        hits = store.similarity_search(qtexts[0], k=5, candidates=len(texts))
        assert [d.id for d in hits] == [f"id{i}" for i in _exact_top(docs, queries[0], 5)]
    finally:
        store.close()


def _texts_store(uri: str, name: str, n: int) -> MatryoshkaMilvus:
    """A store of ``n`` texts ``text {i}`` with ids ``doc-{i}`` (16 dims, head 4)."""
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        collection_name=name,
        connection_args={"uri": uri},
        search_dim=4,
    )
    try:
        store.add_texts([f"text {i}" for i in range(n)], ids=[f"doc-{i}" for i in range(n)])
    except BaseException:
        store.close()
        raise
    return store


def test_build_index_returns_once_every_segment_is_served_through_the_index(
    server_uri, server_collection
) -> None:
    """A 2.3 server searches a sealed segment through a temporary IVF index of its own
    until its query node swaps the built index in, a while after describe_index says
    Finished; build_index() returns after that swap, so searches use the index."""
    from langchain_matryoshka._indexes import MIN_INDEXED_SEGMENT_ROWS

    n = 3000
    store = _texts_store(server_uri, server_collection, n)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # served in time: no warning
            store.build_index()
        segments = store.client.list_loaded_segments(server_collection)
        assert sum(s.num_rows for s in segments) == n
        big = [s for s in segments if s.num_rows >= MIN_INDEXED_SEGMENT_ROWS]
        assert big and all(s.index_name == "head" for s in big), segments
        for i in np.random.default_rng(0).choice(n, 10, replace=False):
            assert [d.id for d in store.similarity_search(f"text {i}", k=1)] == [f"doc-{i}"]
    finally:
        store.close()


def test_build_index_warns_when_segments_are_still_served_without_the_index(
    server_uri, server_collection, monkeypatch
) -> None:
    """A segment the server does not index (here: below its 1,024-row threshold, which the
    test lowers on the package's side) still unserved when the wait runs out: the call
    returns, with a warning that names the collection and what to do; searches go on."""
    from langchain_matryoshka import _indexes

    store = _texts_store(server_uri, server_collection, 200)
    try:
        monkeypatch.setattr(_indexes, "MIN_INDEXED_SEGMENT_ROWS", 1)
        monkeypatch.setattr(_indexes, "INDEX_SERVE_TIMEOUT", 1.0)
        expected = rf"collection '{server_collection}': 1 s after"
        with pytest.warns(UserWarning, match=expected) as rec:
            store.build_index()
        assert "store.build_index() to wait again" in str(rec[0].message)
        assert rec[0].filename == __file__  # points at the caller's line
        assert [d.id for d in store.similarity_search("text 7", k=1)] == ["doc-7"]
    finally:
        store.close()
