"""The head index: reopening adopts the collection's, rebuilding it, and calibration
choosing it (IVF ``nprobe``, and the index type for a memory budget) on Milvus Lite."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._head_choice import (
    PREFERENCE,
    head_index_mb,
    ivf_nlist,
    nprobe_grid,
    options,
)
from langchain_matryoshka._indexes import Backend, pq_m, read_head_index
from langchain_matryoshka.errors import ConfigurationError
from langchain_matryoshka.funnel import exact_top_k

from .conftest import TableEmbeddings, matryoshka_like

N, DIM, HEAD = 3000, 64, 16


@pytest.fixture(scope="module")
def data():
    docs = matryoshka_like(N, DIM, seed=11)
    queries = matryoshka_like(40, DIM, seed=12)
    texts = [f"doc {i}" for i in range(N)]
    qtexts = [f"query {i}" for i in range(len(queries))]
    table = TableEmbeddings({**dict(zip(texts, docs)), **dict(zip(qtexts, queries))})
    return texts, docs, qtexts, queries, table


def make(uri, data, **kwargs) -> MatryoshkaMilvus:
    texts, _, _, _, table = data
    store = MatryoshkaMilvus(table, connection_args={"uri": uri}, search_dim=HEAD, **kwargs)
    store.add_texts(texts, ids=[f"id{i}" for i in range(N)], batch_size=1000)
    store.build_index()
    return store


def reopen(uri, data, **kwargs) -> MatryoshkaMilvus:
    return MatryoshkaMilvus(data[4], connection_args={"uri": uri}, **kwargs)


def head_index(store) -> tuple[str, dict]:
    found = read_head_index(store.client, store.collection_name)
    assert found is not None
    return found


def recall(store, data, k=5, **options) -> float:
    _, docs, qtexts, queries, _ = data
    exact, _ = exact_top_k(queries, docs, k)
    got = [{d.id for d in store.similarity_search(q, k=k, **options)} for q in qtexts]
    return float(np.mean([len(g & {f"id{j}" for j in row}) / k for g, row in zip(got, exact)]))


# ---------------------------------------------------------------------------- planning


def test_memory_estimates_order_the_types_and_a_budget_keeps_those_that_fit() -> None:
    sizes = {kind: head_index_mb(10**6, 128, kind, {"nlist": 1024, "m": 32}) for kind in PREFERENCE}
    assert sizes["HNSW"] > sizes["IVF_FLAT"] > sizes["HNSW_SQ"] > sizes["IVF_SQ8"] > sizes["IVF_PQ"]
    # 1M x 128: float32 vectors plus 32 links of 4 bytes a row
    assert sizes["HNSW"] == pytest.approx(10**6 * (512 + 128) / 2**20)
    lite = Backend(lite=True)
    fits = options(lite, 10**6, 128, budget_mb=300)
    assert [o.index_type for o in fits] == ["HNSW_SQ", "IVF_SQ8"]  # IVF_PQ: not on Lite
    assert all(o.memory_mb <= 300 for o in fits)
    sq8 = fits[1]
    assert sq8.build == {"nlist": 1024} and sq8.search_grid == nprobe_grid(1024)
    server = options(Backend(lite=False, version=(2, 3)), 10**6, 128, budget_mb=60)
    assert [o.index_type for o in server] == ["IVF_PQ"]  # no HNSW_SQ on 2.3
    assert server[0].build == {"nlist": 1024, "m": 32, "nbits": 8}


def test_ivf_settings_follow_the_row_count() -> None:
    assert ivf_nlist(10**6) == 1024 and ivf_nlist(100_000) == 256 and ivf_nlist(3000) == 64
    assert all(rows / ivf_nlist(rows) >= 39 for rows in (50, 400, 3000, 10**5, 10**7))
    assert [p["nprobe"] for p in nprobe_grid(1024)] == [16, 32, 64, 128, 256, 512, 1024]
    assert [p["nprobe"] for p in nprobe_grid(4)] == [1, 2, 4]
    assert (pq_m(128), pq_m(64), pq_m(100), pq_m(2)) == (32, 16, 25, 1)


def test_budgets_that_fit_nothing_or_name_unknown_types_are_refused() -> None:
    lite = Backend(lite=True)
    with pytest.raises(ConfigurationError, match=r"no head index fits .*IVF_SQ8 \d"):
        options(lite, 10**6, 128, budget_mb=1)
    with pytest.raises(ConfigurationError, match="IVF_PQ cannot be built on Milvus Lite"):
        options(lite, 10**6, 128, budget_mb=100, index_types=["ivf_pq"])
    for bad in (0, -5, "100", None):
        with pytest.raises(ConfigurationError, match="memory_budget_mb="):
            options(lite, 10**6, 128, budget_mb=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the store


def test_reopening_searches_the_head_index_the_collection_has(tmp_path, data) -> None:
    uri = str(tmp_path / "m.db")
    make(uri, data, index_type="IVF_SQ8", index_params={"nlist": 32}).close()
    store = reopen(uri, data)  # index_type omitted: the collection's
    collection = store.engine.collection
    assert (collection.index_type, collection.index_params) == ("IVF_SQ8", {"nlist": 32})
    assert collection.head_search_params() == {}
    assert recall(store, data) > 0.5
    store.close()
    with pytest.raises(ConfigurationError, match=r"rebuild_head_index\('HNSW'\)"):
        reopen(uri, data, index_type="HNSW")
    reopen(uri, data, index_type="ivf_sq8").close()  # the same type, any case


def test_rebuilding_the_head_index_keeps_every_row_and_result(tmp_path, data) -> None:
    uri = str(tmp_path / "m.db")
    store = make(uri, data)
    before = recall(store, data, candidates=256)
    store.rebuild_head_index("IVF_FLAT", {"nlist": 16})
    assert head_index(store) == ("IVF_FLAT", {"nlist": 16})
    assert store.engine.count("") == N
    # 16 lists, nprobe 16 (the default): every row is a candidate, as good as HNSW
    assert recall(store, data, candidates=256) >= before - 0.01
    store.close()
    assert reopen(uri, data).engine.collection.index_type == "IVF_FLAT"
    with pytest.raises(ConfigurationError, match="IVF_PQ"):
        reopen(uri, data).rebuild_head_index("IVF_PQ")


def test_calibrating_an_ivf_head_chooses_nprobe_and_persists_it(tmp_path, data) -> None:
    uri = str(tmp_path / "m.db")
    store = make(uri, data, index_type="IVF_SQ8", index_params={"nlist": 16})
    _, _, _, queries, _ = data
    result = store.calibrate(query_vectors=queries, k=5, target_recall=0.9)
    assert result.reached and result.index_type == "IVF_SQ8"
    probes = sorted({p.head_params["nprobe"] for p in result.curve})
    assert probes[0] == 1 and set(probes) <= {1, 2, 4, 8, 16}
    assert result.head_search_params == {"nprobe": result.head_search_params["nprobe"]}
    assert "nprobe |" in result.table().splitlines()[0]
    # the sweep stopped one setting past the first that reached
    reached = [n for n in probes if any(
        p.recall_lower >= 0.9 for p in result.curve if p.head_params["nprobe"] == n
    )]
    assert probes[-1] <= 2 * reached[0]
    chosen = result.head_search_params
    assert store.engine.collection.head_search_params() == chosen
    store.close()
    again = reopen(uri, data)
    assert again.engine.collection.head_search_params() == chosen
    assert recall(again, data) >= 0.85
    # an explicit search_params wins over the calibrated one
    pinned = reopen(uri, data, search_params={"nprobe": 3})
    assert pinned.engine.collection.head_search_params() == {"nprobe": 3}


def test_a_memory_budget_rebuilds_the_head_as_the_best_type_that_fits(tmp_path, data) -> None:
    uri = str(tmp_path / "m.db")
    store = make(uri, data)
    _, _, _, queries, _ = data
    hnsw_mb = head_index_mb(N, HEAD, "HNSW", {})
    roomy = store.calibrate(
        query_vectors=queries, k=5, target_recall=0.9, memory_budget_mb=2 * hnsw_mb
    )
    assert roomy.reached and roomy.index_type == "HNSW"
    assert [t["index_type"] for t in roomy.index_trials] == ["HNSW"]
    assert not roomy.index_trials[0]["rebuilt"]  # the store's own head index
    assert head_index(store)[0] == "HNSW"

    budget = 1.2 * head_index_mb(N, HEAD, "IVF_SQ8", {"nlist": ivf_nlist(N)})
    tight = store.calibrate(
        query_vectors=queries, k=5, target_recall=0.9, memory_budget_mb=budget
    )
    assert tight.reached and tight.persisted
    assert [t["index_type"] for t in tight.index_trials] == ["IVF_SQ8"]
    assert tight.index_trials[0]["rebuilt"]
    assert tight.index_trials[0]["memory_mb"] <= budget
    assert head_index(store) == ("IVF_SQ8", {"nlist": ivf_nlist(N)})
    assert "nprobe" in tight.head_search_params
    assert "head index IVF_SQ8" in tight.summary() and "MiB budget" in tight.summary()
    store.close()
    again = reopen(uri, data)
    assert again.engine.collection.index_type == "IVF_SQ8"
    assert again.engine.collection.head_search_params() == tight.head_search_params
    assert recall(again, data) >= 0.85


def test_a_budget_nothing_reaches_puts_the_old_head_index_back(tmp_path, data) -> None:
    uri = str(tmp_path / "m.db")
    store = make(uri, data)
    _, _, _, queries, _ = data
    budget = 1.2 * head_index_mb(N, HEAD, "IVF_FLAT", {"nlist": ivf_nlist(N)})
    result = store.calibrate(
        query_vectors=queries,
        k=5,
        target_recall=0.999,
        candidate_grid=[5],
        memory_budget_mb=budget,
    )
    assert not result.reached and not result.persisted
    assert [t["index_type"] for t in result.index_trials] == ["IVF_FLAT", "IVF_SQ8"]
    assert not any(t["reached"] for t in result.index_trials)
    assert head_index(store)[0] == "HNSW" and store.engine.collection.index_type == "HNSW"
    assert "larger memory_budget_mb" in result.summary()
    assert recall(store, data, candidates=256) > 0.9


def test_a_budget_with_a_condition_or_types_without_a_budget_are_refused(store) -> None:
    with pytest.raises(ConfigurationError, match="without expr/filter"):
        store.calibrate(filter={"parity": "even"}, memory_budget_mb=10)
    with pytest.raises(ConfigurationError, match="needs memory_budget_mb"):
        store.calibrate(index_types=["IVF_SQ8"])
