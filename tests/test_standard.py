"""LangChain's own standard suites, unmodified, on a real Milvus Lite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from langchain_matryoshka import FunnelRetriever, MatryoshkaMilvus


class TestMatryoshkaMilvusStandard(VectorStoreIntegrationTests):
    """The suite's embedding has 6 dims: the head indexes 3 of them."""

    @pytest.fixture
    def vectorstore(self, tmp_path) -> Iterator[VectorStore]:  # type: ignore[override]
        store = MatryoshkaMilvus(
            self.get_embeddings(),
            collection_name="standard",
            connection_args={"uri": str(tmp_path / "standard.db")},
            search_dim=3,
        )
        try:
            yield store
        finally:
            store.close()


class FunnelRetrieverSuite(RetrieversIntegrationTests):
    """LangChain's retriever suite over a 10-document store; subclasses pick where."""

    def connection(self, request) -> dict:
        """Keyword arguments that place the store (uri, collection name)."""
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _store(self, request) -> Iterator[None]:
        from langchain_core.embeddings import DeterministicFakeEmbedding

        store = MatryoshkaMilvus(
            DeterministicFakeEmbedding(size=16), search_dim=4, **self.connection(request)
        )
        store.add_documents(
            [Document(page_content=f"document number {i}", metadata={"n": i}) for i in range(10)]
        )
        self._vectorstore = store
        yield
        store.close()

    @property
    def retriever_constructor(self) -> type[FunnelRetriever]:
        return FunnelRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"vectorstore": self._vectorstore, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "document number 3"


class TestFunnelRetrieverStandard(FunnelRetrieverSuite):
    def connection(self, request) -> dict:
        uri = request.getfixturevalue("tmp_path") / "retriever.db"
        return {"connection_args": {"uri": str(uri)}}
