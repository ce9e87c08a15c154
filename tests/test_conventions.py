"""LangChain's calling conventions: the keywords its callers pass are accepted and do
what their names say; misspelled options are still refused (the rule:
``langchain_matryoshka._conventions.CALL_KEYWORDS``)."""

from __future__ import annotations

import inspect

import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, index

from langchain_matryoshka import ConfigurationError, MatryoshkaMilvus, MilvusConnectionError
from langchain_matryoshka._conventions import CALL_KEYWORDS, FUNNEL_OPTIONS


class Calls:
    """Records the keywords of every Milvus data call the store's collection makes."""

    def __init__(self, monkeypatch, store: MatryoshkaMilvus) -> None:
        self.log: list[tuple[str, int, dict]] = []
        client = store._engine.collection.client
        for name in ("upsert", "search", "query", "delete", "flush", "query_iterator"):
            real = getattr(client, name)

            def spy(*args, _real=real, _name=name, **kwargs):
                rows = args[1] if _name == "upsert" else None
                self.log.append((_name, len(rows) if rows is not None else 0, dict(kwargs)))
                return _real(*args, **kwargs)

            monkeypatch.setattr(client, name, spy)

    def of(self, name: str) -> list[tuple[str, int, dict]]:
        return [c for c in self.log if c[0] == name]


def test_the_rule_covers_what_langchain_passes() -> None:
    # index()/aindex() pass batch_size to add_documents, which forwards it to add_texts.
    from langchain_core.indexing import api

    assert "batch_size=batch_size" in inspect.getsource(api.index)
    assert {"batch_size", "timeout"} <= set(CALL_KEYWORDS["write"])
    assert set(FUNNEL_OPTIONS) | {"expr", "filter", "timeout"} == set(CALL_KEYWORDS["search"])
    assert CALL_KEYWORDS["delete"] == ("timeout",)
    # BaseRetriever.invoke hands `verbose` on to the retriever.
    assert set(CALL_KEYWORDS["run"]) == {"run_id", "verbose"}


def test_batch_size_is_rows_per_upsert_call(store, monkeypatch) -> None:
    calls = Calls(monkeypatch, store)
    texts = [f"doc {i}" for i in range(10)]
    store.add_texts(texts, ids=[f"b{i}" for i in range(10)], batch_size=4)
    assert [n for _, n, _ in calls.of("upsert")] == [4, 4, 2]
    calls.log.clear()
    store.add_documents([Document(page_content=t, id=f"c{i}") for i, t in enumerate(texts)],
                        batch_size=3)
    assert [n for _, n, _ in calls.of("upsert")] == [3, 3, 3, 1]
    assert store.get_by_ids(["c9"])[0].page_content == "doc 9"


def test_index_passes_its_batch_size_and_it_is_honoured(store, monkeypatch) -> None:
    calls = Calls(monkeypatch, store)
    manager = InMemoryRecordManager("conventions")
    manager.create_schema()
    docs = [Document(page_content=f"doc {i}", metadata={"source": "a"}) for i in range(7)]
    result = index(docs, manager, store, cleanup=None, batch_size=5, key_encoder="sha256")
    assert result["num_added"] == 7
    # index() hands add_documents 5 documents at a time; each is one upsert call.
    assert [n for _, n, _ in calls.of("upsert")] == [5, 2]


def test_timeout_reaches_every_milvus_call(store, monkeypatch) -> None:
    calls = Calls(monkeypatch, store)
    store.add_texts(["doc 1"], ids=["t1"], timeout=7)
    store.similarity_search("query 1", k=2, timeout=8)
    store.max_marginal_relevance_search("query 1", k=2, fetch_k=5, timeout=9)
    store.search_by_metadata(filter={"parity": "odd"}, limit=3, timeout=10)
    store.count(timeout=11)
    store.get_pks(filter={"parity": "odd"}, timeout=12)
    store.delete(["t1"], timeout=13)
    store.as_retriever(search_kwargs={"timeout": 14}).invoke("query 1")
    seen = {(name, kw.get("timeout")) for name, _, kw in calls.log}
    assert {("upsert", 7), ("flush", 7), ("search", 8), ("search", 9), ("query", 10),
            ("query", 11), ("query_iterator", 12), ("delete", 13), ("search", 14)} <= seen
    # Without one, the store passes none (the connection's call_timeout applies).
    calls.log.clear()
    store.similarity_search("query 1", k=2)
    assert all("timeout" not in kw for _, _, kw in calls.log)


def test_a_timeout_too_short_for_the_call_is_a_connection_error(store) -> None:
    with pytest.raises(
        MilvusConnectionError, match="within timeout=1e-09 s; pass a larger timeout"
    ):
        store.similarity_search("query 1", k=2, timeout=1e-9)
    # whichever Milvus call of the write runs out first (id check, upsert, flush)
    with pytest.raises(MilvusConnectionError, match=r"did not answer \w+ within timeout=1e-09"):
        store.add_texts(["doc 2"], ids=["late"], timeout=1e-9)


@pytest.mark.parametrize(
    ("call", "named", "allowed"),
    [
        (lambda s: s.add_texts(["doc 1"], batchsize=10), "'batchsize'", "batch_size, timeout"),
        (lambda s: s.add_documents([Document(page_content="doc 1")], time_out=3), "'time_out'",
         "batch_size, timeout"),
        (lambda s: s.similarity_search("query 1", candidate=64), "'candidate'", "candidates"),
        (lambda s: s.similarity_search("query 1", param={"ef": 64}), "'param'", "timeout"),
        (lambda s: s.delete(["x"], partition_name="p"), "'partition_name'", "allowed: timeout"),
    ],
    ids=["add_texts", "add_documents", "search", "langchain-milvus param", "delete"],
)
def test_misspelled_options_are_still_refused(store, call, named, allowed) -> None:
    with pytest.raises(ConfigurationError) as exc:
        call(store)
    assert named in str(exc.value) and allowed in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size=0 must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"timeout": -1}, "timeout=-1 must be a positive number of seconds"),
        ({"timeout": "10"}, "timeout='10'"),
    ],
)
def test_bad_values_are_refused_before_writing(store, kwargs, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        store.add_texts(["doc 1"], ids=["never"], **kwargs)
    assert store.get_by_ids(["never"]) == []


async def test_async_writes_take_the_same_keywords(store, monkeypatch) -> None:
    calls = Calls(monkeypatch, store)
    await store.aadd_texts([f"doc {i}" for i in range(5)], ids=[f"a{i}" for i in range(5)],
                           batch_size=2, timeout=5)
    assert [(n, kw.get("timeout")) for _, n, kw in calls.of("upsert")] == [(2, 5), (2, 5), (1, 5)]
    await store.asimilarity_search("query 1", k=2, timeout=6)
    assert ("search", 6) in {(name, kw.get("timeout")) for name, _, kw in calls.log}
    with pytest.raises(ConfigurationError, match="'batchsize'"):
        await store.aadd_texts(["doc 1"], batchsize=2)
