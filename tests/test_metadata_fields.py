"""Declared metadata columns and tenants on a real Milvus Lite.

``metadata_fields`` stores chosen keys as typed columns beside the JSON field;
``partition_key`` spreads documents over partitions by tenant, and a search filtered on
the tenant key searches that tenant's partition only.
"""

from __future__ import annotations

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka.errors import ConfigurationError, InvalidInputError
from langchain_matryoshka.funnel import exact_top_k

from .conftest import TableEmbeddings, matryoshka_like

FIELDS = {
    "source": str,
    "year": int,
    "score": float,
    "public": bool,
    "tags": list[str],
    "tenant": str,
}
N = 120


def _meta(i: int) -> dict:
    meta = {
        "source": f"s{i % 3}",
        "year": 2000 + i % 30,
        "score": i / 7,
        "public": i % 2 == 0,
        "tags": ["a", "b", "c"][: i % 4],
        "tenant": f"t{i % 6}",
        "other": {"nested": [i, "x"]},
    }
    if i % 10 == 3:
        del meta["year"]  # a declared key a document lacks: stored as null
    return meta


@pytest.fixture
def data():
    docs = matryoshka_like(N, 32, seed=11)
    queries = matryoshka_like(10, 32, seed=12)
    texts = [f"doc {i}" for i in range(N)]
    qtexts = [f"q {i}" for i in range(10)]
    table = TableEmbeddings({**dict(zip(texts, docs)), **dict(zip(qtexts, queries))})
    return texts, docs, qtexts, queries, table


def _store(uri, table, **options) -> MatryoshkaMilvus:
    return MatryoshkaMilvus(
        table, connection_args={"uri": uri}, search_dim=8, metadata_fields=FIELDS, **options
    )


@pytest.fixture
def typed(lite_uri, data):
    texts, _, _, _, table = data
    store = _store(lite_uri, table, partition_key="tenant")
    store.add_texts(texts, [_meta(i) for i in range(N)], ids=[f"id{i}" for i in range(N)])
    yield store
    store.close()


def test_declared_keys_are_columns_and_metadata_round_trips(typed) -> None:
    desc = typed.client.describe_collection(typed.collection_name)
    types = {f["name"]: f["type"].name for f in desc["fields"]}
    assert {k: types[k] for k in FIELDS} == {
        "source": "VARCHAR",
        "year": "INT64",
        "score": "DOUBLE",
        "public": "BOOL",
        "tags": "ARRAY",
        "tenant": "VARCHAR",
    }
    docs = typed.get_by_ids([f"id{i}" for i in range(N)])
    assert [d.metadata for d in docs] == [_meta(i) for i in range(N)]
    # the JSON field holds only the undeclared keys
    row = typed.client.query(
        typed.collection_name, filter='id == "id5"', output_fields=["metadata"]
    )
    assert row[0]["metadata"] == {"other": {"nested": [5, "x"]}}


def _exact_filtered(docs, queries, keep, k):
    idx = np.flatnonzero(keep)
    top, _ = exact_top_k(queries, docs[idx], k)
    return [[f"id{idx[j]}" for j in row] for row in top]


@pytest.mark.parametrize(
    ("options", "keep"),
    [
        ({"filter": {"source": "s1"}}, lambda m: m["source"] == "s1"),
        ({"filter": {"year": [2003, 2004, 2005]}}, lambda m: m.get("year") in (2003, 2004, 2005)),
        ({"filter": {"tags": "c"}}, lambda m: "c" in m["tags"]),
        (
            {"filter": {"public": True, "source": "s0"}},
            lambda m: m["public"] and m["source"] == "s0",
        ),
        (
            {"expr": "year >= 2020 and score < 10"},
            lambda m: m.get("year", 0) >= 2020 and m["score"] < 10,
        ),
        ({"expr": 'metadata["year"] >= 2020'}, lambda m: m.get("year", 0) >= 2020),
        ({"expr": 'metadata["other"]["nested"][0] < 50'}, lambda m: m["other"]["nested"][0] < 50),
        ({"filter": {"tenant": "t2"}}, lambda m: m["tenant"] == "t2"),
        ({"filter": {"tenant": ["t1", "t4"], "public": False}},
         lambda m: m["tenant"] in ("t1", "t4") and not m["public"]),
    ],
)
def test_filters_on_declared_keys_equal_exact_filtered_search(typed, data, options, keep) -> None:
    _, docs, qtexts, queries, _ = data
    mask = np.array([keep(_meta(i)) for i in range(N)])
    want = _exact_filtered(docs, queries, mask, 5)
    got = typed.search_batch_with_score(qtexts, k=5, candidates=N, prune_ratio=1.0, **options)
    assert [[d.id for d, _ in row] for row in got] == want


def test_tenants_live_in_their_own_partitions(typed) -> None:
    partitions = set(typed.client.list_partitions(typed.collection_name)) - {"_default"}
    tenancy = typed._engine.layout.tenancy
    assert partitions == {tenancy.partition_of(f"t{i}") for i in range(6)}
    for t in range(6):
        rows = typed.client.query(
            typed.collection_name,
            filter="",
            output_fields=["tenant"],
            partition_names=[tenancy.partition_of(f"t{t}")],
            limit=1000,
        )
        assert rows and {r["tenant"] for r in rows} <= {f"t{i}" for i in range(6)}
        assert f"t{t}" in {r["tenant"] for r in rows}


def test_a_tenant_filter_searches_only_that_tenants_partition(typed, data) -> None:
    _, _, qtexts, _, _ = data
    client = typed._engine.collection.client
    calls = []
    search, query = client.search, client.query

    def spy_search(*args, **kwargs):
        calls.append(("search", kwargs.get("partition_names")))
        return search(*args, **kwargs)

    def spy_query(*args, **kwargs):
        if "full" in kwargs.get("output_fields", []):  # the exact read of few matches
            calls.append(("read", kwargs.get("partition_names")))
        return query(*args, **kwargs)

    client.search, client.query = spy_search, spy_query
    tenancy = typed._engine.layout.tenancy
    part = [tenancy.partition_of("t3")]
    for exact_rows, how in ((0, "search"), (1024, "read")):
        typed.engine.exact_rows = exact_rows  # 0: the head search first
        made = []
        for flt in ({"tenant": "t3"}, {"source": "s1"}, {"tenant": "never-written"}):
            calls.clear()
            typed.similarity_search(qtexts[0], k=3, filter=flt)
            made.append(list(calls))
        assert made[0][0] == (how, part) and all(p == part for _, p in made[0])
        assert made[1][0] == (how, None) and all(p is None for _, p in made[1])
        # the unknown tenant's partition does not exist: nothing is searched
        assert made[2] == []
    typed.engine.exact_rows = 1024
    assert typed.similarity_search(qtexts[0], k=3, filter={"tenant": "never-written"}) == []


def test_a_document_moving_tenant_is_stored_once(typed) -> None:
    meta = {**_meta(7), "tenant": "t-new"}
    typed.add_texts(["doc 7"], [meta], ids=["id7"])
    rows = typed.client.query(typed.collection_name, filter='id == "id7"', output_fields=["tenant"])
    assert [r["tenant"] for r in rows] == ["t-new"]
    assert typed.get_by_ids(["id7"])[0].metadata == meta
    assert [d.id for d in typed.similarity_search("doc 7", k=1, filter={"tenant": "t-new"})] == [
        "id7"
    ]
    assert "id7" not in {
        d.id for d in typed.similarity_search("doc 7", k=30, filter={"tenant": "t1"})
    }


def test_deleting_a_tenant_removes_its_documents_only(typed) -> None:
    typed.delete(filter={"tenant": "t2"})
    left = typed.get_by_ids([f"id{i}" for i in range(N)])
    assert [d.id for d in left] == [f"id{i}" for i in range(N) if i % 6 != 2]


def test_bad_values_are_refused_before_anything_is_embedded(lite_uri, data) -> None:
    texts, _, _, _, table = data
    store = _store(lite_uri, table, partition_key="tenant")
    store.add_texts(texts[:2], [_meta(0), _meta(1)], ids=["a", "b"])
    cases = [
        ({"year": "2020"}, "declared int"),
        ({"year": True}, "declared int"),
        ({"score": "high"}, "declared float"),
        ({"public": 1}, "declared bool"),
        ({"tags": "a"}, "pass a list"),
        ({"tags": [1]}, "declared list"),
        ({"tags": ["x"] * 65}, "max_capacity"),
        ({"source": "x" * 1025}, "max_length"),
        ({"tenant": None}, "tenant key"),
    ]
    for change, needle in cases:
        calls = table.calls
        meta = {**_meta(2), **change}
        if change.get("tenant", 1) is None:
            del meta["tenant"]
        with pytest.raises(InvalidInputError, match=needle):
            store.add_texts([texts[2], texts[3]], [_meta(3), meta], ids=["c", "d"])
        assert table.calls == calls  # nothing embedded
    assert {d.id for d in store.get_by_ids(["a", "b", "c", "d"])} == {"a", "b"}
    store.close()


def test_reopening_reads_the_declared_fields(lite_uri, data) -> None:
    texts, _, _, _, table = data
    store = _store(lite_uri, table)
    store.add_texts(texts[:3], [_meta(i) for i in range(3)], ids=["a", "b", "c"])
    again = MatryoshkaMilvus(table, client=store.client)  # no declaration: the stored one
    assert again._engine.layout.columns == {
        "source": "str", "year": "int", "score": "float", "public": "bool",
        "tags": "list[str]", "tenant": "str",
    }
    assert [d.id for d in again.similarity_search(texts[1], k=3, filter={"source": "s1"})] == ["b"]
    with pytest.raises(ConfigurationError, match="declares metadata_fields"):
        MatryoshkaMilvus(table, client=store.client, metadata_fields={"source": str})
    with pytest.raises(ConfigurationError, match="has partition key None"):
        MatryoshkaMilvus(
            table, client=store.client, metadata_fields=FIELDS, partition_key="tenant"
        )
    store.close()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"metadata_fields": {"year": "integer"}}, "not a supported type"),
        ({"metadata_fields": {"2x": int}}, "cannot be a Milvus field name"),
        ({"metadata_fields": {"text": str}}, "reserved"),
        ({"metadata_fields": {"a": {"type": str, "size": 3}}}, "unknown option"),
        ({"metadata_fields": {"a": {"type": str, "max_length": 0}}}, "max_length=0"),
        ({"metadata_fields": ["a"]}, "is not a dict"),
        ({"partition_key": "tenant"}, "must name a str or int key"),
        ({"metadata_fields": {"t": float}, "partition_key": "t"}, "must name a str or int key"),
        ({"num_partitions": 8}, "needs partition_key"),
        ({"metadata_fields": {"t": str}, "partition_key": "t", "num_partitions": 0}, "[1, 1024]"),
        ({"analyzer": "english"}, "needs full_text_search=True"),
        ({"full_text_search": "yes"}, "must be True or False"),
    ],
)
def test_layout_options_are_checked(lite_uri, table, options, needle) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, **options)


def test_full_text_search_makes_a_bm25_field(lite_uri, data) -> None:
    texts, _, _, _, table = data
    store = MatryoshkaMilvus(
        table, connection_args={"uri": lite_uri}, search_dim=8, full_text_search=True
    )
    store.add_texts(texts[:5], ids=[str(i) for i in range(5)])
    desc = store.client.describe_collection(store.collection_name)
    assert "sparse" in {f["name"] for f in desc["fields"]}
    assert [fn["type"].name for fn in desc.get("functions", [])] == ["BM25"]
    # Milvus Lite's spelling of the English analyzer (it knows no "english" type)
    assert store._engine.layout.full_text.analyzer["tokenizer"] == "standard"
    store.close()
