"""Full-text and hybrid search methods of :class:`MatryoshkaMilvus` (a base class).

Thin front ends over :mod:`._hybrid`: validate the call, embed the queries (hybrid
only), run the sync core; the async twins run the same core on a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document

from . import _hybrid
from ._engine import Hit, mmr_documents, pairs
from ._validation import check_queries
from .errors import ConfigurationError
from .rotation import rotate

if TYPE_CHECKING:
    from ._engine import Engine, Planned

#: Search types of ``store.search(query, search_type)`` and of the retriever.
SEARCH_TYPES = (
    "similarity", "similarity_score_threshold", "mmr", "full_text", "hybrid", "hybrid_mmr"
)


class HybridStoreMethods:
    """BM25 full-text search and hybrid (funnel + BM25) search, sync and async."""

    _engine: Engine

    if TYPE_CHECKING:
        def _embed(self, queries: Sequence[str]) -> list[list[float]]: ...
        async def _aembed(self, queries: Sequence[str]) -> list[list[float]]: ...
        def _mmr_check(self, k: int, fetch_k: int, lambda_mult: float) -> None: ...

    # ------------------------------------------------------------------ full text

    def full_text_search_batch_with_score(
        self, queries: Sequence[str], k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        """BM25 top ``k`` for many queries in one Milvus call, with BM25 scores.

        Needs a store created with ``full_text_search=True``. Milvus tokenises each
        query with the collection's analyzer; a query with no known term finds nothing.
        Scores are BM25 scores (>= 0, higher is better, not comparable across queries).
        Keywords: ``expr``, ``filter`` (on the same rows as every search), ``timeout``.
        """
        check_queries(queries)
        planned = _hybrid.plan_text(self._engine, k, kwargs)
        return pairs(_hybrid.text_search(self._engine, list(queries), planned))

    def full_text_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """BM25 top ``k`` documents with their BM25 scores (see the batch method)."""
        return self.full_text_search_batch_with_score([query], k, **kwargs)[0]

    def full_text_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """BM25 top ``k`` documents (Milvus' full-text search alone, no embedding)."""
        return [doc for doc, _ in self.full_text_search_with_score(query, k, **kwargs)]

    # ------------------------------------------------------------------ hybrid

    def _hybrid_hits(
        self, queries: Sequence[str], k: int, kwargs: dict[str, Any]
    ) -> list[list[Hit]]:
        check_queries(queries)
        planned, hp = _hybrid.plan_hybrid(self._engine, k, kwargs)
        if planned is None:
            return [[] for _ in queries]
        vectors = np.asarray(self._embed(queries))
        return _hybrid.hybrid_search(self._engine, vectors, list(queries), planned, hp)

    def hybrid_search_batch_with_score(
        self, queries: Sequence[str], k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        """Hybrid search for many queries: one embedding call, the funnel and BM25.

        Per query, the funnel's dense top ``dense_k`` and BM25's top ``full_text_k``
        (default ``max(k, 10)`` each; same ``expr`` / ``filter`` on both) are fused into
        the top ``k``: ``fusion="weighted"`` (the default; ``weights=(dense, full_text)``,
        default (0.5, 0.5), on min-max normalised scores) or ``fusion="rrf"``
        (reciprocal ranks; ``rrf_k``, default 60). Scores are fused scores, not
        cosines: weighted sums in [0, 1], RRF sums of ``1 / (rrf_k + rank)``. Funnel
        options (``candidates``, ``scales``, ``prune_ratio``) and ``timeout`` apply as
        for similarity search.
        """
        return pairs(self._hybrid_hits(queries, k, kwargs))

    def hybrid_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Top ``k`` of the funnel fused with BM25, with fused scores (see the batch method)."""
        return self.hybrid_search_batch_with_score([query], k, **kwargs)[0]

    def hybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Top ``k`` documents of the funnel's dense result fused with BM25's."""
        return [doc for doc, _ in self.hybrid_search_with_score(query, k, **kwargs)]

    def hybrid_max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Diverse hybrid results: MMR on full vectors over the fused top ``fetch_k``.

        The fusion picks the pool (keyword matches included), then MMR picks ``k`` of
        it by cosine relevance to the query embedding and diversity (``lambda_mult``).
        """
        planned, hp = self._hybrid_mmr_plan(query, k, fetch_k, lambda_mult, kwargs)
        if planned is None:
            return []
        return self._hybrid_mmr(np.asarray(self._embed([query])), query, planned, hp, k,
                                lambda_mult)

    def _hybrid_mmr_plan(
        self, query: str, k: int, fetch_k: int, lambda_mult: float, kwargs: dict[str, Any]
    ) -> tuple[Planned | None, _hybrid.HybridPlan]:
        self._mmr_check(k, fetch_k, lambda_mult)
        check_queries([query])
        return _hybrid.plan_hybrid(self._engine, fetch_k, kwargs)

    def _hybrid_mmr(
        self,
        vector: np.ndarray,
        query: str,
        planned: Planned,
        hp: _hybrid.HybridPlan,
        k: int,
        lambda_mult: float,
    ) -> list[Document]:
        """The fused top ``fetch_k`` (Milvus calls), then MMR's ``k`` of it."""
        hits = _hybrid.hybrid_search(self._engine, vector, [query], planned, hp)[0]
        return mmr_documents(rotate(vector[0], self._engine.basis), hits, k, lambda_mult)

    # ------------------------------------------------------------------ dispatch

    def search(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        """LangChain's ``search``, with the store's own search types.

        "similarity", "similarity_score_threshold", "mmr", plus "full_text" (BM25 alone),
        "hybrid" (funnel + BM25) and "hybrid_mmr".
        """
        if search_type == "full_text":
            return self.full_text_search(query, **kwargs)
        if search_type == "hybrid":
            return self.hybrid_search(query, **kwargs)
        if search_type == "hybrid_mmr":
            return self.hybrid_max_marginal_relevance_search(query, **kwargs)
        if search_type not in SEARCH_TYPES:
            raise ConfigurationError(
                f"search_type={search_type!r} is not supported; pass one of "
                + ", ".join(repr(t) for t in SEARCH_TYPES)
            )
        return super().search(query, search_type, **kwargs)  # type: ignore[misc]

    async def asearch(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        if search_type == "full_text":
            return await self.afull_text_search(query, **kwargs)
        if search_type == "hybrid":
            return await self.ahybrid_search(query, **kwargs)
        if search_type == "hybrid_mmr":
            return await self.ahybrid_max_marginal_relevance_search(query, **kwargs)
        if search_type not in SEARCH_TYPES:
            return self.search(query, search_type, **kwargs)  # raises
        return await super().asearch(query, search_type, **kwargs)  # type: ignore[misc]

    # ------------------------------------------------------------------ async twins

    async def afull_text_search_batch_with_score(
        self, queries: Sequence[str], k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        return await asyncio.to_thread(
            self.full_text_search_batch_with_score, queries, k, **kwargs
        )

    async def afull_text_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return (await self.afull_text_search_batch_with_score([query], k, **kwargs))[0]

    async def afull_text_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.afull_text_search_with_score(query, k, **kwargs)]

    async def ahybrid_search_batch_with_score(
        self, queries: Sequence[str], k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        check_queries(queries)
        planned, hp = await asyncio.to_thread(_hybrid.plan_hybrid, self._engine, k, kwargs)
        if planned is None:
            return [[] for _ in queries]
        vectors = np.asarray(await self._aembed(queries))
        return pairs(
            await asyncio.to_thread(
                _hybrid.hybrid_search, self._engine, vectors, list(queries), planned, hp
            )
        )

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return (await self.ahybrid_search_batch_with_score([query], k, **kwargs))[0]

    async def ahybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.ahybrid_search_with_score(query, k, **kwargs)]

    async def ahybrid_max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        planned, hp = await asyncio.to_thread(
            self._hybrid_mmr_plan, query, k, fetch_k, lambda_mult, kwargs
        )
        if planned is None:
            return []
        vector = np.asarray(await self._aembed([query]))
        return await asyncio.to_thread(
            self._hybrid_mmr, vector, query, planned, hp, k, lambda_mult
        )
