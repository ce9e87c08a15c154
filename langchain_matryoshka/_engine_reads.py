"""The engine's reads and deletes by id and by condition (no query vector).

A base of :class:`._engine.Engine`; the store's metadata reads
(:mod:`._metadata_reads`) and the LlamaIndex store call them.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from . import _milvus

if TYPE_CHECKING:
    from ._expressions import Expressions


class ReadMethods:
    """Reads and deletes over the engine's collection (see :class:`._engine.Engine`)."""

    collection: _milvus.MilvusCollection
    layout: _milvus.Layout | None
    expressions: Expressions

    if TYPE_CHECKING:

        def refresh(self) -> _milvus.Layout | None: ...
        def document_of(self, row: Mapping[str, Any]) -> Document: ...
        def clear_caches(self) -> None: ...


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
                self.clear_caches()

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
    ) -> Generator[list[Document], None, None]:
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
