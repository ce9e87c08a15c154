"""Rank fusion of result lists: reciprocal-rank fusion and weighted score fusion.

Pure Python and numpy, no Milvus: the hybrid search (:mod:`._hybrid`) fuses the
funnel's dense result with Milvus' BM25 result through these functions.

- :func:`rrf`: reciprocal-rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009), a
  document's score is ``sum over lists of 1 / (k + rank)`` with ranks from 1 and the
  constant ``k`` (60 by default, as in the paper, Milvus' ``RRFRanker`` and ranx).
  It uses ranks only, so scores of different kinds (cosines, BM25) need no scaling.
- :func:`weighted`: a weighted sum of each list's scores min-max normalised per query
  to [0, 1] (ranx's ``min-max`` normalisation with ``wsum`` fusion; Weaviate's
  "relative score fusion"). A document missing from a list gets 0 from it.

Both return ``(key, fused score)`` pairs, best first; equal scores keep the order in
which the keys first appear when the lists are read rank by rank (the first list's
rank 1, the second list's rank 1, the first list's rank 2, ...), so results are
deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from .errors import ConfigurationError

#: Fusion methods of a hybrid search.
FUSIONS = ("rrf", "weighted")
#: The RRF constant of the paper (and of Milvus' RRFRanker, ranx and Elasticsearch).
DEFAULT_RRF_K = 60


def _first_seen(lists: Sequence[Sequence[Hashable]]) -> dict[Hashable, int]:
    """Every key's position in the rank-by-rank reading order of ``lists``."""
    order: dict[Hashable, int] = {}
    depth = max((len(lst) for lst in lists), default=0)
    for rank in range(depth):
        for lst in lists:
            if rank < len(lst) and lst[rank] not in order:
                order[lst[rank]] = len(order)
    return order


def _ranked(scores: dict[Hashable, float], order: dict[Hashable, int]) -> list[tuple[Any, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def check_rrf_k(k: Any) -> int:
    """The RRF constant as a non-negative integer, or :class:`ConfigurationError`."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigurationError(
            f"rrf_k={k!r} must be a non-negative integer (the RRF constant: a document "
            f"at rank r scores 1 / (rrf_k + r)); pass e.g. rrf_k={DEFAULT_RRF_K}"
        )
    return k


def check_weights(weights: Any, n: int) -> tuple[float, ...]:
    """``n`` non-negative finite weights, not all zero, scaled to sum to 1."""
    ok = isinstance(weights, (list, tuple)) and len(weights) == n
    values: list[float] = []
    if ok:
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                ok = False
                break
            values.append(float(w))
        ok = ok and all(w >= 0 for w in values) and sum(values) > 0
    if not ok:
        raise ConfigurationError(
            f"weights={weights!r} must be {n} non-negative numbers, not all zero (dense "
            "first, then full text); pass e.g. weights=(0.5, 0.5)"
        )
    total = sum(values)
    return tuple(w / total for w in values)


def rrf(rankings: Sequence[Sequence[Hashable]], k: int = DEFAULT_RRF_K) -> list[tuple[Any, float]]:
    """Reciprocal-rank fusion: ``score(d) = sum_i 1 / (k + rank_i(d))``, ranks from 1.

    ``rankings``: one list of keys per retriever, best first (a key repeated within a
    list counts at its first rank only).
    """
    k = check_rrf_k(k)
    scores: dict[Hashable, float] = {}
    for lst in rankings:
        seen: set[Hashable] = set()
        for rank, key in enumerate(lst, start=1):
            if key not in seen:
                seen.add(key)
                scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return _ranked(scores, _first_seen(rankings))


def min_max(scores: Sequence[float]) -> list[float]:
    """Scores mapped linearly to [0, 1] (best 1, worst 0); all equal: all 1."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def weighted(
    scored: Sequence[Sequence[tuple[Hashable, float]]], weights: Sequence[float]
) -> list[tuple[Any, float]]:
    """Weighted sum of per-list min-max normalised scores (weights scaled to sum 1).

    ``scored``: one list of ``(key, score)`` per retriever, higher scores better. The
    fused scores lie in [0, 1].
    """
    w = check_weights(list(weights), len(scored))
    scores: dict[Hashable, float] = {}
    for weight, lst in zip(w, scored):
        seen: set[Hashable] = set()
        normed = min_max([score for _, score in lst])
        for (key, _), value in zip(lst, normed):
            if key not in seen:
                seen.add(key)
                scores[key] = scores.get(key, 0.0) + weight * value
    return _ranked(scores, _first_seen([[key for key, _ in lst] for lst in scored]))
