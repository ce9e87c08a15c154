"""FunnelRetriever follows VectorStoreRetriever's conventions, and batch runs like invoke."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.runnables import ConfigurableField
from langchain_core.vectorstores import VectorStoreRetriever

from langchain_matryoshka import ConfigurationError, FunnelRetriever


def test_search_kwargs_is_the_source_and_the_flat_names_are_views(store) -> None:
    r = store.as_retriever(search_kwargs={"k": 3, "candidates": 64})
    assert r.search_kwargs == {"k": 3, "candidates": 64}
    assert (r.k, r.candidates, r.fetch_k, r.filter) == (3, 64, 20, None)  # defaults shown
    r.k = 5  # a view writes search_kwargs
    assert r.search_kwargs == {"k": 5, "candidates": 64}
    r.search_kwargs = {"k": 2, "filter": {"parity": "odd"}}  # and reads it back
    assert (r.k, r.candidates, r.filter) == (2, None, {"parity": "odd"})
    docs = r.invoke("query 3")
    assert len(docs) == 2 and all(d.metadata["parity"] == "odd" for d in docs)
    flat = FunnelRetriever(vectorstore=store, k=2, filter={"parity": "odd"})
    assert flat.search_kwargs == r.search_kwargs and flat.invoke("query 3") == docs
    r.candidates = None  # None: back to the default
    assert "candidates" not in r.search_kwargs


def test_search_kwargs_are_checked_when_set(store) -> None:
    r = store.as_retriever()
    with pytest.raises(ConfigurationError, match="unknown option\\(s\\) 'top_k' in search_kwargs"):
        r.search_kwargs = {"top_k": 3}
    with pytest.raises(ConfigurationError, match="candidates=2 is smaller than k=4"):
        r.candidates = 2
    with pytest.raises(ConfigurationError, match="score_threshold=None"):
        r.search_type = "similarity_score_threshold"
    with pytest.raises(ConfigurationError, match="different values"):
        FunnelRetriever(vectorstore=store, k=2, search_kwargs={"k": 3})
    assert r.search_kwargs == {} and r.search_type == "similarity"


def test_vectorstore_retriever_attributes(store) -> None:
    r = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 6},
                           tags=["mine"], metadata={"team": "a"})
    assert r.vectorstore is store and r.search_type == "mmr"
    # LangChain's own search types, then this store's keyword and hybrid ones
    allowed = FunnelRetriever.allowed_search_types
    assert set(VectorStoreRetriever.allowed_search_types) <= set(allowed)
    assert allowed[len(VectorStoreRetriever.allowed_search_types):] == (
        "full_text", "hybrid", "hybrid_mmr"
    )
    assert r.tags[0] == "mine" and r.metadata == {"team": "a"}
    assert r.invoke("query 2") == store.max_marginal_relevance_search("query 2", k=2, fetch_k=6)


def test_per_user_retrieval_with_a_configurable_search_kwargs(store) -> None:
    # LangChain's how-to "per-user retrieval", as written.
    retriever = store.as_retriever(search_kwargs={"k": 3})
    configurable = retriever.configurable_fields(
        search_kwargs=ConfigurableField(id="search_kwargs", name="Search kwargs")
    )
    odd = configurable.invoke(
        "query 4", config={"configurable": {"search_kwargs": {"filter": {"parity": "odd"}}}}
    )
    assert len(odd) == 4 and all(d.metadata["parity"] == "odd" for d in odd)  # k: default
    even = configurable.invoke(
        "query 4",
        config={"configurable": {"search_kwargs": {"k": 2, "filter": {"parity": "even"}}}},
    )
    assert len(even) == 2 and all(d.metadata["parity"] == "even" for d in even)
    assert configurable.invoke("query 4") == retriever.invoke("query 4")  # unconfigured
    both = configurable.batch(
        ["query 4", "query 5"],
        config=[{"configurable": {"search_kwargs": {"filter": {"parity": p}}}}
                for p in ("odd", "even")],
    )
    assert [{d.metadata["parity"] for d in docs} for docs in both] == [{"odd"}, {"even"}]


class Recorder(BaseCallbackHandler):
    """Every retriever callback with what it carried."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, tags=None,
                           metadata=None, **kwargs) -> None:
        self.events.append(("start", {"query": query, "run_id": run_id, "tags": tags,
                                      "metadata": metadata, "name": kwargs.get("name")}))

    def on_retriever_end(self, documents, *, run_id, **kwargs) -> None:
        self.events.append(("end", {"run_id": run_id, "ids": [d.id for d in documents]}))

    def on_retriever_error(self, error, *, run_id, **kwargs) -> None:
        self.events.append(("error", {"run_id": run_id, "error": type(error).__name__}))

    def on_text(self, text, **kwargs) -> None:  # verbose runs print through here
        self.events.append(("text", {}))


class AsyncRecorder(Recorder, AsyncCallbackHandler):
    async def on_retriever_start(self, *args, **kwargs) -> None:  # type: ignore[override]
        Recorder.on_retriever_start(self, *args, **kwargs)

    async def on_retriever_end(self, *args, **kwargs) -> None:  # type: ignore[override]
        Recorder.on_retriever_end(self, *args, **kwargs)

    async def on_retriever_error(self, *args, **kwargs) -> None:  # type: ignore[override]
        Recorder.on_retriever_error(self, *args, **kwargs)


def configs(handler: Recorder, run_ids: list[uuid.UUID]) -> list[dict]:
    return [
        {"callbacks": [handler], "tags": [f"t{i}"], "metadata": {"user": f"u{i}"},
         "run_name": f"lookup-{i}", "run_id": run_id}
        for i, run_id in enumerate(run_ids)
    ]


def test_batch_runs_exactly_like_invoke(store) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 3}, tags=["mine"], metadata={"app": "x"})
    queries = ["query 1", "query 2", "query 3"]
    run_ids = [uuid.uuid4() for _ in queries]
    one, many = Recorder(), Recorder()
    singles = [retriever.invoke(q, config=c, verbose=True)
               for q, c in zip(queries, configs(one, run_ids))]
    batched = retriever.batch(queries, config=configs(many, run_ids), verbose=True)
    assert batched == singles
    assert sorted(many.events, key=repr) == sorted(one.events, key=repr)
    starts = [e for kind, e in one.events if kind == "start"]
    assert [s["run_id"] for s in starts] == run_ids
    assert starts[0]["tags"][:3] == ["t0", "mine", "MatryoshkaMilvus"]
    assert starts[0]["metadata"]["user"] == "u0" and starts[0]["metadata"]["app"] == "x"
    assert starts[0]["metadata"]["ls_vector_store_provider"] == "MatryoshkaMilvus"
    assert starts[1]["name"] == "lookup-1"
    # A run id passed as a keyword, as BaseRetriever.invoke takes it.
    rid = uuid.uuid4()
    retriever.invoke("query 1", config={"callbacks": [one]}, run_id=rid)
    assert one.events[-1] == ("end", {"run_id": rid, "ids": [d.id for d in singles[0]]})


def test_errors_reach_the_callbacks_in_both_paths(store) -> None:
    retriever = store.as_retriever()
    one, many = Recorder(), Recorder()
    with pytest.raises(ConfigurationError):
        retriever.invoke("query 1", config={"callbacks": [one]}, kk=1)
    with pytest.raises(ConfigurationError):
        retriever.batch(["query 1"], config={"callbacks": [many]}, kk=1)
    assert [k for k, _ in one.events] == [k for k, _ in many.events] == ["start", "error"]
    out = retriever.batch(["query 1", "   "], return_exceptions=True)
    assert len(out[0]) == 4 and isinstance(out[1], Exception)


async def test_abatch_runs_exactly_like_ainvoke(store) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 2}, tags=["mine"])
    queries = ["query 4", "query 5"]
    run_ids = [uuid.uuid4() for _ in queries]
    one, many = AsyncRecorder(), AsyncRecorder()
    singles = [await retriever.ainvoke(q, config=c) for q, c in zip(queries, configs(one, run_ids))]
    batched = await retriever.abatch(queries, config=configs(many, run_ids))
    assert batched == singles == retriever.batch(queries)
    assert sorted(many.events, key=repr) == sorted(one.events, key=repr)
    assert [e["run_id"] for k, e in one.events if k == "start"] == run_ids


def test_a_search_validates_k_and_queries_once(store, monkeypatch) -> None:
    """One check of ``k`` and one of each query per search, filtered routing included."""
    from langchain_matryoshka import _validation, funnel

    checks: list[str] = []
    check_int, surrogate_at = funnel._check_int, _validation._surrogate_at

    def counting_int(name: str, *args: Any) -> int:
        checks.append(name)
        return check_int(name, *args)

    def counting_query(text: str) -> int | None:
        checks.append("query")
        return surrogate_at(text)

    monkeypatch.setattr(funnel, "_check_int", counting_int)
    monkeypatch.setattr(_validation, "_surrogate_at", counting_query)
    retriever = store.as_retriever(search_kwargs={"k": 3})
    searches = {
        "store": lambda: store.similarity_search("query 1", k=3),
        "store, filtered": lambda: store.similarity_search(
            "query 1", k=3, filter={"parity": "even"}
        ),
        "invoke": lambda: retriever.invoke("query 1"),
        "invoke, overrides and filter": lambda: retriever.invoke(
            "query 1", k=2, filter={"parity": "odd"}
        ),
        "batch": lambda: retriever.batch(["query 1", "query 2"]),
        "mmr": lambda: store.max_marginal_relevance_search("query 1", k=2, fetch_k=6),
    }
    for name, search in searches.items():
        checks.clear()
        assert search(), name
        queries = 2 if name == "batch" else 1
        # MMR checks k, and fetch_k as the k of the funnel it runs
        assert checks.count("k") == (2 if name == "mmr" else 1), (name, checks)
        assert checks.count("query") == queries, (name, checks)
