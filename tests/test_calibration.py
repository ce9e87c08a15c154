"""Calibration on a real Milvus Lite store, against exact full-dimension search."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._milvus import FLOAT16_COSINE_ERROR
from langchain_matryoshka.calibration import PSEUDO_MISS_RATIO
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
        qtexts, k=5, target_recall=0.9, candidate_grid=[5, 10, 20, 40, 80, 160]
    )
    assert result.reached and result.persisted and not result.pseudo_queries
    assert result.queries == "given" and result.n_queries == len(qtexts)
    assert result.required_recall == 0.9 and result.margin_cost is None
    chosen = next(
        p
        for p in result.curve
        if (p.candidates, p.prune_ratio, p.scales)
        == (result.candidates, result.prune_ratio, result.scales)
    )
    # the promise is the lower bound, and it sits below the mean it bounds
    assert chosen.recall_lower >= 0.9 and result.recall_lower == chosen.recall_lower
    assert chosen.recall_lower <= chosen.recall == result.expected_recall
    # nothing with fewer candidates proved the target, whatever its shape
    assert all(p.recall_lower < 0.9 for p in result.curve if p.candidates < result.candidates)
    assert store.funnel_defaults == {
        "candidates": result.candidates,
        "prune_ratio": result.prune_ratio,
        "scales": list(result.scales),
    }
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
    assert "| candidates | prune_ratio | scales |" in result.table()
    assert "the queries passed in" in result.summary()


def test_the_whole_funnel_is_calibrated_and_contenders_are_timed(store, corpus) -> None:
    _, _, qtexts, _ = corpus
    result = store.calibrate(qtexts, k=5, target_recall=0.8, candidate_grid=[5, 10, 20, 40])
    shapes = {(p.prune_ratio, p.scales) for p in result.curve}
    # three schedules for 8 of 32 dims; the full-only one has nothing to prune
    assert shapes == {(0.5, (16, 32)), (1.0, (16, 32)), (1.0, (32,))}
    madds = {(p.candidates, p.prune_ratio, p.scales): p.rerank_madds for p in result.curve}
    assert madds[(40, 1.0, (32,))] == 40 * 32
    assert madds[(40, 0.5, (16, 32))] == 40 * 16 + 20 * 16
    timed = [p for p in result.curve if p.latency_ms is not None]
    assert timed and all(p.recall_lower >= 0.8 and p.latency_ms > 0 for p in timed)
    # one timed contender per shape: the fewest candidates that reached
    assert len({(p.prune_ratio, p.scales) for p in timed}) == len(timed)
    assert (result.candidates, result.prune_ratio, result.scales) in {
        (p.candidates, p.prune_ratio, p.scales) for p in timed
    }
    pinned = store.calibrate(
        qtexts, k=5, target_recall=0.8, scales=[32], measure_latency=False, persist=False
    )
    assert {p.scales for p in pinned.curve} == {(32,)}
    assert all(p.latency_ms is None for p in pinned.curve)


def test_pseudo_queries_and_unreachable_targets(store) -> None:
    result = store.calibrate(
        k=5, n_pseudo=200, target_recall=0.6, persist=False, pseudo="documents"
    )
    assert result.pseudo_queries and result.queries == "pseudo"
    assert result.pseudo_method == "documents" and result.n_queries == 200 and result.reached
    assert not result.persisted and store.funnel_defaults["candidates"] is None
    # pseudo-queries must reach a stricter level, and the result says what that costs
    assert result.required_recall == pytest.approx(1 - 0.4 / PSEUDO_MISS_RATIO["documents"])
    assert result.margin_cost["extra_candidates"] >= 0
    assert "pseudo-queries" in result.summary() and "record_queries" in result.summary()
    recalls = {p.candidates: p.recall for p in result.curve if p.scales == (32,)}
    assert recalls[max(recalls)] >= recalls[min(recalls)]
    perturbed = store.calibrate(
        k=5,
        n_pseudo=30,
        target_recall=0.6,
        persist=False,
        pseudo="perturbed",
        measure_latency=False,
    )
    assert perturbed.pseudo_method == "perturbed" and perturbed.n_queries == 30
    hopeless = store.calibrate(
        k=5,
        n_pseudo=30,
        target_recall=1.0,
        candidate_grid=[6],
        prune_ratios=[0.5],
        pseudo="documents",
    )
    assert not hopeless.reached and hopeless.candidates is None and not hopeless.persisted
    assert "no setting reached" in hopeless.summary()
    with pytest.raises(ConfigurationError, match="target_recall=1.5"):
        store.calibrate(k=5, target_recall=1.5)
    with pytest.raises(ConfigurationError, match="pseudo='nope'"):
        store.calibrate(k=5, pseudo="nope")
    with pytest.raises(ConfigurationError, match="pseudo_margin=0.5"):
        store.calibrate(k=5, pseudo_margin=0.5)
    with pytest.raises(ConfigurationError, match="confidence=1.0"):
        store.calibrate(k=5, confidence=1.0)


def test_deep_tiers_are_fetched_only_when_needed(store) -> None:
    depths = []
    head_candidates = store.engine.head_candidates
    store.engine.head_candidates = lambda q, limit: (
        depths.append(limit),
        head_candidates(q, limit),
    )[1]
    options = {
        "k": 5,
        "n_pseudo": 20,
        "persist": False,
        "pseudo": "documents",
        "pseudo_margin": 1.0,
        "measure_latency": False,
    }
    easy = store.calibrate(target_recall=0.5, candidate_grid=[8, 64, 512, 1024], **options)
    assert easy.reached and set(depths) == {256}
    assert {p.candidates for p in easy.curve} == {8, 64}
    depths.clear()
    hard = store.calibrate(
        target_recall=0.9,
        candidate_grid=[8, 16, 512],
        prune_ratios=[1.0],
        scales=[32],
        **options,
    )
    lower = {p.candidates: p.recall_lower for p in hard.curve}
    assert lower[16] < 0.9  # so the 256 tier cannot stop the search...
    assert depths == [256, 512]  # ...and the next tier is fetched
    assert hard.reached and hard.candidates == 512
