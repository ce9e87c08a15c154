"""Part of the Milvus adapter: head-search hits turned into padded numpy candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._layout import FIELD_FULL, FIELD_ID, FIELD_TEXT, Layout, decode_full
from ._reads_adapter import distinct as _distinct


@dataclass(frozen=True)
class Candidates:
    """Head-search hits of a batch of queries, padded to a rectangle."""

    ids: list[list[str]]
    texts: list[list[str]] | None
    """Texts of each hit; None when the search did not bring them back."""
    metadatas: list[list[dict[str, Any]]] | None
    vectors: np.ndarray
    """``[n_queries, n_candidates, dim]`` full embeddings (zeros past ``n_valid``)."""
    n_valid: np.ndarray
    """``[n_queries]`` hits returned for each query."""


def _hit_id(hit: Mapping[str, Any], layout: Layout) -> str:
    return str(hit["entity"][FIELD_ID] if layout.version >= 3 else hit["id"])


def hits_to_candidates(hits: Sequence[Sequence[Mapping[str, Any]]], layout: Layout) -> Candidates:
    """Turn a Milvus search result into padded numpy candidates (one decode for all).

    A hit repeating an earlier hit's id is dropped (see :func:`_distinct`).
    """
    hits = [_distinct(query_hits, "id") for query_hits in hits]
    n_valid = np.array([len(h) for h in hits], dtype=np.int64)
    width = int(n_valid.max()) if len(hits) else 0
    vectors = np.zeros((len(hits), width, layout.dim), dtype=np.float32)
    flat = decode_full([h["entity"][FIELD_FULL] for query_hits in hits for h in query_hits], layout)
    vectors[np.arange(width) < n_valid[:, None]] = flat
    ids = [[_hit_id(h, layout) for h in query_hits] for query_hits in hits]
    first = next((query_hits[0] for query_hits in hits if query_hits), None)
    if first is None or FIELD_TEXT not in first["entity"]:
        return Candidates(ids, None, None, vectors, n_valid)
    texts = [[h["entity"][FIELD_TEXT] for h in query_hits] for query_hits in hits]
    metas = [[layout.metadata_of(h["entity"]) for h in query_hits] for query_hits in hits]
    return Candidates(ids, texts, metas, vectors, n_valid)
