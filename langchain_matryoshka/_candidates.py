"""Part of the Milvus adapter: head-search hits turned into padded numpy candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._layout import FIELD_FULL, FIELD_ID, FIELD_TEXT, Layout, decode_full


@dataclass(frozen=True)
class Candidates:
    """Head-search hits of a batch of queries, padded to a rectangle."""

    ids: list[list[str]]
    vectors: np.ndarray
    """``[n_queries, n_candidates, dim]`` full embeddings (zeros past ``n_valid``)."""
    n_valid: np.ndarray
    """``[n_queries]`` hits returned for each query."""
    entities: list[list[Mapping[str, Any]]] | None = None
    """Each hit's fields (text, metadata), when the search brought the documents back."""

    def document(self, qi: int, j: int, layout: Layout) -> tuple[str, dict[str, Any]]:
        """(text, metadata) of query ``qi``'s hit ``j`` (only when :attr:`entities`)."""
        assert self.entities is not None  # callers check: the search brought them back
        entity = self.entities[qi][j]
        return entity[FIELD_TEXT], layout.metadata_of(entity)


def hits_to_candidates(hits: Sequence[Sequence[Mapping[str, Any]]], layout: Layout) -> Candidates:
    """Turn a Milvus search result into padded numpy candidates (one decode for all).

    Reads each hit's entity dict once (pymilvus' ``Hit`` looks keys up through an
    exception when they are not its own); builds metadata only for the hits a caller
    asks :meth:`Candidates.document` for. A hit repeating an earlier hit's id is
    dropped (see :func:`._reads_adapter.distinct`).
    """
    entities: list[list[Mapping[str, Any]]] = []
    ids: list[list[str]] = []
    for query_hits in hits:
        ents = [h["entity"] for h in query_hits]
        if layout.version >= 3:
            qids = [str(e[FIELD_ID]) for e in ents]
        else:  # the id is the primary key, a hit's own key
            qids = [str(h[FIELD_ID]) for h in query_hits]
        if len(set(qids)) != len(qids):  # keep the first of each id
            first: dict[str, int] = {}
            for i, doc_id in enumerate(qids):
                first.setdefault(doc_id, i)
            keep = sorted(first.values())
            ents, qids = [ents[i] for i in keep], [qids[i] for i in keep]
        entities.append(ents)
        ids.append(qids)
    n_valid = np.array([len(q) for q in ids], dtype=np.int64)
    width = int(n_valid.max()) if len(ids) else 0
    vectors = np.zeros((len(ids), width, layout.dim), dtype=np.float32)
    flat = decode_full([e[FIELD_FULL] for ents in entities for e in ents], layout)
    vectors[np.arange(width) < n_valid[:, None]] = flat
    first_hit = next((ents[0] for ents in entities if ents), None)
    with_documents = first_hit is not None and FIELD_TEXT in first_hit
    return Candidates(ids, vectors, n_valid, entities if with_documents else None)
