"""Part of the Milvus adapter: BM25 full-text search on the ``sparse`` field.

:class:`TextSearch` is a base of :class:`._milvus.MilvusCollection`. Milvus computes
the BM25 sparse vector of every row's text itself (a ``Function`` of the schema) and
takes queries as raw text; this class only asks and turns hits into rows.

Scores. Milvus Lite 3.2 reports a BM25 hit's ``distance`` as minus its BM25 score
(``milvus_lite/index/sparse_inverted.py``: "distance = -bm25_score", smaller is
better), Milvus servers (2.5 and later) as the score itself; BM25 scores are never
negative, so the score is ``abs(distance)`` on both, and the store reports that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._layout import FIELD_FULL, FIELD_ID, FIELD_SPARSE
from ._reads_adapter import call_timeout, distinct
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._consistency import Session
    from ._layout import Layout


def require_full_text(layout: Layout, collection: str) -> None:
    """:class:`ConfigurationError` unless the collection has the BM25 field."""
    if layout.full_text is None:
        raise ConfigurationError(
            f"collection {collection!r} has no full-text field (it was created without "
            "full_text_search=True), so search_type='full_text' and 'hybrid' cannot run "
            "on it; rebuild it with drop_old=True and full_text_search=True (Milvus Lite "
            "or a Milvus 2.5+ server), or use search_type='similarity'"
        )


class TextSearch:
    """BM25 searches over ``self.client`` / ``self.name`` (see MilvusCollection)."""

    client: Any
    name: str
    consistency_level: str
    session: Session

    if TYPE_CHECKING:

        def _require(self) -> Layout: ...
        def _existing(self, partitions: Sequence[str] | None) -> list[str] | None: ...
        def _call(self, call: str, expr: str = "", timeout: float | None = None) -> Any: ...

    def full_text_search(
        self,
        texts: Sequence[str],
        limit: int,
        expr: str = "",
        partitions: Sequence[str] | None = None,
        timeout: float | None = None,
        with_vectors: bool = True,
    ) -> list[list[tuple[Mapping[str, Any], float]]]:
        """One BM25 search for all query texts: per query, ``(row, BM25 score)`` best first.

        Rows carry the document fields (id, text, metadata, declared columns) and, with
        ``with_vectors``, the stored full vector. A query with no known term finds
        nothing (an empty list).
        """
        layout = self._require()
        require_full_text(layout, self.name)
        partitions = self._existing(partitions)
        if partitions == [] or not texts:
            return [[] for _ in texts]
        fields = [*layout.document_fields(), *([FIELD_FULL] if with_vectors else [])]
        kwargs: dict[str, Any] = {} if partitions is None else {"partition_names": partitions}
        with self._call("full-text search", expr, timeout):
            hits = self.client.search(
                self.name,
                data=list(texts),
                anns_field=FIELD_SPARSE,
                limit=limit,
                filter=expr,
                output_fields=fields,
                search_params={"metric_type": "BM25"},
                **self.session.read_kwargs(timeout, "search"),
                **kwargs,
                **call_timeout(timeout),
            )
        out: list[list[tuple[Mapping[str, Any], float]]] = []
        for query_hits in hits:
            rows = distinct([dict(h["entity"], _score=abs(float(h["distance"]))) for h in
                             query_hits], FIELD_ID)
            ranked = sorted(rows, key=lambda r: -r["_score"])  # servers and Lite alike
            out.append([(r, r.pop("_score")) for r in ranked])
        return out
