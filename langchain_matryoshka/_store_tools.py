"""The store's tools beyond LangChain's API: index, calibrate, exact search (a base class)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._conventions import check_timeout
from .funnel import make_plan

if TYPE_CHECKING:
    from ._engine import Engine
    from .calibration import CalibrationResult


class StoreTools:
    """``build_index``, ``calibrate``, ``rebuild_head_index``, ``exact_search_with_score``."""

    _engine: Engine

    if TYPE_CHECKING:
        def _embed_queries(self, queries: Sequence[str]) -> list[list[float]]: ...

    def build_index(self) -> None:
        """Flush and index every row now; call it once at the end of a bulk ingestion.

        Until then Milvus searches unindexed rows by brute force (on Milvus Lite every
        search pays for them).
        """
        self._engine.build_index()

    def calibrate(self, queries: Sequence[str] | None = None, **kwargs: Any) -> CalibrationResult:
        """Find and persist the cheapest funnel reaching a target recall@k.

        ``queries``: held-out query texts (None: the recorded sample of real queries
        if the store keeps one, else pseudo-queries made from the stored documents).
        Keyword options: ``query_vectors``, ``k`` (10), ``target_recall`` (0.99),
        ``confidence`` (0.95), ``use_recorded``, ``pseudo``, ``n_pseudo`` (1000),
        ``candidate_grid``, ``prune_ratios``, ``scales``, ``measure_latency``,
        ``persist`` (True), ``seed``, ``show_progress``; ``memory_budget_mb`` (choose
        the head index type too: the best that fits, rebuilt over every row) and
        ``index_types``. See :func:`langchain_matryoshka.calibration.calibrate`.
        """
        from .calibration import calibrate

        return calibrate(self._engine, self._embed_queries, queries, **kwargs)

    def rebuild_head_index(
        self, index_type: str, index_params: Mapping[str, Any] | None = None
    ) -> None:
        """Replace the head index with ``index_type`` (e.g. "IVF_SQ8"), over every row.

        ``index_params``: its build parameters (default: the type's). Minutes at scale;
        searches meanwhile wait or scan. Calibrated funnel defaults measured on another
        index type stay, but its head search settings (``nprobe``) are dropped: run
        :meth:`calibrate` again, or let ``calibrate(memory_budget_mb=...)`` choose.
        """
        self._engine.rebuild_head_index(index_type, index_params)

    def exact_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        expr: str | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangChain's name
        timeout: float | None = None,
    ) -> list[tuple[str, float]]:
        """Exact full-dimension cosine top ``k`` ids over the stored rows (slow; a reference).

        Every row, or those matching ``expr`` and ``filter`` (as in the searches).
        """
        make_plan(dim=2, search_dim=1, k=k)
        where = self._engine.where(expr, filter)
        ids, scores = self._engine.exact(
            self._embed_queries([query]),
            k,
            where=where,
            partitions=self._engine.partitions_for(filter),
            timeout=check_timeout(timeout),
        )
        return list(zip(ids[0], scores[0].tolist()))
