"""MatryoshkaMilvusVectorStore on a real Milvus Lite with llama-index-core's own classes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from langchain_core.documents import Document
from llama_index.core import Document as LlamaDocument
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import (
    IndexNode,
    MetadataMode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._milvus import FLOAT16_COSINE_ERROR
from langchain_matryoshka.errors import (
    ConfigurationError,
    DimensionMismatchError,
    EmbeddingError,
    InvalidInputError,
)
from langchain_matryoshka.llama_index import QUERY_OPTIONS, MatryoshkaMilvusVectorStore

from .conftest import TableEmbeddings
from .llama_support import BagOfWordsEmbedding, bag_of_words, corpus_nodes, exact_top


@pytest.fixture
def vstore(lite_uri, corpus):
    """200 nodes (32 dims, head 8) from 4 source documents."""
    _, docs, _, _ = corpus
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    store.add(corpus_nodes(docs))
    yield store
    store.close()


def _q(embedding, k=5, **fields) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=np.asarray(embedding).tolist(), similarity_top_k=k,
                            **fields)


# ---------------------------------------------------------------------------- funnel


def test_funnel_covering_the_corpus_equals_exact_top_k(vstore, corpus) -> None:
    _, docs, _, queries = corpus
    for q in queries:
        want, scores = exact_top(q, docs, 5)
        result = vstore.query(_q(q), candidates=200, prune_ratio=1.0)
        assert result.ids == [f"n{i}" for i in want]
        assert [n.node_id for n in result.nodes] == result.ids
        np.testing.assert_allclose(result.similarities, scores, atol=FLOAT16_COSINE_ERROR)


def test_results_equal_the_langchain_store_on_the_same_collection(vstore, corpus) -> None:
    """One engine: the same funnel, settings and scores through both front ends."""
    _, _, _, queries = corpus
    lc = MatryoshkaMilvus(TableEmbeddings({}), client=vstore.client)
    for options in ({}, {"candidates": 16}, {"candidates": 32, "scales": [16, 32]}):
        for q in queries[:5]:
            result = vstore.query(_q(q, k=4), **options)
            pairs = lc.similarity_search_with_score_by_vector(q.tolist(), k=4, **options)
            assert result.ids == [d.id for d, _ in pairs]
            assert result.similarities == [s for _, s in pairs]


def test_funnel_settings_per_query_are_strict(vstore, corpus) -> None:
    q = corpus[3][0]
    with pytest.raises(ConfigurationError, match="'candidate'.*allowed: candidates"):
        vstore.query(_q(q), candidate=64)
    with pytest.raises(ConfigurationError, match="candidates"):
        vstore.query(_q(q), candidates=0)
    with pytest.raises(ConfigurationError, match="MMR queries only"):
        vstore.query(_q(q), mmr_threshold=0.3)
    assert set(QUERY_OPTIONS) >= {"candidates", "scales", "prune_ratio", "expr"}


def test_raw_expr_is_anded_with_the_filters(vstore, corpus) -> None:
    q = corpus[3][0]
    even = MetadataFilters(filters=[MetadataFilter(key="parity", value="even")])
    result = vstore.query(_q(q, k=200, filters=even), expr='metadata["i"] < 20', candidates=200)
    assert sorted(result.ids) == sorted(f"n{i}" for i in range(0, 20, 2))


def test_doc_ids_and_node_ids_restrict_the_search(vstore, corpus) -> None:
    q = corpus[3][0]
    result = vstore.query(_q(q, k=200, doc_ids=["d1", "d3"]), candidates=200)
    assert sorted(result.ids) == sorted(f"n{i}" for i in range(200) if i % 4 in (1, 3))
    result = vstore.query(_q(q, k=10, node_ids=["n5", "n7", "n9"]), candidates=200)
    assert sorted(result.ids) == ["n5", "n7", "n9"]
    # Empty lists restrict nothing: VectorStoreIndex.as_retriever passes node_ids=[].
    assert vstore.query(_q(q, node_ids=[], doc_ids=[])).ids == vstore.query(_q(q)).ids


def test_mmr_follows_llama_index_rule_over_the_funnel_results(vstore, corpus) -> None:
    _, docs, _, queries = corpus
    unit = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    for q in queries[:5]:
        pool, _ = exact_top(q, docs, 20)  # the funnel's top 20 when candidates cover all
        _, picked = get_top_k_mmr_embeddings(
            (q / np.linalg.norm(q)).tolist(), unit[pool].tolist(), similarity_top_k=5,
            embedding_ids=pool, mmr_threshold=0.3,
        )
        result = vstore.query(
            _q(q, mode=VectorStoreQueryMode.MMR), candidates=200, prune_ratio=1.0,
            mmr_threshold=0.3, mmr_prefetch_k=20,
        )
        assert result.ids == [f"n{i}" for i in picked]
        want = unit[picked] @ (q / np.linalg.norm(q))  # similarities: cosines to the query
        np.testing.assert_allclose(result.similarities, want, atol=FLOAT16_COSINE_ERROR)


def test_mmr_options(vstore, corpus) -> None:
    q = corpus[3][0]
    relevance = vstore.query(_q(q, mode="mmr", mmr_threshold=1.0), candidates=200)
    assert relevance.ids == vstore.query(_q(q), candidates=200).ids
    for bad, needle in (
        ({"mmr_prefetch_k": 20, "mmr_prefetch_factor": 2}, "not both"),
        ({"mmr_prefetch_k": 2}, ">= similarity_top_k"),
        ({"mmr_threshold": 1.5}, r"in \[0, 1\]"),
    ):
        with pytest.raises(ConfigurationError, match=needle):
            vstore.query(_q(q, mode="mmr"), **bad)
    with pytest.raises(ConfigurationError, match="pass one of them"):
        vstore.query(_q(q, mode="mmr", mmr_threshold=0.2), mmr_threshold=0.4)


@pytest.mark.parametrize(
    "mode",
    [VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.SVM, VectorStoreQueryMode.SEMANTIC_HYBRID],
)
def test_other_query_modes_are_refused(vstore, corpus, mode) -> None:
    needle = f"'{mode.value}' is not supported.*default, mmr, text_search, hybrid"
    with pytest.raises(ConfigurationError, match=needle):
        vstore.query(_q(corpus[3][0], mode=mode))


def test_query_without_embedding_and_empty_store(lite_uri, corpus) -> None:
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri})
    assert store.query(_q(corpus[3][0])).ids == []  # no collection yet
    assert store.get_nodes(["n1"]) == []
    store.delete("d1")
    store.clear()
    with pytest.raises(InvalidInputError, match="query_embedding is None"):
        store.query(VectorStoreQuery(query_str="hello", similarity_top_k=2))


# ---------------------------------------------------------------------------- nodes


def _rich_node() -> TextNode:
    return TextNode(
        id_="rich",
        text="A node with everything: ünïcode, \"quotes\" and a \\ backslash.",
        metadata={"source": "a.txt", "year": 2024, "tags": ["x", "y"], "nested": {"k": [1, 2.5]}},
        excluded_embed_metadata_keys=["year"],
        excluded_llm_metadata_keys=["source", "tags"],
        metadata_template="{key}=>{value}",
        metadata_separator="; ",
        text_template="META {metadata_str} TEXT {content}",
        start_char_idx=10,
        end_char_idx=72,
        relationships={
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc-1", metadata={"source": "a.txt"}),
            NodeRelationship.PREVIOUS: RelatedNodeInfo(node_id="prev"),
            NodeRelationship.NEXT: RelatedNodeInfo(node_id="next", hash="abc"),
        },
        embedding=np.linspace(-1.0, 1.0, 32).tolist(),
    )


def test_nodes_come_back_whole(lite_uri) -> None:
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    node = _rich_node()
    index_node = IndexNode(id_="idx", text="points elsewhere", index_id="other-index",
                           embedding=np.linspace(1.0, -1.0, 32).tolist())
    assert store.add([node, index_node]) == ["rich", "idx"]
    got = store.get_nodes(["rich", "idx"])
    assert [type(n) for n in got] == [TextNode, IndexNode]
    assert got[0].model_dump(exclude={"embedding"}) == node.model_dump(exclude={"embedding"})
    assert got[1].index_id == "other-index" and got[1].text == "points elsewhere"
    assert got[0].ref_doc_id == "doc-1"
    stored = np.asarray(node.embedding) / np.linalg.norm(node.embedding)  # unit length
    np.testing.assert_allclose(got[0].embedding, stored, atol=1e-3)
    hit = store.query(_q(node.embedding, k=1)).nodes[0]
    assert hit.model_dump(exclude={"embedding"}) == node.model_dump(exclude={"embedding"})
    assert hit.get_content(metadata_mode="llm") == node.get_content(metadata_mode="llm")
    store.close()


def test_node_metadata_keys_the_store_uses(lite_uri) -> None:
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    node = _rich_node()
    node.metadata["ref_doc_id"] = "someone-else"
    with pytest.raises(InvalidInputError, match="ref_doc_id"):
        store.add([node])
    node.metadata["ref_doc_id"] = "doc-1"  # the same id: fine, and not duplicated
    node.metadata["_node_content"] = "stale"  # the store's own key: replaced
    store.add([node])
    got = store.get_nodes(["rich"])[0]
    assert got.metadata == {k: v for k, v in _rich_node().metadata.items()}
    store.close()


def test_bad_nodes_are_refused_before_anything_is_written(vstore, corpus) -> None:
    good = corpus_nodes(corpus[1][:2])
    good[0].id_ = "new0"
    no_embedding = TextNode(id_="bare", text="no vector")
    with pytest.raises(InvalidInputError, match="'bare' has no embedding"):
        vstore.add([good[0], no_embedding])
    short = TextNode(id_="short", text="x", embedding=[1.0, 2.0])
    with pytest.raises(EmbeddingError, match="not a rectangular array"):
        vstore.add([good[0], short])
    with pytest.raises(DimensionMismatchError, match="32"):
        vstore.add([short])
    with pytest.raises(InvalidInputError, match="LlamaIndex node"):
        vstore.add([Document(page_content="a LangChain document")])
    with pytest.raises(ConfigurationError, match="unknown option.*allowed: batch_size, timeout"):
        vstore.add(good, partition="p1")
    assert vstore.get_nodes(["new0", "bare", "short"]) == []


def test_batch_size_and_timeout_keywords(lite_uri, corpus) -> None:
    """The package's calling conventions: writes take batch_size and timeout, reads,
    deletes and queries timeout; bad values are refused before anything happens."""
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    nodes = corpus_nodes(corpus[1][:30])
    with pytest.raises(ConfigurationError, match="batch_size=0"):
        store.add(nodes, batch_size=0)
    with pytest.raises(ConfigurationError, match="timeout=-1"):
        store.add(nodes, timeout=-1)
    assert store.get_nodes([n.node_id for n in nodes]) == []
    assert store.add(nodes, batch_size=7, timeout=30) == [n.node_id for n in nodes]
    assert len(store.get_nodes(filters=_where("i", FilterOperator.GTE, 0), timeout=30)) == 30
    assert store.query(_q(corpus[1][3], k=1), timeout=30).ids == ["n3"]
    store.delete("d0", timeout=30)
    store.delete_nodes(["n1"], timeout=30)
    assert len(store.get_nodes(filters=_where("i", FilterOperator.GTE, 0))) == 30 - 8 - 1
    for call in (lambda: store.get_nodes(["n2"], timeout=0),
                 lambda: store.delete("d2", timeout="soon"),
                 lambda: store.query(_q(corpus[1][3]), timeout=0)):
        with pytest.raises(ConfigurationError, match="timeout"):
            call()
    store.close()


def test_readding_a_node_replaces_it(vstore, corpus) -> None:
    node = corpus_nodes(corpus[1][:1])[0]
    node.text = "replaced"
    vstore.add([node])
    assert [n.text for n in vstore.get_nodes(["n0"])] == ["replaced"]
    assert len(vstore.get_nodes(filters=_where("i", FilterOperator.GTE, 0))) == 200


def _where(key, op, value) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key=key, operator=op, value=value)])


def test_get_nodes_by_ids_filters_and_both(vstore) -> None:
    assert [n.node_id for n in vstore.get_nodes(["n9", "missing", "n3", "n9"])] == ["n9", "n3"]
    small = _where("i", FilterOperator.LT, 6)
    assert sorted(n.node_id for n in vstore.get_nodes(filters=small)) == [f"n{i}" for i in range(6)]
    assert [n.node_id for n in vstore.get_nodes(["n3", "n8"], filters=small)] == ["n3"]
    assert vstore.get_nodes(node_ids=[]) == []
    with pytest.raises(InvalidInputError, match="neither node_ids nor filters"):
        vstore.get_nodes()
    with pytest.raises(InvalidInputError, match="no condition"):
        vstore.get_nodes(filters=MetadataFilters(filters=[]))


def test_delete_by_ref_doc_id(vstore) -> None:
    vstore.delete("d1")
    left = vstore.get_nodes(filters=_where("i", FilterOperator.GTE, 0))
    assert sorted(int(n.node_id[1:]) for n in left) == [i for i in range(200) if i % 4 != 1]
    assert {n.ref_doc_id for n in left} == {"d0", "d2", "d3"}
    vstore.delete("no-such-document")
    with pytest.raises(ConfigurationError, match="unknown option"):
        vstore.delete("d2", milvus_partition_name="p")
    assert len(vstore.get_nodes(filters=_where("i", FilterOperator.GTE, 0))) == 150


def test_delete_nodes_by_ids_filters_and_both(vstore) -> None:
    vstore.delete_nodes(["n0", "n1", "missing"])
    vstore.delete_nodes(filters=_where("i", FilterOperator.GTE, 190))
    vstore.delete_nodes(["n2", "n3"], filters=_where("parity", FilterOperator.EQ, "even"))
    vstore.delete_nodes(node_ids=[])  # nothing
    every = vstore.get_nodes(filters=_where("i", FilterOperator.GTE, 0))
    left = {int(n.node_id[1:]) for n in every}
    assert left == set(range(3, 190))
    with pytest.raises(InvalidInputError, match="neither node_ids nor filters"):
        vstore.delete_nodes()
    with pytest.raises(InvalidInputError, match="no condition"):
        vstore.delete_nodes(filters=MetadataFilters(filters=[]))
    assert len(left) == 187


def test_clear_removes_every_node_and_keeps_the_collection(vstore, corpus) -> None:
    vstore.clear()
    assert vstore.query(_q(corpus[3][0])).ids == []
    assert (vstore.dim, vstore.search_dim) == (32, 8)
    vstore.add(corpus_nodes(corpus[1][:3]))
    assert vstore.query(_q(corpus[1][2], k=1)).ids == ["n2"]


async def test_async_paths_equal_the_sync_ones(lite_uri, corpus) -> None:
    _, docs, _, queries = corpus
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    assert await store.async_add(corpus_nodes(docs)) == [f"n{i}" for i in range(200)]
    for mode in ("default", "mmr"):
        q = _q(queries[0], mode=mode)
        assert (await store.aquery(q, candidates=64)).ids == store.query(q, candidates=64).ids
    assert [n.node_id for n in await store.aget_nodes(["n4", "n2"])] == ["n4", "n2"]
    await store.adelete("d0")
    await store.adelete_nodes(["n1"], filters=_where("parity", FilterOperator.EQ, "odd"))
    left = await store.aget_nodes(filters=_where("i", FilterOperator.LT, 8))
    assert sorted(n.node_id for n in left) == ["n2", "n3", "n5", "n6", "n7"]
    with pytest.raises(ConfigurationError):
        await store.aquery(_q(queries[0]), candidate=3)
    await store.aclear()
    assert (await store.aquery(_q(queries[0]))).ids == []
    store.close()


# ---------------------------------------------------------------------------- construction


def test_constructor_takes_the_langchain_store_options(lite_uri, corpus) -> None:
    store = MatryoshkaMilvusVectorStore(
        collection_name="opts", connection_args={"uri": lite_uri}, search_dim=8,
        candidates=64, prune_ratio=0.25, rotation="pca", consistency_level="Session",
        index_type="FLAT", batch_size=7,
    )
    assert store.collection_name == "opts"
    assert store.funnel_defaults == {"candidates": 64, "scales": None, "prune_ratio": 0.25}
    _, docs, _, queries = corpus
    store.add(corpus_nodes(docs))
    assert store._engine.basis is not None  # rotated: results still exact
    for q in queries[:5]:
        want, _ = exact_top(q, docs, 5)
        assert store.query(_q(q), candidates=200, prune_ratio=1.0).ids == [f"n{i}" for i in want]
    with pytest.raises(ConfigurationError, match="'serach_dim'.*allowed: collection_name"):
        MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, serach_dim=8)
    with pytest.raises(ConfigurationError, match="takes no embedding"):
        MatryoshkaMilvusVectorStore(embedding=TableEmbeddings({}))
    with pytest.raises(ConfigurationError, match="search_dim"):
        MatryoshkaMilvusVectorStore(collection_name="opts", client=store.client, search_dim=4)
    store.close()


def test_declared_columns_and_tenants(lite_uri, corpus) -> None:
    """metadata_fields / partition_key pass through; a tenant filter searches its partition."""
    _, docs, _, queries = corpus
    store = MatryoshkaMilvusVectorStore(
        connection_args={"uri": lite_uri}, search_dim=8,
        metadata_fields={"ref_doc_id": "str", "tenant": "str", "i": "int"}, partition_key="tenant",
    )
    nodes = corpus_nodes(docs)
    for node in nodes:
        node.metadata["tenant"] = f"t{int(node.node_id[1:]) % 5}"
    store.add(nodes)
    assert store._engine.layout.columns == {"ref_doc_id": "str", "tenant": "str", "i": "int"}
    got = store.get_nodes(["n7"])[0]
    assert got.model_dump(exclude={"embedding"}) == nodes[7].model_dump(exclude={"embedding"})
    tenant = MetadataFilters(filters=[
        MetadataFilter(key="tenant", value="t2"), MetadataFilter(key="i", value=100,
                                                                 operator=FilterOperator.LT)])
    assert store._engine.partitions_for(store._tenant_filter(tenant)) == [
        store._engine.layout.tenancy.partition_of("t2")
    ]
    in_t2 = [i for i in range(100) if i % 5 == 2]
    for q in queries[:3]:
        want, _ = exact_top(q, docs[in_t2], 4)
        result = store.query(_q(q, k=4, filters=tenant), candidates=200, prune_ratio=1.0)
        assert result.ids == [f"n{in_t2[j]}" for j in want]
    assert sorted(n.node_id for n in store.get_nodes(filters=tenant)) == sorted(
        f"n{i}" for i in in_t2)
    store.delete("d1")  # ref_doc_id is a typed column here
    assert {n.ref_doc_id for n in store.get_nodes(filters=tenant)} == {"d0", "d2", "d3"}
    store.delete_nodes(filters=tenant)
    assert store.get_nodes(filters=tenant) == []
    assert len(store.get_nodes(filters=_where("i", FilterOperator.GTE, 0))) == 150 - 15
    store.close()


def test_calibration_sets_the_defaults_of_every_front_end(vstore) -> None:
    assert vstore.funnel_defaults["candidates"] is None
    result = vstore.calibrate(k=5, n_pseudo=200, target_recall=0.9)
    assert result.reached and result.persisted and result.pseudo_method == "perturbed"
    assert vstore.funnel_defaults["candidates"] == result.candidates
    lc = MatryoshkaMilvus(TableEmbeddings({}), client=vstore.client)  # opened afterwards
    assert lc.funnel_defaults == vstore.funnel_defaults


def test_importing_the_package_needs_no_llama_index() -> None:
    code = (
        "import sys\n"
        "sys.modules['llama_index'] = None\n"  # makes `import llama_index...` fail
        "import langchain_matryoshka\n"
        "assert 'langchain_matryoshka.llama_index' not in sys.modules\n"
        "try:\n"
        "    import langchain_matryoshka.llama_index\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "langchain-matryoshka[llama-index]"' in out.stdout


# ---------------------------------------------------------------------------- LangChain


def test_a_langchain_collection_is_read_through_llama_index(lite_uri, corpus) -> None:
    texts, docs, _, queries = corpus
    lc = MatryoshkaMilvus(TableEmbeddings(dict(zip(texts, docs))),
                          connection_args={"uri": lite_uri}, search_dim=8)
    lc.add_documents(
        [Document(page_content=t, metadata={"i": i, "src": f"f{i % 3}"})
         for i, t in enumerate(texts)],
        ids=[f"id{i}" for i in range(len(texts))],
    )
    li = MatryoshkaMilvusVectorStore(client=lc.client)  # the default collection, reopened
    assert (li.dim, li.search_dim) == (32, 8)
    result = li.query(_q(queries[0], k=3), candidates=200, prune_ratio=1.0)
    want, _ = exact_top(queries[0], docs, 3)
    assert result.ids == [f"id{i}" for i in want]
    for node in result.nodes:
        i = int(node.node_id[2:])
        assert type(node) is TextNode
        assert (node.text, node.metadata) == (f"doc {i}", {"i": i, "src": f"f{i % 3}"})
    picked = li.get_nodes(filters=_where("src", FilterOperator.EQ, "f1"))
    assert sorted(int(n.node_id[2:]) for n in picked) == [i for i in range(200) if i % 3 == 1]
    li.delete_nodes(filters=_where("src", FilterOperator.EQ, "f1"))
    assert lc.get_by_ids(["id1", "id2"]) == [
        Document(id="id2", page_content="doc 2", metadata={"i": 2, "src": "f2"})
    ]
    lc.close()


def test_llama_index_nodes_are_read_through_langchain(vstore, corpus) -> None:
    _, docs, _, queries = corpus
    lc = MatryoshkaMilvus(TableEmbeddings({}), client=vstore.client)
    doc = lc.get_by_ids(["n6"])[0]
    assert doc.page_content == "node 6"
    assert {k: doc.metadata[k] for k in ("i", "parity", "ref_doc_id")} == {
        "i": 6, "parity": "even", "ref_doc_id": "d2"}
    assert set(doc.metadata) == {"i", "parity", "ref_doc_id", "_node_content", "_node_type"}
    pairs = lc.similarity_search_with_score_by_vector(queries[1].tolist(), k=3, candidates=200)
    assert [d.id for d, _ in pairs] == vstore.query(_q(queries[1], k=3), candidates=200).ids
    lc.delete(filter={"ref_doc_id": "d3"})  # LangChain deletes a LlamaIndex document
    assert vstore.get_nodes(filters=_where("i", FilterOperator.EQ, 7)) == []
    # A node re-added through LangChain with its metadata comes back whole in LlamaIndex.
    before = vstore.get_nodes(["n6"])[0]
    lc.add_embeddings([doc.page_content], [docs[6].tolist()], [doc.metadata], ids=[doc.id])
    after = vstore.get_nodes(["n6"])[0]
    assert after.model_dump(exclude={"embedding"}) == before.model_dump(exclude={"embedding"})


# ---------------------------------------------------------------------------- LlamaIndex paths

DOCS = [
    ("apples", "Apples grow on trees in orchards. Red apples and green apples are fruit."),
    ("milvus", "Milvus is a vector database. Milvus stores vectors and searches them fast."),
    ("paris", "Paris is the capital of France. The Eiffel tower stands in Paris."),
    ("python", "Python is a programming language. Python code runs in an interpreter."),
]


def _documents(docs=DOCS) -> list[LlamaDocument]:
    return [LlamaDocument(id_=i, text=t, metadata={"topic": i}) for i, t in docs]


def test_from_documents_retriever_and_query_engine(lite_uri) -> None:
    embed = BagOfWordsEmbedding()
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    index = VectorStoreIndex.from_documents(
        _documents(), storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed,
    )
    retriever = index.as_retriever(similarity_top_k=2)
    top = retriever.retrieve("which vector database searches vectors")[0]
    assert top.node.ref_doc_id == "milvus"
    # No pruning between the funnel's stages: the exact top 2 of the 4 nodes.
    exact = index.as_retriever(similarity_top_k=2, vector_store_kwargs={"prune_ratio": 1.0})
    hits = exact.retrieve("which vector database searches vectors")
    assert hits[0].node.ref_doc_id == "milvus" and hits[0].node.metadata == {"topic": "milvus"}
    nodes = store.get_nodes(filters=_where("topic", FilterOperator.IN, [i for i, _ in DOCS]))
    assert len(nodes) == len(DOCS)  # one node per document here
    vectors = [bag_of_words(n.get_content(metadata_mode=MetadataMode.EMBED)) for n in nodes]
    query = np.asarray(bag_of_words("which vector database searches vectors"))
    want, scores = exact_top(query, np.asarray(vectors), 2)
    assert [h.node.node_id for h in hits] == [nodes[i].node_id for i in want]
    np.testing.assert_allclose([h.score for h in hits], scores, atol=FLOAT16_COSINE_ERROR)
    engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=1, vector_store_kwargs={"prune_ratio": 1.0}
    )
    response = engine.query("capital of France Paris")
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["paris"]
    assert "Paris is the capital of France" in str(response)  # MockLLM echoes its prompt
    filtered = index.as_retriever(
        similarity_top_k=3, filters=_where("topic", FilterOperator.NE, "milvus"),
        vector_store_kwargs={"candidates": 16},
    ).retrieve("vector database")
    assert "milvus" not in {h.node.ref_doc_id for h in filtered}
    index.delete_ref_doc("paris")
    assert "paris" not in {h.node.ref_doc_id for h in retriever.retrieve("capital of France")}
    store.close()


async def test_async_index_paths(lite_uri) -> None:
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    index = VectorStoreIndex.from_documents(
        _documents(), storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=BagOfWordsEmbedding(), use_async=True,
    )
    hits = await index.as_retriever(similarity_top_k=1).aretrieve("programming language code")
    assert [h.node.ref_doc_id for h in hits] == ["python"]
    response = await index.as_query_engine(llm=MockLLM(), similarity_top_k=1).aquery("orchards")
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["apples"]
    await index.adelete_ref_doc("apples")
    hits = await index.as_retriever(similarity_top_k=4).aretrieve("orchards")
    assert "apples" not in {h.node.ref_doc_id for h in hits}
    store.close()


def test_reopening_an_existing_collection_with_from_vector_store(lite_uri) -> None:
    embed = BagOfWordsEmbedding()
    first = MatryoshkaMilvusVectorStore(collection_name="kb", connection_args={"uri": lite_uri},
                                        search_dim=8)
    VectorStoreIndex.from_documents(
        _documents(), storage_context=StorageContext.from_defaults(vector_store=first),
        embed_model=embed,
    )
    again = MatryoshkaMilvusVectorStore(collection_name="kb", client=first.client)
    index = VectorStoreIndex.from_vector_store(again, embed_model=embed)
    hits = index.as_retriever(similarity_top_k=1).retrieve("Eiffel tower")
    assert [h.node.ref_doc_id for h in hits] == ["paris"]
    assert (again.dim, again.search_dim) == (32, 8)
    first.close()


def test_ingestion_pipeline_upserts_through_the_docstore(lite_uri) -> None:
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    embed = BagOfWordsEmbedding()

    def pipeline(strategy):
        return IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=16, chunk_overlap=0), embed],
            docstore=docstore, vector_store=store, docstore_strategy=strategy,
        )

    def stored():
        every_topic = _where("topic", FilterOperator.IN, [i for i, _ in DOCS])
        return sorted((n.ref_doc_id, n.text) for n in store.get_nodes(filters=every_topic))

    docstore = SimpleDocumentStore()
    first = pipeline(DocstoreStrategy.UPSERTS).run(documents=_documents())
    assert len(first) > len(DOCS)  # documents split into several nodes
    before = stored()
    assert len(before) == len(first)
    assert pipeline(DocstoreStrategy.UPSERTS).run(documents=_documents()) == []  # unchanged
    assert stored() == before
    changed = [(i, t if i != "paris" else "Paris has the Louvre museum.") for i, t in DOCS]
    pipeline(DocstoreStrategy.UPSERTS).run(documents=_documents(changed))
    after = stored()
    assert [t for d, t in after if d == "paris"] == ["Paris has the Louvre museum."]
    assert [x for x in after if x[0] != "paris"] == [x for x in before if x[0] != "paris"]
    pipeline(DocstoreStrategy.UPSERTS_AND_DELETE).run(documents=_documents(changed[:2]))
    assert {d for d, _ in stored()} == {"apples", "milvus"}
    store.close()


async def test_ingestion_pipeline_async_upserts(lite_uri) -> None:
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": lite_uri}, search_dim=8)
    docstore = SimpleDocumentStore()
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=16, chunk_overlap=0), BagOfWordsEmbedding()],
        docstore=docstore, vector_store=store, docstore_strategy=DocstoreStrategy.UPSERTS,
    )
    await pipeline.arun(documents=_documents())
    changed = [(i, t if i != "milvus" else "Milvus indexes embeddings.") for i, t in DOCS]
    await pipeline.arun(documents=_documents(changed))
    nodes = store.get_nodes(filters=_where("topic", FilterOperator.EQ, "milvus"))
    assert [n.text for n in nodes] == ["Milvus indexes embeddings."]
    store.close()
