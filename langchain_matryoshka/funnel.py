"""Funnel search, the pure algorithm: no database, no LangChain, only numpy.

A Matryoshka embedding keeps a coarse embedding of the text in every prefix of the
vector. Funnel search uses that twice:

1. the database searches only the L2-normalised *head* (the first ``search_dim``
   dims) for ``candidates`` hits;
2. :func:`funnel_rerank` scores those candidates by cosine similarity on growing
   prefixes of their stored full vectors (``scales``, ascending, the last one the
   full dimension), keeping ``prune_ratio`` of each query's real candidates after
   every stage but the last (never fewer than ``k``); the last stage orders the
   survivors by full-dimension cosine similarity and keeps the top ``k``.

Prefix scores are computed incrementally: each stage adds the dot products and squared
norms of the new segment ``[previous scale, scale)`` of the surviving candidates only,
so the total work is ``sum(survivors_i * segment_i)`` multiply-adds per query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigurationError, DimensionMismatchError, EmbeddingError

#: Candidates fetched by the head search when none is set: the notebook's setting.
DEFAULT_CANDIDATES = 128
#: Fraction of candidates kept after each intermediate stage.
DEFAULT_PRUNE_RATIO = 0.5
#: Largest ``limit`` a Milvus search accepts (topk).
MAX_CANDIDATES = 16384

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_PRUNE_RATIO",
    "MAX_CANDIDATES",
    "FunnelPlan",
    "FunnelResult",
    "StreamingTopK",
    "check_vectors",
    "default_candidates",
    "default_scales",
    "default_search_dim",
    "exact_top_k",
    "funnel_rerank",
    "head_of",
    "make_plan",
    "validate_search_dim",
]


def default_search_dim(dim: int) -> int:
    """The head size used when none is given: the largest power of two <= ``dim / 6``.

    768 -> 128 (the notebook's setting), 384 -> 64, 1024 -> 128, 1536 -> 256,
    6 -> 1. Always at least 1 and smaller than ``dim`` for ``dim >= 2``.
    """
    if dim < 2:
        raise DimensionMismatchError(
            f"embedding dimension {dim} is too small for a funnel; "
            "use an embedding model with at least 2 dimensions"
        )
    return 1 << max(0, int(math.floor(math.log2(max(1, dim // 6)))))


def default_scales(search_dim: int, dim: int) -> tuple[int, ...]:
    """Rerank prefixes when none are given: doubling from ``2 * search_dim``, then ``dim``.

    search_dim 128 of 768 -> (256, 512, 768); 64 of 384 -> (128, 256, 384).
    """
    scales = []
    size = 2 * search_dim
    while size < dim:
        scales.append(size)
        size *= 2
    scales.append(dim)
    return tuple(scales)


def default_candidates(k: int) -> int:
    """Candidates fetched when none is set: 128 (the notebook's setting), or 8 x k if larger."""
    return min(MAX_CANDIDATES, max(DEFAULT_CANDIDATES, 8 * k))


def validate_search_dim(search_dim: object, dim: int | None) -> int:
    """Check a head size against the full dimension (``dim`` None: not known yet)."""
    if isinstance(search_dim, bool) or not isinstance(search_dim, (int, np.integer)):
        raise ConfigurationError(
            f"search_dim={search_dim!r} is not an integer; pass the number of leading "
            "dimensions to index, e.g. search_dim=128"
        )
    search_dim = int(search_dim)
    if search_dim < 1:
        raise ConfigurationError(
            f"search_dim={search_dim} must be at least 1; pass e.g. search_dim=128"
        )
    if dim is not None and search_dim >= dim:
        raise DimensionMismatchError(
            f"search_dim={search_dim} must be smaller than the embedding dimension {dim}; "
            f"pass a shorter head, e.g. search_dim={default_search_dim(dim)}"
        )
    return search_dim


@dataclass(frozen=True)
class FunnelPlan:
    """A validated funnel: how many hits to fetch and how to prune them."""

    k: int
    """Documents returned per query."""
    candidates: int
    """Hits fetched by the head search (>= k)."""
    scales: tuple[int, ...]
    """Ascending prefix sizes used to rerank; the last one is the full dimension."""
    prune_ratio: float
    """Fraction of candidates kept after each stage but the last."""

    def stage_sizes(self, available: int | None = None) -> list[int]:
        """Candidates scored at each stage (``available``: hits actually returned)."""
        n = min(self.candidates, available) if available is not None else self.candidates
        sizes = []
        for _ in self.scales:
            sizes.append(n)
            n = min(n, max(self.k, math.ceil(n * self.prune_ratio)))
        return sizes


def _check_int(name: str, value: object, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigurationError(f"{name}={value!r} is not an integer; {fix}")
    if value < minimum:
        raise ConfigurationError(f"{name}={value} must be at least {minimum}; {fix}")
    return int(value)


def make_plan(
    *,
    dim: int,
    search_dim: int,
    k: int,
    candidates: int | None = None,
    scales: Sequence[int] | None = None,
    prune_ratio: float | None = None,
) -> FunnelPlan:
    """Validate funnel settings against the collection's dimensions.

    ``None`` picks the default (:func:`default_candidates`, :func:`default_scales`,
    :data:`DEFAULT_PRUNE_RATIO`). Every rule raises a :class:`ConfigurationError`
    naming the value and the fix.
    """
    k = _check_int("k", k, 1, "pass the number of documents to return, e.g. k=4")
    if candidates is None:
        candidates = default_candidates(k)
    else:
        candidates = _check_int(
            "candidates", candidates, 1, "pass how many hits the head search fetches, e.g. 128"
        )
        if candidates < k:
            raise ConfigurationError(
                f"candidates={candidates} is smaller than k={k}; the funnel can only "
                f"return what the head search fetched: pass candidates >= {k}"
            )
    if candidates > MAX_CANDIDATES:
        raise ConfigurationError(
            f"candidates={candidates} exceeds Milvus' search limit of {MAX_CANDIDATES}; "
            f"pass candidates <= {MAX_CANDIDATES}"
        )
    if scales is None:
        scales_t = default_scales(search_dim, dim)
    else:
        if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence):
            raise ConfigurationError(
                f"scales={scales!r} is not a sequence of prefix sizes; pass e.g. "
                f"scales={list(default_scales(search_dim, dim))}"
            )
        scales_t = tuple(
            _check_int("scales", s, 1, f"pass e.g. {list(default_scales(search_dim, dim))}")
            for s in scales
        )
        if not scales_t:
            raise ConfigurationError(
                f"scales=[] is empty; the last stage must rerank on the full dimension: "
                f"pass e.g. scales=[{dim}]"
            )
        if any(b <= a for a, b in zip(scales_t, scales_t[1:])):
            raise ConfigurationError(
                f"scales={list(scales_t)} must be strictly ascending; pass e.g. "
                f"{sorted(set(scales_t))}"
            )
        if scales_t[-1] != dim:
            raise ConfigurationError(
                f"scales={list(scales_t)} must end at the full dimension {dim} "
                f"(the final order is by full-dimension cosine); pass e.g. "
                f"{[s for s in scales_t if s < dim] + [dim]}"
            )
    if prune_ratio is None:
        prune_ratio = DEFAULT_PRUNE_RATIO
    if isinstance(prune_ratio, bool) or not isinstance(prune_ratio, (int, float, np.floating)):
        raise ConfigurationError(
            f"prune_ratio={prune_ratio!r} is not a number; pass a fraction in (0, 1], e.g. 0.5"
        )
    prune_ratio = float(prune_ratio)
    if not (0.0 < prune_ratio <= 1.0):
        raise ConfigurationError(
            f"prune_ratio={prune_ratio} is outside (0, 1]; pass the fraction of candidates "
            "kept after each stage, e.g. 0.5 (1.0 keeps all)"
        )
    return FunnelPlan(k=k, candidates=candidates, scales=scales_t, prune_ratio=prune_ratio)


def check_vectors(vectors: object, dim: int | None, what: str) -> np.ndarray:
    """Return ``vectors`` as a float32 ``[n, dim]`` array, or raise on bad embeddings.

    Rejects ragged rows, a dimension other than ``dim``, NaN/inf values and all-zero
    vectors (which have no direction to compare).
    """
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise EmbeddingError(
            f"{what} are not a rectangular array of floats ({exc}); check the embedding model"
        ) from None
    if arr.ndim != 2:
        raise EmbeddingError(
            f"{what} have shape {arr.shape}, expected [n, dim]; check the embedding model"
        )
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what} have {arr.shape[1]} dimensions but the collection holds {dim}-dim "
            "vectors; use the model the collection was built with, or a new collection_name"
        )
    if arr.size:
        finite = np.isfinite(arr).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise EmbeddingError(
                f"{what} hold NaN or infinite values (row {bad}); check the embedding model "
                "and its input text"
            )
        zero = ~arr.any(axis=1)
        if zero.any():
            bad = int(np.flatnonzero(zero)[0])
            raise EmbeddingError(
                f"{what} hold an all-zero vector (row {bad}), which has no direction to "
                "compare; check the embedding model and its input text"
            )
    return arr


def head_of(vectors: np.ndarray, search_dim: int) -> np.ndarray:
    """The L2-normalised first ``search_dim`` dims of each row (a zero head stays zero)."""
    head = np.array(vectors[:, :search_dim], dtype=np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    np.divide(head, norms, out=head, where=norms > 0)
    return head


@dataclass(frozen=True)
class FunnelResult:
    """Top k per query: positions into the candidate axis and full-dimension cosines."""

    indices: np.ndarray
    """``[n_queries, k]`` int64 positions into the candidates; -1 where fewer than k existed."""
    scores: np.ndarray
    """``[n_queries, k]`` float32 cosine similarity on the full vectors; NaN where missing."""


def funnel_rerank(
    queries: np.ndarray,
    candidates: np.ndarray,
    n_valid: np.ndarray | Sequence[int],
    plan: FunnelPlan,
) -> FunnelResult:
    """Rerank and prune candidates through ``plan.scales``; return the top ``plan.k``.

    Args:
        queries: ``[n_queries, dim]`` full query embeddings.
        candidates: ``[n_queries, n_candidates, dim]`` full embeddings of each query's
            candidates, float16 or float32 (each stage converts the prefix it scores;
            other types are converted first); rows past ``n_valid[q]`` are padding
            and never returned.
        n_valid: ``[n_queries]`` number of real candidates per query.
        plan: a validated :class:`FunnelPlan`.
    """
    q = np.asarray(queries, dtype=np.float32)
    cand = np.asarray(candidates)
    if cand.dtype not in (np.float16, np.float32):
        cand = cand.astype(np.float32)
    nq, nc, dim = cand.shape
    k = plan.k
    if nc == 0:
        return FunnelResult(
            np.full((nq, k), -1, dtype=np.int64), np.full((nq, k), np.nan, dtype=np.float32)
        )
    if not plan.scales:  # only a plan not built by make_plan can have no stage
        raise ConfigurationError(
            f"plan.scales={plan.scales!r} is empty; build the plan with make_plan()"
        )
    if nq == 1:  # one query, the common case: the same stages on 1-D arrays
        return _rerank_one(q[0], cand[0], min(nc, int(np.asarray(n_valid)[0])), plan)
    rows = np.arange(nq)[:, None]
    valid = np.arange(nc)[None, :] < np.asarray(n_valid)[:, None]  # [nq, m]
    # [nq, m] positions of the survivors, best first; None = all, in order
    keep: np.ndarray | None = None
    dots = np.zeros((nq, nc), dtype=np.float32)  # [nq, m] query . candidate prefix
    sq = np.zeros((nq, nc), dtype=np.float32)  # [nq, m] |candidate prefix|^2
    qsq = np.zeros(nq, dtype=np.float32)  # [nq] |query prefix|^2
    prev = 0
    scores = dots
    for stage, scale in enumerate(plan.scales):
        if keep is None:
            seg = cand[:, :, prev:scale]  # [nq, nc, s] (a view)
        else:
            seg = cand[rows, keep, prev:scale]  # [nq, m, s] gathered survivors
        # float16 candidates (as stored) are converted here, only the prefixes scored
        seg = seg.astype(np.float32, copy=False)
        qseg = q[:, prev:scale]  # [nq, s]
        dots = dots + np.einsum("qmd,qd->qm", seg, qseg)
        sq = sq + np.einsum("qmd,qmd->qm", seg, seg)
        qsq = qsq + np.einsum("qd,qd->q", qseg, qseg)
        denom = np.sqrt(sq * qsq[:, None])
        scores = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        scores = np.where(valid, scores, -np.inf)
        # Survivors per query: prune_ratio of that query's real candidates, >= k.
        n_cur = valid.sum(axis=1)  # [nq]
        if stage == len(plan.scales) - 1:
            n_next = np.minimum(n_cur, k)
        else:
            n_next = np.minimum(n_cur, np.maximum(k, np.ceil(n_cur * plan.prune_ratio)))
        width = max(1, min(scores.shape[1], int(n_next.max(initial=0))))
        sel = np.argsort(-scores, axis=1, kind="stable")[:, :width]  # [nq, width] best first
        keep = sel if keep is None else np.take_along_axis(keep, sel, axis=1)
        dots = np.take_along_axis(dots, sel, axis=1)
        sq = np.take_along_axis(sq, sel, axis=1)
        scores = np.take_along_axis(scores, sel, axis=1)
        valid = np.take_along_axis(valid, sel, axis=1)
        valid &= np.arange(width)[None, :] < n_next[:, None]
        prev = scale
    assert keep is not None  # plan.scales is not empty (checked above)
    out_idx = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.full((nq, k), np.nan, dtype=np.float32)
    width = min(k, keep.shape[1])
    out_idx[:, :width] = np.where(valid[:, :width], keep[:, :width], -1)
    out_scores[:, :width] = np.where(valid[:, :width], scores[:, :width], np.nan)
    return FunnelResult(out_idx, out_scores)


def _rerank_one(q: np.ndarray, cand: np.ndarray, n: int, plan: FunnelPlan) -> FunnelResult:
    """:func:`funnel_rerank` of one query (``q [dim]``, ``cand [nc, dim]``, ``n`` real).

    The same stages, arithmetic and order as the batched path, on 1-D arrays: a fifth
    of its numpy calls, 0.5x to 0.75x its time (``benchmarks/client_costs.py``, ``funnel_ms``).
    """
    k = plan.k
    out_idx = np.full((1, k), -1, dtype=np.int64)
    out_scores = np.full((1, k), np.nan, dtype=np.float32)
    keep = np.arange(n)  # survivors' positions, best first
    dots = np.zeros(n, dtype=np.float32)
    sq = np.zeros(n, dtype=np.float32)
    qsq = np.float32(0)
    scores = dots
    prev = 0
    last = len(plan.scales) - 1
    for stage, scale in enumerate(plan.scales):
        seg = cand[:n, prev:scale] if stage == 0 else cand[keep, prev:scale]
        seg = seg.astype(np.float32, copy=False)[None]  # [1, m, s]
        qseg = q[None, prev:scale]  # [1, s]
        dots = dots + np.einsum("qmd,qd->qm", seg, qseg)[0]
        sq = sq + np.einsum("qmd,qmd->qm", seg, seg)[0]
        qsq = qsq + np.einsum("qd,qd->q", qseg, qseg)[0]
        denom = np.sqrt(sq * qsq)
        scores = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        n_cur = len(keep)
        n_next = min(n_cur, k) if stage == last else min(
            n_cur, max(k, math.ceil(n_cur * plan.prune_ratio))
        )
        sel = np.argsort(-scores, kind="stable")[:n_next]
        keep, dots, sq, scores = keep[sel], dots[sel], sq[sel], scores[sel]
        prev = scale
    out_idx[0, : len(keep)] = keep
    out_scores[0, : len(keep)] = scores
    return FunnelResult(out_idx, out_scores)


def exact_top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, dims: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force cosine top ``k`` on the first ``dims`` dims (all by default).

    Returns ``(indices [n_queries, k], scores [n_queries, k])``, best first. The
    reference that funnel search is measured against.
    """
    q = np.asarray(queries, dtype=np.float32)[:, :dims]
    c = np.asarray(corpus, dtype=np.float32)[:, :dims]
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    sims = q @ c.T  # [n_queries, n_corpus]
    k = min(k, sims.shape[1])
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


class StreamingTopK:
    """Exact cosine top ``k`` over a corpus seen in batches, in bounded memory.

    ``push`` each batch of corpus vectors (its rows numbered from ``offset``);
    ``result`` gives ``(indices [n_queries, k], scores [n_queries, k])``, best first,
    -1 / NaN where the corpus held fewer than ``k`` rows.
    """

    def __init__(self, queries: np.ndarray, k: int) -> None:
        q = np.asarray(queries, dtype=np.float32)
        self.q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        self.k = k
        self.idx = np.full((len(q), 0), -1, dtype=np.int64)  # [nq, <=k]
        self.scores = np.full((len(q), 0), -np.inf, dtype=np.float32)

    def push(self, vectors: np.ndarray, offset: int) -> None:
        c = np.asarray(vectors, dtype=np.float32)
        if len(c) == 0:
            return
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        sims = self.q @ c.T  # [nq, batch]
        scores = np.concatenate([self.scores, sims], axis=1)
        idx = np.concatenate(
            [self.idx, np.broadcast_to(np.arange(offset, offset + len(c)), sims.shape)], axis=1
        )
        width = min(self.k, scores.shape[1])
        sel = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        self.scores = np.take_along_axis(scores, sel, axis=1)
        self.idx = np.take_along_axis(idx, sel, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.scores, axis=1, kind="stable")
        idx = np.full((len(self.q), self.k), -1, dtype=np.int64)
        scores = np.full((len(self.q), self.k), np.nan, dtype=np.float32)
        width = self.idx.shape[1]
        idx[:, :width] = np.take_along_axis(self.idx, order, axis=1)
        scores[:, :width] = np.take_along_axis(self.scores, order, axis=1)
        return idx, scores
