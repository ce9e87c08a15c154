"""Maximal marginal relevance search of :class:`MatryoshkaMilvus` (a base class)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document

from ._engine import Planned, mmr_documents
from ._validation import check_queries
from .errors import ConfigurationError
from .funnel import make_plan
from .rotation import rotate

if TYPE_CHECKING:
    from ._engine import Engine


class MMRMethods:
    """MMR on full vectors over the funnel's top ``fetch_k`` (the async twins run these)."""

    _engine: Engine

    if TYPE_CHECKING:
        def _embed_queries(self, queries: Sequence[str]) -> list[list[float]]: ...

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR on full vectors over the funnel's top ``fetch_k``."""
        planned = self._mmr_plan(k, fetch_k, lambda_mult, kwargs)
        return self._mmr(embedding, planned, k, lambda_mult)

    def _mmr(
        self, embedding: list[float], planned: Planned | None, k: int, lambda_mult: float
    ) -> list[Document]:
        hits = self._engine.search(np.asarray([embedding]), planned)[0]
        return mmr_documents(rotate(embedding, self._engine.basis), hits, k, lambda_mult)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Diverse results: MMR on full vectors over the funnel's top ``fetch_k``."""
        planned = self._mmr_plan(k, fetch_k, lambda_mult, kwargs)
        if planned is None:
            check_queries([query])
            return []
        return self._mmr(self._embed_queries([query])[0], planned, k, lambda_mult)

    def _mmr_plan(
        self, k: int, fetch_k: int, lambda_mult: float, options: Mapping[str, Any]
    ) -> Planned | None:
        self._mmr_check(k, fetch_k, lambda_mult)
        return self._engine.plan(fetch_k, options)

    @staticmethod
    def _mmr_check(k: int, fetch_k: int, lambda_mult: float) -> None:
        """Validate MMR's k, fetch_k and lambda_mult (no Milvus call)."""
        make_plan(dim=2, search_dim=1, k=k)  # validates k
        if isinstance(fetch_k, bool) or not isinstance(fetch_k, int) or fetch_k < k:
            raise ConfigurationError(
                f"fetch_k={fetch_k!r} must be an integer >= k={k}; pass e.g. fetch_k={4 * k}"
            )
        if not isinstance(lambda_mult, (int, float)) or not 0.0 <= lambda_mult <= 1.0:
            raise ConfigurationError(
                f"lambda_mult={lambda_mult!r} must be in [0, 1] (1: relevance only, "
                "0: diversity only); pass e.g. 0.5"
            )
