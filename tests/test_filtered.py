"""Filtered search is complete at every selectivity, on a real Milvus Lite.

A filtered search is routed by a count of the matching rows: few are read and ranked
exactly, many are searched with a larger HNSW ``ef``. Every search path (similarity,
batch, relevance scores, MMR, exact search, async) returns what exact filtered search
over the matching rows returns.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._filtered import EXACT_ROWS, MAX_EF, CountCache, choose

from .conftest import TableEmbeddings, matryoshka_like

N = 2000
K = 10


def _meta(i: int) -> dict:
    return {
        "rare": i % 1000,  # 0.1%: two rows per value
        "some": i % 100,  # 1%: twenty rows per value
        "many": i % 10,  # 10%: two hundred rows per value
        "json_some": i % 100,
        "tenant": f"t{i % 4}",
    }


@pytest.fixture(scope="module")
def data():
    docs = matryoshka_like(N, 32, seed=21)
    queries = matryoshka_like(8, 32, seed=22)
    texts = [f"doc {i}" for i in range(N)]
    qtexts = [f"q {i}" for i in range(len(queries))]
    table = TableEmbeddings({**dict(zip(texts, docs)), **dict(zip(qtexts, queries))})
    return texts, docs, qtexts, queries, table


@pytest.fixture(scope="module")
def store(tmp_path_factory, data):
    texts, _, _, _, table = data
    uri = str(tmp_path_factory.mktemp("filtered") / "milvus.db")
    s = MatryoshkaMilvus(
        table,
        connection_args={"uri": uri},
        search_dim=8,
        metadata_fields={"rare": int, "some": int, "many": int, "tenant": str},
        partition_key="tenant",
        num_partitions=2,
    )
    s.add_texts(texts, [_meta(i) for i in range(N)], ids=[f"id{i}" for i in range(N)])
    s.build_index()
    yield s
    s.close()


def _reference(docs, query, keep, k=K) -> list[str]:
    """Exact cosine top k among the rows ``keep`` accepts (numpy)."""
    rows = [i for i in range(N) if keep(_meta(i))]
    d = docs[rows] / np.linalg.norm(docs[rows], axis=1, keepdims=True)
    d = d.astype(np.float16).astype(np.float32)  # as stored
    sims = d @ (query / np.linalg.norm(query))
    return [f"id{rows[j]}" for j in np.argsort(-sims, kind="stable")[:k]]


CASES = [
    ({"rare": 7}, lambda m: m["rare"] == 7),
    ({"some": 42}, lambda m: m["some"] == 42),
    ({"many": 3}, lambda m: m["many"] == 3),
    ({"json_some": 42}, lambda m: m["json_some"] == 42),
    ({"tenant": "t1", "some": 5}, lambda m: m["tenant"] == "t1" and m["some"] == 5),
]


@pytest.mark.parametrize(("filter_", "keep"), CASES, ids=[str(f)[:40] for f, _ in CASES])
def test_filtered_search_equals_exact_filtered_search(store, data, filter_, keep) -> None:
    _, docs, qtexts, queries, _ = data
    for qtext, query in zip(qtexts, queries):
        got = [d.id for d in store.similarity_search(qtext, k=K, filter=filter_)]
        assert got == _reference(docs, query, keep)


def test_a_filter_matching_fewer_than_k_rows_returns_all_of_them(store, data) -> None:
    _, docs, qtexts, queries, _ = data
    got = store.similarity_search_with_score(qtexts[0], k=K, filter={"rare": 7})
    assert sorted(d.id for d, _ in got) == ["id1007", "id7"]
    assert [d.id for d, _ in got] == _reference(docs, queries[0], lambda m: m["rare"] == 7)


def test_expr_on_a_declared_column_routes_like_filter(store, data) -> None:
    _, docs, qtexts, queries, _ = data
    got = [d.id for d in store.similarity_search(qtexts[1], k=K, expr="some == 42")]
    assert got == _reference(docs, queries[1], lambda m: m["some"] == 42)


def test_selective_filters_are_ranked_exactly_and_broad_ones_searched_with_a_larger_ef(
    store,
) -> None:
    engine = store.engine
    few = engine.route(engine.plan(K, {"filter": {"some": 42}}))
    assert few is not None and few.exact and few.matching == 20
    engine.exact_rows = 50
    try:
        broad = engine.route(engine.plan(K, {"filter": {"many": 3}}))
    finally:
        engine.exact_rows = EXACT_ROWS
    assert broad is not None and not broad.exact and broad.matching == 200
    assert broad.ef is not None and broad.ef > engine.plan(K, {}).plan.candidates
    assert engine.route(engine.plan(K, {})) is None  # unfiltered: no count


def test_the_head_search_route_keeps_quality_at_10_percent(store, data) -> None:
    _, docs, qtexts, queries, _ = data
    store.engine.exact_rows = 50  # force the head search for 200 matching rows
    try:
        recalls = []
        for qtext, query in zip(qtexts, queries):
            got = [d.id for d in store.similarity_search(qtext, k=K, filter={"many": 3})]
            assert len(got) == K
            want = _reference(docs, query, lambda m: m["many"] == 3)
            recalls.append(len(set(got) & set(want)) / K)
    finally:
        store.engine.exact_rows = EXACT_ROWS
    assert np.mean(recalls) >= 0.99


def test_a_stale_count_falls_back_to_the_head_search(store, data) -> None:
    _, docs, qtexts, queries, _ = data
    engine = store.engine
    planned = engine.plan(K, {"filter": {"many": 3}})
    engine.exact_rows = 50
    engine.counts.clear()
    engine.counts.get((planned.expr, None), lambda: 5)  # wrong: 200 rows match
    try:
        assert engine.route(planned).exact
        got = [d.id for d in store.similarity_search(qtexts[2], k=K, filter={"many": 3})]
    finally:
        engine.exact_rows = EXACT_ROWS
        engine.counts.clear()
    want = _reference(docs, queries[2], lambda m: m["many"] == 3)
    assert len(got) == K and len(set(got) & set(want)) >= K - 1


def test_every_search_path_filters_the_same_way(store, data) -> None:
    _, docs, qtexts, queries, _ = data
    flt = {"some": 42}
    keep = lambda m: m["some"] == 42  # noqa: E731
    want = [_reference(docs, q, keep) for q in queries[:3]]
    batch = store.search_batch_with_score(qtexts[:3], k=K, filter=flt)
    assert [[d.id for d, _ in row] for row in batch] == want
    scored = store.similarity_search_with_relevance_scores(qtexts[0], k=K, filter=flt)
    assert [d.id for d, _ in scored] == want[0]
    assert all(0.0 <= s <= 1.0 for _, s in scored)
    exact = store.exact_search_with_score(qtexts[0], k=K, filter=flt)
    assert [i for i, _ in exact] == want[0]
    mmr = store.max_marginal_relevance_search(qtexts[0], k=4, fetch_k=20, filter=flt)
    assert len(mmr) == 4 and all(d.metadata["some"] == 42 for d in mmr)
    assert {d.id for d in mmr} <= {f"id{i}" for i in range(N) if keep(_meta(i))}
    got = asyncio.run(store.asimilarity_search(qtexts[0], k=K, filter=flt))
    assert [d.id for d in got] == want[0]
    aexact = asyncio.run(store.aexact_search_with_score(qtexts[0], k=K, filter=flt))
    assert aexact == exact
    retriever = store.as_retriever(search_kwargs={"k": K, "filter": flt})
    assert [d.id for d in retriever.invoke(qtexts[0])] == want[0]


def test_scores_of_the_exact_route_are_cosines(store, data) -> None:
    _, docs, qtexts, queries, _ = data
    got = store.similarity_search_with_score(qtexts[3], k=K, filter={"some": 9})
    for doc, score in got:
        d = docs[int(doc.id[2:])]
        cos = float(d @ queries[3] / np.linalg.norm(d) / np.linalg.norm(queries[3]))
        assert score == pytest.approx(cos, abs=2e-3)  # float16 storage


def test_own_writes_and_deletes_clear_the_counts(tmp_path, data) -> None:
    texts, _, qtexts, _, table = data
    s = MatryoshkaMilvus(
        table, connection_args={"uri": str(tmp_path / "m.db")}, metadata_fields={"some": int}
    )
    s.add_texts(
        texts[:50], [{"some": i % 100} for i in range(50)], ids=[f"id{i}" for i in range(50)]
    )
    assert s.similarity_search(qtexts[0], k=K, filter={"some": 60}) == []
    s.add_texts(texts[60:61], [{"some": 60}], ids=["id60"])
    assert [d.id for d in s.similarity_search(qtexts[0], k=K, filter={"some": 60})] == ["id60"]
    assert s.engine.route(s.engine.plan(K, {"filter": {"some": 60}})).matching == 1
    s.delete(["id60"])
    assert s.engine.route(s.engine.plan(K, {"filter": {"some": 60}})).matching == 0
    assert s.similarity_search(qtexts[0], k=K, filter={"some": 60}) == []
    s.close()


def test_choose() -> None:
    assert choose(0, 100, 40).exact
    assert choose(EXACT_ROWS, 10**6, 40).exact
    route = choose(EXACT_ROWS + 1, 10**6, 40)
    assert not route.exact and route.ef is not None and route.ef > 40
    # ef grows as the filter narrows, bounded.
    assert choose(50_000, 100_000, 128).ef < choose(5_000, 100_000, 128).ef
    assert choose(2_000, 10**9, 4096).ef == MAX_EF
    assert choose(100_000, 100_000, 128).ef == 128


def test_count_cache_expires() -> None:
    now = [0.0]
    cache = CountCache(ttl=30, clock=lambda: now[0])
    calls = []
    count = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.get("k", count) == 1
    assert cache.get("k", count) == 1
    now[0] = 31.0
    assert cache.get("k", count) == 2
    cache.clear()
    assert cache.get("k", count) == 3


def test_calibration_on_a_filtered_subset(store) -> None:
    before = store.engine.defaults()
    result = store.calibrate(
        filter={"many": 3}, pseudo="perturbed", n_pseudo=150, measure_latency=False
    )
    assert result.corpus_size == 200  # the rows matching the filter
    assert not result.persisted and store.engine.defaults() == before
    # the deepest funnel finds (nearly) every exact filtered neighbour
    assert max(pt.recall for pt in result.curve) >= 0.99
    from langchain_matryoshka.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="no stored row matches"):
        store.calibrate(filter={"rare": 5000}, pseudo="perturbed", measure_latency=False)


def test_a_repeated_selective_filter_reads_its_rows_once_on_lite(store, data) -> None:
    _, docs, qtexts, queries, _ = data
    client = store.engine.collection.client
    reads = []
    query = client.query

    def spy(*args, **kwargs):
        if "full" in kwargs.get("output_fields", []):
            reads.append(kwargs.get("filter"))
        return query(*args, **kwargs)

    client.query = spy
    store.engine.clear_caches()
    try:
        for qtext, query_vec in zip(qtexts[:3], queries[:3]):
            got = [d.id for d in store.similarity_search(qtext, k=K, filter={"some": 17})]
            assert got == _reference(docs, query_vec, lambda m: m["some"] == 17)
    finally:
        client.query = query
    assert reads == ["some == 17"]  # the first search read the 20 rows; the others reused them


def test_rows_cache_bounds_its_bytes_and_expires() -> None:
    from langchain_matryoshka._filtered import RowsCache

    now = [0.0]
    vectors = np.ones((10, 8), dtype=np.float32)
    cache = RowsCache(max_bytes=2 * (vectors.astype(np.float16).nbytes + 640), ttl=5,
                      clock=lambda: now[0])
    for key in "abc":
        cache.put(key, [str(i) for i in range(10)], vectors)
    assert cache.get("a") is None  # the least recently used was dropped
    ids, got = cache.get("c")
    assert ids == [str(i) for i in range(10)] and np.array_equal(got, vectors)
    now[0] = 6.0
    assert cache.get("c") is None
