"""``FunnelRetriever``: the LangChain retriever over a :class:`MatryoshkaMilvus` store."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManager,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, get_config_list
from pydantic import ConfigDict, ValidationError

from ._engine import SEARCH_OPTIONS
from .errors import ConfigurationError
from .funnel import make_plan
from .vectorstore import MatryoshkaMilvus

SearchType = Literal["similarity", "mmr", "similarity_score_threshold"]
_CALL_OPTIONS = ("k", "search_type", "score_threshold", "fetch_k", "lambda_mult", *SEARCH_OPTIONS)


_EXAMPLES = {
    "vectorstore": "vectorstore=MatryoshkaMilvus(...)",
    "search_type": "search_type='similarity' (or 'mmr', 'similarity_score_threshold')",
    "k": "k=4",
    "candidates": "candidates=128",
    "scales": "scales=[256, 512, 768]",
    "prune_ratio": "prune_ratio=0.5",
    "expr": "expr='metadata[\"year\"] >= 2020'",
    "filter": "filter={'source': 'a.txt'}",
    "score_threshold": "score_threshold=0.7",
    "fetch_k": "fetch_k=20",
    "lambda_mult": "lambda_mult=0.5",
}


def _invalid_field(exc: ValidationError) -> ConfigurationError:
    """A pydantic type error on a retriever field, as the package's ConfigurationError."""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err.get("loc") else "?"
        example = _EXAMPLES.get(name, "see FunnelRetriever's fields")
        parts.append(f"{name}={err.get('input')!r} is invalid ({err['msg']}); pass e.g. {example}")
    return ConfigurationError("; ".join(parts))


class _Call(NamedTuple):
    """One retrieval's settings: the retriever's fields overridden by call kwargs."""

    search_type: str
    k: int
    options: dict[str, Any]
    score_threshold: float | None
    fetch_k: int
    lambda_mult: float

    def finish(self, pairs: list[tuple[Document, float]]) -> list[Document]:
        """Documents from (document, cosine) pairs, thresholded on relevance if asked."""
        if self.search_type == "similarity_score_threshold":
            threshold = self.score_threshold
            return [doc for doc, score in pairs if (1.0 + score) / 2.0 >= threshold]
        return [doc for doc, _ in pairs]


class FunnelRetriever(BaseRetriever):
    """Retriever that runs Matryoshka funnel search on a :class:`MatryoshkaMilvus` store.

    One low-dimensional Milvus search fetches ``candidates`` hits; they are reranked
    on growing prefixes of their full embeddings and the top ``k`` come back.
    Every field can be overridden per call: ``retriever.invoke(q, k=3, filter=...)``.
    ``batch()`` embeds all queries in one call and runs one Milvus search.

    Setup:
        .. code-block:: bash

            pip install langchain-matryoshka

    Key init args:
        vectorstore: MatryoshkaMilvus
            The store to search.
        k: int
            Documents returned (default 4).
        candidates, scales, prune_ratio:
            Funnel settings (default: the store's).
        expr, filter:
            A Milvus boolean expression / metadata equalities.
        search_type:
            "similarity" (default), "mmr" or "similarity_score_threshold".

    Instantiate:
        .. code-block:: python

            from langchain_matryoshka import FunnelRetriever

            retriever = FunnelRetriever(vectorstore=store, k=4, candidates=256)
            # or: retriever = store.as_retriever(search_kwargs={"k": 4})

    Usage:
        .. code-block:: python

            retriever.invoke("what is funnel search?")
            retriever.invoke("what is funnel search?", k=2, filter={"source": "a.txt"})
            retriever.batch(["first question", "second question"])

    Use within a chain:
        .. code-block:: python

            from langchain_core.output_parsers import StrOutputParser
            from langchain_core.prompts import ChatPromptTemplate
            from langchain_core.runnables import RunnablePassthrough

            prompt = ChatPromptTemplate.from_template(
                "Answer from the context.\\nContext: {context}\\nQuestion: {question}"
            )

            def format_docs(docs):
                return "\\n\\n".join(doc.page_content for doc in docs)

            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
            chain.invoke("what is funnel search?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    vectorstore: MatryoshkaMilvus
    """The store to search."""
    search_type: SearchType = "similarity"
    """"similarity", "mmr" (diverse, on full vectors) or "similarity_score_threshold"."""
    k: int = 4
    """Documents returned per query."""
    candidates: int | None = None
    """Hits fetched by the head search (None: the store's default)."""
    scales: list[int] | None = None
    """Ascending rerank prefixes ending at the full dim (None: the store's default)."""
    prune_ratio: float | None = None
    """Fraction of candidates kept after each stage but the last (None: the store's)."""
    expr: str | None = None
    """A Milvus boolean expression every result must satisfy."""
    filter: dict[str, Any] | None = None
    """Metadata equalities every result must satisfy; values are quoted safely."""
    score_threshold: float | None = None
    """Minimum relevance score in [0, 1] for "similarity_score_threshold"."""
    fetch_k: int = 20
    """Funnel results MMR chooses from (search_type "mmr")."""
    lambda_mult: float = 0.5
    """MMR trade-off: 1 relevance only, 0 diversity only."""

    def __init__(self, **data: Any) -> None:
        allowed = set(type(self).model_fields)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigurationError(
                f"unknown FunnelRetriever option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(_CALL_OPTIONS)} (and tags, metadata)"
            )
        try:
            super().__init__(**data)
        except ValidationError as exc:  # a wrong type: raise the package's own error
            raise _invalid_field(exc) from None
        self._call({})  # validate the settings once, raising the package's own errors

    def _call(self, overrides: dict[str, Any]) -> _Call:
        """Merge per-call overrides into the fields and validate the result."""
        unknown = sorted(set(overrides) - set(_CALL_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown retriever option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(_CALL_OPTIONS)}"
            )
        merged = {name: overrides.get(name, getattr(self, name)) for name in _CALL_OPTIONS}
        search_type = merged["search_type"]
        if search_type not in ("similarity", "mmr", "similarity_score_threshold"):
            raise ConfigurationError(
                f"search_type={search_type!r} is not supported; pass 'similarity', 'mmr' "
                "or 'similarity_score_threshold'"
            )
        k = merged["k"]
        make_plan(dim=2, search_dim=1, k=k, candidates=merged["candidates"])  # k, candidates
        threshold = merged["score_threshold"]
        if search_type == "similarity_score_threshold":
            if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
                raise ConfigurationError(
                    f"score_threshold={threshold!r} must be a relevance score in [0, 1] "
                    "with search_type='similarity_score_threshold'; pass e.g. 0.7"
                )
        return _Call(
            search_type,
            k,
            {name: merged[name] for name in SEARCH_OPTIONS},
            threshold,
            merged["fetch_k"],
            merged["lambda_mult"],
        )

    # ------------------------------------------------------------------ one query

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        call = self._call(kwargs)
        store = self.vectorstore
        if call.search_type == "mmr":
            return store.max_marginal_relevance_search(
                query, call.k, call.fetch_k, call.lambda_mult, **call.options
            )
        return call.finish(store.similarity_search_with_score(query, call.k, **call.options))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        **kwargs: Any,
    ) -> list[Document]:
        call = self._call(kwargs)
        store = self.vectorstore
        if call.search_type == "mmr":
            return await store.amax_marginal_relevance_search(
                query, call.k, call.fetch_k, call.lambda_mult, **call.options
            )
        pairs = await store.asimilarity_search_with_score(query, call.k, **call.options)
        return call.finish(pairs)

    # ------------------------------------------------------------------ many queries

    def _run_args(self, config: RunnableConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        """Callback-manager and run arguments, as ``invoke`` builds them."""
        configure = {
            "inheritable_callbacks": config.get("callbacks"),
            "inheritable_tags": config.get("tags"),
            "local_tags": self.tags,
            "inheritable_metadata": {
                **(config.get("metadata") or {}),
                **self._get_ls_params(),
            },
            "local_metadata": self.metadata,
        }
        return configure, {"name": config.get("run_name") or self.get_name()}

    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Many queries through one embedding call and one Milvus search."""
        call = self._call(kwargs)
        if call.search_type == "mmr" or return_exceptions or not inputs:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        runs = []
        for query, conf in zip(inputs, get_config_list(config, len(inputs))):
            configure, run = self._run_args(ensure_config(conf))
            runs.append(
                CallbackManager.configure(**configure).on_retriever_start(None, query, **run)
            )
        try:
            results = self.vectorstore.search_batch_with_score(inputs, call.k, **call.options)
        except Exception as exc:
            for run_manager in runs:
                run_manager.on_retriever_error(exc)
            raise
        documents = [call.finish(pairs) for pairs in results]
        for run_manager, docs in zip(runs, documents):
            run_manager.on_retriever_end(docs)
        return documents

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async :meth:`batch`: one embedding call and one Milvus search."""
        call = self._call(kwargs)
        if call.search_type == "mmr" or return_exceptions or not inputs:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        runs = []
        for query, conf in zip(inputs, get_config_list(config, len(inputs))):
            configure, run = self._run_args(ensure_config(conf))
            manager = AsyncCallbackManager.configure(**configure)
            runs.append(await manager.on_retriever_start(None, query, **run))
        try:
            results = await self.vectorstore.asearch_batch_with_score(
                inputs, call.k, **call.options
            )
        except Exception as exc:
            for run_manager in runs:
                await run_manager.on_retriever_error(exc)
            raise
        documents = [call.finish(pairs) for pairs in results]
        for run_manager, docs in zip(runs, documents):
            await run_manager.on_retriever_end(docs)
        return documents
