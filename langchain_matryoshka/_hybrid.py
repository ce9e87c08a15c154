"""Full-text (BM25) and hybrid search over the store's sync core.

Plain blocking functions of an :class:`~._engine.Engine`, shared by the LangChain
store (sync and async), the retriever, the LlamaIndex store and the evaluation:

- :func:`text_search`: Milvus' BM25 ranking of the ``sparse`` field alone (Milvus
  tokenises the query text with the collection's analyzer). Scores are BM25 scores
  (>= 0, unbounded, higher is better; not comparable across queries).
- :func:`hybrid_search`: the funnel's dense top ``dense_k`` (full-dimension cosine
  order) and the BM25 top ``full_text_k``, both under the same ``expr`` / ``filter``
  and tenant partitions, fused per query by :mod:`.fusion` into the top ``k``.
  Scores are fused scores, not cosines: weighted sums of min-max normalised scores in
  [0, 1] (the default fusion), or RRF sums of ``1 / (rrf_k + rank)`` (at most
  ``2 / (rrf_k + 1)``).

The two searches are two Milvus calls (overlapped on servers, one after the other on
Milvus Lite, which serves both under this process's interpreter lock), not one
``hybrid_search`` call: Milvus would fuse the head search's ranking with BM25's,
which loses the funnel's rerank (``benchmarks/hybrid.py`` measures both; numbers in
``docs/hybrid.md``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import _milvus
from ._conventions import CALL_KEYWORDS, HYBRID_OPTIONS, reject_unknown
from ._engine import Engine, Hit, Planned
from ._text_search import require_full_text
from .errors import ConfigurationError
from .funnel import make_plan
from .fusion import DEFAULT_RRF_K, FUSIONS, check_rrf_k, check_weights, rrf, weighted

#: The fusion of a call that names none (and passes neither ``rrf_k`` nor ``weights``).
#: Chosen on SciFact's 809 train queries (``benchmarks/hybrid_defaults.py``,
#: ``docs/hybrid.md``): weighted fusion (0.5, 0.5) scored nDCG@10 0.715 to 0.720 at every
#: depth from 10 to 100, RRF (60) 0.690 to 0.701.
DEFAULT_FUSION = "weighted"
#: Documents each side of a hybrid search contributes by default: ``max(k,
#: DEFAULT_DEPTH)``. On SciFact's train queries RRF fused best at depth 10 (0.701; 0.691
#: at 100) and weighted fusion within 0.005 of its best (0.720 at 100) at a tenth of the
#: dense side's cost (the funnel runs with ``k=dense_k``).
DEFAULT_DEPTH = 10
#: Default weights (dense, full text) of ``fusion="weighted"``: the best on SciFact's
#: train queries at every depth (0.4 and 0.6 within 0.01, 0.2 and 0.8 0.02 to 0.03 lower).
DEFAULT_WEIGHTS = (0.5, 0.5)
#: The deepest list a side may ask for (Milvus' largest search limit).
MAX_DEPTH = 16384


@dataclass(frozen=True)
class HybridPlan:
    """A validated hybrid search: the fusion and each side's depth."""

    k: int
    fusion: str
    rrf_k: int
    weights: tuple[float, float]
    dense_k: int
    full_text_k: int


def _depth(name: str, value: Any, k: int) -> int:
    if value is None:
        return max(k, DEFAULT_DEPTH)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DEPTH:
        raise ConfigurationError(
            f"{name}={value!r} must be an integer in [1, {MAX_DEPTH}] (documents that side "
            f"gives the fusion); pass e.g. {name}={max(k, DEFAULT_DEPTH)}"
        )
    return value


def hybrid_plan(k: int, options: Mapping[str, Any]) -> HybridPlan:
    """Validate a hybrid search's fusion options (``k`` is checked by the funnel plan).

    Without ``fusion``, ``rrf_k`` implies "rrf", ``weights`` implies "weighted", and
    neither means :data:`DEFAULT_FUSION`.
    """
    rrf_k, weights = options.get("rrf_k"), options.get("weights")
    fusion = options.get("fusion")
    if fusion is None:
        if rrf_k is not None and weights is not None:
            raise ConfigurationError(
                "rrf_k and weights were both passed; rrf_k is the constant of fusion='rrf', "
                "weights those of fusion='weighted': pass one of them"
            )
        fusion = "rrf" if rrf_k is not None else "weighted" if weights is not None else (
            DEFAULT_FUSION
        )
    if fusion not in FUSIONS:
        raise ConfigurationError(
            f"fusion={fusion!r} is not supported; pass 'rrf' (reciprocal ranks, with "
            "rrf_k) or 'weighted' (normalised scores, with weights)"
        )
    if fusion == "rrf" and weights is not None:
        raise ConfigurationError(
            f"weights={weights!r} applies to fusion='weighted' only; pass "
            "fusion='weighted' or drop weights"
        )
    if fusion == "weighted" and rrf_k is not None:
        raise ConfigurationError(
            f"rrf_k={rrf_k!r} applies to fusion='rrf' only; pass fusion='rrf' or drop rrf_k"
        )
    return HybridPlan(
        k=k,
        fusion=fusion,
        rrf_k=check_rrf_k(DEFAULT_RRF_K if rrf_k is None else rrf_k),
        weights=cast(  # check_weights(..., 2) returns two weights or raises
            "tuple[float, float]",
            check_weights(list(DEFAULT_WEIGHTS if weights is None else weights), 2),
        ),
        dense_k=_depth("dense_k", options.get("dense_k"), k),
        full_text_k=_depth("full_text_k", options.get("full_text_k"), k),
    )


def _check_declared(engine: Engine, planned: Planned | None) -> None:
    if planned is not None:
        require_full_text(planned.layout, engine.collection.name)
    elif engine.declared.full_text is None:  # empty store: will it have the field?
        raise ConfigurationError(
            f"store {engine.collection.name!r} was opened without full_text_search=True, so "
            "search_type='full_text' and 'hybrid' cannot run on it; pass "
            "full_text_search=True when the collection is created (or use "
            "search_type='similarity')"
        )


def plan_text(engine: Engine, k: int, options: Mapping[str, Any]) -> Planned | None:
    """Validate a full-text search (conditions and ``timeout`` only); None while empty."""
    reject_unknown(options, CALL_KEYWORDS["full_text"], "full-text search")
    planned = engine.plan(k, options)
    _check_declared(engine, planned)
    return planned


def plan_hybrid(
    engine: Engine, k: int, options: Mapping[str, Any]
) -> tuple[Planned | None, HybridPlan]:
    """Validate a hybrid search: the dense side's funnel plan and the fusion's."""
    reject_unknown(options, CALL_KEYWORDS["hybrid"], "hybrid search")
    make_plan(dim=2, search_dim=1, k=k)  # validates k
    hp = hybrid_plan(k, options)
    funnel = {n: v for n, v in options.items() if n not in HYBRID_OPTIONS}
    planned = engine.plan(hp.dense_k, funnel)
    _check_declared(engine, planned)
    return planned, hp


def text_search(
    engine: Engine,
    texts: Sequence[str],
    planned: Planned | None,
    limit: int | None = None,
    timings: dict[str, float] | None = None,
) -> list[list[Hit]]:
    """BM25 top ``limit`` (default: the plan's k) per query text, with stored vectors."""
    if planned is None:
        return [[] for _ in texts]
    started = time.perf_counter()
    layout = planned.layout
    found = engine.collection.full_text_search(
        texts,
        planned.plan.k if limit is None else limit,
        planned.expr,
        planned.partitions,
        planned.timeout,
    )
    results = []
    for rows in found:
        vectors = _milvus.decode_full([r[_milvus.FIELD_FULL] for r, _ in rows], layout)
        results.append(
            [Hit(engine.document_of(r), score, v) for (r, score), v in zip(rows, vectors)]
        )
    if timings is not None:
        timings["full_text_search"] = (
            timings.get("full_text_search", 0.0) + time.perf_counter() - started
        )
    return results


def fuse(dense: list[Hit], text: list[Hit], hp: HybridPlan) -> list[Hit]:
    """One query's fused top k (each document once; its vector from either side)."""
    by_id = {str(h.document.id): h for h in text}
    by_id.update({str(h.document.id): h for h in dense})
    if hp.fusion == "rrf":
        fused = rrf(
            [[str(h.document.id) for h in dense], [str(h.document.id) for h in text]], hp.rrf_k
        )
    else:
        fused = weighted(
            [[(str(h.document.id), h.score) for h in dense],
             [(str(h.document.id), h.score) for h in text]],
            hp.weights,
        )
    return [Hit(by_id[key].document, score, by_id[key].vector) for key, score in fused[: hp.k]]


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The worker threads the full-text side runs on while the funnel runs (lazily made)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="matryoshka-bm25")
        return _POOL


def hybrid_search(
    engine: Engine,
    vectors: Any,
    texts: Sequence[str],
    planned: Planned | None,
    hp: HybridPlan,
    timings: dict[str, float] | None = None,
    *,
    concurrent: bool | None = None,
    record: bool = True,
) -> list[list[Hit]]:
    """The funnel's dense top ``dense_k`` fused with BM25's top ``full_text_k``, per query.

    ``vectors``: the query embeddings ``[n, dim]``; ``texts``: the same queries as text.
    With ``concurrent`` the BM25 call runs on a worker thread while the funnel runs; by
    default only on servers (Milvus Lite serves both calls in this process, under one
    interpreter lock, so overlapping them is slower there: docs/hybrid.md).
    ``timings`` receives the funnel's stages (:meth:`Engine.search`),
    ``full_text_search`` (the BM25 call), ``fusion`` and ``total`` (the wall time; with
    ``concurrent`` the sides overlap, so the stages add up to more than it).
    """
    if planned is None:
        return [[] for _ in texts]
    if len(texts) != len(vectors):
        raise ConfigurationError(
            f"got {len(texts)} query texts but {len(vectors)} query vectors; pass one "
            "embedding per query text"
        )
    if concurrent is None:
        concurrent = not engine.collection.lite
    started = time.perf_counter()
    dense_t: dict[str, float] = {}
    text_t: dict[str, float] = {}
    if concurrent:
        future = _pool().submit(text_search, engine, texts, planned, hp.full_text_k, text_t)
        try:
            dense = engine.search(
                np.asarray(vectors), planned, dense_t, query_texts=list(texts), record=record
            )
        finally:
            text = future.result()
    else:
        dense = engine.search(
            np.asarray(vectors), planned, dense_t, query_texts=list(texts), record=record
        )
        text = text_search(engine, texts, planned, hp.full_text_k, text_t)
    fusing = time.perf_counter()
    results = [fuse(d, t, hp) for d, t in zip(dense, text)]
    if timings is not None:
        now = time.perf_counter()
        for stage, seconds in (*dense_t.items(), *text_t.items()):
            timings[stage] = timings.get(stage, 0.0) + seconds
        timings["fusion"] = timings.get("fusion", 0.0) + now - fusing
        timings["total"] = timings.get("total", 0.0) + now - started
    return results
