"""MatryoshkaMilvus on a real Milvus Lite: the LangChain API and the funnel end to end."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_matryoshka import FunnelRetriever, MatryoshkaMilvus
from langchain_matryoshka._milvus import FLOAT16_COSINE_ERROR
from langchain_matryoshka.errors import (
    ConfigurationError,
    DimensionMismatchError,
    InvalidInputError,
    SchemaError,
)

from .conftest import TableEmbeddings, matryoshka_like


def exact_ids(queries: np.ndarray, docs: np.ndarray, k: int) -> list[list[str]]:
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    order = np.argsort(-(qn @ dn.T), axis=1)[:, :k]
    return [[f"id{j}" for j in row] for row in order]


def test_funnel_covering_the_corpus_equals_exact_search(store, corpus) -> None:
    _, docs, qtexts, queries = corpus
    expected = exact_ids(queries, docs, 5)
    for qtext, want in zip(qtexts, expected):
        got = store.similarity_search(qtext, k=5, candidates=200, prune_ratio=1.0)
        assert [d.id for d in got] == want


def test_default_funnel_scores_are_full_cosines(store, corpus) -> None:
    _, docs, qtexts, queries = corpus
    for qtext, q in zip(qtexts[:5], queries[:5]):
        pairs = store.similarity_search_with_score(qtext, k=4)
        assert len(pairs) == 4
        for doc, score in pairs:
            d = docs[int(doc.id[2:])]
            assert score == pytest.approx(
                d @ q / np.linalg.norm(d) / np.linalg.norm(q), abs=FLOAT16_COSINE_ERROR
            )
        assert [s for _, s in pairs] == sorted((s for _, s in pairs), reverse=True)


def test_funnel_beats_head_only_search(store, corpus) -> None:
    """On Matryoshka-like data the rerank recovers neighbours the head alone misses."""
    _, docs, qtexts, queries = corpus
    expected = exact_ids(queries, docs, 10)
    funnel = head = 0
    for qtext, want in zip(qtexts, expected):
        f = store.similarity_search(qtext, k=10, candidates=80)
        h = store.similarity_search(qtext, k=10, candidates=10, prune_ratio=1.0)
        funnel += len({d.id for d in f} & set(want))
        head += len({d.id for d in h} & set(want))
    assert funnel > head
    assert funnel / (10 * len(qtexts)) >= 0.9


def test_documents_round_trip_with_ids_and_metadata(store) -> None:
    docs = store.get_by_ids(["id3", "missing", "id0"])
    assert docs == [
        Document(id="id3", page_content="doc 3", metadata={"i": 3, "parity": "odd"}),
        Document(id="id0", page_content="doc 0", metadata={"i": 0, "parity": "even"}),
    ]


def test_readding_an_id_replaces_the_row(store, table) -> None:
    table.table["new text"] = table.table["doc 5"]
    store.add_texts(["new text"], [{"v": 2}], ids=["id5"])
    assert store._engine.collection.count() == 200
    assert store.get_by_ids(["id5"]) == [
        Document(id="id5", page_content="new text", metadata={"v": 2})
    ]


def test_generated_ids_are_unique_strings(lite_uri, table) -> None:
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=8)
    ids = store.add_texts(["doc 1", "doc 2", "doc 3"])
    assert len(set(ids)) == 3 and all(isinstance(i, str) and i for i in ids)
    docs = [Document(page_content="doc 4", id="mine"), Document(page_content="doc 5")]
    ids2 = store.add_documents(docs)
    assert ids2[0] == "mine" and ids2[1] not in ids
    assert {d.page_content for d in store.get_by_ids(ids + ids2)} == {
        f"doc {i}" for i in range(1, 6)
    }


def test_writes_are_batched(lite_uri, corpus, table) -> None:
    texts = corpus[0]
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=8, batch_size=7)
    seen = []
    upsert = store.client.upsert

    def spy(name, rows, **kw):
        if name == store.collection_name:
            seen.append(len(rows))
        return upsert(name, rows, **kw)

    store.client.upsert = spy
    store.add_texts(texts[:50], ids=[f"b{i}" for i in range(50)])
    assert seen == [7] * 7 + [1]
    assert store._engine.collection.count() == 50


def test_delete_by_ids_missing_ids_and_filter(store) -> None:
    assert store.delete(["id1", "id2", "nope"]) is True
    assert store.delete([]) is True
    assert store.get_by_ids(["id1", "id2", "id3"])[0].id == "id3"
    store.delete(filter={"parity": "even"})
    assert store._engine.collection.count() == 99
    assert all(d.metadata["parity"] == "odd" for d in store.similarity_search("query 0", k=10))
    with pytest.raises(InvalidInputError, match="delete\\(\\) got no ids"):
        store.delete()


def test_filter_and_expr(store) -> None:
    docs = store.similarity_search("query 1", k=5, filter={"parity": "odd"})
    assert len(docs) == 5 and all(d.metadata["parity"] == "odd" for d in docs)
    docs = store.similarity_search("query 1", k=5, expr='metadata["i"] < 10')
    assert len(docs) == 5 and all(d.metadata["i"] < 10 for d in docs)
    docs = store.similarity_search(
        "query 1", k=10, filter={"parity": "even", "i": [0, 2, 3]}, expr='metadata["i"] >= 1'
    )
    assert [d.id for d in docs] == ["id2"]


@pytest.mark.parametrize(
    "value",
    [
        'a"b',
        "a\\b",
        'x" or metadata["k"] != "',
        "line\nbreak\ttab",
        "üñï 漢字 😀",
        "\x01ctl",
        "'",
        "",
    ],
)
def test_filter_values_are_quoted_safely(lite_uri, value) -> None:
    emb = TableEmbeddings({"a": np.array([1.0, 0.0, 0.5]), "b": np.array([0.0, 1.0, 0.5])})
    store = MatryoshkaMilvus(emb, connection_args={"uri": lite_uri}, search_dim=1)
    store.add_texts(["a", "b"], [{"k": value}, {"k": value + "x"}], ids=["1", "2"])
    docs = store.similarity_search("a", k=2, filter={"k": value})
    assert [d.id for d in docs] == ["1"]
    docs = store.similarity_search("a", k=2, filter={"k": value + "x"})
    assert [d.id for d in docs] == ["2"]


def test_relevance_scores_map_cosine_to_unit_interval(store) -> None:
    pairs = store.similarity_search_with_score("query 2", k=5)
    rel = store.similarity_search_with_relevance_scores("query 2", k=5)
    assert [d for d, _ in rel] == [d for d, _ in pairs]
    for (_, r), (_, s) in zip(rel, pairs):
        assert r == pytest.approx((1 + s) / 2) and 0 <= r <= 1


def test_search_by_vector_matches_search_by_text(store, corpus) -> None:
    _, _, _, queries = corpus
    by_text = store.similarity_search_with_score("query 3", k=4)
    by_vec = store.similarity_search_with_score_by_vector(queries[3].tolist(), k=4)
    assert by_text == by_vec
    assert store.similarity_search_by_vector(queries[3].tolist(), k=4) == [d for d, _ in by_text]


def test_mmr_picks_diverse_documents(lite_uri) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(16)
    near = {f"dup {i}": base + 0.01 * rng.standard_normal(16) for i in range(5)}
    other = {"other": base + 1.5 * rng.standard_normal(16)}
    emb = TableEmbeddings({**near, **other, "q": base})
    store = MatryoshkaMilvus(emb, connection_args={"uri": lite_uri}, search_dim=4)
    store.add_texts(list(near) + list(other), ids=list(near) + ["other"])
    plain = [d.id for d in store.similarity_search("q", k=2)]
    assert all(i.startswith("dup") for i in plain)
    mmr = [d.id for d in store.max_marginal_relevance_search("q", k=2, fetch_k=6, lambda_mult=0.3)]
    assert mmr[0].startswith("dup") and mmr[1] == "other"


async def test_async_methods_match_sync(store, table) -> None:
    assert await store.asimilarity_search("query 4", k=3) == store.similarity_search("query 4", k=3)
    assert await store.asimilarity_search_with_score(
        "query 4", k=3, filter={"parity": "odd"}
    ) == store.similarity_search_with_score("query 4", k=3, filter={"parity": "odd"})
    assert await store.amax_marginal_relevance_search(
        "query 4", k=3
    ) == store.max_marginal_relevance_search("query 4", k=3)
    table.table["async doc"] = table.table["doc 7"]
    assert await store.aadd_texts(["async doc"], ids=["a1"]) == ["a1"]
    assert (await store.aget_by_ids(["a1"]))[0].page_content == "async doc"
    await store.adelete(["a1"])
    assert await store.aget_by_ids(["a1"]) == []
    results = await asyncio.gather(*(store.asimilarity_search(f"query {i}", k=2) for i in range(8)))
    assert results == [store.similarity_search(f"query {i}", k=2) for i in range(8)]


def test_as_retriever_returns_funnel_retriever_with_overrides(store) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 3, "candidates": 64}, tags=["mine"])
    assert isinstance(retriever, FunnelRetriever)
    assert retriever.k == 3 and retriever.candidates == 64 and "mine" in retriever.tags
    assert "MatryoshkaMilvus" in retriever.tags
    assert len(retriever.invoke("query 5")) == 3
    docs = retriever.invoke("query 5", k=2, filter={"parity": "even"})
    assert len(docs) == 2 and all(d.metadata["parity"] == "even" for d in docs)
    assert retriever.invoke("query 5", k=5, candidates=200, prune_ratio=1.0, scales=[32]) == (
        store.similarity_search("query 5", k=5, candidates=200, prune_ratio=1.0)
    )
    with pytest.raises(ConfigurationError, match="unknown retriever option\\(s\\) 'top_k'"):
        retriever.invoke("query 5", top_k=2)
    with pytest.raises(ConfigurationError, match="unknown option\\(s\\) 'kk' in search_kwargs"):
        store.as_retriever(search_kwargs={"kk": 3})
    with pytest.raises(ConfigurationError, match="unknown FunnelRetriever option\\(s\\) 'kk'"):
        store.as_retriever(kk=3)


def test_retriever_search_types(store) -> None:
    mmr = FunnelRetriever(vectorstore=store, search_type="mmr", k=3, fetch_k=10)
    assert mmr.invoke("query 6") == store.max_marginal_relevance_search("query 6", k=3, fetch_k=10)
    top = store.similarity_search_with_relevance_scores("query 6", k=10)
    threshold = (top[2][1] + top[3][1]) / 2
    thr = store.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"k": 10, "score_threshold": threshold},
    )
    assert thr.invoke("query 6") == [d for d, _ in top[:3]]
    with pytest.raises(ConfigurationError, match="score_threshold=None"):
        FunnelRetriever(vectorstore=store, search_type="similarity_score_threshold")
    with pytest.raises(ConfigurationError, match="candidates=2 is smaller than k=4"):
        FunnelRetriever(vectorstore=store, candidates=2)


def test_batch_makes_one_embedding_call_and_one_search(store, table) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 3})
    queries = [f"query {i}" for i in range(10)]
    expected = [retriever.invoke(q) for q in queries]
    searches = []
    search = store.client.search
    store.client.search = lambda *a, **kw: (searches.append(len(kw["data"])), search(*a, **kw))[1]
    table.calls = 0
    assert retriever.batch(queries) == expected
    assert table.calls == 1 and searches == [10]
    table.calls, searches[:] = 0, []
    assert asyncio.run(retriever.abatch(queries)) == expected
    assert table.calls == 1 and searches == [10]


def test_empty_store_returns_nothing(lite_uri, table) -> None:
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri})
    assert store.similarity_search("query 0", k=3) == []
    assert store.get_by_ids(["x"]) == []
    assert store.delete(["x"]) is True
    assert store.as_retriever().invoke("query 0") == []
    assert store.dim is None and store.search_dim is None
    assert table.calls == 0  # no hidden embedding call


def test_default_head_size_and_defaults_from_the_model(lite_uri) -> None:
    docs = matryoshka_like(20, 768, seed=11)
    emb = TableEmbeddings({f"d{i}": v for i, v in enumerate(docs)})
    store = MatryoshkaMilvus(emb, connection_args={"uri": lite_uri})
    store.add_texts([f"d{i}" for i in range(20)])
    assert (store.dim, store.search_dim) == (768, 128)


def test_reopen_reads_dims_and_checks_search_dim(lite_uri, corpus, table) -> None:
    store = MatryoshkaMilvus(
        table, collection_name="c", connection_args={"uri": lite_uri}, search_dim=8
    )
    store.add_texts(corpus[0][:10], ids=[f"id{i}" for i in range(10)])
    again = MatryoshkaMilvus(table, collection_name="c", client=store.client)
    assert (again.dim, again.search_dim) == (32, 8)
    assert [d.id for d in again.similarity_search("doc 4", k=1)] == ["id4"]
    with pytest.raises(DimensionMismatchError, match="indexes a 8-dim head but search_dim=16"):
        MatryoshkaMilvus(table, collection_name="c", client=store.client, search_dim=16)
    fresh = MatryoshkaMilvus(
        table, collection_name="c", client=store.client, drop_old=True, search_dim=16
    )
    assert fresh.dim is None and fresh.similarity_search("doc 4", k=1) == []


def test_embedding_dimension_mismatch_is_refused_before_writing(store) -> None:
    other = TableEmbeddings({"short": np.ones(16)})
    again = MatryoshkaMilvus(other, client=store.client, collection_name=store.collection_name)
    with pytest.raises(
        DimensionMismatchError, match="have 16 dimensions but the collection holds 32"
    ):
        again.add_texts(["short"], ids=["s"])
    with pytest.raises(DimensionMismatchError, match="have 16 dimensions"):
        again.similarity_search("short")
    assert store.get_by_ids(["s"]) == []


def test_foreign_collection_is_refused(lite_uri, table) -> None:
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=lite_uri)
    schema = client.create_schema(auto_id=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    client.create_collection("foreign", schema=schema)
    with pytest.raises(SchemaError, match="collection 'foreign' exists but was not written"):
        MatryoshkaMilvus(table, collection_name="foreign", client=client)


def test_bad_input_is_refused_before_writing(store) -> None:
    with pytest.raises(InvalidInputError, match="id 'x' appears twice"):
        store.add_texts(["doc 1", "doc 2"], ids=["x", "x"])
    with pytest.raises(InvalidInputError, match="got 2 texts but 1 metadatas"):
        store.add_texts(["doc 1", "doc 2"], metadatas=[{}])
    with pytest.raises(InvalidInputError, match="not JSON-serialisable"):
        store.add_texts(["doc 1"], metadatas=[{"obj": object()}], ids=["j"])
    with pytest.raises(InvalidInputError, match="is empty or not a string"):
        store.similarity_search("   ")
    with pytest.raises(ConfigurationError, match="unknown option\\(s\\) 'nprobe'"):
        store.similarity_search("query 0", nprobe=3)
    assert store.get_by_ids(["x", "j"]) == []
    assert store._engine.collection.count() == 200


def test_a_store_opened_before_the_collection_existed_sees_it(lite_uri, corpus, table) -> None:
    early = MatryoshkaMilvus(table, collection_name="later", connection_args={"uri": lite_uri})
    writer = MatryoshkaMilvus(table, collection_name="later", client=early.client, search_dim=8)
    writer.add_texts(corpus[0][:20], ids=[f"id{i}" for i in range(20)])
    assert [d.id for d in early.similarity_search("doc 3", k=1)] == ["id3"]
    assert (early.dim, early.search_dim) == (32, 8)
    assert early.get_by_ids(["id4"])[0].page_content == "doc 4"
    early.delete(["id4"])
    assert writer.get_by_ids(["id4"]) == []


def test_index_types_milvus_lite_cannot_build_are_refused(lite_uri, table) -> None:
    with pytest.raises(ConfigurationError, match="index_type='DISKANN' is not supported"):
        MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, index_type="DISKANN")
    store = MatryoshkaMilvus(
        table, connection_args={"uri": lite_uri}, index_type="IVF_FLAT", search_dim=8
    )
    store.add_texts(["doc 1", "doc 2"], ids=["a", "b"])
    assert store.similarity_search("doc 1", k=1)[0].id == "a"


def test_batch_search_by_vector_equals_single_searches(store, corpus) -> None:
    _, _, qtexts, queries = corpus
    batch = store.search_batch_with_score_by_vector(queries[:6], k=4)
    assert batch == [store.similarity_search_with_score_by_vector(q, k=4) for q in queries[:6]]
    abatch = asyncio.run(store.asearch_batch_with_score_by_vector(queries[:6], k=4))
    assert abatch == batch


def test_show_progress_draws_a_bar_over_the_writes(lite_uri, corpus, table, capsys) -> None:
    texts = corpus[0]
    store = MatryoshkaMilvus(
        table, connection_args={"uri": lite_uri}, batch_size=50, show_progress=True
    )
    store.add_texts(texts)
    err = capsys.readouterr().err
    assert "writing to langchain_matryoshka" in err and "4/4" in err
    with pytest.raises(ConfigurationError, match="show_progress='yes' must be True or False"):
        MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, show_progress="yes")
    store.close()


def test_documents_fetched_after_the_rerank_equal_those_fetched_with_candidates(
    store, corpus
) -> None:
    _, _, qtexts, _ = corpus
    assert store._engine.fetch_after_rerank  # "auto" on Milvus Lite
    eager = MatryoshkaMilvus(
        store.embeddings,
        client=store.client,
        collection_name=store.collection_name,
        fetch_documents="with_candidates",
    )
    assert not eager._engine.fetch_after_rerank
    for kwargs in ({}, {"filter": {"parity": "odd"}}, {"candidates": 200, "prune_ratio": 1.0}):
        assert store.search_batch_with_score(qtexts[:6], k=5, **kwargs) == (
            eager.search_batch_with_score(qtexts[:6], k=5, **kwargs)
        )
    mmr = store.max_marginal_relevance_search(qtexts[0], k=3, fetch_k=10)
    assert mmr == eager.max_marginal_relevance_search(qtexts[0], k=3, fetch_k=10)


def test_candidates_decode_the_metadata_of_the_hits_read_only(store, corpus) -> None:
    from langchain_matryoshka._candidates import hits_to_candidates
    from langchain_matryoshka._layout import FIELD_FULL, FIELD_ID, FIELD_TEXT, decode_full
    from langchain_matryoshka.funnel import head_of

    _, _, _, queries = corpus
    engine = store._engine
    layout = engine.layout
    heads = head_of(engine.query_vectors(queries[:3], layout), layout.search_dim)
    hits = engine.collection.search(heads, 40, "", with_documents=True)
    cands = hits_to_candidates(hits, layout)
    # pymilvus keeps a result's JSON columns (the metadata) undecoded until its hits are
    # iterated; the candidates leave them so and decode a hit's when it is read
    assert cands.lazy is not None
    assert not any(list.__getitem__(hits, qi).has_materialized for qi in range(3))
    read = engine.collection.search(heads, 40, "", with_documents=True)
    for qi, query_hits in enumerate(read):  # iterating decodes them all, the public way
        want = {str(h["entity"][FIELD_ID]): (h["entity"][FIELD_TEXT],
                                             layout.metadata_of(h["entity"]))
                for h in query_hits}
        assert len(cands.ids[qi]) == len(want) == 40
        full = {str(h["entity"][FIELD_ID]): h["entity"][FIELD_FULL] for h in query_hits}
        for j, doc_id in enumerate(cands.ids[qi]):
            assert cands.document(qi, j, layout) == want[doc_id]
            assert want[doc_id][1]["i"] == int(doc_id[2:])
            # the vectors stay float16 as stored; a hit's comes out float32, same values
            vector = cands.vector(qi, j)
            assert vector.dtype == np.float32
            np.testing.assert_array_equal(vector, decode_full([full[doc_id]], layout)[0])
    assert cands.vectors.dtype == np.float16


def test_after_the_rerank_texts_come_from_one_lookup_for_the_whole_batch(store, corpus) -> None:
    _, _, qtexts, _ = corpus
    calls: list[tuple[str, Any]] = []
    search, query = store.client.search, store.client.query

    def spy_search(*args, **kwargs):
        calls.append(("search", kwargs.get("output_fields")))
        return search(*args, **kwargs)

    def spy_query(*args, **kwargs):
        calls.append(("query", kwargs.get("output_fields")))
        return query(*args, **kwargs)

    store.client.search, store.client.query = spy_search, spy_query
    store._engine.collection.client = store.client
    results = store.search_batch_with_score(qtexts[:8], k=4)
    assert [len(r) for r in results] == [4] * 8
    # the head search brings back the ids and full vectors only; one primary-key lookup
    # then fetches the final documents
    assert calls == [("search", ["id", "full"]), ("query", ["id", "text", "metadata"])]


def test_a_row_deleted_before_the_lookup_is_replaced_by_the_next_best(store, corpus) -> None:
    _, _, qtexts, _ = corpus
    options = {"candidates": 200, "prune_ratio": 1.0}  # no pruning: the ranking is exact
    expected = store.similarity_search(qtexts[3], k=6, **options)
    gone = expected[1].id
    engine = store._engine
    get = engine.collection.get

    def delete_then_get(ids, *args, **kwargs):
        engine.collection.delete([gone])  # another writer, between the two reads
        return get(ids, *args, **kwargs)

    engine.collection.get = delete_then_get
    got = store.similarity_search(qtexts[3], k=5, **options)
    assert [d.id for d in got] == [d.id for d in expected if d.id != gone]


def test_fetch_documents_is_checked(lite_uri, table) -> None:
    with pytest.raises(ConfigurationError, match="fetch_documents='later' is not supported"):
        MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, fetch_documents="later")


def test_a_batch_too_large_for_one_search_response_takes_several_calls(
    store, corpus, monkeypatch
) -> None:
    from langchain_matryoshka import _milvus

    _, _, qtexts, _ = corpus
    whole = store.search_batch_with_score(qtexts, k=5, candidates=40)
    sizes: list[int] = []
    search = store.client.search

    def spy(*args, **kwargs):
        sizes.append(len(kwargs["data"]))
        return search(*args, **kwargs)

    monkeypatch.setattr(store.client, "search", spy)
    # a response budget of four queries' hits: 25 queries take seven calls
    per_hit = _milvus._hit_bytes(store.engine.layout, with_documents=False)
    monkeypatch.setattr(_milvus, "SEARCH_RESPONSE_BUDGET", 4 * 40 * per_hit)
    assert store.search_batch_with_score(qtexts, k=5, candidates=40) == whole
    assert sizes == [4] * 6 + [1]
    sizes.clear()
    store.similarity_search(qtexts[0], k=5, candidates=40)
    assert sizes == [1]
