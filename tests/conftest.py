"""Shared fixtures: a real Milvus Lite file per test and deterministic embeddings."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from langchain_matryoshka import MatryoshkaMilvus


class TableEmbeddings(Embeddings):
    """Embeddings looked up in a table: lets tests compute exact references.

    Counts its calls so tests can check how often a search embeds.
    """

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [np.asarray(self.table[t], dtype=np.float32).tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return np.asarray(self.table[text], dtype=np.float32).tolist()

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)


def matryoshka_like(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Random vectors whose variance decays along the dimensions, like MRL embeddings."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(1.0 + np.arange(dim) / 4.0)
    return (rng.standard_normal((n, dim)) * scale).astype(np.float32)


@pytest.fixture
def lite_uri(tmp_path) -> str:
    """A fresh Milvus Lite file in a temporary directory."""
    return str(tmp_path / "milvus.db")


def corpus_data() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """200 documents and 25 queries with 32-dim Matryoshka-like embeddings."""
    docs = matryoshka_like(200, 32, seed=1)
    queries = matryoshka_like(25, 32, seed=2)
    return (
        [f"doc {i}" for i in range(len(docs))],
        docs,
        [f"query {i}" for i in range(len(queries))],
        queries,
    )


def table_of(corpus) -> TableEmbeddings:
    """The embeddings of a corpus' documents and queries."""
    texts, docs, qtexts, queries = corpus
    return TableEmbeddings({**dict(zip(texts, docs)), **dict(zip(qtexts, queries))})


@pytest.fixture
def corpus() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """200 documents and 25 queries with 32-dim Matryoshka-like embeddings."""
    return corpus_data()


@pytest.fixture
def table(corpus) -> TableEmbeddings:
    return table_of(corpus)


@pytest.fixture
def store(lite_uri, table, corpus) -> Iterator[MatryoshkaMilvus]:
    """A store holding the corpus, head 8 of 32 dims."""
    texts, _, _, _ = corpus
    s = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, search_dim=8)
    s.add_texts(
        texts,
        metadatas=[{"i": i, "parity": "even" if i % 2 == 0 else "odd"} for i in range(len(texts))],
        ids=[f"id{i}" for i in range(len(texts))],
    )
    yield s
    s.close()


# The Milvus server fixtures (milvus_server, server_uri, server_collection).
pytest_plugins = ["tests.server_fixtures"]
