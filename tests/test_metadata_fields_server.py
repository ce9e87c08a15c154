"""Declared metadata columns, partition-key tenants and filtered search on a Milvus 2.3 server.

On servers ``partition_key`` is Milvus' own partition key: the server prunes a search
filtered on the tenant to the tenant's partition. Milvus 2.3 stores no nulls (every
declared key must be in every document) and builds Trie / STL_SORT scalar indexes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._filtered import EXACT_ROWS
from langchain_matryoshka.errors import InvalidInputError

from .conftest import TableEmbeddings, matryoshka_like

pytestmark = pytest.mark.server

N = 1500
K = 10
FIELDS = {"sel1": int, "sel10": int, "tenant": str, "score": float}


def _meta(i: int) -> dict:
    meta = {"sel1": i % 100, "sel10": i % 10, "tenant": f"t{i % 5}", "score": i / 3, "j": i % 7}
    if i % 50 == 0:
        del meta["j"]  # an undeclared key some documents lack
    return meta


@pytest.fixture(scope="module")
def data():
    docs = matryoshka_like(N, 32, seed=31)
    queries = matryoshka_like(6, 32, seed=32)
    texts = [f"doc {i}" for i in range(N)]
    qtexts = [f"q {i}" for i in range(len(queries))]
    table = TableEmbeddings({**dict(zip(texts, docs)), **dict(zip(qtexts, queries))})
    return texts, docs, qtexts, queries, table


def _store(uri: str, name: str, data) -> MatryoshkaMilvus:
    texts, _, _, _, table = data
    s = MatryoshkaMilvus(
        table,
        collection_name=name,
        connection_args={"uri": uri},
        search_dim=8,
        metadata_fields=FIELDS,
        partition_key="tenant",
        num_partitions=8,
    )
    s.add_texts(texts, [_meta(i) for i in range(N)], ids=[f"id{i}" for i in range(N)])
    return s


@pytest.fixture(scope="module")
def shared(milvus_server, module_server_collections, data) -> Iterator[MatryoshkaMilvus]:
    """One store for the tests that only read it (built once: a server write is slow)."""
    s = _store(milvus_server.uri, module_server_collections(), data)
    yield s
    s.close()


@pytest.fixture
def store(server_uri, server_collection, data) -> Iterator[MatryoshkaMilvus]:
    """A store of the test's own, for the tests that write or delete."""
    s = _store(server_uri, server_collection, data)
    yield s
    s.close()


def _reference(docs, query, keep) -> list[str]:
    rows = [i for i in range(N) if keep(_meta(i))]
    d = docs[rows] / np.linalg.norm(docs[rows], axis=1, keepdims=True)
    d = d.astype(np.float16).astype(np.float32)
    sims = d @ (query / np.linalg.norm(query))
    return [f"id{rows[j]}" for j in np.argsort(-sims, kind="stable")[:K]]


def test_partition_key_and_scalar_indexes_are_the_servers_own(shared) -> None:
    client = shared.engine.collection.client
    desc = client.describe_collection(shared.engine.collection.name)
    tenant = next(f for f in desc["fields"] if f["name"] == "tenant")
    assert tenant.get("is_partition_key") is True
    name = shared.engine.collection.name
    kinds = {
        (d := client.describe_index(name, i))["field_name"]: d["index_type"]
        for i in client.list_indexes(name)
    }
    assert kinds["tenant"] == "Trie" and kinds["sel1"] == kinds["score"] == "STL_SORT"


@pytest.mark.parametrize(
    ("filter_", "keep"),
    [
        ({"sel1": 42}, lambda m: m["sel1"] == 42),
        ({"tenant": "t2", "sel10": 4}, lambda m: m["tenant"] == "t2" and m["sel10"] == 4),
        ({"j": 3, "sel10": 1}, lambda m: m.get("j") == 3 and m["sel10"] == 1),
    ],
)
def test_filtered_search_on_the_server_equals_exact_filtered_search(
    shared, data, filter_, keep
) -> None:
    _, docs, qtexts, queries, _ = data
    for qtext, query in zip(qtexts, queries):
        got = [d.id for d in shared.similarity_search(qtext, k=K, filter=filter_)]
        assert got == _reference(docs, query, keep)
        assert all(keep(d.metadata) for d in shared.similarity_search(qtext, k=K, filter=filter_))


def test_the_head_search_route_on_the_server(shared, data) -> None:
    _, docs, qtexts, queries, _ = data
    shared.engine.exact_rows = 50  # 150 rows match: the head search with a larger ef
    try:
        recalls = []
        for qtext, query in zip(qtexts, queries):
            got = [d.id for d in shared.similarity_search(qtext, k=K, filter={"sel10": 4})]
            assert len(got) == K
            recalls.append(len(set(got) & set(_reference(docs, query, lambda m: m["sel10"] == 4))))
    finally:
        shared.engine.exact_rows = EXACT_ROWS
    assert np.mean(recalls) / K >= 0.99


def test_a_document_moving_tenant_is_found_under_its_new_tenant_only(store, data) -> None:
    texts, _, qtexts, _, _ = data
    meta = {**_meta(7), "tenant": "t4"}  # id7 was t2
    store.add_texts([texts[7]], [meta], ids=["id7"])
    assert store.get_by_ids(["id7"])[0].metadata["tenant"] == "t4"
    in_new = store.similarity_search(texts[7], k=K, filter={"tenant": "t4"})
    in_old = store.similarity_search(texts[7], k=K, filter={"tenant": "t2"})
    assert "id7" in [d.id for d in in_new]
    assert "id7" not in [d.id for d in in_old]
    # re-written in place (same tenant): still found once
    store.add_texts([texts[7]], [meta], ids=["id7"])
    assert [d.id for d in store.similarity_search(texts[7], k=K)].count("id7") == 1
    assert store.count(filter={"tenant": "t4"}) == N // 5 + 1


def test_deleting_and_counting_a_tenant(store) -> None:
    assert store.count(filter={"tenant": "t1"}) == N // 5
    store.delete(filter={"tenant": "t1"})
    assert store.count(filter={"tenant": "t1"}) == 0
    assert store.count() == N - N // 5


def test_a_missing_declared_key_is_refused_on_a_server_without_nulls(store, data) -> None:
    texts, _, _, _, _ = data
    meta = _meta(1)
    del meta["sel1"]
    with pytest.raises(InvalidInputError, match="sel1"):
        store.add_texts([texts[1]], [meta], ids=["id1"])
    assert store.get_by_ids(["id1"])[0].metadata["sel1"] == 1  # nothing half-written


@pytest.mark.parametrize(
    ("op", "value", "keep"),
    [
        ("ne", 3, lambda m: "j" in m and m["j"] != 3),
        ("nin", [3, 4], lambda m: "j" in m and m["j"] not in (3, 4)),
        ("eq", 3, lambda m: m.get("j") == 3),
        ("exists", None, lambda m: "j" in m),
        ("not_exists", None, lambda m: "j" not in m),
    ],
)
def test_conditions_on_a_key_some_documents_lack_are_three_valued_on_the_server(
    shared, op, value, keep
) -> None:
    cond = shared.engine.expressions.compare("j", op, value)
    # alone and inside a conjunction (Milvus 2.3 reads "exists a and b" as exists(a and b))
    assert shared.count(expr=cond) == sum(keep(_meta(i)) for i in range(N))
    both = f"{cond} and sel10 == 1"
    assert shared.count(expr=both) == sum(keep(_meta(i)) and i % 10 == 1 for i in range(N))
