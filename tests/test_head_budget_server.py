"""The head index on a real Milvus 2.3 server: its parameters read back (servers list
them as strings), an IVF_PQ head (servers only) and a memory budget choosing IVF_SQ8."""

from __future__ import annotations

import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._head_choice import head_index_mb, ivf_nlist
from langchain_matryoshka._indexes import read_head_index

from .conftest import TableEmbeddings, matryoshka_like

pytestmark = pytest.mark.server

N, DIM, HEAD = 3000, 64, 16


def test_server_heads_are_read_back_rebuilt_and_chosen_for_a_budget(
    server_uri: str, server_collection: str
) -> None:
    docs = matryoshka_like(N, DIM, seed=21)
    queries = matryoshka_like(40, DIM, seed=22)
    texts = [f"doc {i}" for i in range(N)]
    table = TableEmbeddings(dict(zip(texts, docs)))
    args = {"connection_args": {"uri": server_uri}, "collection_name": server_collection}
    store = MatryoshkaMilvus(table, search_dim=HEAD, **args)
    store.add_texts(texts, ids=[f"id{i}" for i in range(N)])

    store.rebuild_head_index("IVF_PQ")  # the store's IVF_PQ defaults: 128 lists, m = 16/4
    assert read_head_index(store.client, server_collection) == (
        "IVF_PQ",
        {"nlist": 128, "m": 4, "nbits": 8},
    )
    again = MatryoshkaMilvus(table, **args)
    assert again.engine.collection.index_type == "IVF_PQ"
    assert again.engine.collection.index_params == {"nlist": 128, "m": 4, "nbits": 8}
    assert len(again.similarity_search_by_vector(queries[0].tolist(), k=5)) == 5

    budget = 1.2 * head_index_mb(N, HEAD, "IVF_SQ8", {"nlist": ivf_nlist(N)})
    result = again.calibrate(
        query_vectors=queries, k=5, target_recall=0.9, memory_budget_mb=budget
    )
    # HNSW and IVF_FLAT do not fit; IVF_PQ needs more rows than these to train
    assert result.reached and [t["index_type"] for t in result.index_trials] == ["IVF_SQ8"]
    assert read_head_index(store.client, server_collection) == (
        "IVF_SQ8",
        {"nlist": ivf_nlist(N)},
    )
    third = MatryoshkaMilvus(table, **args)
    assert third.engine.collection.head_search_params() == result.head_search_params
    assert "nprobe" in result.head_search_params
