"""The async twins of :class:`MatryoshkaMilvus`'s methods (a base class of the store).

Every twin runs the sync core on a worker thread (``asyncio.to_thread``): planning,
validation, Milvus calls and reranking never block the event loop and never exist
twice. Only the embedding step differs: it awaits the model's own async API
(``aembed_documents`` / ``aembed_query``), which may be a real network client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from ._conventions import write_options
from ._engine import pairs
from ._validation import check_queries, prepare_texts

if TYPE_CHECKING:
    from ._engine import Engine
    from .calibration import CalibrationResult


class AsyncStoreMethods:
    """``a``-prefixed twins; each awaits its sync method on a worker thread."""

    _engine: Engine
    embedding: Embeddings

    if TYPE_CHECKING:  # the sync methods the twins run (defined by MatryoshkaMilvus)
        def __init__(self, embedding: Embeddings, **kwargs: Any) -> None: ...
        def _text_limit(self) -> int: ...
        def _mmr_plan(self, *args: Any) -> Any: ...
        def _mmr(self, *args: Any) -> Any: ...
        def add_embeddings(self, *args: Any, **kwargs: Any) -> list[str]: ...
        def delete(self, *args: Any, **kwargs: Any) -> bool: ...
        def get_by_ids(self, ids: Sequence[str], /) -> list[Document]: ...
        def get_vectors(self, ids: Sequence[str], /) -> tuple[list[str], np.ndarray]: ...
        def search_batch_with_score_by_vector(self, *args: Any, **kwargs: Any) -> Any: ...
        def max_marginal_relevance_search_by_vector(self, *args: Any, **kwargs: Any) -> Any: ...
        def build_index(self) -> None: ...
        def calibrate(self, *args: Any, **kwargs: Any) -> CalibrationResult: ...
        def rebuild_head_index(self, *args: Any, **kwargs: Any) -> None: ...
        def exact_search_with_score(self, *args: Any, **kwargs: Any) -> list[tuple[str, float]]: ...
        def close(self) -> None: ...

    async def _aembed_queries(self, queries: Sequence[str]) -> list[list[float]]:
        check_queries(queries)
        return await self._aembed(queries)

    async def _aembed(self, queries: Sequence[str]) -> list[list[float]]:
        """Embed checked queries (the async twin of ``_embed``)."""
        batch = getattr(self.embedding, "aembed_queries", None)
        if callable(batch):
            return await batch(list(queries))
        if callable(getattr(self.embedding, "embed_queries", None)):
            return await asyncio.to_thread(cast(Any, self.embedding).embed_queries, list(queries))
        return list(await asyncio.gather(*(self.embedding.aembed_query(q) for q in queries)))

    # ------------------------------------------------------------------ writes

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        batch_size, timeout = write_options(kwargs, "aadd_texts")
        texts, metas, ids_out = await asyncio.to_thread(
            prepare_texts, texts, metadatas, ids, self._text_limit()
        )
        if not texts:
            return []
        await asyncio.to_thread(self._engine.check_metadata, metas, ids_out)
        texts = cast("list[str]", texts)  # prepare_texts returned a list
        vectors = await self.embedding.aembed_documents(texts)
        await asyncio.to_thread(
            self._engine.write, texts, metas, ids_out, vectors, batch_size, timeout
        )
        return ids_out

    async def aadd_embeddings(
        self,
        texts: Iterable[str],
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        return await asyncio.to_thread(
            self.add_embeddings, texts, embeddings, metadatas, ids=ids, **kwargs
        )

    async def adelete(
        self,
        ids: list[str] | None = None,
        *,
        expr: str | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002
        **kwargs: Any,
    ) -> bool:
        return await asyncio.to_thread(self.delete, ids, expr=expr, filter=filter, **kwargs)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await asyncio.to_thread(self.get_by_ids, ids)

    async def aget_vectors(self, ids: Sequence[str], /) -> tuple[list[str], np.ndarray]:
        return await asyncio.to_thread(self.get_vectors, ids)

    # ------------------------------------------------------------------ search

    async def asearch_batch_with_score(
        self, queries: Sequence[str], k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        planned = await asyncio.to_thread(self._engine.plan, k, kwargs)
        check_queries(queries)  # the one check of the queries
        if planned is None:
            return [[] for _ in queries]
        vectors = np.asarray(await self._aembed(queries))
        return pairs(
            await asyncio.to_thread(
                lambda: self._engine.search(vectors, planned, query_texts=list(queries))
            )
        )

    async def asearch_batch_with_score_by_vector(
        self, embeddings: Sequence[Sequence[float]] | np.ndarray, k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        return await asyncio.to_thread(
            self.search_batch_with_score_by_vector, embeddings, k, **kwargs
        )

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return (await self.asearch_batch_with_score([query], k, **kwargs))[0]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return (await self.asearch_batch_with_score_by_vector([embedding], k, **kwargs))[0]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        found = await self.asimilarity_search_with_score_by_vector(embedding, k, **kwargs)
        return [d for d, _ in found]

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        return await asyncio.to_thread(
            self.max_marginal_relevance_search_by_vector,
            embedding,
            k,
            fetch_k,
            lambda_mult,
            **kwargs,
        )

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        planned = await asyncio.to_thread(self._mmr_plan, k, fetch_k, lambda_mult, kwargs)
        if planned is None:
            check_queries([query])
            return []
        embedding = (await self._aembed_queries([query]))[0]
        return cast(
            "list[Document]",
            await asyncio.to_thread(self._mmr, embedding, planned, k, lambda_mult),
        )

    # ------------------------------------------------------------------ the rest

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        store = await asyncio.to_thread(lambda: cls(embedding, **kwargs))
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    async def abuild_index(self) -> None:
        await asyncio.to_thread(self.build_index)

    async def acalibrate(
        self, queries: Sequence[str] | None = None, **kwargs: Any
    ) -> CalibrationResult:
        return await asyncio.to_thread(self.calibrate, queries, **kwargs)

    async def arebuild_head_index(
        self, index_type: str, index_params: Mapping[str, Any] | None = None
    ) -> None:
        await asyncio.to_thread(self.rebuild_head_index, index_type, index_params)

    async def aexact_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[str, float]]:
        return await asyncio.to_thread(self.exact_search_with_score, query, k, **kwargs)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
