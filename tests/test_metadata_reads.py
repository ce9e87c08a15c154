"""Reading by metadata without a query vector, and errors from a caller's ``expr``."""

from __future__ import annotations

import logging

import pytest

from langchain_matryoshka import ConfigurationError, InvalidInputError, MatryoshkaMilvus, _milvus

# The store fixture holds 200 documents id0..id199, metadata {"i": i, "parity": ...}.
ODD = {f"id{i}" for i in range(1, 200, 2)}


def ids_of(docs) -> list[str]:
    return [d.id for d in docs]


def test_search_by_metadata_filter_expr_limit_and_offset(store) -> None:
    page = store.search_by_metadata(filter={"parity": "odd"}, limit=7)
    assert len(page) == 7 and set(ids_of(page)) <= ODD
    assert all(d.page_content == f"doc {d.metadata['i']}" for d in page)
    both = store.search_by_metadata('metadata["i"] < 20', filter={"parity": "odd"}, limit=100)
    assert sorted(d.metadata["i"] for d in both) == list(range(1, 20, 2))
    # Pages of 30 cover every match once.
    pages = [store.search_by_metadata(filter={"parity": "odd"}, limit=30, offset=o)
             for o in range(0, 120, 30)]
    seen = [i for p in pages for i in ids_of(p)]
    assert len(seen) == len(set(seen)) == 100 and set(seen) == ODD
    assert store.search_by_metadata(filter={"parity": "none"}) == []
    assert len(store.search_by_metadata(limit=None)) == 200


def test_reads_past_one_query_window_page_through_an_iterator(store, monkeypatch) -> None:
    monkeypatch.setattr(_milvus, "QUERY_WINDOW", 16)
    every = store.search_by_metadata(filter={"parity": "odd"}, limit=None)
    assert set(ids_of(every)) == ODD and len(every) == 100
    window = store.search_by_metadata(filter={"parity": "odd"}, limit=20, offset=10)
    assert ids_of(window) == ids_of(every)[10:30]


def test_iter_documents_streams_pages(store, monkeypatch) -> None:
    pages: list[int] = []
    real = store._engine.collection.iterate_rows

    def spy(*args, **kwargs):
        for page in real(*args, **kwargs):
            pages.append(len(page))
            yield page

    monkeypatch.setattr(store._engine.collection, "iterate_rows", spy)
    docs = list(store.iter_documents(filter={"parity": "odd"}, batch_size=32))
    assert set(ids_of(docs)) == ODD and len(docs) == 100
    assert max(pages) <= 32 and sum(pages) == 100
    assert len(list(store.iter_documents(expr='metadata["i"] >= 190', limit=4))) == 4


def test_get_pks_and_count(store) -> None:
    assert set(store.get_pks(filter={"parity": "odd"})) == ODD
    assert sorted(store.get_pks('metadata["i"] <= 2')) == ["id0", "id1", "id2"]
    assert len(store.get_pks()) == 200 and len(store.get_pks(limit=5)) == 5
    assert store.count() == 200
    assert store.count(filter={"parity": "even"}) == 100
    assert store.count('metadata["i"] >= 150', filter={"parity": "even"}) == 25
    store.delete(filter={"parity": "even"})
    assert store.count() == 100 and store.get_pks(filter={"parity": "even"}) == []


async def test_async_twins_return_what_the_sync_reads_return(store) -> None:
    cond = {"filter": {"parity": "odd"}}
    assert await store.asearch_by_metadata(**cond, limit=5, offset=3) == (
        store.search_by_metadata(**cond, limit=5, offset=3))
    assert sorted(await store.aget_pks(**cond)) == sorted(store.get_pks(**cond))
    assert await store.acount(**cond) == 100
    streamed = [d async for d in store.aiter_documents(**cond, batch_size=16)]
    assert set(ids_of(streamed)) == ODD
    gen = store.aiter_documents(batch_size=8)
    first = [await gen.__anext__() for _ in range(3)]
    await gen.aclose()  # closing early closes the Milvus iterator
    assert len(first) == 3


def test_reads_on_an_empty_store(lite_uri, table) -> None:
    empty = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=8)
    assert empty.search_by_metadata(filter={"a": 1}) == []
    assert list(empty.iter_documents()) == [] and empty.get_pks() == [] and empty.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit=0 must be a positive integer or None"),
        ({"offset": -1}, "offset=-1 must be a non-negative integer"),
        ({"limit": True}, "limit=True"),
    ],
)
def test_bad_page_arguments(store, kwargs, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        store.search_by_metadata(**kwargs)


def test_bad_batch_size_for_the_iterator(store) -> None:
    with pytest.raises(ConfigurationError, match="exceeds the 16384 rows"):
        store.iter_documents(batch_size=20000)


# ---------------------------------------------------------------- expr errors

BAD_EXPRS = [
    ("parity == 'odd'", "unknown field 'parity'"),  # a key written as a field
    ('metadata["i"] >>= 3', "unexpected token"),  # syntax
    ("text > 3", "incompatible types"),  # type mismatch
]


@pytest.mark.parametrize(("expr", "reason"), BAD_EXPRS)
@pytest.mark.parametrize(
    "call",
    [
        lambda s, e: s.similarity_search("query 1", expr=e),
        lambda s, e: s.search_by_metadata(e),
        lambda s, e: list(s.iter_documents(e)),
        lambda s, e: s.get_pks(e),
        lambda s, e: s.count(e),
        lambda s, e: s.delete(expr=e),
        lambda s, e: s.as_retriever(search_kwargs={"expr": e}).invoke("query 1"),
    ],
    ids=["search", "search_by_metadata", "iter_documents", "get_pks", "count", "delete",
         "retriever"],
)
def test_a_bad_expr_is_an_invalid_input_error_and_stays_quiet(store, capfd, caplog, call, expr,
                                                                reason) -> None:
    caplog.set_level(logging.DEBUG, logger="pymilvus")
    with pytest.raises(InvalidInputError) as exc:
        call(store, expr)
    text = str(exc.value)
    assert f"expression {expr!r}" in text and reason in text
    assert 'metadata["year"] >= 2020' in text and "id, text, metadata" in text
    assert exc.value.__cause__ is not None  # Milvus' own exception stays attached
    err = capfd.readouterr().err
    assert "_log_rpc_error" not in err and "Traceback" not in err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert store.count() == 200  # nothing deleted


def test_other_milvus_errors_are_not_reworded(store, monkeypatch) -> None:
    from pymilvus import MilvusException

    def broken(*args, **kwargs):
        raise MilvusException(message="collection not loaded")

    monkeypatch.setattr(store._engine.collection.client, "query", broken)
    with pytest.raises(MilvusException, match="collection not loaded"):
        store.count('metadata["i"] > 1')


@pytest.mark.server
def test_a_bad_expr_on_a_server(server_uri, server_collection, table, corpus) -> None:
    texts, _, _, _ = corpus
    s = MatryoshkaMilvus(table, collection_name=server_collection,
                         connection_args={"uri": server_uri}, search_dim=8)
    try:
        s.add_texts(texts[:20], [{"i": i} for i in range(20)])
        for expr, reason in [("year >= 2020", "field year not exist"),
                             ('metadata["i"] >>= 3', "cannot parse expression")]:
            with pytest.raises(InvalidInputError, match=reason):
                s.similarity_search("query 1", expr=expr)
            with pytest.raises(InvalidInputError, match=reason):
                s.search_by_metadata(expr)
        page = s.search_by_metadata('metadata["i"] < 10', limit=4, offset=2)
        assert len(page) == 4 and all(d.metadata["i"] < 10 for d in page)
        assert s.count('metadata["i"] < 10') == 10 and len(s.get_pks('metadata["i"] < 10')) == 10
        assert len(list(s.iter_documents(batch_size=3))) == 20
    finally:
        s.close()


def test_reads_on_declared_columns_and_tenant_partitions(lite_uri, table, corpus,
                                                         monkeypatch) -> None:
    texts, _, _, _ = corpus
    s = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=8,
                         metadata_fields={"tenant": "str", "i": "int"}, partition_key="tenant")
    s.add_texts(texts[:40], [{"tenant": "ab"[i % 2], "i": i, "note": f"n{i}"} for i in range(40)],
                ids=[f"t{i}" for i in range(40)])
    seen: list[dict] = []
    client = s._engine.collection.client
    for name in ("query", "query_iterator"):
        real = getattr(client, name)

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs)
            return _real(*args, **kwargs)

        monkeypatch.setattr(client, name, spy)
    page = s.search_by_metadata(filter={"tenant": "a"}, limit=None)
    assert sorted(d.metadata["i"] for d in page) == list(range(0, 40, 2))
    assert all(d.metadata["note"] == f"n{d.metadata['i']}" for d in page)  # JSON + columns
    assert s.count(filter={"tenant": "b"}) == 20
    assert len(s.get_pks('metadata["i"] >= 30', filter={"tenant": "b"})) == 5
    assert len(list(s.iter_documents(filter={"tenant": "a"}, batch_size=7))) == 20
    # Milvus Lite tenants are store-managed partitions: each read names its tenant's.
    assert s._engine.partitions_for({"tenant": "a"}) is not None
    assert all("partition_names" in kw for kw in seen)
    with pytest.raises(InvalidInputError, match=r"store's own fields \(id, text, metadata, "
                                                r"tenant, i\)"):
        s.count("tenant_name == 'a'")
    s.close()
