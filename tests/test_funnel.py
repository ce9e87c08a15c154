"""The pure funnel core: hand-computed cases and exact brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from langchain_matryoshka.errors import ConfigurationError, DimensionMismatchError, EmbeddingError
from langchain_matryoshka.funnel import (
    check_vectors,
    default_scales,
    default_search_dim,
    exact_top_k,
    funnel_rerank,
    head_of,
    make_plan,
    validate_search_dim,
)

from .conftest import matryoshka_like


def brute_force(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: float64 cosine over every document, full dimension."""
    q = queries.astype(np.float64)
    d = docs.astype(np.float64)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        d / np.linalg.norm(d, axis=1, keepdims=True)
    ).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


# Hand-computed case: query q = [1, 0, 1, 0]; prefix 2 of q is [1, 0].
#   a = [1, 0,   1, 0]  prefix-2 cos 1.000   full cos 1.000
#   b = [1, 0.1, -1, 0] prefix-2 cos 0.995   full cos 0.000
#   c = [0, 1,   1, 0]  prefix-2 cos 0.000   full cos 0.500
#   d = [0.5, 1, 0, 0]  prefix-2 cos 0.447   full cos 0.316
HAND_Q = np.array([[1, 0, 1, 0]], dtype=np.float32)
HAND_C = np.array([[[1, 0, 1, 0], [1, 0.1, -1, 0], [0, 1, 1, 0], [0.5, 1, 0, 0]]], np.float32)


def test_hand_computed_pruning_keeps_prefix_winners() -> None:
    plan = make_plan(dim=4, search_dim=1, k=2, candidates=4, scales=[2, 4], prune_ratio=0.5)
    out = funnel_rerank(HAND_Q, HAND_C, [4], plan)
    # stage 1 (2 dims) keeps a and b; stage 2 (4 dims) orders them: a = 1.0, b = 0.0
    assert out.indices.tolist() == [[0, 1]]
    np.testing.assert_allclose(out.scores, [[1.0, 0.0]], atol=1e-6)


def test_hand_computed_without_pruning_is_full_dimension_order() -> None:
    plan = make_plan(dim=4, search_dim=1, k=3, candidates=4, scales=[2, 4], prune_ratio=1.0)
    out = funnel_rerank(HAND_Q, HAND_C, [4], plan)
    assert out.indices.tolist() == [[0, 2, 3]]
    np.testing.assert_allclose(out.scores, [[1.0, 0.5, 0.5 / math.sqrt(2.5)]], atol=1e-6)


@pytest.mark.parametrize("scales", [[32], [8, 16, 32], [4, 5, 31, 32]])
def test_no_pruning_over_whole_corpus_equals_exact_search(scales) -> None:
    docs = matryoshka_like(300, 32, seed=3)
    queries = matryoshka_like(20, 32, seed=4)
    k = 10
    plan = make_plan(dim=32, search_dim=4, k=k, candidates=300, scales=scales, prune_ratio=1.0)
    cands = np.broadcast_to(docs, (20, 300, 32))  # every query sees the whole corpus
    out = funnel_rerank(queries, cands, np.full(20, 300), plan)
    ref_idx, ref_scores = brute_force(queries, docs, k)
    np.testing.assert_array_equal(out.indices, ref_idx)
    np.testing.assert_allclose(out.scores, ref_scores, atol=1e-5)
    # the package's own exact search agrees with the reference too
    ex_idx, ex_scores = exact_top_k(queries, docs, k)
    np.testing.assert_array_equal(ex_idx, ref_idx)
    np.testing.assert_allclose(ex_scores, ref_scores, atol=1e-5)


def test_funnel_scores_are_full_dimension_cosines_of_returned_docs() -> None:
    docs = matryoshka_like(300, 32, seed=5)
    queries = matryoshka_like(8, 32, seed=6)
    plan = make_plan(dim=32, search_dim=4, k=5, candidates=300)
    out = funnel_rerank(queries, np.broadcast_to(docs, (8, 300, 32)), np.full(8, 300), plan)
    for q in range(8):
        for j, s in zip(out.indices[q], out.scores[q]):
            cos = docs[j] @ queries[q] / np.linalg.norm(docs[j]) / np.linalg.norm(queries[q])
            assert s == pytest.approx(cos, abs=1e-5)
        assert list(out.scores[q]) == sorted(out.scores[q], reverse=True)


def test_float16_candidates_rank_exactly_as_their_float32_values() -> None:
    # The store hands the funnel its candidates as stored (float16); each stage converts
    # only the prefix it scores. Same values in float32: the same ranking and scores.
    docs = matryoshka_like(200, 32, seed=11).astype(np.float16)
    queries = matryoshka_like(5, 32, seed=12)
    rng = np.random.default_rng(1)
    cands = np.stack([docs[rng.permutation(200)[:120]] for _ in range(5)])  # [5, 120, 32]
    n_valid = np.array([120, 120, 50, 7, 120])
    plan = make_plan(dim=32, search_dim=4, k=6, candidates=120, scales=[8, 16, 32])
    half = funnel_rerank(queries, cands, n_valid, plan)
    single = funnel_rerank(queries, cands.astype(np.float32), n_valid, plan)
    np.testing.assert_array_equal(half.indices, single.indices)
    np.testing.assert_array_equal(half.scores, single.scores)
    assert half.scores.dtype == np.float32
    # and list input (float64) still ranks as float32
    listed = funnel_rerank(queries, cands.astype(np.float64).tolist(), n_valid, plan)
    np.testing.assert_array_equal(listed.indices, single.indices)


def test_batch_equals_one_query_at_a_time() -> None:
    docs = matryoshka_like(64, 16, seed=7)
    queries = matryoshka_like(6, 16, seed=8)
    rng = np.random.default_rng(0)
    cands = np.stack([docs[rng.permutation(64)] for _ in range(6)])  # [6, 64, 16]
    n_valid = np.array([64, 10, 3, 64, 1, 40])
    plan = make_plan(dim=16, search_dim=2, k=4, candidates=64)
    batch = funnel_rerank(queries, cands, n_valid, plan)
    for q in range(6):
        one = funnel_rerank(queries[q : q + 1], cands[q : q + 1, : n_valid[q]], [n_valid[q]], plan)
        np.testing.assert_array_equal(batch.indices[q], one.indices[0])
        np.testing.assert_allclose(batch.scores[q], one.scores[0], atol=1e-6)


def test_fewer_candidates_than_k_pads_with_minus_one() -> None:
    docs = matryoshka_like(5, 8, seed=9)
    plan = make_plan(dim=8, search_dim=2, k=4, candidates=8)
    cands = np.zeros((2, 5, 8), np.float32)
    cands[0, :2] = docs[:2]
    out = funnel_rerank(docs[:2], cands, [2, 0], plan)
    assert (out.indices[0, :2] >= 0).all() and (out.indices[0, 2:] == -1).all()
    assert (out.indices[1] == -1).all() and np.isnan(out.scores[1]).all()
    assert out.indices[0, 0] == 0 and out.indices[0, 1] == 1


def test_padding_is_never_returned_even_when_it_would_score_high() -> None:
    plan = make_plan(dim=4, search_dim=1, k=2, candidates=3)
    cands = np.array([[[0, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]]], np.float32)
    out = funnel_rerank(HAND_Q, cands, [1], plan)  # rows 1 and 2 are padding
    assert out.indices.tolist() == [[0, -1]]


def test_stage_sizes_follow_prune_ratio_and_never_drop_below_k() -> None:
    plan = make_plan(dim=768, search_dim=128, k=10, candidates=128)
    assert plan.scales == (256, 512, 768)
    assert plan.stage_sizes() == [128, 64, 32]
    plan = make_plan(dim=768, search_dim=128, k=50, candidates=128)
    assert plan.stage_sizes() == [128, 64, 50]
    assert plan.stage_sizes(available=20) == [20, 20, 20]


@pytest.mark.parametrize(
    ("dim", "search_dim", "scales"),
    [(768, 128, (256, 512, 768)), (384, 64, (128, 256, 384)), (1024, 128, (256, 512, 1024)),
     (6, 1, (2, 4, 6)), (1536, 256, (512, 1024, 1536))],
)
def test_defaults_follow_the_notebook_and_scale(dim, search_dim, scales) -> None:
    assert default_search_dim(dim) == search_dim
    assert default_scales(search_dim, dim) == scales
    plan = make_plan(dim=dim, search_dim=search_dim, k=4)
    assert plan.candidates == 128 and plan.prune_ratio == 0.5 and plan.scales == scales


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k=0 must be at least 1"),
        ({"k": 2.5}, "k=2.5 is not an integer"),
        ({"k": 5, "candidates": 3}, "candidates=3 is smaller than k=5"),
        ({"candidates": 20000}, "candidates=20000 exceeds"),
        ({"scales": [16, 8, 32]}, "strictly ascending"),
        ({"scales": [8, 16]}, "must end at the full dimension 32"),
        ({"scales": [8, 64]}, "must end at the full dimension 32"),
        ({"scales": []}, "is empty"),
        ({"scales": "8,32"}, "is not a sequence"),
        ({"prune_ratio": 0}, "prune_ratio=0.0 is outside (0, 1]"),
        ({"prune_ratio": 1.5}, "prune_ratio=1.5 is outside (0, 1]"),
        ({"prune_ratio": "half"}, "prune_ratio='half' is not a number"),
    ],
)
def test_make_plan_rejects_bad_settings(kwargs, message) -> None:
    args = {"dim": 32, "search_dim": 4, "k": 4, **kwargs}
    with pytest.raises(ConfigurationError) as err:
        make_plan(**args)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("search_dim", "dim", "error", "message"),
    [
        (0, 32, ConfigurationError, "search_dim=0 must be at least 1"),
        (32, 32, DimensionMismatchError, "search_dim=32 must be smaller than the embedding"),
        (40, 32, DimensionMismatchError, "pass a shorter head, e.g. search_dim=4"),
        ("8", 32, ConfigurationError, "is not an integer"),
    ],
)
def test_search_dim_validation(search_dim, dim, error, message) -> None:
    with pytest.raises(error) as err:
        validate_search_dim(search_dim, dim)
    assert message in str(err.value)


def test_check_vectors_rejects_nan_zero_ragged_and_wrong_dim() -> None:
    with pytest.raises(EmbeddingError, match="NaN or infinite values \\(row 1\\)"):
        check_vectors([[1.0, 2.0], [float("nan"), 1.0]], 2, "document embeddings")
    with pytest.raises(EmbeddingError, match="all-zero vector \\(row 0\\)"):
        check_vectors([[0.0, 0.0], [1.0, 1.0]], 2, "document embeddings")
    with pytest.raises(EmbeddingError, match="not a rectangular array"):
        check_vectors([[1.0, 2.0], [1.0]], None, "document embeddings")
    with pytest.raises(DimensionMismatchError, match="have 3 dimensions but the collection"):
        check_vectors([[1.0, 2.0, 3.0]], 2, "query embeddings")


def test_head_is_normalised_prefix() -> None:
    vectors = np.array([[3.0, 4.0, 7.0], [0.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(head_of(vectors, 2), [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_a_single_query_ranks_and_scores_exactly_as_in_a_batch(dtype) -> None:
    # One query takes its own 1-D path (the common case); a batch the [nq, m] one. Same
    # stages, same arithmetic: identical positions and scores, whatever n_valid and k.
    rng = np.random.default_rng(5)
    for trial in range(40):
        dim = int(rng.choice([8, 32, 96]))
        nc, k = int(rng.integers(1, 150)), int(rng.integers(1, 15))
        ratio = float(rng.choice([0.25, 0.5, 1.0]))
        plan = make_plan(
            dim=dim, search_dim=dim // 8, k=k, candidates=max(nc, k), prune_ratio=ratio
        )
        query = matryoshka_like(1, dim, seed=trial)
        cands = matryoshka_like(nc, dim, seed=100 + trial).astype(dtype)[None]
        n = int(rng.integers(0, nc + 1))
        one = funnel_rerank(query, cands, [n], plan)
        pair = funnel_rerank(np.repeat(query, 2, 0), np.repeat(cands, 2, 0), [n, n], plan)
        for row in range(2):
            np.testing.assert_array_equal(one.indices[0], pair.indices[row])
            np.testing.assert_array_equal(one.scores[0], pair.scores[row])
        assert (one.indices[0] >= 0).sum() == min(n, k)


@pytest.mark.parametrize("n_queries", [1, 3])
def test_a_plan_with_no_stage_is_refused_by_either_path(n_queries) -> None:
    from langchain_matryoshka.funnel import FunnelPlan

    plan = FunnelPlan(k=2, candidates=4, scales=(), prune_ratio=0.5)
    cands = np.ones((n_queries, 4, 4), np.float32)
    with pytest.raises(ConfigurationError, match=r"plan.scales=\(\) is empty.*make_plan"):
        funnel_rerank(np.ones((n_queries, 4)), cands, [4] * n_queries, plan)
