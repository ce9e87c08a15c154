"""Layout versions: 0.2 collections keep working; version 3 keys, properties, collisions.

The 0.2 collection here is made with raw pymilvus exactly as langchain-matryoshka 0.2
made it (VARCHAR primary key ``id``, full vectors as base64 float16 text), so the test
does not depend on this version's own schema code.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from pymilvus import DataType

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._layout import (
    PROPERTY_FIELDS,
    PROPERTY_LAYOUT,
    id_key,
)
from langchain_matryoshka.errors import ConfigurationError, InvalidInputError, SchemaError
from langchain_matryoshka.funnel import exact_top_k, head_of

from .conftest import TableEmbeddings, matryoshka_like

DIM, HEAD = 32, 8


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_0_2_collection(client, name: str, docs: np.ndarray, version: str | None = None) -> None:
    """A collection and rows as langchain-matryoshka 0.2 wrote them."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("head", DataType.FLOAT_VECTOR, dim=HEAD)
    schema.add_field("full", DataType.VARCHAR, max_length=4 * -(-2 * DIM // 3))
    index = client.prepare_index_params()
    index.add_index(
        field_name="head", index_type="HNSW", metric_type="IP",
        params={"params": {"M": 16, "efConstruction": 200}},
    )
    properties = {"matryoshka.full": "float16-base64", "matryoshka.dim": str(DIM)}
    if version is not None:
        properties["matryoshka.layout"] = version
    client.create_collection(
        name, schema=schema, index_params=index, consistency_level="Strong",
        properties=properties,
    )
    full = [base64.b64encode(v.astype(np.float16).tobytes()).decode() for v in _unit(docs)]
    client.upsert(
        name,
        [
            {"id": f"id{i}", "text": f"doc {i}", "metadata": {"i": i, "even": i % 2 == 0},
             "head": h, "full": f}
            for i, (h, f) in enumerate(zip(head_of(docs, HEAD).tolist(), full))
        ],
    )
    client.flush(name)


@pytest.fixture
def data():
    docs = matryoshka_like(160, DIM, seed=21)
    queries = matryoshka_like(8, DIM, seed=22)
    texts = [f"doc {i}" for i in range(len(docs))]
    qtexts = [f"q {i}" for i in range(len(queries))]
    table = TableEmbeddings({**dict(zip(texts, docs)), **dict(zip(qtexts, queries))})
    return texts, docs, qtexts, queries, table


def test_a_0_2_collection_is_read_and_written_in_its_own_layout(lite_uri, data) -> None:
    texts, docs, qtexts, queries, table = data
    opener = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, collection_name="x")
    make_0_2_collection(opener.client, "old", docs[:120])
    store = MatryoshkaMilvus(table, client=opener.client, collection_name="old")
    assert (store._engine.layout.version, store.dim, store.search_dim) == (2, DIM, HEAD)
    got = store.similarity_search(qtexts[0], k=5, candidates=120, prune_ratio=1.0)
    want = exact_top_k(queries[:1], docs[:120], 5)[0][0]
    assert [d.id for d in got] == [f"id{j}" for j in want]
    assert got[0].metadata == {"i": int(want[0]), "even": int(want[0]) % 2 == 0}
    # writes keep the 0.2 layout: string primary keys, no new fields
    store.add_texts(texts[120:], [{"i": i} for i in range(120, 160)],
                    ids=[f"id{i}" for i in range(120, 160)])
    fields = {f["name"] for f in store.client.describe_collection("old")["fields"]}
    assert fields == {"id", "text", "metadata", "head", "full"}
    assert store.client.get("old", ids=["id150"], output_fields=["text"])[0]["text"] == "doc 150"
    got = store.similarity_search(qtexts[1], k=5, candidates=160, prune_ratio=1.0)
    assert [d.id for d in got] == [f"id{j}" for j in exact_top_k(queries[1:2], docs, 5)[0][0]]
    assert store.similarity_search(qtexts[1], k=3, filter={"even": True}, candidates=160)
    store.delete(["id0", "id150"])
    assert [d.id for d in store.get_by_ids(["id0", "id1", "id150"])] == ["id1"]
    with pytest.raises(ConfigurationError, match="written by langchain-matryoshka 0.2"):
        MatryoshkaMilvus(table, client=opener.client, collection_name="old",
                         metadata_fields={"i": int})
    opener.close()


def test_a_newer_layout_is_refused(lite_uri, data) -> None:
    _, docs, _, _, table = data
    opener = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, collection_name="x")
    make_0_2_collection(opener.client, "future", docs[:10], version="99")
    with pytest.raises(SchemaError, match="layout version 99, written by a newer"):
        MatryoshkaMilvus(table, client=opener.client, collection_name="future")
    opener.close()


def test_new_collections_are_version_3_with_hashed_keys(lite_uri, data) -> None:
    texts, _, _, _, table = data
    store = MatryoshkaMilvus(
        table, connection_args={"uri": lite_uri}, search_dim=HEAD,
        metadata_fields={"i": int},
    )
    store.add_texts(texts[:5], [{"i": i} for i in range(5)], ids=list("abcde"))
    desc = store.client.describe_collection(store.collection_name)
    assert desc["properties"][PROPERTY_LAYOUT] == "3"
    assert json.loads(desc["properties"][PROPERTY_FIELDS]) == ["i"]
    pk = next(f for f in desc["fields"] if f.get("is_primary"))
    assert (pk["name"], pk["type"]) == ("pk", DataType.INT64)
    rows = store.client.query(store.collection_name, filter="", output_fields=["pk", "id"],
                              limit=10)
    assert {r["id"]: r["pk"] for r in rows} == {i: id_key(i) for i in "abcde"}
    store.close()


def test_a_key_collision_with_a_stored_row_is_refused_and_nothing_written(lite_uri, data):
    texts, docs, _, _, table = data
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=HEAD)
    store.add_texts(texts[:3], ids=["a", "b", "c"])
    # a stored row whose key is the key of "z" under another id (what a collision is)
    row = store.client.query(store.collection_name, filter='id == "a"',
                             output_fields=["text", "metadata", "head", "full"])[0]
    store.client.upsert(store.collection_name, [{**row, "pk": id_key("z"), "id": "imposter"}])
    with pytest.raises(InvalidInputError, match="'imposter' and 'z' map to the same 64-bit key"):
        store.add_texts(texts[3:6], ids=["x", "y", "z"])
    assert [d.id for d in store.get_by_ids(["x", "y", "z"])] == []
    store.close()


def test_ids_colliding_within_one_call_are_refused(lite_uri, data, monkeypatch) -> None:
    from langchain_matryoshka import _layout

    texts, _, _, _, table = data
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=HEAD)
    store.add_texts(texts[:1], ids=["first"])
    monkeypatch.setattr(_layout, "id_key", lambda doc_id: 7)  # every id collides
    with pytest.raises(InvalidInputError, match="'p' and 'q' map to the same 64-bit key"):
        store.add_texts(texts[1:3], ids=["p", "q"])
    monkeypatch.undo()
    assert [d.id for d in store.get_by_ids(["first", "p", "q"])] == ["first"]
    store.close()
