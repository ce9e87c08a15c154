"""Helpers of the LlamaIndex store's queries: MMR options checked, hits made a result."""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import VectorStoreQueryResult

from ._engine import Hit
from ._llama_nodes import row_to_node
from .errors import ConfigurationError

#: MMR fetches this many times ``similarity_top_k`` by default (as LlamaIndex's Milvus store).
DEFAULT_MMR_PREFETCH_FACTOR = 4.0


def _mmr_threshold(in_query: float | None, in_kwargs: Any) -> float:
    if in_query is not None and in_kwargs is not None and in_query != in_kwargs:
        raise ConfigurationError(
            f"mmr_threshold={in_kwargs!r} in the options but {in_query!r} in the "
            "VectorStoreQuery; pass one of them"
        )
    value = in_kwargs if in_kwargs is not None else in_query
    if value is None:
        return 0.5
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigurationError(
            f"mmr_threshold={value!r} must be a number in [0, 1] (1: relevance only, "
            "0: diversity only); pass e.g. 0.5"
        )
    return float(value)


def _prefetch_k(k: int, prefetch_k: Any, factor: Any) -> int:
    if prefetch_k is not None and factor is not None:
        raise ConfigurationError(
            "pass mmr_prefetch_k or mmr_prefetch_factor, not both"
        )
    if prefetch_k is not None:
        if isinstance(prefetch_k, bool) or not isinstance(prefetch_k, int) or prefetch_k < k:
            raise ConfigurationError(
                f"mmr_prefetch_k={prefetch_k!r} must be an integer >= similarity_top_k={k}; "
                f"pass e.g. {4 * k}"
            )
        return prefetch_k
    if factor is None:
        factor = DEFAULT_MMR_PREFETCH_FACTOR
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 1:
        raise ConfigurationError(
            f"mmr_prefetch_factor={factor!r} must be a number >= 1; pass e.g. 4"
        )
    return max(k, int(k * factor))


def _result(hits: list[Hit]) -> VectorStoreQueryResult:
    nodes = [
        row_to_node(str(h.document.id), h.document.page_content, h.document.metadata)
        for h in hits
    ]
    return VectorStoreQueryResult(
        nodes=nodes,
        similarities=[float(h.score) for h in hits],
        ids=[node.node_id for node in nodes],
    )
