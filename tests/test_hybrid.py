"""Full-text (BM25) and hybrid search on a real Milvus Lite, against hand computations."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import numpy as np
import pytest

from langchain_matryoshka import FunnelRetriever, MatryoshkaMilvus
from langchain_matryoshka.errors import ConfigurationError

from .conftest import TableEmbeddings

# Five documents, embedded so that their cosine order to the query is known:
# d_i's vector is e0 * cos(a_i) + e1 * sin(a_i) with angles chosen below.
TEXTS = {
    "d0": "the cat sat on the mat",
    "d1": "dogs chase cats",
    "d2": "a cat and a dog",
    "d3": "stock markets fell",
    "d4": "the the the cat",
}
GROUPS = {"d0": "a", "d1": "b", "d2": "a", "d3": "b", "d4": "b"}
ANGLES = {"d3": 0.1, "d1": 0.4, "d0": 0.8, "d4": 1.2, "d2": 1.5}  # dense order: 3 1 0 4 2
QUERY = "cat"


def _unit(angle: float, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[0], v[1] = math.cos(angle), math.sin(angle)
    return v


@pytest.fixture
def table() -> TableEmbeddings:
    vectors = {TEXTS[i]: _unit(a) for i, a in ANGLES.items()}
    vectors[QUERY] = _unit(0.0)
    vectors["dog"] = _unit(0.0)
    vectors["zebra"] = _unit(0.0)
    vectors["cat dog"] = _unit(0.3)
    return TableEmbeddings(vectors)


def _make(lite_uri, table, **kwargs) -> MatryoshkaMilvus:
    store = MatryoshkaMilvus(
        table, connection_args={"uri": lite_uri}, search_dim=2, full_text_search=True, **kwargs
    )
    ids = list(TEXTS)
    store.add_texts(  # one write: one Milvus Lite segment, one set of BM25 statistics
        [TEXTS[i] for i in ids], [{"group": GROUPS[i]} for i in ids], ids=ids
    )
    return store


@pytest.fixture
def store(lite_uri, table):
    s = _make(lite_uri, table)
    yield s
    s.close()


def bm25(query: str, docs: dict[str, str], k1: float = 1.5, b: float = 0.75) -> dict[str, float]:
    """Milvus Lite's BM25 (milvus_lite/index/sparse_inverted.py), from its formula.

    Tokens: ``\\w+`` lowercased (Lite's standard analyzer; it applies no stemmer);
    idf = ln((N - df + 0.5) / (df + 0.5) + 1); each query token counts once per
    occurrence; avgdl over the documents of the segment.
    """
    tokens = {i: re.findall(r"\w+", t.lower()) for i, t in docs.items()}
    n, avgdl = len(docs), sum(map(len, tokens.values())) / len(docs)
    scores = {}
    for i, toks in tokens.items():
        s = 0.0
        for term in re.findall(r"\w+", query.lower()):
            df = sum(term in t for t in tokens.values())
            tf = toks.count(term)
            if tf:
                idf = math.log((n - df + 0.5) / (df + 0.5) + 1)
                s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(toks) / avgdl))
        if s > 0:
            scores[i] = s
    return scores


def test_bm25_ranking_matches_a_hand_computed_case(store) -> None:
    # "cat": df 3 of N 5 -> idf = ln(2.5 / 3.5 + 1) = 0.5390; avgdl = 21 / 5 = 4.2
    # d4 (4 tokens, tf 1): 0.5390 * 2.5 / (1 + 1.5 (0.25 + 0.75 * 4 / 4.2)) = 0.5508
    # d2 (5 tokens): 0.4964; d0 (6 tokens): 0.4519; "cats" (d1) is another term.
    found = store.full_text_search_with_score(QUERY, k=5)
    assert [d.id for d, _ in found] == ["d4", "d2", "d0"]
    assert [s for _, s in found] == pytest.approx([0.5508, 0.4964, 0.4519], abs=1e-4)
    for q in ("cat dog", "the cat", "cat cat mat", "dogs chase"):
        expected = bm25(q, TEXTS)
        got = dict((d.id, s) for d, s in store.full_text_search_with_score(q, k=5))
        assert got == pytest.approx(expected, rel=1e-5), q
        ranked = [d.id for d, _ in store.full_text_search_with_score(q, k=5)]
        assert ranked == sorted(expected, key=lambda i: -expected[i])
    assert store.full_text_search("zebra") == []  # no known term: nothing


def _rrf(*ranks: int) -> float:
    return sum(1 / (60 + r) for r in ranks)


def test_hybrid_rrf_matches_hand_computed_fusion(store) -> None:
    # dense (cosine to e0): d3 d1 d0 d4 d2 ; BM25 "cat": d4 d2 d0
    assert [d.id for d in store.similarity_search(QUERY, k=5)] == ["d3", "d1", "d0", "d4", "d2"]
    found = store.hybrid_search_with_score(QUERY, k=5, fusion="rrf", dense_k=5, full_text_k=5)
    expected = {
        "d4": _rrf(4, 1), "d0": _rrf(3, 3), "d2": _rrf(5, 2), "d3": _rrf(1), "d1": _rrf(2)
    }
    assert [d.id for d, _ in found] == sorted(expected, key=lambda i: -expected[i])
    assert dict((d.id, s) for d, s in found) == pytest.approx(expected)
    # the RRF constant is per call: k=0 puts the rank-1 documents first
    found = store.hybrid_search_with_score(QUERY, k=2, dense_k=5, full_text_k=5, rrf_k=0)
    assert [d.id for d, _ in found] == ["d4", "d3"]
    assert found[0][1] == pytest.approx(1 / 4 + 1 / 1)
    # depth 2 on each side: only d3 d1 (dense) and d4 d2 (BM25) take part
    shallow = store.hybrid_search_with_score(QUERY, k=4, rrf_k=60, dense_k=2, full_text_k=2)
    assert [d.id for d, _ in shallow] == ["d3", "d4", "d1", "d2"]


def test_hybrid_weighted_matches_hand_computed_fusion(store) -> None:
    cos = {i: math.cos(a) for i, a in ANGLES.items()}
    text = bm25(QUERY, TEXTS)

    def norm(scores):
        lo, hi = min(scores.values()), max(scores.values())
        return {i: (s - lo) / (hi - lo) for i, s in scores.items()}

    nd, nt = norm(cos), norm(text)
    expected = {i: 0.25 * nd[i] + 0.75 * nt.get(i, 0.0) for i in TEXTS}
    found = store.hybrid_search_with_score(
        QUERY, k=5, fusion="weighted", weights=(1, 3), dense_k=5, full_text_k=5
    )
    assert dict((d.id, s) for d, s in found) == pytest.approx(expected, abs=2e-3)  # float16
    assert [d.id for d, _ in found] == sorted(expected, key=lambda i: -expected[i])


def test_filters_apply_to_both_sides(store) -> None:
    for kwargs in ({"filter": {"group": "a"}}, {"expr": 'metadata["group"] == "a"'}):
        found = store.hybrid_search(QUERY, k=5, dense_k=5, full_text_k=5, **kwargs)
        assert {d.id for d in found} == {"d0", "d2"}
        assert [d.id for d in store.full_text_search(QUERY, k=5, **kwargs)] == ["d2", "d0"]
    # group b: dense d3 d1 d4, BM25 d4 only
    found = store.hybrid_search(
        QUERY, k=5, fusion="rrf", dense_k=5, full_text_k=5, filter={"group": "b"}
    )
    assert [d.id for d in found] == ["d4", "d3", "d1"]


def test_tenant_partitions_confine_both_sides(lite_uri, table) -> None:
    store = _make(lite_uri, table, metadata_fields={"group": str}, partition_key="group")
    try:
        found = store.hybrid_search(QUERY, k=5, dense_k=5, full_text_k=5, filter={"group": "a"})
        assert {d.id for d in found} == {"d0", "d2"}
        assert [d.metadata["group"] for d in found] == ["a", "a"]
        text = store.full_text_search_with_score(QUERY, k=5, filter={"group": "b"})
        assert [d.id for d, _ in text] == ["d4"]
    finally:
        store.close()


def test_stores_without_full_text_search_say_so(lite_uri, table) -> None:
    plain = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=2)
    with pytest.raises(ConfigurationError, match="without full_text_search=True"):
        plain.hybrid_search(QUERY)  # empty and not declared
    plain.add_texts(list(TEXTS.values()), ids=list(TEXTS))
    for call in (plain.full_text_search, plain.hybrid_search, plain.hybrid_search_with_score):
        with pytest.raises(ConfigurationError, match="has no full-text field.*drop_old=True"):
            call(QUERY)
    with pytest.raises(ConfigurationError, match="has no full-text field"):
        plain.as_retriever(search_type="full_text").invoke(QUERY)
    plain.close()
    with pytest.raises(ConfigurationError, match="created without a full-text field"):
        MatryoshkaMilvus(
            table, connection_args={"uri": lite_uri}, full_text_search=True
        )


def test_reopened_store_searches_by_keyword(lite_uri, table) -> None:
    first = _make(lite_uri, table)
    before = first.hybrid_search_with_score(QUERY, k=3)
    first.close()
    again = MatryoshkaMilvus(table, connection_args={"uri": lite_uri})  # flag not repeated
    try:
        assert again.hybrid_search_with_score(QUERY, k=3) == before
        assert [d.id for d in again.full_text_search(QUERY, k=3)] == ["d4", "d2", "d0"]
    finally:
        again.close()


def test_options_are_checked(store) -> None:
    cases = [
        (store.full_text_search, {"candidates": 8}, "unknown option.*'candidates'.*full-text"),
        (store.hybrid_search, {"fusion": "max"}, "fusion='max' is not supported"),
        (store.hybrid_search, {"fusion": "rrf", "weights": (1, 1)}, "fusion='weighted' only"),
        (store.hybrid_search, {"rrf_k": 5, "weights": (1, 1)}, "pass one of them"),
        (store.hybrid_search, {"fusion": "weighted", "rrf_k": 5}, "applies to fusion='rrf'"),
        (store.hybrid_search, {"fusion": "weighted", "weights": (1,)}, "weights="),
        (store.hybrid_search, {"rrf_k": -1}, "rrf_k=-1"),
        (store.hybrid_search, {"dense_k": 0}, r"dense_k=0 must be an integer in \[1, "),
        (store.hybrid_search, {"full_text_k": "9"}, "full_text_k='9'"),
        (store.hybrid_search, {"fusion_k": 5}, "unknown option.*'fusion_k'"),
    ]
    for call, kwargs, needle in cases:
        with pytest.raises(ConfigurationError, match=needle):
            call(QUERY, **kwargs)
    with pytest.raises(ConfigurationError, match="search_type='lexical' is not supported"):
        store.search(QUERY, "lexical")


def test_batch_async_and_search_dispatch_agree(store) -> None:
    queries = [QUERY, "dog", "cat dog"]
    one = [store.hybrid_search_with_score(q, k=3) for q in queries]
    assert store.hybrid_search_batch_with_score(queries, k=3) == one
    assert asyncio.run(store.ahybrid_search_batch_with_score(queries, k=3)) == one
    text = [store.full_text_search_with_score(q, k=3) for q in queries]
    assert store.full_text_search_batch_with_score(queries, k=3) == text
    assert asyncio.run(store.afull_text_search_with_score("dog", k=3)) == text[1]
    assert store.search(QUERY, "hybrid", k=3) == [d for d, _ in one[0]]
    assert asyncio.run(store.asearch(QUERY, "full_text", k=3)) == [d for d, _ in text[0]]
    assert [d.id for d in store.search(QUERY, "similarity", k=2)] == ["d3", "d1"]


def test_hybrid_mmr_picks_from_the_fused_pool(store) -> None:
    pool = {d.id for d in store.hybrid_search(QUERY, k=4, dense_k=4, full_text_k=4)}
    picked = store.hybrid_max_marginal_relevance_search(
        QUERY, k=2, fetch_k=4, lambda_mult=0.5, dense_k=4, full_text_k=4
    )
    assert len(picked) == 2 and {d.id for d in picked} <= pool
    assert picked[0].id == "d3"  # the most query-similar of the pool comes first
    again = asyncio.run(store.ahybrid_max_marginal_relevance_search(
        QUERY, k=2, fetch_k=4, dense_k=4, full_text_k=4
    ))
    assert again == picked


def test_timings_name_every_stage(store) -> None:
    from langchain_matryoshka import _hybrid

    planned, hp = _hybrid.plan_hybrid(store.engine, 3, {})
    timings: dict[str, float] = {}
    vectors = np.asarray(store.embeddings.embed_queries([QUERY]))
    for concurrent in (True, False):
        _hybrid.hybrid_search(
            store.engine, vectors, [QUERY], planned, hp, timings, concurrent=concurrent
        )
    assert {"head_search", "rerank", "full_text_search", "fusion", "total"} <= set(timings)
    assert all(t >= 0 for t in timings.values())


def test_retriever_search_types(store) -> None:
    retriever = store.as_retriever(search_type="hybrid", k=3)
    assert isinstance(retriever, FunnelRetriever)
    expected = [d for d, _ in store.hybrid_search_with_score(QUERY, k=3)]
    assert retriever.invoke(QUERY) == expected
    assert retriever.batch([QUERY, "dog"])[0] == expected
    assert asyncio.run(retriever.ainvoke(QUERY)) == expected
    weighted = retriever.invoke(QUERY, fusion="weighted", weights=(0, 1), full_text_k=5)
    assert [d.id for d in weighted][:2] == ["d4", "d2"]  # BM25's order (d0 ties at 0)
    retriever.fusion = "weighted"
    assert retriever.search_kwargs["fusion"] == "weighted"
    text = store.as_retriever(search_type="full_text", search_kwargs={"k": 2})
    assert [d.id for d in text.invoke(QUERY)] == ["d4", "d2"]
    assert [d.id for d in text.invoke(QUERY, search_type="similarity")] == ["d3", "d1"]
    mmr = store.as_retriever(search_type="hybrid_mmr", k=2, fetch_k=4)
    assert len(mmr.invoke(QUERY)) == 2
    assert "hybrid" in FunnelRetriever.allowed_search_types
    with pytest.raises(ConfigurationError, match="applies to fusion='weighted' only"):
        store.as_retriever(search_type="hybrid", fusion="rrf", weights=(1, 1))
    with pytest.raises(ConfigurationError, match="'bm25' is invalid.*'full_text', 'hybrid'"):
        store.as_retriever(search_type="bm25")


def test_llama_index_text_search_and_hybrid_modes(store) -> None:
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from langchain_matryoshka.llama_index import MatryoshkaMilvusVectorStore

    vstore = MatryoshkaMilvusVectorStore(
        client=store.client, collection_name=store.collection_name
    )
    q = _unit(0.0).tolist()
    text = vstore.query(VectorStoreQuery(query_str=QUERY, mode="text_search", similarity_top_k=3))
    expected = store.full_text_search_with_score(QUERY, k=3)
    assert text.ids == [d.id for d, _ in expected]
    assert text.similarities == pytest.approx([s for _, s in expected])
    hybrid = vstore.query(
        VectorStoreQuery(query_str=QUERY, query_embedding=q, mode="hybrid", similarity_top_k=3),
        dense_k=5, full_text_k=5,
    )
    expected = store.hybrid_search_with_score(QUERY, k=3, dense_k=5, full_text_k=5)
    assert hybrid.ids == [d.id for d, _ in expected]
    assert hybrid.similarities == pytest.approx([s for _, s in expected])
    # alpha: weighted fusion with weights (alpha, 1 - alpha); 0 is BM25's order
    alpha0 = vstore.query(VectorStoreQuery(
        query_str=QUERY, query_embedding=q, mode="hybrid", similarity_top_k=2, alpha=0.0
    ))
    assert alpha0.ids == ["d4", "d2"]
    filtered = vstore.query(
        VectorStoreQuery(query_str=QUERY, query_embedding=q, mode="hybrid", similarity_top_k=5,
                         sparse_top_k=5),
        expr='metadata["group"] == "a"',
    )
    assert set(filtered.ids) == {"d0", "d2"}
    with pytest.raises(ConfigurationError, match="alpha=0.5 sets weighted fusion"):
        vstore.query(VectorStoreQuery(query_str=QUERY, query_embedding=q, mode="hybrid",
                                      alpha=0.5), fusion="rrf")
    with pytest.raises(ConfigurationError, match="apply to HYBRID queries only"):
        vstore.query(VectorStoreQuery(query_str=QUERY, mode="text_search"), fusion="rrf")
    with pytest.raises(ConfigurationError, match="unknown option.*'candidates'"):
        vstore.query(VectorStoreQuery(query_str=QUERY, mode="text_search"), candidates=8)
    from langchain_matryoshka.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="query_str is None"):
        vstore.query(VectorStoreQuery(query_embedding=q, mode="hybrid"))


@pytest.mark.server
def test_milvus_2_3_server_refuses_full_text_search_clearly(
    server_uri, server_collections, table
) -> None:
    """The test server is Milvus 2.3 (no BM25 before 2.5): the error names the version.

    Full-text and hybrid search on a 2.5+ server cannot be tested here (Milvus 2.4+
    needs Docker or Kubernetes, which these machines lack).
    """
    store = MatryoshkaMilvus(
        table, collection_name=server_collections(), connection_args={"uri": server_uri},
        search_dim=2, full_text_search=True,
    )
    try:
        with pytest.raises(ConfigurationError, match=r"needs Milvus 2\.5 or later.*Milvus 2\.3"):
            store.add_texts([TEXTS["d0"]], ids=["d0"])
        assert not store.client.has_collection(store.collection_name)  # nothing half-made
    finally:
        store.close()
    plain = MatryoshkaMilvus(
        table, collection_name=server_collections(), connection_args={"uri": server_uri},
        search_dim=2,
    )
    try:
        plain.add_texts([TEXTS["d0"]], ids=["d0"])
        with pytest.raises(ConfigurationError, match="has no full-text field"):
            plain.hybrid_search(QUERY)
    finally:
        plain.close()


def test_default_fusion_is_weighted_half_and_half(store) -> None:
    # chosen on SciFact's train queries (benchmarks/hybrid_defaults.py, docs/hybrid.md)
    default = store.hybrid_search_with_score(QUERY, k=5)
    assert default == store.hybrid_search_with_score(
        QUERY, k=5, fusion="weighted", weights=(0.5, 0.5), dense_k=10, full_text_k=10
    )
    assert all(0.0 <= s <= 1.0 for _, s in default)


def test_full_text_and_hybrid_searches_validate_k_and_queries_once(store, monkeypatch) -> None:
    """One check of ``k`` and one of each query per full-text or hybrid search (the
    sibling of test_retriever_conventions' test for the dense routes); hybrid checks k,
    and dense_k as the k of the funnel it runs (as MMR checks fetch_k)."""
    from langchain_matryoshka import _validation, funnel

    checks: list[str] = []
    check_int, surrogate_at = funnel._check_int, _validation._surrogate_at

    def counting_int(name: str, *args: Any) -> int:
        checks.append(name)
        return check_int(name, *args)

    def counting_query(text: str) -> int | None:
        checks.append("query")
        return surrogate_at(text)

    monkeypatch.setattr(funnel, "_check_int", counting_int)
    monkeypatch.setattr(_validation, "_surrogate_at", counting_query)
    hybrid = store.as_retriever(search_type="hybrid", k=3)
    text = store.as_retriever(search_type="full_text", k=3)
    searches = {
        "full_text": lambda: store.full_text_search(QUERY, k=3),
        "full_text, filtered": lambda: store.full_text_search(QUERY, k=3, filter={"group": "a"}),
        "full_text batch": lambda: store.full_text_search_batch_with_score([QUERY, "dog"], k=3),
        "hybrid": lambda: store.hybrid_search(QUERY, k=3),
        "hybrid, dense_k": lambda: store.hybrid_search(QUERY, k=3, dense_k=5),
        "hybrid batch": lambda: store.hybrid_search_batch_with_score([QUERY, "dog"], k=3),
        "search(hybrid)": lambda: store.search(QUERY, "hybrid", k=3),
        "search(full_text)": lambda: store.search(QUERY, "full_text", k=3),
        "retriever hybrid": lambda: hybrid.invoke(QUERY),
        "retriever full_text": lambda: text.invoke(QUERY),
    }
    for name, search in searches.items():
        checks.clear()
        assert search(), name
        queries = 2 if "batch" in name else 1
        assert checks.count("k") == (2 if "hybrid" in name else 1), (name, checks)
        assert checks.count("query") == queries, (name, checks)
