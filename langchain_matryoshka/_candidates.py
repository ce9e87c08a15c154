"""Part of the Milvus adapter: head-search hits turned into padded numpy candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus import DataType

from ._layout import FIELD_FULL, FIELD_ID, FIELD_TEXT, Layout, decode_full

try:  # pymilvus' own decoder of one cell of a result column (nulls included)
    from pymilvus.client.field_data_extractors import decode_cell as _decode_cell
except ImportError:  # another pymilvus: hits are read the public way, JSON decoded for all
    _decode_cell = None


@dataclass(frozen=True)
class Candidates:
    """Head-search hits of a batch of queries, padded to a rectangle."""

    ids: list[list[str]]
    vectors: np.ndarray
    """``[n_queries, n_candidates, dim]`` full embeddings (zeros past ``n_valid``), as
    stored: float16 for a float16 layout (:meth:`vector` gives one as float32)."""
    n_valid: np.ndarray
    """``[n_queries]`` hits returned for each query."""
    entities: list[list[Mapping[str, Any]]] | None = None
    """Each hit's fields (text, metadata), when the search brought the documents back."""
    lazy: list[_LazyJson | None] | None = None
    """Per query, the JSON columns not decoded yet (see :func:`_entities`)."""

    def vector(self, qi: int, j: int) -> np.ndarray:
        """Query ``qi``'s hit ``j``'s full embedding, float32."""
        return self.vectors[qi, j].astype(np.float32)

    def document(self, qi: int, j: int, layout: Layout) -> tuple[str, dict[str, Any]]:
        """(text, metadata) of query ``qi``'s hit ``j`` (only when :attr:`entities`)."""
        assert self.entities is not None  # callers check: the search brought them back
        entity = self.entities[qi][j]
        pending = None if self.lazy is None else self.lazy[qi]
        if pending is not None:
            entity = pending.fill(entity, j)
        return entity[FIELD_TEXT], layout.metadata_of(entity)


@dataclass(frozen=True)
class _LazyJson:
    """JSON columns of one query's hits, decoded only for the hits a caller reads.

    pymilvus decodes every hit's JSON (the metadata) the first time a query's hits are
    iterated; a funnel returns k of its candidates, so only those are decoded here.
    """

    columns: list[Any]
    start: int
    """The query's first hit in the result's columns."""
    positions: list[int]
    """Each kept hit's index among the query's hits (duplicates of an id dropped)."""

    def fill(self, entity: Mapping[str, Any], j: int) -> Mapping[str, Any]:
        assert _decode_cell is not None  # _entities builds none without it
        index = self.start + self.positions[j]
        decoded = {c.field_name: _decode_cell(c, index) for c in self.columns}
        return {**entity, **decoded}


def _entities(query_hits: Sequence[Mapping[str, Any]]) -> tuple[list[Any], _LazyJson | None]:
    """Each hit's ``entity`` dict, with its JSON columns left to :class:`_LazyJson`.

    Only for pymilvus' ``HybridHits`` whose not-yet-decoded columns are all plain JSON
    (this schema's metadata; no dynamic field); anything else is read the public way.
    """
    columns = getattr(query_hits, "lazy_field_data", None)
    raw = getattr(query_hits, "get_raw_item", None)
    start = getattr(query_hits, "start", None)
    if (
        _decode_cell is None
        or raw is None
        or not isinstance(start, int)
        or not columns
        or getattr(query_hits, "has_materialized", True)
        or not all(c.type == DataType.JSON and not c.is_dynamic for c in columns)
    ):
        return [h["entity"] for h in query_hits], None
    hits = [raw(i) for i in range(len(query_hits))]
    return [h["entity"] for h in hits], _LazyJson(list(columns), start, [])


def hits_to_candidates(hits: Sequence[Sequence[Mapping[str, Any]]], layout: Layout) -> Candidates:
    """Turn a Milvus search result into padded numpy candidates (one decode for all).

    Reads each hit's entity dict once (pymilvus' ``Hit`` looks keys up through an
    exception when they are not its own); builds metadata only for the hits a caller
    asks :meth:`Candidates.document` for. A hit repeating an earlier hit's id is
    dropped (see :func:`._reads_adapter.distinct`).
    """
    entities: list[list[Mapping[str, Any]]] = []
    ids: list[list[str]] = []
    lazy: list[_LazyJson | None] = []
    for query_hits in hits:
        ents, pending = _entities(query_hits)
        if layout.version >= 3:
            qids = [str(e[FIELD_ID]) for e in ents]
        else:  # the id is the primary key, a hit's own key
            qids = [str(_hit(query_hits, i)[FIELD_ID]) for i in range(len(ents))]
        keep = list(range(len(qids)))
        if len(set(qids)) != len(qids):  # keep the first of each id
            first: dict[str, int] = {}
            for i, doc_id in enumerate(qids):
                first.setdefault(doc_id, i)
            keep = sorted(first.values())
            ents, qids = [ents[i] for i in keep], [qids[i] for i in keep]
        if pending is not None:
            pending.positions.extend(keep)
        entities.append(ents)
        ids.append(qids)
        lazy.append(pending)
    n_valid = np.array([len(q) for q in ids], dtype=np.int64)
    width = int(n_valid.max()) if len(ids) else 0
    flat = decode_full([e[FIELD_FULL] for ents in entities for e in ents], layout, np.float16)
    if len(ids) and bool((n_valid == width).all()):  # a full rectangle: no padding to add
        vectors = flat.reshape(len(ids), width, layout.dim)
    else:
        vectors = np.zeros((len(ids), width, layout.dim), dtype=flat.dtype)
        vectors[np.arange(width) < n_valid[:, None]] = flat
    first_hit = next((ents[0] for ents in entities if ents), None)
    with_documents = first_hit is not None and FIELD_TEXT in first_hit
    if not with_documents:
        return Candidates(ids, vectors, n_valid)
    return Candidates(ids, vectors, n_valid, entities, lazy if any(lazy) else None)


def _hit(query_hits: Sequence[Mapping[str, Any]], i: int) -> Mapping[str, Any]:
    """Hit ``i`` of a query, not decoding the query's JSON columns (see :func:`_entities`)."""
    raw = getattr(query_hits, "get_raw_item", None)
    return query_hits[i] if raw is None else raw(i)
