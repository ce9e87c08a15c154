"""Every documented bad input, one test per case, through the public API.

Each case asserts the exception class, that the message names the bad value and says
how to fix it, and that nothing was written (row count and collections unchanged, the
ids of the refused call absent).
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from langchain_matryoshka import (
    ConfigurationError,
    DimensionMismatchError,
    EmbeddingError,
    FunnelRetriever,
    InvalidInputError,
    MatryoshkaError,
    MatryoshkaMilvus,
    MilvusConnectionError,
    SchemaError,
)

from .conftest import TableEmbeddings, matryoshka_like


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """The conftest corpus, built once: refused calls leave the store as it was."""
    docs, queries = matryoshka_like(200, 32, seed=1), matryoshka_like(25, 32, seed=2)
    return [f"doc {i}" for i in range(200)], docs, [f"query {i}" for i in range(25)], queries


@pytest.fixture(scope="module")
def table(corpus) -> TableEmbeddings:
    texts, docs, qtexts, queries = corpus
    return TableEmbeddings({**dict(zip(texts, docs)), **dict(zip(qtexts, queries))})


@pytest.fixture(scope="module")
def store(tmp_path_factory, table, corpus):
    """One store for the whole module (each test checks that it is left unchanged)."""
    uri = str(tmp_path_factory.mktemp("errors") / "milvus.db")
    s = MatryoshkaMilvus(table, connection_args={"uri": uri}, search_dim=8)
    s.add_texts(
        corpus[0],
        metadatas=[{"i": i, "parity": "even" if i % 2 == 0 else "odd"} for i in range(200)],
        ids=[f"id{i}" for i in range(200)],
    )
    yield s
    assert row_count(s) == 200
    s.close()


def row_count(store: MatryoshkaMilvus) -> int:
    client, name = store.client, store.collection_name
    if not client.has_collection(name):
        return 0
    return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


class Snapshot:
    """What a store holds: its collections and row count; compared after a refused call."""

    def __init__(self, store: MatryoshkaMilvus) -> None:
        self.store = store
        self.collections = sorted(store.client.list_collections())
        self.rows = row_count(store)

    def assert_unchanged(self, ids: list[str] = ()) -> None:
        assert sorted(self.store.client.list_collections()) == self.collections
        assert row_count(self.store) == self.rows
        if ids:
            assert self.store.get_by_ids(list(ids)) == []


def check(exc_info: pytest.ExceptionInfo, *parts: str) -> None:
    """The message holds every part (the bad value, the fix)."""
    message = str(exc_info.value)
    assert isinstance(exc_info.value, MatryoshkaError)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


class BadEmbeddings(Embeddings):
    """Table embeddings that return NaN / zero / ragged vectors for chosen texts."""

    def __init__(self, table: TableEmbeddings, bad: dict[str, str]) -> None:
        self.table, self.bad = table, bad

    def _one(self, text: str) -> list[float]:
        vec = list(self.table.table[text]) if text in self.table.table else [1.0] * 32
        kind = self.bad.get(text)
        if kind == "nan":
            vec[3] = math.nan
        elif kind == "inf":
            vec[0] = math.inf
        elif kind == "zero":
            vec = [0.0] * len(vec)
        elif kind == "short":
            vec = vec[:-1]
        return [float(v) for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out = [self._one(t) for t in texts]
        return out[:-1] if any(self.bad.get(t) == "missing" for t in texts) else out

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


# ---------------------------------------------------------------- 1. dimension mismatch


@pytest.mark.parametrize("action", ["add_texts", "from_texts", "similarity_search", "retriever"])
def test_embedding_dimension_differs_from_the_collection(store, action) -> None:
    other = TableEmbeddings({"short": np.ones(16)})
    snap = Snapshot(store)
    args = {"client": store.client, "collection_name": store.collection_name}
    with pytest.raises(DimensionMismatchError) as exc:
        if action == "add_texts":
            MatryoshkaMilvus(other, **args).add_texts(["short"], ids=["s"])
        elif action == "from_texts":
            MatryoshkaMilvus.from_texts(["short"], other, ids=["s"], **args)
        elif action == "similarity_search":
            MatryoshkaMilvus(other, **args).similarity_search("short")
        else:
            MatryoshkaMilvus(other, **args).as_retriever().invoke("short")
    check(exc, "16 dimensions", "32-dim", "use the model the collection was built with")
    snap.assert_unchanged(["s"])


# ---------------------------------------------------------------- 2. search_dim


@pytest.mark.parametrize("search_dim", [32, 33, 100])
def test_search_dim_not_below_the_dimension(lite_uri, table, corpus, search_dim) -> None:
    store = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=search_dim)
    snap = Snapshot(store)
    with pytest.raises(DimensionMismatchError) as exc:
        store.add_texts(corpus[0][:3], ids=["a", "b", "c"])
    check(
        exc, f"search_dim={search_dim}", "smaller than the embedding dimension 32", "search_dim=4"
    )
    snap.assert_unchanged()
    assert store.client.list_collections() == []


@pytest.mark.parametrize("search_dim", [0, -1, 2.5, "8", True])
def test_search_dim_below_one_or_not_an_integer(store, table, search_dim) -> None:
    snap = Snapshot(store)
    with pytest.raises(ConfigurationError) as exc:
        MatryoshkaMilvus(table, client=store.client, collection_name="other", search_dim=search_dim)
    check(exc, f"search_dim={search_dim!r}", "search_dim=128")
    snap.assert_unchanged()


# ---------------------------------------------------------------- 3. scales


@pytest.mark.parametrize(
    ("scales", "named", "fix"),
    [
        ([16, 8, 32], "scales=[16, 8, 32] must be strictly ascending", "[8, 16, 32]"),
        ([8, 8, 32], "scales=[8, 8, 32] must be strictly ascending", "[8, 32]"),
        ([16, 64], "scales=[16, 64] must end at the full dimension 32", "[16, 32]"),
        ([8, 16], "scales=[8, 16] must end at the full dimension 32", "[8, 16, 32]"),
        ([], "scales=[] is empty", "scales=[32]"),
        ([0, 32], "scales=0 must be at least 1", "[16, 32]"),
        ("32", "scales='32'", "pass e.g."),
    ],
)
@pytest.mark.parametrize("via", ["store", "retriever", "store_default"])
def test_scales_invalid(store, table, scales, named, fix, via) -> None:
    snap = Snapshot(store)
    with pytest.raises(ConfigurationError) as exc:
        if via == "store":
            store.similarity_search("query 0", scales=scales)
        elif via == "retriever":
            store.as_retriever(search_kwargs={"scales": scales}).invoke("query 0")
        else:
            MatryoshkaMilvus(
                table, client=store.client, collection_name=store.collection_name, scales=scales
            )
    check(exc, named, fix)
    snap.assert_unchanged()


def test_scales_invalid_on_first_write_create_nothing(lite_uri, table, corpus) -> None:
    store = MatryoshkaMilvus(
        table, connection_args={"uri": lite_uri}, search_dim=8, scales=[16, 64]
    )
    with pytest.raises(ConfigurationError) as exc:
        store.add_texts(corpus[0][:3], ids=["a", "b", "c"])
    check(exc, "scales=[16, 64] must end at the full dimension 32", "[16, 32]")
    assert store.client.list_collections() == []


# ---------------------------------------------------------------- 4. candidates < k


@pytest.mark.parametrize("via", ["store", "retriever", "retriever_init", "batch"])
def test_candidates_below_k(store, via) -> None:
    snap = Snapshot(store)
    with pytest.raises(ConfigurationError) as exc:
        if via == "store":
            store.similarity_search("query 0", k=10, candidates=5)
        elif via == "retriever":
            store.as_retriever(search_kwargs={"k": 10}).invoke("query 0", candidates=5)
        elif via == "retriever_init":
            store.as_retriever(search_kwargs={"k": 10, "candidates": 5})
        else:
            store.search_batch_with_score(["query 0", "query 1"], k=10, candidates=5)
    check(exc, "candidates=5 is smaller than k=10", "pass candidates >= 10")
    snap.assert_unchanged()


# ---------------------------------------------------------------- 5. k < 1


@pytest.mark.parametrize("k", [0, -3])
@pytest.mark.parametrize("via", ["store", "mmr", "retriever", "empty_store"])
def test_k_below_one(store, lite_uri, table, k, via) -> None:
    snap = Snapshot(store)
    with pytest.raises(ConfigurationError) as exc:
        if via == "store":
            store.similarity_search("query 0", k=k)
        elif via == "mmr":
            store.max_marginal_relevance_search("query 0", k=k)
        elif via == "retriever":
            store.as_retriever(search_kwargs={"k": k})
        else:
            MatryoshkaMilvus(table, client=store.client, collection_name="empty").similarity_search(
                "query 0", k=k
            )
    check(exc, f"k={k} must be at least 1", "e.g. k=4")
    snap.assert_unchanged()


# ---------------------------------------------------------------- 6. prune_ratio


@pytest.mark.parametrize("ratio", [0, 0.0, -0.5, 1.5, math.nan, math.inf])
@pytest.mark.parametrize("via", ["store", "retriever", "store_default"])
def test_prune_ratio_outside_unit_interval(store, table, ratio, via) -> None:
    snap = Snapshot(store)
    with pytest.raises(ConfigurationError) as exc:
        if via == "store":
            store.similarity_search("query 0", prune_ratio=ratio)
        elif via == "retriever":
            store.as_retriever(search_kwargs={"prune_ratio": ratio}).invoke("query 0")
        else:
            MatryoshkaMilvus(
                table, client=store.client, collection_name=store.collection_name, prune_ratio=ratio
            )
    check(exc, f"prune_ratio={float(ratio)}", "outside (0, 1]", "e.g. 0.5")
    snap.assert_unchanged()


# ---------------------------------------------------------------- 7. empty query


@pytest.mark.parametrize("query", ["", "   ", "\n\t "])
@pytest.mark.parametrize("via", ["store", "retriever", "batch", "mmr", "async"])
def test_empty_or_whitespace_query(store, table, query, via) -> None:
    import asyncio

    snap = Snapshot(store)
    table.calls = 0
    with pytest.raises(InvalidInputError) as exc:
        if via == "store":
            store.similarity_search(query)
        elif via == "retriever":
            store.as_retriever().invoke(query)
        elif via == "batch":
            store.as_retriever().batch(["query 0", query])
        elif via == "mmr":
            store.max_marginal_relevance_search(query)
        else:
            asyncio.run(store.asimilarity_search(query))
    check(exc, f"query {query!r}", "pass the text to search for")
    assert table.calls == 0  # refused before embedding
    snap.assert_unchanged()


# ---------------------------------------------------------------- 8. lengths differ


@pytest.mark.parametrize(
    ("kwargs", "named", "fix"),
    [
        ({"metadatas": [{}]}, "got 2 texts but 1 metadatas", "one metadata dict per text"),
        ({"metadatas": [{}, {}, {}]}, "got 2 texts but 3 metadatas", "one metadata dict per text"),
        ({"ids": ["a"]}, "got 2 texts but 1 ids", "one id per text"),
        ({"ids": ["a", "b", "c"]}, "got 2 texts but 3 ids", "one id per text"),
        ({"ids": "ab"}, "ids is a single string", "pass a list"),
        ({"metadatas": {"a": 1}}, "metadatas is a single dict", "pass a list"),
    ],
)
@pytest.mark.parametrize("via", ["add_texts", "from_texts"])
def test_texts_and_metadatas_or_ids_lengths_differ(store, table, kwargs, named, fix, via) -> None:
    snap = Snapshot(store)
    with pytest.raises(InvalidInputError) as exc:
        if via == "add_texts":
            store.add_texts(["doc 1", "doc 2"], **kwargs)
        else:
            MatryoshkaMilvus.from_texts(
                ["doc 1", "doc 2"],
                table,
                client=store.client,
                collection_name=store.collection_name,
                **kwargs,
            )
    check(exc, named, fix)
    snap.assert_unchanged(["a", "b", "c"])


# ---------------------------------------------------------------- 9. duplicate ids


@pytest.mark.parametrize("dup", ["x", "id3", "ü 漢"])
def test_duplicate_ids_within_one_call(store, dup) -> None:
    snap = Snapshot(store)
    before = store.get_by_ids([dup])
    with pytest.raises(InvalidInputError) as exc:
        store.add_texts(["doc 1", "doc 2", "doc 3"], ids=["fresh", dup, dup])
    check(exc, f"id {dup!r} appears twice in one call", "pass each id once")
    snap.assert_unchanged(["fresh"])
    assert store.get_by_ids([dup]) == before


# ---------------------------------------------------------------- 10. text too long


@pytest.mark.parametrize("batch_size", [1, 1000])
@pytest.mark.parametrize("long_text", ["x" * 17, "é" * 9, "😀" * 5])
def test_text_longer_than_the_text_field(lite_uri, table, long_text, batch_size) -> None:
    for t in ("ok", long_text, "ok 2"):
        table.table[t] = np.ones(32)
    store = MatryoshkaMilvus(
        table,
        connection_args={"uri": lite_uri},
        search_dim=8,
        text_max_length=16,
        batch_size=batch_size,
    )
    store.add_texts(["ok"], ids=["first"])
    snap = Snapshot(store)
    with pytest.raises(InvalidInputError) as exc:
        store.add_texts(["ok", long_text, "ok 2"], ids=["a", "b", "c"])
    size = len(long_text.encode())
    check(exc, f"text of document 'b' is {size} bytes", "limit of 16", "split it into chunks")
    snap.assert_unchanged(["a", "b", "c"])
    reopened = MatryoshkaMilvus(table, client=store.client)  # the limit is the collection's
    with pytest.raises(InvalidInputError, match="limit of 16"):
        reopened.add_texts([long_text], ids=["b"])
    snap.assert_unchanged(["b"])


# ---------------------------------------------------------------- 11. metadata


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


@pytest.mark.parametrize(
    ("meta", "named", "fix"),
    [
        ({"obj": Opaque()}, "metadata['obj'] of document 'm1' is Opaque()", "convert it to"),
        ({"s": {1, 2}}, "metadata['s'] of document 'm1' is {1, 2} of type set", "convert it to"),
        ({"b": b"raw"}, "metadata['b'] of document 'm1' is b'raw'", "convert it to"),
        (
            {"n": {"deep": [1, math.nan]}},
            "metadata['n']['deep'][1] of document 'm1' is nan",
            "finite number",
        ),
        ({"i": math.inf}, "metadata['i'] of document 'm1' is inf", "finite number"),
        ({"big": 2**70}, f"metadata['big'] of document 'm1' is {2**70}", "str(value)"),
        ({1: "int key"}, "has the key 1 of type int", "use str keys"),
        ({"sur": "a\ud800b"}, "lone surrogate '\\ud800' at position 1", "errors='replace'"),
        ("not a dict", "metadata of document 'm1' is str, not a dict", "pass a dict"),
    ],
)
def test_metadata_not_json_serialisable(store, meta, named, fix) -> None:
    snap = Snapshot(store)
    with pytest.raises(InvalidInputError) as exc:
        store.add_texts(["doc 1", "doc 2"], metadatas=[{"ok": 1}, meta], ids=["m0", "m1"])
    check(exc, named, fix)
    snap.assert_unchanged(["m0", "m1"])


# ---------------------------------------------------------------- 12. unknown options


@pytest.mark.parametrize(
    ("call", "named", "fix"),
    [
        (lambda s: s.as_retriever(search_kwargs={"top_k": 3}), "'top_k'", "allowed: k"),
        (lambda s: FunnelRetriever(vectorstore=s, nprobe=4), "'nprobe'", "search_kwargs, k"),
        (lambda s: s.as_retriever().invoke("query 0", kk=2), "'kk'", "allowed: search_type, k"),
        (lambda s: s.similarity_search("query 0", nprobe=3), "'nprobe'", "allowed: candidates"),
        (
            lambda s: s.add_texts(["doc 1"], ids=["u"], partition="p"),
            "'partition'",
            "allowed: batch_size, timeout",
        ),
    ],
    ids=["as_retriever", "FunnelRetriever", "invoke", "similarity_search", "add_texts"],
)
def test_unknown_search_kwargs_key(store, call: Callable, named, fix) -> None:
    snap = Snapshot(store)
    with pytest.raises(ConfigurationError) as exc:
        call(store)
    check(exc, named, fix)
    snap.assert_unchanged(["u"])


# ---------------------------------------------------------------- 13. Lite file locked

HOLDER = textwrap.dedent(
    """
    import sys
    from pymilvus import MilvusClient
    client = MilvusClient(uri=sys.argv[1])
    print("holding", flush=True)
    sys.stdin.read()
    """
)


@pytest.mark.parametrize("via", ["constructor", "from_texts"])
def test_lite_file_held_by_another_process(tmp_path, table, corpus, via) -> None:
    uri = str(tmp_path / "held.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, uri],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(MilvusConnectionError) as exc:
            if via == "constructor":
                MatryoshkaMilvus(table, connection_args={"uri": uri})
            else:
                MatryoshkaMilvus.from_texts(
                    corpus[0][:3], table, ids=["a", "b", "c"], connection_args={"uri": uri}
                )
        check(exc, repr(uri), "held by another process", "milvus-lite server", "Milvus server")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # the lock dies with its process; nothing was written by the refused call
    store = MatryoshkaMilvus(table, connection_args={"uri": uri})
    assert store.client.list_collections() == []
    store.close()


# ---------------------------------------------------------------- 14. unreachable server


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_server(table, kind) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if kind == "silent":
            sock.listen(16)  # accepts TCP, never answers: only the timeout ends the wait
        port = sock.getsockname()[1]
        uri = f"http://127.0.0.1:{port}"
        start = time.monotonic()
        with pytest.raises(MilvusConnectionError) as exc:
            MatryoshkaMilvus(table, connection_args={"uri": uri, "timeout": 2})
        elapsed = time.monotonic() - start
    check(exc, repr(uri), "within 2 s", "check that the server runs")
    assert elapsed < 8, elapsed


# ---------------------------------------------------------------- 15. foreign schema


def _foreign(client, name: str, variant: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    if variant == "other_layout":
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
        field = "vector"
        rows = [{"pk": i, "vector": [float(i + 1)] * 8} for i in range(3)]
    else:  # our field names, but the full vector as a FLOAT_VECTOR
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("text", DataType.VARCHAR, max_length=64)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("head", DataType.FLOAT_VECTOR, dim=8)
        schema.add_field("full", DataType.FLOAT_VECTOR, dim=32)
        field = "head"
        rows = [
            {"id": f"f{i}", "text": "t", "metadata": {}, "head": [1.0] * 8, "full": [1.0] * 32}
            for i in range(3)
        ]
    index = client.prepare_index_params()
    index.add_index(field_name=field, index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(name, rows)


@pytest.mark.parametrize(
    ("variant", "named"),
    [
        ("other_layout", "no VARCHAR primary key named 'id'"),
        ("full_as_vector", "no VARCHAR or ARRAY<FLOAT> field 'full'"),
    ],
)
@pytest.mark.parametrize("via", ["constructor", "from_texts", "as_retriever"])
def test_collection_with_incompatible_schema(lite_uri, table, corpus, variant, named, via) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=lite_uri)
    _foreign(client, "foreign", variant)
    before = client.query("foreign", filter="", output_fields=["count(*)"])[0]["count(*)"]
    with pytest.raises(SchemaError) as exc:
        if via == "constructor":
            MatryoshkaMilvus(table, collection_name="foreign", client=client)
        elif via == "from_texts":
            MatryoshkaMilvus.from_texts(
                corpus[0][:3], table, ids=["a", "b", "c"], collection_name="foreign", client=client
            )
        else:
            MatryoshkaMilvus(table, collection_name="foreign", client=client).as_retriever()
    check(exc, "collection 'foreign'", named, "pass another collection_name", "drop_old=True")
    assert client.query("foreign", filter="", output_fields=["count(*)"])[0]["count(*)"] == before
    assert sorted(client.list_collections()) == ["foreign"]


# ---------------------------------------------------------------- 16. bad embeddings


@pytest.mark.parametrize(
    ("kind", "cls", "named", "fix"),
    [
        ("nan", EmbeddingError, "NaN or infinite values (row 1)", "check the embedding model"),
        ("inf", EmbeddingError, "NaN or infinite values (row 1)", "check the embedding model"),
        ("zero", EmbeddingError, "all-zero vector (row 1)", "check the embedding model"),
        ("short", EmbeddingError, "not a rectangular array", "check the embedding model"),
        ("missing", InvalidInputError, "got 3 texts but 2 embeddings", "pass one per text"),
    ],
)
@pytest.mark.parametrize("where", ["existing", "first_write"])
def test_embedding_returns_nan_or_zero_vectors(
    store, lite_uri, table, kind, cls, named, fix, where
) -> None:
    emb = BadEmbeddings(table, {"doc 5": kind})
    if where == "existing":
        target = MatryoshkaMilvus(emb, client=store.client, collection_name=store.collection_name)
    else:
        target = MatryoshkaMilvus(emb, client=store.client, collection_name="fresh")
    snap = Snapshot(target)
    with pytest.raises(cls) as exc:
        target.add_texts(["doc 4", "doc 5", "doc 6"], ids=["n4", "n5", "n6"])
    check(exc, named, fix)
    snap.assert_unchanged(["n4", "n5", "n6"])
    if where == "first_write":
        assert not store.client.has_collection("fresh")


@pytest.mark.parametrize("kind", ["nan", "zero"])
@pytest.mark.parametrize("via", ["store", "retriever", "by_vector"])
def test_query_embedding_is_nan_or_zero(store, table, kind, via) -> None:
    emb = BadEmbeddings(table, {"query 0": kind})
    target = MatryoshkaMilvus(emb, client=store.client, collection_name=store.collection_name)
    with pytest.raises(EmbeddingError) as exc:
        if via == "store":
            target.similarity_search("query 0")
        elif via == "retriever":
            target.as_retriever().invoke("query 0")
        else:
            target.similarity_search_by_vector(emb.embed_query("query 0"))
    check(exc, "query embeddings hold", "row 0", "check the embedding model")
