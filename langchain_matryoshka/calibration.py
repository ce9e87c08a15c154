"""Calibration: the cheapest funnel whose recall against exact search is *proven* on queries.

``calibrate(engine, embed_queries, ...)`` (what ``store.calibrate()`` calls):

1. queries, in this order of preference: the ones passed (texts or vectors); the store's
   recorded sample of real queries (``record_queries=N``); else pseudo-queries made from
   the stored documents (:mod:`._pseudo`: short spans embedded with the model's query
   prompt, or perturbed vectors when no model is at hand), their source left out;
2. ground truth: exact full-dimension cosine top ``k`` over every stored row, streamed;
3. one head search per chunk of queries at a depth of 256 candidates (deeper tiers only
   when nothing reaches the target); every (candidates, prune ratio, scales) point up
   to that depth is reranked in numpy from the same head-ordered hits;
4. per-query recall@k of every point, and a one-sided lower confidence bound on its
   mean over queries like these (:mod:`._bounds`);
5. the chosen point is the cheapest whose *lower bound* reaches the target. With
   pseudo-queries the bound must reach a stricter level (:data:`PSEUDO_MISS_RATIO`:
   pseudo-queries miss less than real ones), and the result says what that costs.
   "Cheapest": for each prune ratio and scales schedule the fewest candidates that
   reach; among those the fastest by measured latency (paired, median of single-query
   searches), ties (within :data:`LATENCY_TIE`) to fewer candidates and fewer rerank
   multiply-adds.

The chosen ``candidates``, ``prune_ratio`` and ``scales`` become the store's defaults,
persisted with the collection together with the corpus size they were measured on: a
store that has grown past :data:`GROWTH_FACTOR` times that size says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _milvus, _pseudo, _querylog
from ._calibration_result import CalibrationResult
from ._calibration_search import (  # noqa: F401 - re-exported: the calibration's settings
    CANDIDATE_BUDGET,
    LATENCY_TIE,
    _choose,
    _choose_head,
    _contenders,
    _madds,
    _select,
    _Sweep,
)
from .errors import ConfigurationError, InvalidInputError
from .funnel import default_scales, make_plan

if TYPE_CHECKING:
    from ._engine import Engine

#: Pseudo-queries sampled when no real queries are known.
DEFAULT_N_PSEUDO = 1000
DEFAULT_PRUNE_RATIOS = (0.5, 1.0)
#: How many times real queries miss per pseudo-query miss, at least the largest ratio
#: measured on real queries apart from any evaluation (SciFact train: 809 claims; the
#: Python FAQ: 173 questions over 4,000 passages of the Python docs), all-MiniLM-L6-v2,
#: head 64 of 384, PCA rotation, where real queries missed 0.2% to 6%
#: (``benchmarks/calibration_simulation.py``; docs/calibration.md). Spans: up to 1.01 and
#: 0.75 (an earlier run: 1.03, 0.98); perturbed: 2.76 and 2.57 (2.06, 2.89); documents:
#: 36 and 5.8 (17, 7.5), beyond what 1,000 pseudo-queries can prove. A target of 0.99
#: asks pseudo-queries for ``1 - 0.01 / ratio``.
PSEUDO_MISS_RATIO = {"spans": 1.05, "perturbed": 3.0, "documents": 17.0}
#: A calibration is stale once the collection holds this many times the rows it had.
GROWTH_FACTOR = 2.0
QUERY_SOURCES = ("given", "recorded", "pseudo")


def default_grid(k: int, count: int) -> list[int]:
    """Candidate counts tried, from the first power of two >= k.

    Up to 2048 (or the collection's size), in steps of 1.5x and 2x (16, 24, 32, 48, 64,
    96, ...).
    """
    start = 1 << max(0, int(np.ceil(np.log2(max(k, 1)))))
    steps = sorted({c for p in range(start.bit_length() - 1, 12) for c in (2**p, 3 * 2**p // 2)})
    grid = []
    for c in steps:
        if start <= c <= 2048:
            grid.append(c)
            if c >= count:  # the first count covering the whole collection is the last
                break
    return grid


def default_schedules(search_dim: int, dim: int) -> list[tuple[int, ...]]:
    """Scales schedules tried: the default doubling, one middle stage, full only."""
    out = [default_scales(search_dim, dim)]
    if 2 * search_dim < dim:
        out.append((2 * search_dim, dim))
    out.append((dim,))
    return list(dict.fromkeys(out))


def is_stale(engine: Engine, count: int | None = None) -> bool:
    """True when the collection grew past ``GROWTH_FACTOR`` x its size at calibration."""
    size = engine.config.get("calibration", {}).get("corpus_size")
    if not size or engine.layout is None:
        return False
    count = engine.collection.count() if count is None else count
    return count > GROWTH_FACTOR * size


def warn_if_stale(engine: Engine) -> None:
    """Warn (once, on opening a store) when the calibration no longer fits the data."""
    report = engine.config.get("calibration", {})
    if report.get("corpus_size") and is_stale(engine):
        import warnings

        warnings.warn(
            f"collection {engine.collection.name!r} was calibrated at "
            f"{report['corpus_size']:,} rows and has grown past {GROWTH_FACTOR:g}x that; "
            "its funnel defaults may no longer reach the target recall: rerun "
            "store.calibrate()",
            UserWarning,
            stacklevel=3,
        )


def calibrate(
    engine: Engine,
    embed_queries: Callable[[list[str]], Any] | None = None,
    queries: Sequence[str] | None = None,
    *,
    query_vectors: np.ndarray | None = None,
    k: int = 10,
    target_recall: float = 0.99,
    confidence: float = 0.95,
    use_recorded: bool = True,
    pseudo: str | None = None,
    pseudo_margin: float | None = None,
    n_pseudo: int = DEFAULT_N_PSEUDO,
    candidate_grid: Sequence[int] | None = None,
    prune_ratios: Sequence[float] = DEFAULT_PRUNE_RATIOS,
    scales: Sequence[int] | None = None,
    measure_latency: bool = True,
    persist: bool | None = None,
    seed: int = 0,
    show_progress: bool = False,
    expr: str | None = None,
    filter: Mapping[str, Any] | None = None,  # noqa: A002 - the searches' name
    memory_budget_mb: float | None = None,
    index_types: Sequence[str] | None = None,
) -> CalibrationResult:
    """Find the cheapest funnel whose recall@k lower bound reaches ``target_recall``.

    ``engine`` is the store's core and ``embed_queries`` its query embedding (needed
    for query texts and for span pseudo-queries); ``queries`` (texts) or
    ``query_vectors`` are held-out queries. With neither, the recorded sample is used
    (``use_recorded``), else ``n_pseudo`` pseudo-queries made by ``pseudo`` ("spans"
    when a model is at hand, else "perturbed"; "documents" is the old method).
    ``pseudo_margin`` overrides the measured :data:`PSEUDO_MISS_RATIO` of the method.
    ``scales`` pins one schedule (default: :func:`default_schedules`). See the module
    docstring for the method.

    ``expr`` / ``filter``: calibrate the searches that carry this condition, on the
    rows matching it (pseudo-queries drawn from them, exact search among them, the
    head search filtered as such searches run it). ``persist`` (default: True without
    a condition, False with one) saves the choice as the store's funnel defaults.

    An IVF head's search depth (``nprobe``) is calibrated with the funnel. With
    ``memory_budget_mb`` the head index is chosen too: each type of ``index_types``
    (default: every one the backend builds, :data:`._head_choice.PREFERENCE` order) whose
    estimated memory fits the budget is built in turn, and the first that reaches the
    target is kept (each build indexes every row again: minutes at scale). When none
    reaches, or ``persist`` is False, the store's head index is built again as it was.
    """
    started = time.perf_counter()
    layout = engine.layout or engine.refresh()
    if layout is None:
        raise InvalidInputError(
            f"collection {engine.collection.name!r} is empty; add documents before calibrating"
        )
    engine.collection.wait_for_head_index()  # measure the index searches will use
    where = engine.where(expr, filter)
    partitions = engine.partitions_for(filter)
    if persist is None:
        persist = not where
    count = engine.count(where, partitions=partitions)
    if where and count == 0:
        raise InvalidInputError(f"no stored row matches {where!r}; nothing to calibrate on")
    if not 0.0 < target_recall <= 1.0:
        raise ConfigurationError(
            f"target_recall={target_recall!r} must be in (0, 1]; pass e.g. 0.99"
        )
    if not 0.5 <= confidence < 1.0:
        raise ConfigurationError(f"confidence={confidence!r} must be in [0.5, 1); pass e.g. 0.95")
    if pseudo_margin is not None and not (
        isinstance(pseudo_margin, (int, float)) and pseudo_margin >= 1.0
    ):
        raise ConfigurationError(
            f"pseudo_margin={pseudo_margin!r} must be a number >= 1 (real misses per "
            "pseudo-query miss; 1.0 trusts pseudo-queries as they are); pass e.g. 1.5"
        )
    if memory_budget_mb is not None and where:
        raise ConfigurationError(
            "memory_budget_mb chooses the head index every search uses; calibrate it "
            "without expr/filter, then calibrate filtered searches on that index"
        )
    if index_types is not None and memory_budget_mb is None:
        raise ConfigurationError("index_types= needs memory_budget_mb=; pass both")
    if pseudo is not None and pseudo not in _pseudo.PSEUDO_METHODS:
        raise ConfigurationError(
            f"pseudo={pseudo!r} is not a pseudo-query method; pass one of "
            + ", ".join(repr(m) for m in _pseudo.PSEUDO_METHODS)
        )
    schedules = (
        [tuple(make_plan(dim=layout.dim, search_dim=layout.search_dim, k=k, scales=scales).scales)]
        if scales is not None
        else default_schedules(layout.search_dim, layout.dim)
    )
    if queries is not None and query_vectors is not None:
        raise ConfigurationError("pass queries (texts) or query_vectors, not both")
    rng = np.random.default_rng(seed)
    method = None
    if queries is not None or query_vectors is not None:
        source = "given"
        if query_vectors is None:
            if embed_queries is None:
                raise ConfigurationError(
                    "query texts need the store's embedding model; pass query_vectors"
                )
            assert queries is not None  # one of the two was given
            query_vectors = embed_queries(list(queries))
        qvecs = np.asarray(query_vectors, dtype=np.float32)
        own: list[str | None] = [None] * len(qvecs)
    else:
        qvecs = np.zeros((0, layout.dim), np.float32)
        if use_recorded:
            if engine.query_log is not None:
                engine.query_log.flush()
            qvecs = _querylog.read_recorded(engine.meta, layout.dim)[0]
        if len(qvecs):
            source, own = "recorded", [None] * len(qvecs)
        else:
            source = "pseudo"
            method = pseudo or ("spans" if embed_queries is not None else "perturbed")
            qvecs, own = _pseudo_queries(
                engine, embed_queries, method, n_pseudo, rng, where, partitions
            )
    if len(qvecs) == 0:
        raise ConfigurationError("calibration needs at least one query; pass queries=[...]")
    extra = 0 if source != "pseudo" else 1

    truth_ids, _ = engine.exact(qvecs, k + extra, where=where, partitions=partitions)
    truth = [[i for i in row if i != o][:k] for row, o in zip(truth_ids, own)]
    scope_rows = engine.count("", partitions=partitions) if where else count
    grid = sorted(set(candidate_grid or default_grid(k + extra, count)))
    if grid[0] < k + extra:
        raise ConfigurationError(
            f"candidate_grid={list(grid)} holds counts below k={k}; pass counts >= {k + extra}"
        )
    plans = {}
    for c in grid:
        for sc in schedules:
            for p in prune_ratios if len(sc) > 1 else (1.0,):
                plans[(c, float(p), sc)] = make_plan(
                    dim=layout.dim,
                    search_dim=layout.search_dim,
                    k=k + extra,
                    candidates=c,
                    scales=sc,
                    prune_ratio=p,
                )
    ratio = 1.0
    if method is not None:
        ratio = PSEUDO_MISS_RATIO[method] if pseudo_margin is None else float(pseudo_margin)
    required = 1.0 - (1.0 - target_recall) / ratio
    sweep = _Sweep(
        engine, qvecs, own, truth, plans, grid, k, confidence, seed, required, show_progress,
        {"where": where, "partitions": partitions, "count": count, "rows": scope_rows},
    )
    condition = {"expr": expr, "filter": filter}
    trials: list[dict[str, Any]] = []
    if memory_budget_mb is None:
        curve, chosen = _select(sweep, engine.collection, measure_latency, condition)
    else:
        curve, chosen = _choose_head(
            sweep, memory_budget_mb, index_types, measure_latency, trials, keep=bool(persist)
        )

    margin_cost = None
    if source == "pseudo" and chosen is not None and ratio > 1.0:
        # the same rule (fewest candidates, then madds) with and without the margin
        loose = _choose(_contenders(curve, target_recall), by_latency=False)
        strict = _choose(_contenders(curve, required), by_latency=False)
        if loose is not None and strict is not None:
            margin_cost = {
                "candidates": loose.candidates,
                "prune_ratio": loose.prune_ratio,
                "scales": list(loose.scales),
                "extra_candidates": strict.candidates - loose.candidates,
                "extra_madds_percent": 100.0 * (strict.rerank_madds / loose.rerank_madds - 1.0),
                "miss_ratio": ratio,
            }
    persisted = False
    head = engine.collection
    if chosen is not None and persist:
        engine.save_defaults(
            {
                "candidates": chosen.candidates,
                "prune_ratio": chosen.prune_ratio,
                "scales": list(chosen.scales),
            },
            {
                "k": k,
                "target_recall": target_recall,
                "confidence": confidence,
                "recall": chosen.recall,
                "recall_lower": chosen.recall_lower,
                "required_recall": required,
                "n_queries": len(qvecs),
                "queries": source,
                "pseudo_queries": source == "pseudo",
                "pseudo_method": method,
                "corpus_size": count,
                "condition": where or None,
                "calibrated_at": time.time(),
                "index_type": head.index_type,
                "memory_budget_mb": memory_budget_mb,
            },
            head_search=chosen.head_params,
        )
        persisted = True
    return CalibrationResult(
        k=k,
        target_recall=target_recall,
        confidence=confidence,
        reached=chosen is not None,
        candidates=None if chosen is None else chosen.candidates,
        prune_ratio=None if chosen is None else chosen.prune_ratio,
        scales=None if chosen is None else chosen.scales,
        expected_recall=None if chosen is None else chosen.recall,
        recall_lower=None if chosen is None else chosen.recall_lower,
        queries=source,
        n_queries=len(qvecs),
        pseudo_method=method,
        required_recall=required,
        margin_cost=margin_cost,
        corpus_size=count,
        seconds=time.perf_counter() - started,
        persisted=persisted,
        curve=curve,
        index_type=head.index_type,
        index_params=dict(head.index_params),
        head_search_params=None if chosen is None else dict(chosen.head_params),
        memory_budget_mb=memory_budget_mb,
        index_trials=trials,
    )


def _pseudo_queries(
    engine: Engine,
    embed_queries: Callable[[list[str]], Any] | None,
    method: str,
    n: int,
    rng: np.random.Generator,
    where: str = "",
    partitions: list[str] | None = None,
) -> tuple[np.ndarray, list[str | None]]:
    """Pseudo-query vectors (in the embedding's own basis) and their source ids.

    Made from documents matching ``where`` (every document if empty).
    """
    ids = engine.ids(where, partitions=partitions) if where else engine.collection.all_ids()
    chosen = [ids[i] for i in rng.choice(len(ids), min(n, len(ids)), replace=False)]
    if method == "spans":
        if embed_queries is None:
            raise ConfigurationError(
                "pseudo='spans' embeds spans of the documents and needs the store's "
                "embedding model; pass pseudo='perturbed' (no model) or real queries"
            )
        docs: dict[str, str] = {}
        for start in range(0, len(chosen), 1024):
            for row in engine.collection.get(chosen[start : start + 1024]):
                docs[str(row[_milvus.FIELD_ID])] = row[_milvus.FIELD_TEXT]
        found = [i for i in chosen if docs.get(i)]
        texts = _pseudo.spans([docs[i] for i in found], rng)
        return np.asarray(embed_queries(texts), dtype=np.float32), list(found)
    found, stored = engine.stored_vectors(chosen)
    plain = stored @ engine.basis.T if engine.basis is not None else stored
    if method == "documents":
        return plain, list(found)
    return _pseudo.perturb(plain, PERTURB_COSINE, rng), list(found)


#: Cosine between a perturbed pseudo-query and its source document: about the median
#: cosine between a real query and its nearest document (SciFact train 0.626, Python FAQ
#: 0.645) and between a span and its source (0.646, 0.586), all-MiniLM-L6-v2.
PERTURB_COSINE = 0.6


