"""The measuring half of calibration: head searches, recall bounds, the choice, the head index.

:func:`~langchain_matryoshka.calibration.calibrate` resolves the queries and the exact
truth, then measures here every head setting (an IVF head's ``nprobe``) and, with a memory
budget, every head index type that fits (:mod:`._head_choice`). Method: docs/calibration.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import _filtered, _head_choice, _milvus
from ._bounds import recall_lower_bounds
from ._calibration_result import CalibrationPoint
from .funnel import funnel_rerank

if TYPE_CHECKING:
    from ._engine import Engine

#: Candidate floats fetched per head search while calibrating (Milvus returns them as
#: Python lists, about 30 bytes a float in transit: 4M floats ~ 120 MB).
CANDIDATE_BUDGET = 4_000_000
#: Latencies within this fraction of each other are a tie (the machine's noise).
LATENCY_TIE = 0.05


def _tiers(grid: Sequence[int]) -> list[int]:
    top = max(grid)
    return sorted({min(top, t) for t in (256, 1024)} | {top})


def _madds(plan_sizes: Sequence[int], scales: Sequence[int]) -> int:
    bounds = [0, *scales]
    return int(sum(n * (b - a) for n, a, b in zip(plan_sizes, bounds, bounds[1:])))


class _Sweep(NamedTuple):
    """What every head setting of one calibration is measured on (queries, truth, plans)."""

    engine: Engine
    qvecs: np.ndarray
    own: list[str | None]
    truth: list[list[str]]
    plans: dict[tuple, Any]
    grid: list[int]
    k: int
    confidence: float
    seed: int
    required: float
    show_progress: bool
    scope: dict[str, Any]

    def points(self, head_params: Mapping[str, Any]) -> list[CalibrationPoint]:
        """Recall and its bound of every plan, head searched with ``head_params``."""
        engine, qvecs, own, truth, k = self.engine, self.qvecs, self.own, self.truth, self.k
        dim = qvecs.shape[1]
        denom = np.array([max(len(t), 1) for t in truth], dtype=np.float64)
        hits = {key: np.zeros(len(qvecs)) for key in self.plans}
        lower: dict[tuple, float] = {}
        done = 0
        tiers = _tiers(self.grid)
        while tiers:
            tier = tiers.pop(0)
            todo = {key: plan for key, plan in self.plans.items() if done < key[0] <= tier}
            chunk = max(1, CANDIDATE_BUDGET // (tier * dim))
            starts = range(0, len(qvecs), chunk)
            exhausted = True  # no query got as many hits as asked: deeper finds no more
            if self.show_progress:
                from tqdm.auto import tqdm

                starts = tqdm(starts, desc=f"calibrating (<= {tier} candidates)", unit="chunk")
            for start in starts:
                scope: dict[str, Any] = {"head_params": dict(head_params)} if head_params else {}
                if self.scope["where"]:  # as a filtered search of this many candidates runs it
                    ef = _filtered.choose(
                        self.scope["count"], self.scope["rows"], tier, exact_rows=0
                    ).ef
                    scope.update(
                        where=self.scope["where"], partitions=self.scope["partitions"], ef=ef
                    )
                q, cands = engine.head_candidates(qvecs[start : start + chunk], tier, **scope)
                exhausted = exhausted and int(cands.n_valid.max(initial=0)) < tier
                for key, plan in todo.items():
                    c = key[0]
                    ranked = funnel_rerank(
                        q, cands.vectors[:, :c], np.minimum(cands.n_valid, c), plan
                    )
                    for qi, row in enumerate(ranked.indices.tolist()):
                        o = own[start + qi]
                        got = [cands.ids[qi][j] for j in row if j >= 0 and cands.ids[qi][j] != o]
                        hits[key][start + qi] = len(set(got[:k]) & set(truth[start + qi]))
            keys = list(todo)
            bounds = recall_lower_bounds(
                np.stack([hits[key] / denom for key in keys]), k, self.confidence, seed=self.seed
            )
            lower.update(zip(keys, bounds.tolist()))
            done = tier
            if any(lower[key] >= self.required for key in keys):
                break  # larger counts only cost more
            if exhausted:  # deeper tiers would bring the same hits: one pass at the top
                tiers = tiers[-1:]
        return [
            CalibrationPoint(
                candidates=key[0],
                prune_ratio=key[1],
                scales=key[2],
                recall=float(np.mean(hits[key] / denom)),
                recall_lower=lower[key],
                rerank_madds=_madds(plan.stage_sizes(), plan.scales),
                head_params=dict(head_params),
            )
            for key, plan in self.plans.items()
            if key in lower
        ]


def _select(
    sweep: _Sweep,
    collection: Any,
    measure_latency: bool,
    condition: Mapping[str, Any],
    search_grid: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[CalibrationPoint], CalibrationPoint | None]:
    """The curve over the head's search settings, and the cheapest point reaching the bound.

    An IVF head sweeps ``nprobe`` upwards (:func:`._head_choice.nprobe_grid`), stopping
    one setting past the first that reaches the bound: a deeper search can need fewer
    candidates, and latency decides between them.
    """
    if search_grid is None:
        search_grid = [{}]
        if collection.index_type in _head_choice.IVF_TYPES:
            search_grid = _head_choice.nprobe_grid(int(collection.index_params.get("nlist", 128)))
    curve: list[CalibrationPoint] = []
    reached_at = None
    for i, params in enumerate(search_grid):
        points = sweep.points(params)
        curve += points
        if reached_at is None and any(p.recall_lower >= sweep.required for p in points):
            reached_at = i
        if reached_at is not None and i > reached_at:
            break
    best = _contenders(curve, sweep.required)
    if measure_latency and best:
        timed = _latencies(sweep.engine, sweep.qvecs, best, sweep.k, condition)
        best = [_with(pt, latency_ms=timed[i]) for i, pt in enumerate(best)]
    chosen = _choose(best)
    if chosen is not None and measure_latency:
        curve = [next((b for b in best if _key(b) == _key(pt)), pt) for pt in curve]
    curve.sort(key=lambda pt: (_head_key(pt), pt.scales, pt.prune_ratio, pt.candidates))
    return curve, chosen


def _choose_head(
    sweep: _Sweep,
    budget_mb: float,
    index_types: Sequence[str] | None,
    measure_latency: bool,
    trials: list[dict[str, Any]],
    keep: bool = True,
) -> tuple[list[CalibrationPoint], CalibrationPoint | None]:
    """Try each head index that fits the budget, best first; keep the first that reaches.

    Each option is built over every row (minutes at scale). When none reaches the
    bound, or without ``keep`` (a calibration that persists nothing), the head index
    the store had is built again. ``trials`` receives a row per option tried.
    """
    engine = sweep.engine
    collection = engine.collection
    layout = engine.layout
    assert layout is not None  # calibrate() checked
    fits = _head_choice.options(
        collection.backend, engine.count(""), layout.search_dim, budget_mb, index_types
    )
    original = (collection.index_type, dict(collection.index_params))
    curve: list[CalibrationPoint] = []
    chosen = None
    try:
        for option in fits:
            started = time.perf_counter()
            rebuilt = not _has_head(engine, option.index_type, option.build)
            if rebuilt:
                engine.rebuild_head_index(option.index_type, option.build)
            built = time.perf_counter() - started
            curve, chosen = _select(sweep, collection, measure_latency, {}, option.search_grid)
            trials.append(
                {
                    "index_type": option.index_type,
                    "index_params": dict(collection.index_params),
                    "memory_mb": option.memory_mb,
                    "rebuilt": rebuilt,
                    "build_seconds": built,
                    "reached": chosen is not None,
                    "candidates": None if chosen is None else chosen.candidates,
                    "search_params": None if chosen is None else chosen.head_params,
                    "latency_ms": None if chosen is None else chosen.latency_ms,
                }
            )
            if chosen is not None:
                break
    except Exception:
        _restore(engine, original)
        raise
    if chosen is None or not keep:
        _restore(engine, original)
    return curve, chosen


def _has_head(engine: Engine, index_type: str, params: Mapping[str, Any]) -> bool:
    """Whether the head index is ``index_type`` built with ``params`` (defaults filled in)."""
    collection, dim = engine.collection, engine.layout.search_dim if engine.layout else 0
    return collection.index_type == index_type and _milvus.build_params(
        index_type, collection.index_params, dim
    ) == _milvus.build_params(index_type, params, dim)


def _restore(engine: Engine, original: tuple[str, dict[str, Any]]) -> None:
    if not _has_head(engine, *original):
        engine.rebuild_head_index(*original)


def _head_key(pt: CalibrationPoint) -> tuple:
    return tuple(sorted(pt.head_params.items()))


def _key(pt: CalibrationPoint) -> tuple:
    return (_head_key(pt), pt.candidates, pt.prune_ratio, pt.scales)


def _with(pt: CalibrationPoint, **changes: Any) -> CalibrationPoint:
    return CalibrationPoint(**{**asdict(pt), "scales": pt.scales, **changes})


def _contenders(curve: list[CalibrationPoint], required: float) -> list[CalibrationPoint]:
    """Per (head setting, prune ratio, scales): the fewest candidates reaching ``required``."""
    best: dict[tuple, CalibrationPoint] = {}
    for pt in sorted(curve, key=lambda p: p.candidates):
        shape = (_head_key(pt), pt.prune_ratio, pt.scales)
        if pt.recall_lower >= required and shape not in best:
            best[shape] = pt
    return sorted(best.values(), key=lambda p: (p.candidates, p.rerank_madds))


def _choose(contenders: list[CalibrationPoint], by_latency: bool = True) -> CalibrationPoint | None:
    """Fewest candidates, then fewest madds; a faster one (beyond the tie band) wins."""
    if not contenders:
        return None
    chosen = contenders[0]
    if by_latency:
        for pt in contenders[1:]:
            if (
                pt.latency_ms is not None
                and chosen.latency_ms is not None
                and pt.latency_ms < chosen.latency_ms * (1.0 - LATENCY_TIE)
            ):
                chosen = pt
    return chosen


def _latencies(
    engine: Engine,
    qvecs: np.ndarray,
    points: list[CalibrationPoint],
    k: int,
    condition: Mapping[str, Any],
    rounds: int = 15,
) -> list[float]:
    """Median ms of single-query searches per point, interleaved so noise is shared."""
    planned = [
        engine.plan(
            k,
            {
                "candidates": p.candidates,
                "prune_ratio": p.prune_ratio,
                "scales": list(p.scales),
                **{name: value for name, value in condition.items() if value is not None},
            },
        )
        for p in points
    ]
    planned = [
        None if plan is None else plan._replace(head_params=p.head_params or None)
        for plan, p in zip(planned, points)
    ]
    times: list[list[float]] = [[] for _ in points]
    for r in range(rounds):
        q = qvecs[r % len(qvecs)][None, :]
        order = range(len(points)) if r % 2 == 0 else reversed(range(len(points)))
        for i in order:
            t0 = time.perf_counter()
            engine.search(q, planned[i], record=False)
            times[i].append(1000.0 * (time.perf_counter() - t0))
    return [float(np.median(t)) for t in times]
