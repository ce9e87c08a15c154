"""The store's sync core: state, writes and the funnel search, shared by sync and async.

``MatryoshkaMilvus`` (LangChain API) and its async methods call these plain blocking
methods; async ones run them on a worker thread. Every decision lives here once:
collection creation, rotation, planning, the head search, reranking, result building.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from . import _filtered, _layout, _milvus
from ._conventions import CALL_KEYWORDS, FUNNEL_OPTIONS, check_timeout
from ._expressions import Expressions
from .errors import ConfigurationError, DimensionMismatchError, InvalidInputError
from .funnel import (
    FunnelPlan,
    StreamingTopK,
    check_vectors,
    default_search_dim,
    funnel_rerank,
    head_of,
    make_plan,
    validate_search_dim,
)
from .rotation import check_orthogonal, fit_pca_rotation, rotate

#: Per-call search options accepted by every search method and the retriever (the
#: rule: :data:`._conventions.CALL_KEYWORDS`).
SEARCH_OPTIONS = CALL_KEYWORDS["search"]
FUNNEL_SETTINGS = FUNNEL_OPTIONS
ROTATIONS = (None, "pca")
#: When texts and metadata come back: with every candidate of the head search, or
#: for the final documents only, with a primary-key lookup after the rerank. "auto"
#: picks the faster one: after the rerank on Milvus Lite, where a pk lookup costs a few
#: ms and bringing 256 candidates' texts back costs much more (20k rows, 1.5 KB texts:
#: 44 ms per search with texts, 18 ms without, 3 ms for the lookup); with the
#: candidates on servers, where every read at the default "Strong" consistency waits
#: about 200 ms (Milvus 2.3), so a second read would double the latency.
FETCH_DOCUMENTS = ("auto", "with_candidates", "after_rerank")
_ROTATION_KEY = "rotation"


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


class Hit(NamedTuple):
    """One search result: the document, its full-dimension cosine, its stored vector."""

    document: Document
    score: float
    vector: np.ndarray


class Engine:
    """Collection, settings collection, dimensions, rotation and funnel defaults."""

    def __init__(
        self,
        collection: _milvus.MilvusCollection,
        meta: _milvus.MetaCollection,
        *,
        search_dim: int | None,
        defaults: Mapping[str, Any],
        text_max_length: int,
        batch_size: int,
        rotation: str | None,
        rotation_sample: int,
        show_progress: bool = False,
        fetch_documents: str = "auto",
        declared: _layout.Declared | None = None,
    ) -> None:
        if rotation not in ROTATIONS:
            raise ConfigurationError(
                f"rotation={rotation!r} is not supported; pass rotation='pca' (fit an "
                "orthogonal basis on the documents) or None"
            )
        if fetch_documents not in FETCH_DOCUMENTS:
            raise ConfigurationError(
                f"fetch_documents={fetch_documents!r} is not supported; pass one of "
                + ", ".join(repr(f) for f in FETCH_DOCUMENTS)
            )
        self.collection = collection
        self.meta = meta
        self.fetch_after_rerank = fetch_documents == "after_rerank" or (
            fetch_documents == "auto" and collection.lite
        )
        self.requested_search_dim = (
            None if search_dim is None else validate_search_dim(search_dim, None)
        )
        self.explicit = {k: v for k, v in defaults.items() if v is not None}
        self.text_max_length = text_max_length
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.rotation = rotation
        self.rotation_sample = rotation_sample
        self.lock = threading.Lock()
        self.declared = declared or _layout.Declared()
        #: Builds this store's filter expressions (declared columns, JSON paths).
        self.expressions = Expressions(
            {f.name: f.kind for f in self.declared.fields},
            nullable=[f.name for f in self.declared.fields if f.nullable],
            native_unknown=collection.lite,
        )
        #: Filtered searches matching at most this many rows rank them exactly (0: never).
        self.exact_rows = _filtered.EXACT_ROWS
        #: Counts of matching rows that route filtered searches (cleared on writes).
        self.counts = _filtered.CountCache()
        self.basis: np.ndarray | None = None
        self.config: dict[str, Any] = {}
        #: The query sample (``record_queries=N``), set by the store; None: not recording.
        self.query_log: Any = None
        self.layout = collection.open()
        if self.layout is not None:
            self._load(self.layout)

    # ------------------------------------------------------------------ state

    def _load(self, layout: _milvus.Layout) -> None:
        """Read the dims check, stored settings and rotation of an existing collection."""
        name = self.collection.name
        if self.requested_search_dim not in (None, layout.search_dim):
            raise DimensionMismatchError(
                f"collection {name!r} indexes a {layout.search_dim}-dim head but "
                f"search_dim={self.requested_search_dim} was passed; omit search_dim, pass "
                "the collection's, or use drop_old=True to rebuild"
            )
        self._check_declared(layout)
        self.expressions = layout.expressions(self.collection.lite)
        self.config = self.meta.read_config()
        properties = self.collection.properties()
        # The collection's properties name its rotation and basis (set when it was
        # created); collections from 0.1 name them in the settings config only.
        stored_rotation = properties.get(_milvus.PROPERTY_ROTATION, self.config.get(_ROTATION_KEY))
        if self.rotation is not None and stored_rotation != self.rotation:
            raise ConfigurationError(
                f"rotation={self.rotation!r} was passed but collection {name!r} was built "
                f"with rotation={stored_rotation!r}; omit rotation to use the stored one, "
                "or use drop_old=True to rebuild"
            )
        if stored_rotation is not None:
            basis = self.meta.read_matrix(_basis_key(properties), layout.dim)
            check_orthogonal(basis)
            self.basis = basis
        self.check_defaults(layout)

    def _check_declared(self, layout: _milvus.Layout) -> None:
        """A declaration passed to the constructor must be the collection's own."""
        declared, name = self.declared, self.collection.name
        if declared.empty:
            return
        if layout.version < 3:
            raise ConfigurationError(
                f"collection {name!r} was written by langchain-matryoshka 0.{layout.version} "
                "and has no declared metadata fields, tenants or full-text field; omit "
                "metadata_fields / partition_key / full_text_search to use it as it is, or "
                "rebuild it with drop_old=True"
            )
        stored = ", ".join(f"{f.name}: {f.kind}" for f in layout.fields) or "none"
        if declared.fields and not _layout.same_declaration(layout.fields, declared.fields):
            raise ConfigurationError(
                f"collection {name!r} declares metadata_fields {{{stored}}}, not "
                f"{{{', '.join(f'{f.name}: {f.kind}' for f in declared.fields)}}}; omit "
                "metadata_fields to use the stored ones, or rebuild with drop_old=True"
            )
        key = layout.tenancy.key if layout.tenancy else None
        if declared.partition_key is not None and declared.partition_key != key:
            raise ConfigurationError(
                f"partition_key={declared.partition_key!r} was passed but collection {name!r} "
                f"has partition key {key!r}; omit partition_key, or rebuild with drop_old=True"
            )
        if declared.full_text is not None and layout.full_text is None:
            raise ConfigurationError(
                f"full_text_search=True was passed but collection {name!r} was created "
                "without a full-text field; rebuild it with drop_old=True (and "
                "full_text_search=True) to search it by keywords"
            )

    def refresh(self) -> _milvus.Layout | None:
        """Open the collection if another store or process has created it since."""
        with self.lock:
            if self.layout is None:
                layout = self.collection.open()
                if layout is not None:
                    self._load(layout)
                    self.layout = layout
            return self.layout

    def defaults(self) -> dict[str, Any]:
        """Funnel defaults: constructor arguments, else calibrated/stored ones, else None."""
        stored = self.config.get("defaults", {})
        return {name: self.explicit.get(name, stored.get(name)) for name in FUNNEL_SETTINGS}

    def check_defaults(self, layout: _milvus.Layout) -> None:
        make_plan(dim=layout.dim, search_dim=layout.search_dim, k=1, **self.defaults())

    def save_defaults(self, settings: Mapping[str, Any], report: Mapping[str, Any]) -> None:
        """Persist new funnel defaults (calibration) with the collection."""
        with self.lock:
            config = dict(self.config)
            config["defaults"] = {k: settings[k] for k in FUNNEL_SETTINGS if k in settings}
            config["calibration"] = dict(report)
            self.meta.write_config(config)
            self.config = config

    def drop(self) -> None:
        self.collection.drop()
        self.meta.drop()

    def build_index(self) -> None:
        """Flush and index every row now (nothing while the store is empty)."""
        if (self.layout or self.refresh()) is not None:
            self.collection.build_index()

    # ------------------------------------------------------------------ writes

    def ensure_collection(self, vectors: np.ndarray) -> _milvus.Layout:
        """Create the collection on the first write (fitting the rotation if asked)."""
        with self.lock:
            if self.layout is not None:
                return self.layout
            dim = vectors.shape[1]
            search_dim = self.requested_search_dim or default_search_dim(dim)
            layout = self._new_layout(dim, validate_search_dim(search_dim, dim))
            self.check_defaults(layout)
            self.expressions = layout.expressions(self.collection.lite)
            if self.rotation is None:
                if not self.collection.create(layout):
                    self._load(layout)  # another writer created it: read its settings
                self.layout = layout
                return layout
            # The basis first, under an id of its own; then the collection, whose
            # properties name the basis in the same call. Writers racing to create the
            # collection each store a basis, but only the winner's is named, and every
            # writer then uses that one. A crash in between leaves no collection (the
            # next write starts over) or an unnamed basis, never a collection without
            # its basis.
            basis = fit_pca_rotation(vectors, sample=self.rotation_sample)
            basis_id = uuid.uuid4().hex[:16]
            properties = {
                _milvus.PROPERTY_ROTATION: self.rotation,
                _milvus.PROPERTY_BASIS: basis_id,
            }
            self.meta.write_matrix(_basis_key(properties), basis)
            if self.collection.create(layout, properties):
                config: dict[str, Any] = {
                    "version": 2,
                    "dim": dim,
                    "search_dim": layout.search_dim,
                    _ROTATION_KEY: self.rotation,
                    "rotation_fitted_on": int(min(len(vectors), self.rotation_sample)),
                }
                self.meta.write_config(config)
                self.config = config
                self.basis = basis
            else:
                self.meta.delete_matrix(_basis_key(properties), dim)  # lost: not named
                self._load(layout)
            self.layout = layout
            return layout

    def _new_layout(self, dim: int, search_dim: int) -> _milvus.Layout:
        backend = self.collection.backend
        if self.declared.full_text is not None and not backend.full_text:
            raise ConfigurationError(
                f"full_text_search=True needs Milvus 2.5 or later (or Milvus Lite), but the "
                f"server is {backend.describe()}; upgrade the server, or pass "
                "full_text_search=False"
            )
        return _layout.new_layout(
            dim,
            search_dim,
            self.text_max_length,
            self.declared,
            lite=self.collection.lite,
            nullable=backend.nullable,
        )

    def check_metadata(self, metas: list[dict], ids: list[str]) -> None:
        """Check declared metadata columns' values before anything is embedded."""
        layout = self.layout
        if layout is None:
            if not self.declared.fields:
                return
            layout = self._new_layout(2, 1)
        _layout.split_metadata(metas, ids, layout)

    def write(
        self,
        texts: list[str],
        metas: list[dict],
        ids: list[str],
        embeddings: Any,
        batch_size: int | None = None,
        timeout: float | None = None,
    ) -> None:
        """Upsert validated rows with their (rotated) full vectors and heads.

        ``batch_size`` rows per upsert call (None: the store's), each call bounded by
        ``timeout`` seconds (None: the connection's ``call_timeout``).
        """
        if not texts:
            return
        vectors = check_vectors(embeddings, self.dim, "document embeddings")
        if len(vectors) != len(texts):
            raise InvalidInputError(
                f"got {len(texts)} texts but {len(vectors)} embeddings; pass one per text"
            )
        layout = self.ensure_collection(vectors)
        vectors = rotate(vectors, self.basis)
        rows = _milvus.make_rows(
            ids, texts, metas, head_of(vectors, layout.search_dim), vectors, layout
        )
        try:
            self.collection.upsert(
                rows, batch_size or self.batch_size, progress=self.show_progress, timeout=timeout
            )
        finally:
            self.counts.clear()

    @property
    def dim(self) -> int | None:
        return None if self.layout is None else self.layout.dim

    # ------------------------------------------------------------------ search

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
        tenants = frozenset() if partitions is None else frozenset(
            _as_list(filter_[layout.tenancy.key])
        )
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
            if route.exact:
                exact = self._exact_filtered(q, planned)
                clock.lap("exact_filtered")
                if exact is not None:
                    if record and self.query_log is not None:
                        self.query_log.record(np.asarray(queries, dtype=np.float32), query_texts)
                    return exact
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
        )
        clock.lap("head_search")
        cands = _milvus.hits_to_candidates(hits, layout)
        clock.lap("decode")
        ranked = funnel_rerank(q, cands.vectors, cands.n_valid, plan)
        picked = [
            [(j, score) for j, score in zip(row_idx.tolist(), row_scores.tolist()) if j >= 0]
            for row_idx, row_scores in zip(ranked.indices, ranked.scores)
        ]
        clock.lap("rerank")
        if cands.texts is None:
            tenants = self._tenants(planned)
            docs = self._fetch_documents(cands.ids, picked, tenants, timeout)
            if any(docs[qi].get(j) is None for qi, row in enumerate(picked) for j, _ in row):
                picked = self._refill(q, cands, plan, picked, docs, tenants, timeout)
            clock.lap("fetch_documents")
        else:
            docs = [
                {j: (cands.texts[qi][j], cands.metadatas[qi][j]) for j, _ in row}
                for qi, row in enumerate(picked)
            ]
        results = []
        for qi, row in enumerate(picked):
            hits_q = []
            for j, score in row:
                text, metadata = docs[qi][j]
                doc = Document(id=cands.ids[qi][j], page_content=text, metadata=metadata)
                hits_q.append(Hit(doc, float(score), cands.vectors[qi, j]))
            results.append(hits_q)
        clock.lap("documents")
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
        top = StreamingTopK(q, len(ids))
        top.push(vectors, offset=0)
        order, scores = top.result()
        tenants = self._tenants(planned)
        results: list[list[Hit]] = []
        for qi in range(len(q)):
            ranked = [
                (j, s) for j, s in zip(order[qi].tolist(), scores[qi].tolist()) if j >= 0
            ]
            hits_q: list[Hit] = []
            start = 0
            # The k best; a row deleted since the read (or, on Milvus Lite, the old
            # version of a document that moved tenant) is replaced by the next best.
            while len(hits_q) < plan.k and start < len(ranked):
                chunk = ranked[start : start + plan.k - len(hits_q)]
                start += len(chunk)
                docs = self._fetch_documents([ids], [chunk], tenants, timeout)[0]
                for j, s in chunk:
                    if docs.get(j) is not None:
                        text, metadata = docs[j]
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
                ok = r is not None and (key is None or r.get(key) in tenants)
                found[j] = (r[_milvus.FIELD_TEXT], layout.metadata_of(r)) if ok else None
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
    ) -> tuple[np.ndarray, _milvus.Candidates]:
        """Rotated queries and their head-search candidates, in head-score order.

        ``where``, ``partitions``, ``ef``: the head search of a filtered search.
        """
        layout = self._require_layout()
        q = self.query_vectors(queries, layout)
        hits = self.collection.search(
            head_of(q, layout.search_dim), limit, where, False, partitions=partitions, ef=ef
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

    # ------------------------------------------------------------------ by id, by condition

    def where(self, expr: str | None, filter: Mapping[str, Any] | None) -> str:  # noqa: A002
        """A call's Milvus condition from its ``expr`` and ``filter`` (AND)."""
        return self.expressions.where(expr, filter)

    def delete(
        self,
        ids: list[str] | None,
        where: str,
        timeout: float | None = None,
        partitions: list[str] | None = None,
    ) -> None:
        """Delete these ids, or the rows matching ``where`` (nothing while empty)."""
        if (self.layout or self.refresh()) is not None and (ids is None or ids):
            try:
                self.collection.delete(ids=ids, expr=where, partitions=partitions, timeout=timeout)
            finally:
                self.counts.clear()

    def documents(self, ids: list[str], timeout: float | None = None) -> list[Document]:
        """Documents with these ids, in the order given; missing ones skipped."""
        if not ids or (self.layout or self.refresh()) is None:
            return []
        rows = {str(r[_milvus.FIELD_ID]): r for r in self.collection.get(ids, timeout=timeout)}
        return [self.document_of(rows[i]) for i in ids if i in rows]

    # The reads below take the call's condition as ``where`` and, with store-managed
    # tenant partitions, the partitions its filter confines it to (:meth:`partitions_for`).

    def read(
        self,
        where: str,
        limit: int | None,
        offset: int,
        timeout: float | None = None,
        partitions: list[str] | None = None,
    ) -> list[Document]:
        """Documents matching ``where``, ``offset`` skipped, at most ``limit`` (None: all).

        One query when ``offset + limit`` fits Milvus' query window, else a query
        iterator that pages through the matches.
        """
        if (self.layout or self.refresh()) is None:
            return []
        if limit is not None and offset + limit <= _milvus.QUERY_WINDOW:
            rows = self.collection.query(
                where, limit=limit, partitions=partitions, offset=offset, timeout=timeout
            )
            return [self.document_of(r) for r in rows]
        stop = None if limit is None else offset + limit
        docs = self.iter_documents(where, _milvus.SCAN_BATCH, stop, timeout, partitions)
        return list(itertools.islice(docs, offset, stop))

    def iter_documents(
        self,
        where: str,
        batch_size: int,
        limit: int | None = None,
        timeout: float | None = None,
        partitions: list[str] | None = None,
    ) -> Iterator[Document]:
        """Every document matching ``where``, fetched ``batch_size`` at a time."""
        for page in self.iter_pages(where, batch_size, limit, timeout, partitions):
            yield from page

    def iter_pages(
        self,
        where: str,
        batch_size: int,
        limit: int | None = None,
        timeout: float | None = None,
        partitions: list[str] | None = None,
    ) -> Iterator[list[Document]]:
        """Pages of at most ``batch_size`` documents matching ``where`` (a query iterator)."""
        if (self.layout or self.refresh()) is None:
            return
        pages = self.collection.iterate_rows(
            where, batch_size, limit, timeout, partitions=partitions
        )
        for page in pages:
            yield [self.document_of(r) for r in page]

    def ids(
        self,
        where: str,
        limit: int | None = None,
        timeout: float | None = None,
        partitions: list[str] | None = None,
    ) -> list[str]:
        """Ids of the rows matching ``where`` (at most ``limit``; None: all)."""
        if (self.layout or self.refresh()) is None:
            return []
        pages = self.collection.iterate_rows(
            where, _milvus.SCAN_BATCH, limit, timeout, (_milvus.FIELD_ID,), partitions
        )
        return [str(r[_milvus.FIELD_ID]) for page in pages for r in page]

    def count(
        self, where: str = "", timeout: float | None = None, partitions: list[str] | None = None
    ) -> int:
        """Rows matching ``where`` (every row if empty); 0 while the store is empty."""
        if (self.layout or self.refresh()) is None:
            return 0
        return self.collection.count(where, partitions, timeout=timeout)

    def _require_layout(self) -> _milvus.Layout:
        if self.layout is None:
            raise InvalidInputError(
                f"collection {self.collection.name!r} is empty; add documents first"
            )
        return self.layout


def pairs(results: list[list[Hit]]) -> list[list[tuple[Document, float]]]:
    """Search hits as LangChain's (document, score) pairs."""
    return [[(hit.document, hit.score) for hit in hits] for hits in results]


def mmr_documents(embedding: Any, hits: list[Hit], k: int, lambda_mult: float) -> list[Document]:
    """MMR on the hits' full vectors (``embedding`` in the stored basis)."""
    if not hits:
        return []
    picked = maximal_marginal_relevance(
        np.asarray(embedding, dtype=np.float32),
        np.stack([hit.vector for hit in hits]),
        k=k,
        lambda_mult=lambda_mult,
    )
    return [hits[i].document for i in picked]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]


def _basis_key(properties: Mapping[str, str]) -> str:
    """Where the settings collection keeps the basis the collection's properties name."""
    basis_id = properties.get(_milvus.PROPERTY_BASIS)
    return f"{_ROTATION_KEY}-{basis_id}" if basis_id else _ROTATION_KEY


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
