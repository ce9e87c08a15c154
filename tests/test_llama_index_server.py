"""MatryoshkaMilvusVectorStore on a real Milvus 2.3 server (Embedded Milvus, on loopback)."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import Document as LlamaDocument
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._milvus import FLOAT16_COSINE_ERROR
from langchain_matryoshka.llama_index import MatryoshkaMilvusVectorStore

from .conftest import TableEmbeddings
from .llama_support import BagOfWordsEmbedding, corpus_nodes, exact_top

pytestmark = pytest.mark.server


def _where(*filters, condition="and") -> MetadataFilters:
    return MetadataFilters(
        filters=[MetadataFilter(key=k, operator=op, value=v) for k, op, v in filters],
        condition=FilterCondition(condition),
    )


def test_nodes_queries_filters_and_deletes_on_a_server(server_uri, server_collection, corpus):
    _, docs, _, queries = corpus
    store = MatryoshkaMilvusVectorStore(
        collection_name=server_collection, connection_args={"uri": server_uri}, search_dim=8
    )
    store.add(corpus_nodes(docs))
    for q in queries[:5]:
        want, scores = exact_top(q, docs, 5)
        result = store.query(
            VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5),
            candidates=200, prune_ratio=1.0,
        )
        assert result.ids == [f"n{i}" for i in want]
        np.testing.assert_allclose(result.similarities, scores, atol=FLOAT16_COSINE_ERROR)
    # Every node has both keys, so no case depends on how a server treats missing keys.
    cases = {
        "and": (_where(("i", FilterOperator.LT, 50), ("parity", FilterOperator.EQ, "odd")),
                {i for i in range(50) if i % 2}),
        "or": (_where(("i", FilterOperator.IN, [1, 2]), ("i", FilterOperator.GTE, 198),
                      condition="or"), {1, 2, 198, 199}),
        "not": (_where(("i", FilterOperator.GT, 3), condition="not"), {0, 1, 2, 3}),
        "prefix": (_where(("parity", FilterOperator.TEXT_MATCH, "ev%"),
                          ("i", FilterOperator.LTE, 6)), {0, 2, 4, 6}),
    }
    for name, (filters, want) in cases.items():
        assert {int(n.node_id[1:]) for n in store.get_nodes(filters=filters)} == want, name
        result = store.query(
            VectorStoreQuery(query_embedding=queries[0].tolist(), similarity_top_k=200,
                             filters=filters),
            candidates=200,
        )
        assert {int(i[1:]) for i in result.ids} == want, name
    store.delete("d1")
    lc = MatryoshkaMilvus(TableEmbeddings({}), collection_name=server_collection,
                          client=store.client)
    assert lc.get_by_ids(["n1", "n2"])[0].metadata["ref_doc_id"] == "d2"
    assert len(lc.get_by_ids([f"n{i}" for i in range(200)])) == 150
    store.delete_nodes(filters=_where(("parity", FilterOperator.EQ, "even")))
    assert sorted(n.node_id for n in store.get_nodes([f"n{i}" for i in range(8)])) == ["n3", "n7"]
    store.clear()
    assert store.get_nodes([f"n{i}" for i in range(200)]) == []
    store.close()


def test_an_index_on_a_server(server_uri, server_collection) -> None:
    store = MatryoshkaMilvusVectorStore(
        collection_name=server_collection, connection_args={"uri": server_uri}, search_dim=8
    )
    docs = [
        LlamaDocument(id_="paris", text="Paris is the capital of France."),
        LlamaDocument(id_="apples", text="Apples grow in orchards."),
    ]
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=BagOfWordsEmbedding(),
    )
    hits = index.as_retriever(similarity_top_k=1).retrieve("capital of France Paris")
    assert [h.node.ref_doc_id for h in hits] == ["paris"]
    index.delete_ref_doc("paris")
    hits = index.as_retriever(similarity_top_k=2).retrieve("capital of France Paris")
    assert [h.node.ref_doc_id for h in hits] == ["apples"]
    store.close()
