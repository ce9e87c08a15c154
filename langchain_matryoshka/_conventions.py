"""The keyword arguments each method takes: LangChain's calling conventions, in one place.

LangChain's own code calls a vector store with keywords of its own, and these are
accepted and do what their names say. Read from the callers' source (langchain-core
1.8, langchain-classic 1.0, langchain-milvus 0.4):

- ``langchain_core.indexing.index`` / ``aindex`` call
  ``add_documents(docs, ids=uids, batch_size=batch_size, **upsert_kwargs)`` and
  ``delete(ids)``; ``VectorStore.add_documents`` forwards every keyword to
  ``add_texts`` (``ids`` taken from ``Document.id`` when none are given).
- ``VectorStoreRetriever`` and langchain-classic's ``MultiVectorRetriever``,
  ``ParentDocumentRetriever``, ``SelfQueryRetriever`` and ``TimeWeightedVectorStoreRetriever``
  pass their ``search_kwargs`` (``k``, ``filter``, ``score_threshold``, ``fetch_k``,
  ``lambda_mult``, plus the structured query's translation and ``k`` from its limit) to
  ``similarity_search``, ``similarity_search_with_relevance_scores`` (which removes
  ``score_threshold`` itself), ``max_marginal_relevance_search`` or ``search``; the
  writing ones pass their keywords on to ``add_documents``. EnsembleRetriever and
  ContextualCompressionRetriever only call retrievers.
- ``BaseRetriever.invoke`` passes ``verbose`` (and takes ``run_id``) among the keywords
  it hands to the retriever.
- langchain-milvus users pass ``timeout=`` to every call and ``batch_size=`` to
  ``add_texts`` / ``add_embeddings`` / ``add_documents``.

The rule (:data:`CALL_KEYWORDS`): every write accepts ``batch_size`` (rows per Milvus
upsert call) and ``timeout``; every search, read and delete accepts ``timeout``
(seconds, a bound on each Milvus call the method makes, passed to it as its
``timeout``); searches also take the funnel options :data:`FUNNEL_OPTIONS` and the
conditions ``expr`` / ``filter``. Full-text (BM25) searches take the conditions and
``timeout`` only (no funnel runs); hybrid searches take the funnel options, the fusion
options :data:`HYBRID_OPTIONS` and the conditions. Anything else, a misspelled funnel
option included,
is refused with the list of valid keywords: a silently ignored ``candidate=512`` would
change results without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

#: The package's own per-call funnel settings (see :func:`funnel.make_plan`).
FUNNEL_OPTIONS = ("candidates", "scales", "prune_ratio")
#: Metadata conditions every search, read and delete accepts.
CONDITIONS = ("expr", "filter")
#: Per-call options of a hybrid search (see :mod:`._hybrid`): the fusion ("rrf" or
#: "weighted"), the RRF constant, the weights of the dense and full-text sides, and the
#: documents each side contributes to the fusion.
HYBRID_OPTIONS = ("fusion", "rrf_k", "weights", "dense_k", "full_text_k")

#: Keyword arguments accepted by each kind of call, beyond its named parameters.
CALL_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    # add_texts / add_documents / add_embeddings (and their async twins)
    "write": ("batch_size", "timeout"),
    # similarity_search*, max_marginal_relevance_search*, search_batch*, the retriever
    "search": (*FUNNEL_OPTIONS, *CONDITIONS, "timeout"),
    # full_text_search* (BM25 alone: no funnel)
    "full_text": (*CONDITIONS, "timeout"),
    # hybrid_search* (the funnel's dense result fused with BM25's)
    "hybrid": (*FUNNEL_OPTIONS, *HYBRID_OPTIONS, *CONDITIONS, "timeout"),
    # delete / adelete (besides ids, expr, filter)
    "delete": ("timeout",),
    # FunnelRetriever.invoke / batch keywords BaseRetriever hands on, not search options
    "run": ("run_id", "verbose"),
}


def reject_unknown(options: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """:class:`ConfigurationError` naming every keyword not in ``allowed``."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for {where}; "
            f"allowed: {', '.join(allowed) if allowed else 'none'}"
        )


def check_timeout(timeout: Any) -> float | None:
    """``timeout`` as seconds (None: the connection's ``call_timeout``)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigurationError(
            f"timeout={timeout!r} must be a positive number of seconds (a bound on each "
            "Milvus call), e.g. timeout=10, or None"
        )
    return float(timeout)


def check_batch_size(batch_size: Any) -> int | None:
    """``batch_size`` as rows per upsert call (None: the store's)."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(
            f"batch_size={batch_size!r} must be a positive integer (rows per Milvus "
            "upsert call), e.g. 1000"
        )
    return batch_size


def write_options(kwargs: Mapping[str, Any], where: str) -> tuple[int | None, float | None]:
    """``(batch_size, timeout)`` of a write call's keywords, unknown ones refused."""
    reject_unknown(kwargs, CALL_KEYWORDS["write"], where)
    return check_batch_size(kwargs.get("batch_size")), check_timeout(kwargs.get("timeout"))
