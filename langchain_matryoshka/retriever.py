"""``FunnelRetriever``: the LangChain retriever over a :class:`MatryoshkaMilvus` store."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple, cast

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManager,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, get_config_list
from pydantic import ConfigDict, Field, ValidationError

from ._conventions import CALL_KEYWORDS
from ._hybrid import hybrid_plan
from ._hybrid_store import SEARCH_TYPES
from .errors import ConfigurationError
from .funnel import make_plan
from .vectorstore import MatryoshkaMilvus

SearchType = Literal[
    "similarity", "mmr", "similarity_score_threshold", "full_text", "hybrid", "hybrid_mmr"
]
#: The store options each search type passes on (the rule: ``CALL_KEYWORDS``); the
#: retriever's other settings (``fetch_k`` for "similarity", ...) wait unused.
_TYPE_OPTIONS = {
    "similarity": CALL_KEYWORDS["search"],
    "similarity_score_threshold": CALL_KEYWORDS["search"],
    "mmr": CALL_KEYWORDS["search"],
    "full_text": CALL_KEYWORDS["full_text"],
    "hybrid": CALL_KEYWORDS["hybrid"],
    "hybrid_mmr": CALL_KEYWORDS["hybrid"],
}

#: What ``search_kwargs`` may hold, with the value used when a key is absent (or None).
SEARCH_KWARGS: dict[str, Any] = {
    "k": 4,
    "candidates": None,
    "scales": None,
    "prune_ratio": None,
    "expr": None,
    "filter": None,
    "timeout": None,
    "score_threshold": None,
    "fetch_k": 20,
    "lambda_mult": 0.5,
    "fusion": None,
    "rrf_k": None,
    "weights": None,
    "dense_k": None,
    "full_text_k": None,
}
_RUN_KEYWORDS = CALL_KEYWORDS["run"]
_CALL_OPTIONS = ("search_type", *SEARCH_KWARGS)

_EXAMPLES = {
    "vectorstore": "vectorstore=MatryoshkaMilvus(...)",
    "search_type": "search_type='similarity' (or 'mmr', 'similarity_score_threshold', "
    "'full_text', 'hybrid', 'hybrid_mmr')",
    "search_kwargs": "search_kwargs={'k': 4, 'filter': {'source': 'a.txt'}}",
    "k": "k=4",
    "candidates": "candidates=128",
    "scales": "scales=[256, 512, 768]",
    "prune_ratio": "prune_ratio=0.5",
    "expr": "expr='metadata[\"year\"] >= 2020'",
    "filter": "filter={'source': 'a.txt'}",
    "timeout": "timeout=10",
    "score_threshold": "score_threshold=0.7",
    "fetch_k": "fetch_k=20",
    "lambda_mult": "lambda_mult=0.5",
    "fusion": "fusion='rrf' (or 'weighted')",
    "rrf_k": "rrf_k=60",
    "weights": "weights=(0.5, 0.5)",
    "dense_k": "dense_k=10",
    "full_text_k": "full_text_k=10",
}


def _invalid_field(exc: ValidationError) -> ConfigurationError:
    """A pydantic type error on a retriever field, as the package's ConfigurationError."""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err.get("loc") else "?"
        example = _EXAMPLES.get(name, "see FunnelRetriever's fields")
        parts.append(f"{name}={err.get('input')!r} is invalid ({err['msg']}); pass e.g. {example}")
    return ConfigurationError("; ".join(parts))


def _settings(search_kwargs: Any, where: str) -> dict[str, Any]:
    """``search_kwargs`` checked for unknown keys, with None values dropped."""
    if not isinstance(search_kwargs, dict):
        example = _EXAMPLES["search_kwargs"]
        raise ConfigurationError(
            f"search_kwargs={search_kwargs!r} must be a dict; pass e.g. {example}"
        )
    unknown = sorted(set(search_kwargs) - set(SEARCH_KWARGS))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(map(repr, unknown))} in {where}; "
            f"allowed: {', '.join(SEARCH_KWARGS)}"
        )
    return {name: value for name, value in search_kwargs.items() if value is not None}


class _Call(NamedTuple):
    """One retrieval's settings: the retriever's search_kwargs overridden by call kwargs."""

    search_type: str
    k: int
    options: dict[str, Any]
    score_threshold: float | None
    fetch_k: int
    lambda_mult: float

    def finish(self, pairs: list[tuple[Document, float]]) -> list[Document]:
        """Documents from (document, cosine) pairs, thresholded on relevance if asked."""
        if self.search_type == "similarity_score_threshold":
            threshold = cast(float, self.score_threshold)  # set: checked by _make_call
            return [doc for doc, score in pairs if (1.0 + score) / 2.0 >= threshold]
        return [doc for doc, _ in pairs]


def _make_call(search_type: Any, settings: dict[str, Any], *, searching: bool = False) -> _Call:
    """Validate one retrieval's settings (the package's own errors).

    ``searching``: for a call about to search, which checks ``k``, ``candidates`` and
    the fusion options itself; they are not checked here too (one check per call).
    """
    merged = {name: settings.get(name, default) for name, default in SEARCH_KWARGS.items()}
    merged = {
        name: SEARCH_KWARGS[name] if value is None else value for name, value in merged.items()
    }
    if search_type not in SEARCH_TYPES:
        raise ConfigurationError(
            f"search_type={search_type!r} is not supported; pass one of "
            + ", ".join(repr(t) for t in SEARCH_TYPES)
        )
    k = merged["k"]
    if not searching:  # when set: k, candidates
        make_plan(dim=2, search_dim=1, k=k, candidates=merged["candidates"])
    if search_type.startswith("hybrid") and not searching:  # fusion options
        hybrid_plan(merged["fetch_k"] if search_type == "hybrid_mmr" else k, merged)
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
        {name: merged[name] for name in _TYPE_OPTIONS[search_type]},
        threshold,
        merged["fetch_k"],
        merged["lambda_mult"],
    )


def _view(name: str, doc: str) -> property:
    """A flat attribute (``retriever.k``) that reads and writes ``search_kwargs[name]``."""

    def get(self: FunnelRetriever) -> Any:
        return self.search_kwargs.get(name, SEARCH_KWARGS[name])

    def set_(self: FunnelRetriever, value: Any) -> None:
        self.search_kwargs = {**self.search_kwargs, name: value}

    return property(get, set_, doc=doc)


class FunnelRetriever(BaseRetriever):
    r"""Retriever that runs Matryoshka funnel search on a :class:`MatryoshkaMilvus` store.

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
        search_kwargs: dict
            The search settings, as ``VectorStoreRetriever``'s: ``k`` (default 4),
            ``candidates`` / ``scales`` / ``prune_ratio`` (funnel; default: the
            store's), ``expr`` / ``filter`` (conditions), ``timeout``,
            ``score_threshold``, ``fetch_k``, ``lambda_mult``. Each can also be passed
            flat (``k=4``) and read or set as an attribute (``retriever.k``): those
            are views of ``search_kwargs``.
        search_type:
            "similarity" (default), "mmr", "similarity_score_threshold", "full_text"
            (BM25 alone), "hybrid" (the funnel fused with BM25; ``fusion``, ``rrf_k``,
            ``weights``, ``dense_k``, ``full_text_k``) or "hybrid_mmr" (MMR over the
            fused top ``fetch_k``); the last three need ``full_text_search=True``.

    Per-user retrieval (LangChain's how-to, as written):
        .. code-block:: python

            from langchain_core.runnables import ConfigurableField

            configurable = retriever.configurable_fields(
                search_kwargs=ConfigurableField(id="search_kwargs")
            )
            configurable.invoke(
                "question",
                config={"configurable": {"search_kwargs": {"filter": {"user": "ann"}}}},
            )

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
                "Answer from the context.\nContext: {context}\nQuestion: {question}"
            )

            def format_docs(docs):
                return "\n\n".join(doc.page_content for doc in docs)

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
    """"similarity", "mmr" (diverse, on full vectors), "similarity_score_threshold",
    "full_text" (BM25), "hybrid" (funnel + BM25) or "hybrid_mmr"."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """The search settings (the source of truth; ``k``, ``candidates``, ... are views).

    Keys: ``k``, ``candidates``, ``scales``, ``prune_ratio``, ``expr``, ``filter``,
    ``timeout``, ``score_threshold``, ``fetch_k``, ``lambda_mult``, ``fusion``,
    ``rrf_k``, ``weights``, ``dense_k``, ``full_text_k``; an absent key (or None) means
    its default. A search type passes on the keys it uses (see ``_TYPE_OPTIONS``).
    Configurable per call, as in LangChain's per-user
    retrieval: ``retriever.configurable_fields(search_kwargs=ConfigurableField(
    id="search_kwargs"))``, then ``config={"configurable": {"search_kwargs": {...}}}``.
    """
    allowed_search_types: ClassVar[tuple[str, ...]] = SEARCH_TYPES
    """The search types this retriever runs (as ``VectorStoreRetriever``'s)."""

    # Views of search_kwargs: reading gives the setting (or its default), writing sets it.
    k = _view("k", "Documents returned per query (default 4).")
    candidates = _view("candidates", "Hits fetched by the head search (None: the store's).")
    scales = _view("scales", "Ascending rerank prefixes ending at the full dim.")
    prune_ratio = _view("prune_ratio", "Fraction kept after each stage but the last.")
    expr = _view("expr", "A Milvus boolean expression every result must satisfy.")
    filter = _view("filter", "Metadata equalities every result must satisfy.")
    timeout = _view("timeout", "Seconds each Milvus call of a retrieval may take.")
    score_threshold = _view("score_threshold", "Minimum relevance in [0, 1] (threshold type).")
    fetch_k = _view("fetch_k", 'Funnel results MMR chooses from ("mmr", default 20).')
    lambda_mult = _view("lambda_mult", "MMR trade-off: 1 relevance only, 0 diversity only.")
    fusion = _view("fusion", 'Hybrid fusion: "weighted" (default) or "rrf".')
    rrf_k = _view("rrf_k", "RRF constant of fusion='rrf' (default 60).")
    weights = _view("weights", "(dense, full text) weights of fusion='weighted'.")
    dense_k = _view("dense_k", "Funnel results fused in a hybrid search (default max(k, 10)).")
    full_text_k = _view("full_text_k", "BM25 results fused in a hybrid search.")

    def __init__(self, **data: Any) -> None:
        flat = {name: data.pop(name) for name in SEARCH_KWARGS if name in data}
        allowed = set(type(self).model_fields)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigurationError(
                f"unknown FunnelRetriever option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: vectorstore, search_type, search_kwargs, {', '.join(SEARCH_KWARGS)} "
                "(and tags, metadata, name)"
            )
        given = _settings(data.pop("search_kwargs", None) or {}, "search_kwargs")
        clash = sorted(n for n, v in flat.items() if n in given and given[n] != v)
        if clash:
            raise ConfigurationError(
                f"{', '.join(clash)} given both as argument(s) and in search_kwargs with "
                "different values; pass each setting once"
            )
        data["search_kwargs"] = {**given, **{n: v for n, v in flat.items() if v is not None}}
        try:
            super().__init__(**data)
        except ValidationError as exc:  # a wrong type: raise the package's own error
            raise _invalid_field(exc) from None
        _make_call(self.search_type, self.search_kwargs)  # validated once, our own errors

    def __setattr__(self, name: str, value: Any) -> None:
        # search_kwargs and search_type are validated when set, as at construction.
        if name == "search_kwargs":
            value = _settings(value, "search_kwargs")
            _make_call(self.search_type, value)
        elif name == "search_type":
            _make_call(value, self.search_kwargs)
        super().__setattr__(name, value)

    def _call(self, overrides: dict[str, Any]) -> _Call:
        """Merge per-call overrides into search_kwargs and validate the result."""
        unknown = sorted(set(overrides) - set(_CALL_OPTIONS) - set(_RUN_KEYWORDS))
        if unknown:
            raise ConfigurationError(
                f"unknown retriever option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(_CALL_OPTIONS)}"
            )
        settings = {**self.search_kwargs}
        settings.update({n: v for n, v in overrides.items() if n in SEARCH_KWARGS})
        return _make_call(
            overrides.get("search_type", self.search_type), settings, searching=True
        )

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        """Tracing parameters, as ``VectorStoreRetriever`` reports them."""
        params = super()._get_ls_params(**kwargs)
        params["ls_vector_store_provider"] = type(self.vectorstore).__name__
        params["ls_embedding_provider"] = type(self.vectorstore.embeddings).__name__
        return params

    # ------------------------------------------------------------------ the search

    def _search(self, queries: list[str], call: _Call) -> list[list[Document]]:
        """All queries' documents: one embedding call and one Milvus search (MMR: each)."""
        store = self.vectorstore
        if call.search_type in ("mmr", "hybrid_mmr"):
            mmr = (
                store.max_marginal_relevance_search
                if call.search_type == "mmr"
                else store.hybrid_max_marginal_relevance_search
            )
            return [mmr(q, call.k, call.fetch_k, call.lambda_mult, **call.options) for q in queries]
        batch = {
            "full_text": store.full_text_search_batch_with_score,
            "hybrid": store.hybrid_search_batch_with_score,
        }.get(call.search_type, store.search_batch_with_score)
        found = batch(queries, call.k, **call.options)
        return [call.finish(p) for p in found]

    async def _asearch(self, queries: list[str], call: _Call) -> list[list[Document]]:
        store = self.vectorstore
        if call.search_type in ("mmr", "hybrid_mmr"):
            mmr = (
                store.amax_marginal_relevance_search
                if call.search_type == "mmr"
                else store.ahybrid_max_marginal_relevance_search
            )
            return [
                await mmr(q, call.k, call.fetch_k, call.lambda_mult, **call.options)
                for q in queries
            ]
        batch = {
            "full_text": store.afull_text_search_batch_with_score,
            "hybrid": store.ahybrid_search_batch_with_score,
        }.get(call.search_type, store.asearch_batch_with_score)
        found = await batch(queries, call.k, **call.options)
        return [call.finish(p) for p in found]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self._search([query], self._call(kwargs))[0]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        **kwargs: Any,
    ) -> list[Document]:
        return (await self._asearch([query], self._call(kwargs)))[0]

    # ------------------------------------------------------------------ runs

    def _runs(
        self, inputs: list[str], configs: list[RunnableConfig], kwargs: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Per query: the callback manager's and the run's arguments.

        Built as ``BaseRetriever.invoke`` builds them (one path for invoke, batch and
        async).

        ``run_id`` comes from the call's keyword (one query only) or the query's config.
        """
        run_id = kwargs.pop("run_id", None)
        if run_id is not None and len(inputs) > 1:
            raise ConfigurationError(
                "run_id= was passed for a batch of several queries; pass one run id per "
                "query in its config instead: config=[{'run_id': ...}, ...]"
            )
        options = {n: v for n, v in kwargs.items() if n not in _RUN_KEYWORDS}
        runs = []
        for query, config in zip(inputs, configs):
            configure = {
                "inheritable_callbacks": config.get("callbacks"),
                "local_callbacks": None,
                "verbose": kwargs.get("verbose", False),
                "inheritable_tags": config.get("tags"),
                "local_tags": self.tags,
                "inheritable_metadata": {
                    **(config.get("metadata") or {}),
                    **self._get_ls_params(**options),
                },
                "local_metadata": self.metadata,
            }
            start = {
                "name": config.get("run_name") or self.get_name(),
                "run_id": run_id if run_id is not None else config.get("run_id"),
            }
            runs.append((query, configure, start))
        return runs

    def _retrieve(
        self,
        inputs: list[str],
        configs: list[RunnableConfig],
        kwargs: dict[str, Any],
        return_exceptions: bool,
    ) -> list[Any]:
        kwargs = dict(kwargs)
        runs = [
            CallbackManager.configure(**configure).on_retriever_start(None, query, **start)
            for query, configure, start in self._runs(inputs, configs, kwargs)
        ]
        try:
            call = self._call(kwargs)
            results: list[Any] = self._search(inputs, call)
        except Exception as exc:
            if not return_exceptions or len(inputs) == 1:
                for run in runs:
                    run.on_retriever_error(exc)
                if return_exceptions:
                    return [exc]
                raise
            results = []  # find which queries fail: one at a time
            for query in inputs:
                try:
                    results.append(self._search([query], self._call(kwargs))[0])
                except Exception as one:  # noqa: BLE001 - returned, as asked
                    results.append(one)
        for run, result in zip(runs, results):
            if isinstance(result, Exception):
                run.on_retriever_error(result)
            else:
                run.on_retriever_end(result)
        return results

    async def _aretrieve(
        self,
        inputs: list[str],
        configs: list[RunnableConfig],
        kwargs: dict[str, Any],
        return_exceptions: bool,
    ) -> list[Any]:
        kwargs = dict(kwargs)
        runs = [
            await AsyncCallbackManager.configure(**configure).on_retriever_start(
                None, query, **start
            )
            for query, configure, start in self._runs(inputs, configs, kwargs)
        ]
        try:
            call = self._call(kwargs)
            results: list[Any] = await self._asearch(inputs, call)
        except Exception as exc:
            if not return_exceptions or len(inputs) == 1:
                for run in runs:
                    await run.on_retriever_error(exc)
                if return_exceptions:
                    return [exc]
                raise
            results = []
            for query in inputs:
                try:
                    results.append((await self._asearch([query], self._call(kwargs)))[0])
                except Exception as one:  # noqa: BLE001 - returned, as asked
                    results.append(one)
        for run, result in zip(runs, results):
            if isinstance(result, Exception):
                await run.on_retriever_error(result)
            else:
                await run.on_retriever_end(result)
        return results

    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Retrieve for one query; keyword arguments override ``search_kwargs``."""
        return self._retrieve([input], [ensure_config(config)], kwargs, False)[0]

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        return (await self._aretrieve([input], [ensure_config(config)], kwargs, False))[0]

    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Many queries through one embedding call and one Milvus search.

        Each query gets its own run (callbacks, tags, metadata, run name and id from
        its config), exactly as :meth:`invoke` starts it.
        """
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        return self._retrieve(list(inputs), configs, kwargs, return_exceptions)

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async :meth:`batch`: one embedding call and one Milvus search."""
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        return await self._aretrieve(list(inputs), configs, kwargs, return_exceptions)
