"""The engine's search: planning, the funnel, filtered routing, exact search.

A base of :class:`._engine.Engine` (which holds the state these methods read); the
funnel's pure parts live in :mod:`.funnel`, filtered routing's in :mod:`._filtered`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from . import _filtered, _layout, _milvus
from ._conventions import CALL_KEYWORDS, FUNNEL_OPTIONS, check_timeout
from .funnel import FunnelPlan, StreamingTopK, check_vectors, funnel_rerank, head_of, make_plan
from .rotation import rotate

if TYPE_CHECKING:
    from ._expressions import Expressions

#: Per-call search options accepted by every search method and the retriever (the
#: rule: :data:`._conventions.CALL_KEYWORDS`).
SEARCH_OPTIONS = CALL_KEYWORDS["search"]
FUNNEL_SETTINGS = FUNNEL_OPTIONS


class Planned(NamedTuple):
    """A validated search: the funnel, the filter expression, the collection's dims."""

    plan: FunnelPlan
    expr: str
    layout: _milvus.Layout
    partitions: list[str] | None = None
    """Store-managed tenant partitions the filter confines the search to (None: all)."""
    timeout: float | None = None
    """Seconds each Milvus call of the search may take (None: the connection's)."""
    tenants: frozenset = frozenset()
    """The tenant values of the filter, when ``partitions`` is set."""
    head_params: Mapping[str, Any] | None = None
    """Head search parameters of this search only (calibration's latency runs)."""


class Hit(NamedTuple):
    """One search result: the document, its full-dimension cosine, its stored vector."""

    document: Document
    score: float
    vector: np.ndarray


class SearchMethods:
    """Searches over the engine's collection (see :class:`._engine.Engine`)."""

    collection: _milvus.MilvusCollection
    layout: _milvus.Layout | None
    expressions: Expressions
    basis: np.ndarray | None
    query_log: Any
    fetch_after_rerank: bool
    exact_rows: int
    counts: _filtered.CountCache
    rows: _filtered.RowsCache | None

    if TYPE_CHECKING:

        def refresh(self) -> _milvus.Layout | None: ...
        def defaults(self) -> dict[str, Any]: ...
        def _require_layout(self) -> _milvus.Layout: ...
        def clear_caches(self) -> None: ...


    def plan(self, k: int, options: Mapping[str, Any]) -> Planned | None:
        """Validate a search; None while the store is empty (no collection yet)."""
        from ._validation import reject_unknown

        reject_unknown(options, SEARCH_OPTIONS, "search")
        timeout = check_timeout(options.get("timeout"))
        layout = self.layout or self.refresh()
        expr = self.expressions.where(options.get("expr"), options.get("filter"))
        if layout is None:
            make_plan(dim=2, search_dim=1, k=k, candidates=options.get("candidates"))
            return None
        defaults = self.defaults()
        settings = {
            name: options[name] if options.get(name) is not None else defaults[name]
            for name in FUNNEL_SETTINGS
        }
        if options.get("candidates") is None and defaults["candidates"] is not None:
            settings["candidates"] = max(defaults["candidates"], k)
        plan = make_plan(dim=layout.dim, search_dim=layout.search_dim, k=k, **settings)
        filter_ = options.get("filter")
        partitions = self.partitions_for(filter_)
        tenants: frozenset = frozenset()
        if partitions is not None:
            # partitions_for found the tenant key of a store-managed tenancy in the filter
            assert filter_ is not None and layout.tenancy is not None
            tenants = frozenset(_as_list(filter_[layout.tenancy.key]))
        return Planned(plan, expr, layout, partitions, timeout, tenants)

    def partitions_for(self, filter: Mapping[str, Any] | None) -> list[str] | None:  # noqa: A002
        """The store-managed partitions a filter on the tenant key confines a call to.

        None (every partition) without store-managed tenancy (servers prune by their
        own partition key) or without the tenant key in the filter.
        """
        layout = self.layout
        tenancy = layout.tenancy if layout is not None else None
        if tenancy is None or tenancy.mode != _layout.TENANCY_PARTITIONS or not filter:
            return None
        if tenancy.key not in filter:
            return None
        return sorted({tenancy.partition_of(v) for v in _as_list(filter[tenancy.key])})

    def query_vectors(self, queries: Any, layout: _milvus.Layout) -> np.ndarray:
        """Checked, rotated query embeddings ``[n, dim]``."""
        return rotate(check_vectors(queries, layout.dim, "query embeddings"), self.basis)

    def search(
        self,
        queries: Any,
        planned: Planned | None,
        timings: dict[str, float] | None = None,
        *,
        query_texts: list[str] | None = None,
        record: bool = True,
    ) -> list[list[Hit]]:
        """One head search for all queries, then the funnel.

        With a query log (``record_queries``) and ``record``, the query vectors (and
        ``query_texts`` if the log keeps texts) are appended to it in memory.

        ``timings``, when given, receives seconds per stage: ``head_search`` (the
        Milvus call), ``decode`` (hits to arrays), ``rerank`` (the funnel),
        ``fetch_documents`` (the pk lookup of the final documents' texts, when they
        are fetched after the rerank) and ``documents`` (building results).
        """
        if planned is None:
            return [[] for _ in range(len(queries))]
        plan, expr, layout, partitions, timeout = planned[:5]
        clock = _Clock(timings)
        q = self.query_vectors(queries, layout)
        route = self.route(planned)
        if route is not None:
            clock.lap("count")
        if route is not None and route.exact:
            exact = self._exact_filtered(q, planned)
            clock.lap("exact_filtered")
            if exact is not None:
                return self._recorded(exact, queries, query_texts, record)
            # More rows match than the cached count said: count again for the ef.
            self.clear_caches()
            route = self.route(planned)
        hits = self.collection.search(
            head_of(q, layout.search_dim),
            plan.candidates,
            expr,
            # Searches confined to tenant partitions check their documents by primary key
            # (see _verified): they are fetched after the rerank.
            with_documents=not self.fetch_after_rerank and partitions is None,
            partitions=partitions,
            timeout=timeout,
            ef=None if route is None else route.ef,
            head_params=planned.head_params,
        )
        clock.lap("head_search")
        cands = _milvus.hits_to_candidates(hits, layout)
        clock.lap("decode")
        if route is not None and not route.exact and int(cands.n_valid.min()) < plan.candidates:
            # Fewer hits than asked for: fewer rows match than the (cached) count said,
            # or the filtered walk stopped early. Rank the matching rows exactly.
            self.clear_caches()
            exact = self._exact_filtered(q, planned)
            clock.lap("exact_filtered")
            if exact is not None:
                return self._recorded(exact, queries, query_texts, record)
        ranked = funnel_rerank(q, cands.vectors, cands.n_valid, plan)
        picked = [
            [(j, score) for j, score in zip(row_idx.tolist(), row_scores.tolist()) if j >= 0]
            for row_idx, row_scores in zip(ranked.indices, ranked.scores)
        ]
        clock.lap("rerank")
        if cands.entities is None:
            tenants = self._tenants(planned)
            docs = self._fetch_documents(cands.ids, picked, tenants, timeout)
            if any(docs[qi].get(j) is None for qi, row in enumerate(picked) for j, _ in row):
                picked = self._refill(q, cands, plan, picked, docs, tenants, timeout)
            clock.lap("fetch_documents")
        else:
            docs = [
                {j: cands.document(qi, j, layout) for j, _ in row}
                for qi, row in enumerate(picked)
            ]
        results = []
        for qi, row in enumerate(picked):
            hits_q = []
            for j, score in row:
                entry = docs[qi][j]
                assert entry is not None  # _refill dropped the rows that are gone
                text, metadata = entry
                doc = Document(id=cands.ids[qi][j], page_content=text, metadata=metadata)
                hits_q.append(Hit(doc, float(score), cands.vector(qi, j)))
            results.append(hits_q)
        clock.lap("documents")
        return self._recorded(results, queries, query_texts, record)

    def _recorded(
        self,
        results: list[list[Hit]],
        queries: Any,
        query_texts: list[str] | None,
        record: bool,
    ) -> list[list[Hit]]:
        """``results``, after appending the queries to the query log (if kept and asked)."""
        if record and self.query_log is not None:
            self.query_log.record(np.asarray(queries, dtype=np.float32), query_texts)
        return results

    def route(self, planned: Planned) -> _filtered.Route | None:
        """How a filtered search runs (None: unfiltered, or routing is off).

        Counts the rows matching the filter and the rows searched (cached, see
        :class:`._filtered.CountCache`); few matches are ranked exactly, many are
        searched with an ``ef`` grown by the selectivity.
        """
        if not planned.expr or self.exact_rows < 0:
            return None
        parts = None if planned.partitions is None else tuple(planned.partitions)

        def count(where: str) -> int:
            return self.counts.get(
                (where, parts),
                lambda: self.collection.count(where, planned.partitions, timeout=planned.timeout),
            )

        matching = count(planned.expr)
        if matching > self.exact_rows:
            scope = count("")
        else:
            scope = matching
        return _filtered.choose(matching, scope, planned.plan.candidates, self.exact_rows)

    def _exact_filtered(self, q: np.ndarray, planned: Planned) -> list[list[Hit]] | None:
        """Exact top ``k`` among the rows matching the filter (one read of them all).

        None when more rows match than :attr:`exact_rows` (a stale count): the caller
        runs the head search instead.
        """
        plan, expr, layout, partitions, timeout = planned[:5]
        key = (expr, None if partitions is None else tuple(partitions))
        cached = None if self.rows is None else self.rows.get(key)
        if cached is not None:
            ids, vectors = cached[0], cached[1].astype(np.float32)
        else:
            rows = self.collection.query(
                expr,
                limit=self.exact_rows + 1,
                partitions=partitions,
                timeout=timeout,
                fields=(_milvus.FIELD_ID, _milvus.FIELD_FULL),
            )
            if len(rows) > self.exact_rows:
                return None
            ids = [str(r[_milvus.FIELD_ID]) for r in rows]
            vectors = _milvus.decode_full([r[_milvus.FIELD_FULL] for r in rows], layout)
            if self.rows is not None:
                self.rows.put(key, ids, vectors)
        top = StreamingTopK(q, len(ids))
        top.push(vectors, offset=0)
        order, scores = top.result()
        tenants = self._tenants(planned)
        ranked = [
            [(j, s) for j, s in zip(row_idx, row_scores) if j >= 0]
            for row_idx, row_scores in zip(order.tolist(), scores.tolist())
        ]
        # One primary-key lookup for every query's k best; a row deleted since the read
        # (or, on Milvus Lite, the old version of a document that moved tenant) is
        # replaced by the next best, looked up for that query alone (rare).
        picked = [row[: plan.k] for row in ranked]
        docs = self._fetch_documents([ids] * len(q), picked, tenants, timeout)
        results: list[list[Hit]] = []
        for qi, row in enumerate(ranked):
            found = docs[qi]
            start = len(picked[qi])
            kept = [(j, s) for j, s in picked[qi] if found.get(j) is not None]
            while len(kept) < plan.k and start < len(row):
                chunk = row[start : start + plan.k - len(kept)]
                start += len(chunk)
                found.update(self._fetch_documents([ids], [chunk], tenants, timeout)[0])
                kept += [(j, s) for j, s in chunk if found.get(j) is not None]
            hits_q = []
            for j, s in kept:
                entry = found[j]
                assert entry is not None  # kept holds only the rows found
                text, metadata = entry
                doc = Document(id=ids[j], page_content=text, metadata=metadata)
                hits_q.append(Hit(doc, float(s), vectors[j]))
            results.append(hits_q)
        return results

    def _tenants(self, planned: Planned) -> frozenset | None:
        """The tenant values a partition-confined search may return (None: any)."""
        if planned.partitions is None or planned.layout.tenancy is None:
            return None
        return planned.tenants

    def _fetch_documents(
        self,
        ids: list[list[str]],
        picked: list[list[tuple[int, float]]],
        tenants: frozenset | None = None,
        timeout: float | None = None,
    ) -> list[dict[int, tuple[str, dict] | None]]:
        """(text, metadata) of the picked candidates, by one pk lookup for all queries.

        Returned per query as ``{candidate index: value}``; None for a row that is no
        longer there, or (``tenants``) whose tenant is no longer one of them.
        """
        layout = self._require_layout()
        key = layout.tenancy.key if tenants is not None and layout.tenancy else None
        wanted = list(dict.fromkeys(ids[qi][j] for qi, row in enumerate(picked) for j, _ in row))
        rows = {str(r[_milvus.FIELD_ID]): r for r in self.collection.get(wanted, timeout=timeout)}
        out: list[dict[int, tuple[str, dict] | None]] = []
        for qi, row in enumerate(picked):
            found: dict[int, tuple[str, dict] | None] = {}
            for j, _ in row:
                r = rows.get(ids[qi][j])
                if r is None or (key is not None and r.get(key) not in cast(frozenset, tenants)):
                    found[j] = None  # gone, or (key: tenants is set) of another tenant
                else:
                    found[j] = (r[_milvus.FIELD_TEXT], layout.metadata_of(r))
            out.append(found)
        return out

    def _refill(
        self,
        q: np.ndarray,
        cands: _milvus.Candidates,
        plan: FunnelPlan,
        picked: list[list[tuple[int, float]]],
        docs: list[dict[int, tuple[str, dict] | None]],
        tenants: frozenset | None,
        timeout: float | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Replace picked candidates whose rows are gone by the next best ones.

        A row deleted between the head search and the lookup, or (Milvus Lite) the old
        version of a document that moved to another tenant, which a partition-confined
        search still finds (see MilvusCollection.upsert), is dropped; the query's other
        candidates are reranked without it. Rare: only those queries pay, in numpy.
        """
        out = []
        for qi, row in enumerate(picked):
            dropped = {j for j, _ in row if docs[qi].get(j) is None}
            while dropped:
                keep = [j for j in range(int(cands.n_valid[qi])) if j not in dropped]
                ranked = funnel_rerank(
                    q[qi : qi + 1], cands.vectors[qi : qi + 1, keep], [len(keep)], plan
                )
                row = [
                    (keep[j], s)
                    for j, s in zip(ranked.indices[0].tolist(), ranked.scores[0].tolist())
                    if j >= 0
                ]
                new = [(j, s) for j, s in row if j not in docs[qi]]
                if new:
                    docs[qi].update(
                        self._fetch_documents([cands.ids[qi]], [new], tenants, timeout)[0]
                    )
                lost = {j for j, _ in row if docs[qi].get(j) is None}
                if not lost:
                    break
                dropped |= lost
            out.append([(j, s) for j, s in row if docs[qi].get(j) is not None])
        return out

    def head_candidates(
        self,
        queries: Any,
        limit: int,
        *,
        where: str = "",
        partitions: list[str] | None = None,
        ef: int | None = None,
        head_params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, _milvus.Candidates]:
        """Rotated queries and their head-search candidates, in head-score order.

        ``where``, ``partitions``, ``ef``: the head search of a filtered search;
        ``head_params``: head search parameters (an IVF head's ``nprobe``).
        """
        layout = self._require_layout()
        q = self.query_vectors(queries, layout)
        hits = self.collection.search(
            head_of(q, layout.search_dim),
            limit,
            where,
            False,
            partitions=partitions,
            ef=ef,
            head_params=head_params,
        )
        return q, _milvus.hits_to_candidates(hits, layout)

    def exact(
        self,
        queries: Any,
        k: int,
        batch_size: int = _milvus.SCAN_BATCH,
        *,
        where: str = "",
        partitions: list[str] | None = None,
        timeout: float | None = None,
    ) -> tuple[list[list[str]], np.ndarray]:
        """Exact full-dimension cosine top ``k`` over the rows matching ``where`` (streamed).

        Every stored row without a condition. Memory stays at ``batch_size x dim``
        floats of the collection plus the running top ``k`` per query, whatever the
        collection's size. ``partitions``: the tenant partitions a filter confines it to.
        """
        layout = self._require_layout()
        q = self.query_vectors(queries, layout)
        top = StreamingTopK(q, k)
        all_ids: list[str] = []
        pages = self.collection.iterate_rows(
            where, batch_size, None, timeout, (_milvus.FIELD_ID, _milvus.FIELD_FULL), partitions
        )
        for page in pages:
            top.push(
                _milvus.decode_full([r[_milvus.FIELD_FULL] for r in page], layout),
                offset=len(all_ids),
            )
            all_ids.extend(str(r[_milvus.FIELD_ID]) for r in page)
        idx, scores = top.result()
        return [[all_ids[j] for j in row if j >= 0] for row in idx.tolist()], scores

    def stored_vectors(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        """The ids found among ``ids`` (in that order) and their stored full vectors.

        Vectors are as searched: unit length and in the rotated basis, if any.
        """
        layout = self._require_layout()
        found: dict[str, Any] = {}
        for start in range(0, len(ids), 1024):
            for row in self.collection.get(ids[start : start + 1024], with_vectors=True):
                found[str(row[_milvus.FIELD_ID])] = row[_milvus.FIELD_FULL]
        kept = [i for i in dict.fromkeys(ids) if i in found]
        return kept, _milvus.decode_full([found[i] for i in kept], layout)

    def document_of(self, row: Mapping[str, Any]) -> Document:
        """A stored row (with the layout's document fields) as a Document."""
        return Document(
            id=str(row[_milvus.FIELD_ID]),
            page_content=row[_milvus.FIELD_TEXT],
            metadata=self._require_layout().metadata_of(row),
        )


def pairs(results: list[list[Hit]]) -> list[list[tuple[Document, float]]]:
    """Search hits as LangChain's (document, score) pairs."""
    return [[(hit.document, hit.score) for hit in hits] for hits in results]


def mmr_documents(embedding: Any, hits: list[Hit], k: int, lambda_mult: float) -> list[Document]:
    """MMR on the hits' full vectors (``embedding`` in the stored basis)."""
    if not hits:
        return []
    picked = maximal_marginal_relevance(
        np.asarray(embedding, dtype=np.float32),
        # an ndarray, not the list[list[float]] annotated: the function is numpy throughout
        cast(Any, np.stack([hit.vector for hit in hits])),
        k=k,
        lambda_mult=lambda_mult,
    )
    return [hits[i].document for i in picked]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]


class _Clock:
    """Accumulates stage durations into an optional dict."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
            self.last = now
