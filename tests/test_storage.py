"""How full vectors are stored: float16 base64 in a VARCHAR, and 0.1's ARRAY<FLOAT>."""

from __future__ import annotations

import numpy as np
import pytest
from pymilvus import DataType

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._milvus import (
    FIELD_FULL,
    FLOAT16_COSINE_ERROR,
    PROPERTY_DIM,
    PROPERTY_STORAGE,
    STORAGE_ARRAY,
    STORAGE_FLOAT16,
    Layout,
    MilvusCollection,
    decode_full,
    encode_full,
    full_max_length,
    make_rows,
)
from langchain_matryoshka.errors import SchemaError
from langchain_matryoshka.funnel import exact_top_k, head_of

from .conftest import TableEmbeddings, matryoshka_like


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("dim", [1, 2, 3, 4, 32, 383, 384, 768, 1024])
def test_float16_codec_round_trips_within_its_bound(dim) -> None:
    vectors = matryoshka_like(50, dim, seed=dim) * 1e6  # far past float16's range
    layout = Layout(dim=dim, search_dim=max(1, dim // 2) if dim > 1 else 1)
    values = encode_full(vectors, STORAGE_FLOAT16)
    assert all(isinstance(v, str) and len(v) == full_max_length(dim) for v in values)
    back = decode_full(values, layout)
    assert back.dtype == np.float32 and back.shape == (50, dim)
    assert np.isfinite(back).all()
    unit = _unit(vectors)
    # stored unit length, each component within float16's relative rounding
    np.testing.assert_allclose(back, unit, rtol=2.0**-11, atol=2.0**-24)
    cos = np.sum(back * unit, axis=1)
    assert np.all(np.abs(cos - 1.0) <= FLOAT16_COSINE_ERROR)


def test_zero_vectors_stay_zero() -> None:
    values = encode_full(np.zeros((2, 8), dtype=np.float32), STORAGE_FLOAT16)
    assert not decode_full(values, Layout(dim=8, search_dim=4)).any()


def test_new_collections_store_float16_text_with_their_dimension(lite_uri, corpus, table):
    texts, docs, qtexts, queries = corpus
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=8)
    store.add_texts(texts, ids=[f"id{i}" for i in range(len(texts))])
    desc = store.client.describe_collection(store.collection_name)
    full = next(f for f in desc["fields"] if f["name"] == FIELD_FULL)
    assert full["type"] == DataType.VARCHAR
    assert desc["properties"][PROPERTY_STORAGE] == STORAGE_FLOAT16
    assert desc["properties"][PROPERTY_DIM] == "32"
    assert store._engine.layout.storage == STORAGE_FLOAT16
    # scores are the float32 cosines to within float16's bound
    pairs = store.similarity_search_with_score(qtexts[0], k=5, candidates=200, prune_ratio=1.0)
    ref_idx, ref_scores = exact_top_k(queries[:1], docs, 5)
    assert [d.id for d, _ in pairs] == [f"id{j}" for j in ref_idx[0]]
    np.testing.assert_allclose([s for _, s in pairs], ref_scores[0], atol=FLOAT16_COSINE_ERROR)
    store.close()


def test_huge_embeddings_neither_overflow_nor_change_scores(lite_uri) -> None:
    vectors = matryoshka_like(40, 16, seed=3) * 1e5  # float16 tops out at 65504
    table = TableEmbeddings({f"d{i}": v for i, v in enumerate(vectors)})
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=4)
    store.add_texts(list(table.table), ids=list(table.table))
    pairs = store.similarity_search_with_score("d7", k=3, candidates=40)
    assert pairs[0][0].id == "d7" and pairs[0][1] == pytest.approx(1.0, abs=FLOAT16_COSINE_ERROR)
    assert all(np.isfinite(s) for _, s in pairs)
    store.close()


def test_get_vectors_returns_unit_vectors_in_the_embedding_basis(lite_uri, corpus, table):
    texts, docs, _, _ = corpus
    for rotation in (None, "pca"):
        store = MatryoshkaMilvus(
            table,
            connection_args={"uri": lite_uri},
            collection_name=f"vectors_{rotation}",
            search_dim=8,
            rotation=rotation,
        )
        store.add_texts(texts, ids=[f"id{i}" for i in range(len(texts))])
        found, vectors = store.get_vectors(["id5", "missing", "id2", "id5"])
        assert found == ["id5", "id2"]
        np.testing.assert_allclose(vectors, _unit(docs[[5, 2]]), atol=2e-3)
        store.close()


def _legacy_collection(client, name: str, docs: np.ndarray) -> None:
    """A collection as langchain-matryoshka 0.1 wrote it: full vectors as ARRAY<FLOAT>."""
    layout = Layout(dim=docs.shape[1], search_dim=8, storage=STORAGE_ARRAY, version=1)
    collection = MilvusCollection(client, name, lite=True)
    collection.create(layout)
    ids = [f"id{i}" for i in range(len(docs))]
    rows = make_rows(
        ids,
        [f"doc {i}" for i in range(len(docs))],
        [{}] * len(docs),
        head_of(docs, 8),
        docs,
        layout,
    )
    assert isinstance(rows[0][FIELD_FULL], list)
    collection.upsert(rows, batch_size=100)


def test_array_collections_from_0_1_are_read_and_written(lite_uri, corpus, table) -> None:
    texts, docs, qtexts, queries = corpus
    opener = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, collection_name="other")
    _legacy_collection(opener.client, "legacy", docs[:150])
    store = MatryoshkaMilvus(table, client=opener.client, collection_name="legacy")
    assert store._engine.layout == Layout(dim=32, search_dim=8, storage=STORAGE_ARRAY, version=1)
    # writes go in the collection's own encoding
    store.add_texts(texts[150:], ids=[f"id{i}" for i in range(150, 200)])
    row = store.client.get("legacy", ids=["id160"], output_fields=[FIELD_FULL])[0]
    assert isinstance(row[FIELD_FULL], list)
    # ARRAY is float32: scores are exact
    pairs = store.similarity_search_with_score(qtexts[1], k=5, candidates=200, prune_ratio=1.0)
    ref_idx, ref_scores = exact_top_k(queries[1:2], docs, 5)
    assert [d.id for d, _ in pairs] == [f"id{j}" for j in ref_idx[0]]
    np.testing.assert_allclose([s for _, s in pairs], ref_scores[0], atol=1e-5)
    found, vectors = store.get_vectors(["id3"])
    np.testing.assert_allclose(vectors[0], docs[3], rtol=1e-6)
    opener.close()


def test_a_varchar_full_field_without_properties_is_foreign(lite_uri, table) -> None:
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, collection_name="x")
    client = store.client
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=256)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("head", DataType.FLOAT_VECTOR, dim=8)
    schema.add_field(FIELD_FULL, DataType.VARCHAR, max_length=128)
    index = client.prepare_index_params()
    index.add_index(field_name="head", index_type="FLAT", metric_type="IP")
    client.create_collection("plain", schema=schema, index_params=index)
    with pytest.raises(SchemaError, match=f"without the properties {PROPERTY_STORAGE}"):
        MatryoshkaMilvus(table, client=client, collection_name="plain")
    store.close()


def test_rotated_collections_from_0_1_keep_their_basis(lite_uri, corpus, table) -> None:
    """0.1 named the basis in the settings config, not in the collection's properties."""
    from langchain_matryoshka._milvus import MetaCollection
    from langchain_matryoshka.rotation import fit_pca_rotation, rotate

    _, docs, qtexts, queries = corpus
    opener = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, collection_name="other")
    basis = fit_pca_rotation(docs)
    meta = MetaCollection(opener.client, "legacy", lite=True, consistency_level="Strong")
    meta.write_matrix("rotation", basis)
    meta.write_config({"version": 1, "dim": 32, "search_dim": 8, "rotation": "pca"})
    _legacy_collection(opener.client, "legacy", rotate(docs, basis))
    store = MatryoshkaMilvus(table, client=opener.client, collection_name="legacy")
    np.testing.assert_array_equal(store.rotation, basis)
    got = store.similarity_search(qtexts[2], k=5, candidates=200, prune_ratio=1.0)
    assert [d.id for d in got] == [f"id{j}" for j in exact_top_k(queries[2:3], docs, 5)[0][0]]
    opener.close()
