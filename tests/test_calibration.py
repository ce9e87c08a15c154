"""Calibration on a real Milvus Lite store, against exact full-dimension search."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._milvus import FLOAT16_COSINE_ERROR
from langchain_matryoshka.errors import ConfigurationError
from langchain_matryoshka.funnel import StreamingTopK, exact_top_k

from .conftest import matryoshka_like


def test_streaming_exact_matches_one_shot_exact() -> None:
    docs = matryoshka_like(500, 16, seed=3)
    queries = matryoshka_like(7, 16, seed=4)
    top = StreamingTopK(queries, 9)
    for start in range(0, 500, 37):
        top.push(docs[start : start + 37], offset=start)
    idx, scores = top.result()
    ref_idx, ref_scores = exact_top_k(queries, docs, 9)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_store_exact_search_streams_the_whole_collection(store, corpus) -> None:
    _, docs, qtexts, queries = corpus
    ids, scores = store._engine.exact(queries[:5], 6, batch_size=17)
    ref_idx, ref_scores = exact_top_k(queries[:5], docs, 6)
    assert ids == [[f"id{j}" for j in row] for row in ref_idx]
    np.testing.assert_allclose(scores, ref_scores, atol=FLOAT16_COSINE_ERROR)
    pairs = store.exact_search_with_score(qtexts[0], k=3)
    assert [i for i, _ in pairs] == [f"id{j}" for j in ref_idx[0, :3]]


def recall_at(store, qtexts, queries, docs, k, **options) -> float:
    exact, _ = exact_top_k(queries, docs, k)
    found = 0
    for qtext, row in zip(qtexts, exact):
        got = {d.id for d in store.similarity_search(qtext, k=k, **options)}
        found += len(got & {f"id{j}" for j in row})
    return found / (k * len(qtexts))


def test_calibration_reaches_the_target_and_becomes_the_default(store, corpus, table) -> None:
    _, docs, qtexts, queries = corpus
    result = store.calibrate(
        qtexts, k=5, target_recall=0.95, candidate_grid=[5, 10, 20, 40, 80, 160]
    )
    assert result.reached and result.persisted and not result.pseudo_queries
    assert result.n_queries == len(qtexts)
    chosen = next(
        p
        for p in result.curve
        if (p.candidates, p.prune_ratio) == (result.candidates, result.prune_ratio)
    )
    assert chosen.recall >= 0.95
    # nothing cheaper reached the target
    assert all(p.recall < 0.95 for p in result.curve if p.candidates < result.candidates)
    assert store.funnel_defaults["candidates"] == result.candidates
    # the calibrated default is what searches without options now use, and it delivers
    assert recall_at(store, qtexts, queries, docs, 5) == pytest.approx(chosen.recall)
    # persisted with the collection: a new client gets the same defaults
    again = MatryoshkaMilvus(table, collection_name=store.collection_name, client=store.client)
    assert again.funnel_defaults == store.funnel_defaults
    assert again.as_retriever(search_kwargs={"k": 5}).invoke(qtexts[0]) == (
        store.similarity_search(qtexts[0], k=5)
    )
    # constructor arguments still win over calibrated values
    pinned = MatryoshkaMilvus(
        table, collection_name=store.collection_name, client=store.client, candidates=150
    )
    assert pinned.funnel_defaults["candidates"] == 150
    assert "| candidates | prune_ratio |" in result.table()


def test_pseudo_queries_and_unreachable_targets(store) -> None:
    result = store.calibrate(k=5, n_pseudo=30, target_recall=0.9, persist=False)
    assert result.pseudo_queries and result.n_queries == 30 and result.reached
    assert not result.persisted and store.funnel_defaults["candidates"] is None
    recalls = {p.candidates: p.recall for p in result.curve if p.prune_ratio == 1.0}
    assert recalls[max(recalls)] >= recalls[min(recalls)]
    hopeless = store.calibrate(
        k=5, n_pseudo=30, target_recall=1.0, candidate_grid=[6], prune_ratios=[0.5]
    )
    assert not hopeless.reached and hopeless.candidates is None and not hopeless.persisted
    with pytest.raises(ConfigurationError, match="target_recall=1.5"):
        store.calibrate(k=5, target_recall=1.5)


def test_deep_tiers_are_fetched_only_when_needed(store) -> None:
    depths = []
    head_candidates = store._engine.head_candidates
    store._engine.head_candidates = lambda q, limit: (
        depths.append(limit),
        head_candidates(q, limit),
    )[1]
    easy = store.calibrate(
        k=5, n_pseudo=20, target_recall=0.5, persist=False, candidate_grid=[8, 64, 512, 1024]
    )
    assert easy.reached and set(depths) == {256}
    assert {p.candidates for p in easy.curve} == {8, 64}
    depths.clear()
    hard = store.calibrate(
        k=5,
        n_pseudo=20,
        target_recall=1.0,
        persist=False,
        candidate_grid=[8, 64, 512],
        prune_ratios=[1.0],
    )
    recall = {p.candidates: p.recall for p in hard.curve}
    assert recall[64] < 1.0  # so the 256 tier cannot stop the search...
    assert depths == [256, 512]  # ...and the next tier is fetched
    assert hard.reached and hard.candidates == 512 and recall[512] == 1.0
