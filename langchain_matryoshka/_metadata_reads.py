"""Reading documents by a metadata condition, without a query vector (a store base class).

``search_by_metadata`` (a page: ``limit`` / ``offset``), ``iter_documents`` (every match,
streamed through a Milvus query iterator, bounded memory), ``get_pks`` (ids) and
``count``, each with its async twin. A condition is ``filter=`` (metadata equalities,
a list meaning any of its values) and/or ``expr=`` (a Milvus boolean expression over
``metadata["key"]`` paths); both together must hold, neither means every document.
Names follow langchain-milvus where it has the method (``search_by_metadata``,
``get_pks``). The engine runs every Milvus call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from langchain_core.documents import Document

from ._conventions import check_timeout
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._engine import Engine

_DONE = object()


def _check_count(name: str, value: Any, minimum: int, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum else "a non-negative integer"
        none = " or None (no limit)" if allow_none else ""
        raise ConfigurationError(f"{name}={value!r} must be {what}{none}")
    return value


class MetadataReads:
    """Reads by condition; sync methods run on the engine, async ones on a worker thread."""

    _engine: Engine

    def _where(self, expr: str | None, filter: Mapping[str, Any] | None) -> str:  # noqa: A002
        return self._engine.where(expr, filter)

    def _partitions(self, filter: Mapping[str, Any] | None) -> list[str] | None:  # noqa: A002
        """The tenant partitions a filter on the partition key confines a read to."""
        return self._engine.partitions_for(filter)

    def search_by_metadata(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        limit: int | None = 10,
        offset: int = 0,
        timeout: float | None = None,
    ) -> list[Document]:
        """Documents matching the condition: ``offset`` skipped, at most ``limit``.

        ``limit=None`` returns every match (paged through a query iterator when there
        are more than one Milvus query returns, 16,384). For large results prefer
        :meth:`iter_documents`, which holds one page at a time.
        """
        limit = _check_count("limit", limit, 1, allow_none=True)
        offset = _check_count("offset", offset, 0, allow_none=False) or 0
        return self._engine.read(
            self._where(expr, filter), limit, offset, check_timeout(timeout),
            self._partitions(filter),
        )

    def iter_documents(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        batch_size: int = 1000,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[Document]:
        """Every document matching the condition, fetched ``batch_size`` at a time.

        A Milvus query iterator: memory holds one page whatever the number of matches.
        """
        args = self._iter_args(expr, filter, batch_size, limit, timeout)
        return self._engine.iter_documents(*args)

    def get_pks(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        limit: int | None = None,
        timeout: float | None = None,
    ) -> list[str]:
        """Ids of the documents matching the condition (every id without one)."""
        limit = _check_count("limit", limit, 1, allow_none=True)
        return self._engine.ids(
            self._where(expr, filter), limit, check_timeout(timeout), self._partitions(filter)
        )

    def count(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        timeout: float | None = None,
    ) -> int:
        """Number of documents matching the condition (all documents without one)."""
        return self._engine.count(
            self._where(expr, filter), check_timeout(timeout), self._partitions(filter)
        )

    def _iter_args(
        self, expr: Any, filter: Any, batch_size: Any, limit: Any, timeout: Any  # noqa: A002
    ) -> tuple[str, int, int | None, float | None, list[str] | None]:
        from ._milvus import QUERY_WINDOW

        batch_size = _check_count("batch_size", batch_size, 1, allow_none=False)
        if batch_size > QUERY_WINDOW:
            raise ConfigurationError(
                f"batch_size={batch_size} exceeds the {QUERY_WINDOW} rows one Milvus query "
                f"returns; pass batch_size <= {QUERY_WINDOW}"
            )
        limit = _check_count("limit", limit, 1, allow_none=True)
        where = self._where(expr, filter)
        return where, batch_size, limit, check_timeout(timeout), self._partitions(filter)

    # ------------------------------------------------------------------ async twins

    async def asearch_by_metadata(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        limit: int | None = 10,
        offset: int = 0,
        timeout: float | None = None,
    ) -> list[Document]:
        return await asyncio.to_thread(
            self.search_by_metadata,
            expr,
            filter=filter,
            limit=limit,
            offset=offset,
            timeout=timeout,
        )

    async def aiter_documents(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        batch_size: int = 1000,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Document]:
        """Async :meth:`iter_documents`: each page is fetched on a worker thread."""
        args = self._iter_args(expr, filter, batch_size, limit, timeout)
        pages = self._engine.iter_pages(*args)
        try:
            while (page := await asyncio.to_thread(next, pages, _DONE)) is not _DONE:
                for doc in cast("list[Document]", page):
                    yield doc
        finally:
            await asyncio.to_thread(pages.close)

    async def aget_pks(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        limit: int | None = None,
        timeout: float | None = None,
    ) -> list[str]:
        return await asyncio.to_thread(
            self.get_pks, expr, filter=filter, limit=limit, timeout=timeout
        )

    async def acount(
        self,
        expr: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
        timeout: float | None = None,
    ) -> int:
        return await asyncio.to_thread(self.count, expr, filter=filter, timeout=timeout)
