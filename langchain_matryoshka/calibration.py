"""Calibration: the cheapest funnel that reaches a target recall against exact search.

The notebook leaves the candidate count to a hand-made rule of thumb. ``calibrate``
measures it on the store itself:

1. queries: held-out query texts, or pseudo-queries (stored documents, each excluded
   from its own results) when none are given;
2. ground truth: exact full-dimension cosine top ``k`` over every stored row, streamed
   from Milvus in batches (bounded memory at any collection size);
3. one head search per small chunk of queries at a depth of 256 candidates; smaller
   counts are the first ``c`` hits of the same head-ordered list, so every
   (candidates, prune_ratio) point up to 256 is reranked in numpy without another
   Milvus call; only if none reaches the target are deeper tiers (1024, then the
   grid's largest) fetched;
4. the cheapest point whose mean recall@k reaches the target (fewest candidates, then
   least rerank work) becomes the store's default, persisted with the collection.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigurationError
from .funnel import funnel_rerank, make_plan

if TYPE_CHECKING:
    from .vectorstore import MatryoshkaMilvus

#: Candidate floats fetched per head search while calibrating (Milvus returns them as
#: Python lists, about 30 bytes a float in transit: 4M floats ~ 120 MB).
CANDIDATE_BUDGET = 4_000_000


def _tiers(grid: Sequence[int]) -> list[int]:
    """Head-search depths to try in turn: 256, 1024, then the grid's largest count.

    Each tier fetches once and measures every grid count up to it; calibration stops at
    the first tier where some count reaches the target, so deep searches are only paid
    for when shallow ones fall short.
    """
    top = max(grid)
    return sorted({min(top, t) for t in (256, 1024)} | {top})


@dataclass(frozen=True)
class CalibrationPoint:
    """Recall of one funnel setting."""

    candidates: int
    prune_ratio: float
    recall: float
    """Mean recall@k against exact full-dimension search."""
    rerank_madds: int
    """Multiply-adds per query spent reranking (sum of survivors x segment length)."""


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate` measured and chose."""

    k: int
    target_recall: float
    reached: bool
    candidates: int | None
    """Chosen candidate count (None if no point reached the target)."""
    prune_ratio: float | None
    scales: tuple[int, ...]
    n_queries: int
    pseudo_queries: bool
    seconds: float
    persisted: bool
    curve: list[CalibrationPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """The curve as a markdown table."""
        lines = [
            "| candidates | prune_ratio | recall@k | rerank madds/query |",
            "|---|---|---|---|",
        ]
        for p in self.curve:
            lines.append(
                f"| {p.candidates} | {p.prune_ratio:g} | {p.recall:.4f} | {p.rerank_madds:,} |"
            )
        return "\n".join(lines)


def default_grid(k: int, count: int) -> list[int]:
    """Candidate counts tried: from the first power of two >= k up to 2048 (or the
    collection's size), in steps of 1.5x and 2x (16, 24, 32, 48, 64, 96, ...)."""
    start = 1 << max(0, math.ceil(math.log2(max(k, 1))))
    steps = sorted({c for p in range(start.bit_length() - 1, 12) for c in (2**p, 3 * 2**p // 2)})
    grid = []
    for c in steps:
        if start <= c <= 2048:
            grid.append(c)
            if c >= count:  # the first count covering the whole collection is the last
                break
    return grid


def _madds(plan_sizes: Sequence[int], scales: Sequence[int]) -> int:
    bounds = [0, *scales]
    return int(sum(n * (b - a) for n, a, b in zip(plan_sizes, bounds, bounds[1:])))


def calibrate(
    store: MatryoshkaMilvus,
    queries: Sequence[str] | None = None,
    *,
    query_vectors: np.ndarray | None = None,
    k: int = 10,
    target_recall: float = 0.99,
    n_pseudo: int = 200,
    candidate_grid: Sequence[int] | None = None,
    prune_ratios: Sequence[float] = (0.5, 1.0),
    scales: Sequence[int] | None = None,
    persist: bool = True,
    seed: int = 0,
    show_progress: bool = False,
) -> CalibrationResult:
    """Find the cheapest funnel reaching ``target_recall`` (recall@k vs exact search).

    ``queries`` (texts) or ``query_vectors`` (their full embeddings) are held-out
    queries; with neither, ``n_pseudo`` stored documents serve as queries.

    See the module docstring for the method. With ``persist`` the chosen
    ``candidates``, ``prune_ratio`` and ``scales`` become the store's defaults (and its
    retrievers'), stored with the collection for every later client.
    """
    started = time.perf_counter()
    engine = store._engine
    layout = engine._require_layout()
    if not 0.0 < target_recall <= 1.0:
        raise ConfigurationError(
            f"target_recall={target_recall!r} must be in (0, 1]; pass e.g. 0.99"
        )
    make_plan(dim=layout.dim, search_dim=layout.search_dim, k=k, scales=scales)

    if queries is not None and query_vectors is not None:
        raise ConfigurationError("pass queries (texts) or query_vectors, not both")
    pseudo = queries is None and query_vectors is None
    if pseudo:
        ids = engine.collection.all_ids()
        rng = np.random.default_rng(seed)
        chosen = [ids[i] for i in rng.choice(len(ids), min(n_pseudo, len(ids)), replace=False)]
        self_ids, stored = engine.stored_vectors(chosen)
        # Stored vectors are rotated; queries go through the rotation again.
        qvecs = stored @ engine.basis.T if engine.basis is not None else stored
        extra = 1
    else:
        if query_vectors is None:
            query_vectors = store._embed_queries(list(queries))
        qvecs = np.asarray(query_vectors, dtype=np.float32)
        self_ids = [None] * len(qvecs)
        extra = 0
    if len(qvecs) == 0:
        raise ConfigurationError("calibration needs at least one query; pass queries=[...]")

    truth_ids, _ = engine.exact(qvecs, k + extra)
    truth = [[i for i in row if i != own][:k] for row, own in zip(truth_ids, self_ids)]

    count = engine.collection.count()
    grid = sorted(set(candidate_grid or default_grid(k + extra, count)))
    if grid[0] < k + extra:
        raise ConfigurationError(
            f"candidate_grid={list(grid)} holds counts below k={k}; pass counts >= {k + extra}"
        )
    plans = {
        (c, p): make_plan(
            dim=layout.dim,
            search_dim=layout.search_dim,
            k=k + extra,
            candidates=c,
            scales=scales,
            prune_ratio=p,
        )
        for c in grid
        for p in prune_ratios
    }
    hits = {key: 0 for key in plans}
    denom = sum(len(t) for t in truth) or 1
    done = 0  # grid counts up to this one have been measured
    for tier in _tiers(grid):
        todo = {key: plan for key, plan in plans.items() if done < key[0] <= tier}
        chunk = max(1, CANDIDATE_BUDGET // (tier * layout.dim))
        starts = range(0, len(qvecs), chunk)
        if show_progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"calibrating (<= {tier} candidates)", unit="chunk")
        for start in starts:
            q, cands = engine.head_candidates(qvecs[start : start + chunk], tier)
            for (c, p), plan in todo.items():
                ranked = funnel_rerank(q, cands.vectors[:, :c], np.minimum(cands.n_valid, c), plan)
                for qi, row in enumerate(ranked.indices.tolist()):
                    own = self_ids[start + qi]
                    got = [cands.ids[qi][j] for j in row if j >= 0 and cands.ids[qi][j] != own]
                    hits[(c, p)] += len(set(got[:k]) & set(truth[start + qi]))
        done = tier
        if any(hits[key] / denom >= target_recall for key in todo):
            break  # larger counts only cost more
    measured = {key for key in plans if key[0] <= done}

    curve = []
    for (c, p), plan in plans.items():
        if (c, p) not in measured:
            continue
        curve.append(
            CalibrationPoint(
                candidates=c,
                prune_ratio=p,
                recall=hits[(c, p)] / denom,
                rerank_madds=_madds(plan.stage_sizes(), plan.scales),
            )
        )
    curve.sort(key=lambda pt: (pt.candidates, pt.prune_ratio))
    reaching = [pt for pt in curve if pt.recall >= target_recall]
    best = min(reaching, key=lambda pt: (pt.candidates, pt.rerank_madds), default=None)
    plan_scales = next(iter(plans.values())).scales
    persisted = False
    if best is not None and persist:
        engine.save_defaults(
            {
                "candidates": best.candidates,
                "prune_ratio": best.prune_ratio,
                "scales": list(plan_scales),
            },
            {
                "k": k,
                "target_recall": target_recall,
                "recall": best.recall,
                "n_queries": len(qvecs),
                "pseudo_queries": pseudo,
            },
        )
        persisted = True
    return CalibrationResult(
        k=k,
        target_recall=target_recall,
        reached=best is not None,
        candidates=None if best is None else best.candidates,
        prune_ratio=None if best is None else best.prune_ratio,
        scales=tuple(plan_scales),
        n_queries=len(qvecs),
        pseudo_queries=pseudo,
        seconds=time.perf_counter() - started,
        persisted=persisted,
        curve=curve,
    )
