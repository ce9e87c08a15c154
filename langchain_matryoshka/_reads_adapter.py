"""Part of the Milvus adapter: reading rows by a condition (no query vector).

:class:`ConditionReads` is a base of :class:`._milvus.MilvusCollection`: a query
iterator for results of any size, and the wrapper every collection call runs in, which
maps the errors a caller's expression or ``timeout`` caused to the package's own
(:func:`._call_errors.milvus_call`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._call_errors import milvus_call

if TYPE_CHECKING:
    from ._consistency import Session

FIELD_ID = "id"
FIELD_TEXT = "text"
FIELD_METADATA = "metadata"
#: The most rows one Milvus query returns (offset + limit); larger reads page with an
#: iterator.
QUERY_WINDOW = 16384

_Row = TypeVar("_Row", bound=Mapping[str, Any])
#: The fields of the store's layout a caller's expression may name.
OWN_FIELDS = (FIELD_ID, FIELD_TEXT, FIELD_METADATA)


def call_timeout(timeout: float | None) -> dict[str, float]:
    """A call's ``timeout`` keyword; none when unset (the client's call_timeout applies)."""
    return {} if timeout is None else {"timeout": timeout}


def distinct(rows: Sequence[_Row], key: str) -> Sequence[_Row]:
    """``rows`` without repeated primary keys (the first of each kept).

    Milvus Lite 3.2 killed between a flush's manifest commit and its write-ahead-log
    deletion replays that log on the next open: the flushed rows then exist twice with
    the same sequence number, and search, query and count(*) return both copies until
    the rows are written again.
    """
    seen = {r[key] for r in rows}
    if len(seen) == len(rows):
        return rows
    seen.clear()
    out = []
    for r in rows:
        if r[key] not in seen:
            seen.add(r[key])
            out.append(r)
    return out


class ConditionReads:
    """Reads by condition over ``self.client`` / ``self.name`` (see MilvusCollection)."""

    client: Any
    name: str
    consistency_level: str
    session: Session

    layout: Any  # the collection's Layout once it exists (MilvusCollection)

    if TYPE_CHECKING:

        def _require(self) -> Any: ...
        def _existing(self, partitions: Sequence[str] | None) -> list[str] | None: ...

    def _call(self, call: str, expr: str = "", timeout: float | None = None) -> Any:
        """Caller-caused Milvus errors of one call (bad ``expr``, ``timeout``) as ours."""
        layout = getattr(self, "layout", None)
        own = OWN_FIELDS + tuple(layout.columns) if layout is not None else OWN_FIELDS
        return milvus_call(f"{call} on collection {self.name!r}", expr, timeout, own)

    def iterate_rows(
        self,
        expr: str,
        batch_size: int,
        limit: int | None = None,
        timeout: float | None = None,
        fields: Sequence[str] | None = None,
        partitions: Sequence[str] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of at most ``batch_size`` rows matching ``expr`` (a query iterator).

        ``fields``: the layout's document fields unless given; ``partitions``: read only
        these store-managed tenant partitions (None: all).
        """
        if fields is None:
            fields = self._require().document_fields()
        partitions = self._existing(partitions)
        if partitions == []:
            return
        extra: dict[str, Any] = {"limit": limit} if limit is not None else {}
        if partitions is not None:
            extra["partition_names"] = list(partitions)
        with self._call("query_iterator", expr, timeout):
            iterator = self.client.query_iterator(
                self.name,
                batch_size=batch_size,
                filter=expr,
                output_fields=list(fields),
                **self.session.read_kwargs(timeout, "query_iterator"),
                **extra,
                **call_timeout(timeout),
            )
        try:
            while True:
                with self._call("query_iterator", expr, timeout):
                    batch = iterator.next()
                if not batch:
                    return
                yield list(distinct(batch, FIELD_ID))
        finally:
            iterator.close()
