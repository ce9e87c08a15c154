"""PCA prefix rotation: orthogonal, stored with the collection, helps non-Matryoshka models."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._milvus import FLOAT16_COSINE_ERROR
from langchain_matryoshka.errors import ConfigurationError
from langchain_matryoshka.rotation import fit_pca_rotation, rotate

from .conftest import TableEmbeddings


def spread_corpus(n: int, dim: int, seed: int) -> np.ndarray:
    """Low-rank data whose strong directions are spread over all dims (not Matryoshka)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, dim)) * (1.0 / (1.0 + np.arange(dim)))  # decaying
    mix, _ = np.linalg.qr(rng.standard_normal((dim, dim)))  # random orthogonal mixing
    return (latent @ mix.T).astype(np.float32)


def test_basis_is_orthogonal_sorted_and_keeps_cosines() -> None:
    x = spread_corpus(500, 24, seed=0)
    basis = fit_pca_rotation(x)
    np.testing.assert_allclose(basis.T @ basis, np.eye(24), atol=1e-5)
    r = rotate(x, basis)
    energy = (r / np.linalg.norm(r, axis=1, keepdims=True)) ** 2
    assert np.all(np.diff(energy.sum(axis=0)) <= 1e-3)  # strongest components first

    def cos(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
            a / np.linalg.norm(a, axis=1, keepdims=True)
        ).T

    np.testing.assert_allclose(cos(r), cos(x), atol=1e-5)
    np.testing.assert_array_equal(fit_pca_rotation(x), basis)  # reproducible


@pytest.fixture
def spread(tmp_path):
    docs = spread_corpus(300, 32, seed=1)
    queries = spread_corpus(30, 32, seed=2)
    table = TableEmbeddings(
        {**{f"d{i}": v for i, v in enumerate(docs)}, **{f"q{i}": v for i, v in enumerate(queries)}}
    )
    return docs, queries, table


def _store(uri, table, rotation, name="spread", search_dim=4):
    return MatryoshkaMilvus(
        table,
        collection_name=name,
        connection_args={"uri": uri},
        search_dim=search_dim,
        rotation=rotation,
    )


def test_full_dimension_scores_are_unchanged(lite_uri, spread) -> None:
    docs, _, table = spread
    raw, rot = _store(lite_uri, table, None, "raw"), _store(lite_uri, table, "pca", "rot")
    texts = [f"d{i}" for i in range(len(docs))]
    raw.add_texts(texts, ids=texts)
    rot.add_texts(texts, ids=texts)
    assert rot.rotation is not None and raw.rotation is None
    for q in range(10):
        a = raw.similarity_search_with_score(f"q{q}", k=5, candidates=300, prune_ratio=1.0)
        b = rot.similarity_search_with_score(f"q{q}", k=5, candidates=300, prune_ratio=1.0)
        assert [d.id for d, _ in a] == [d.id for d, _ in b]
        # each store rounds its own (rotated or not) vectors to float16
        np.testing.assert_allclose(
            [s for _, s in a], [s for _, s in b], atol=2 * FLOAT16_COSINE_ERROR
        )


def test_rotation_buys_recall_at_small_candidate_counts(lite_uri, spread) -> None:
    docs, queries, table = spread
    raw = _store(lite_uri, table, None, "raw", search_dim=8)
    rot = _store(lite_uri, table, "pca", "rot", search_dim=8)
    texts = [f"d{i}" for i in range(len(docs))]
    raw.add_texts(texts, ids=texts)
    rot.add_texts(texts, ids=texts)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    exact = np.argsort(-(qn @ dn.T), axis=1)[:, :10]
    recall = {}
    for name, store in (("raw", raw), ("rot", rot)):
        found = 0
        for q in range(len(queries)):
            got = {d.id for d in store.similarity_search(f"q{q}", k=10, candidates=40)}
            found += len(got & {f"d{j}" for j in exact[q]})
        recall[name] = found / (10 * len(queries))
    # measured: raw 0.40, rotated 0.87 (candidates 40 of 300, head 8 of 32 dims)
    assert recall["rot"] >= 2 * recall["raw"]
    assert recall["rot"] >= 0.8


def test_basis_is_stored_and_reused_by_a_reopened_store(lite_uri, spread) -> None:
    docs, _, table = spread
    store = _store(lite_uri, table, "pca")
    store.add_texts([f"d{i}" for i in range(200)], ids=[f"d{i}" for i in range(200)])
    basis = store.rotation.copy()
    before = store.similarity_search_with_score("q3", k=5)
    again = MatryoshkaMilvus(table, collection_name="spread", client=store.client)
    np.testing.assert_array_equal(again.rotation, basis)
    assert again.similarity_search_with_score("q3", k=5) == before
    # documents added after the fit are rotated with the same basis, not a new one
    again.add_texts([f"d{i}" for i in range(200, 300)], ids=[f"d{i}" for i in range(200, 300)])
    np.testing.assert_array_equal(again.rotation, basis)
    top = again.similarity_search("d250", k=1)
    assert top[0].id == "d250"


def test_rotation_settings_are_checked(lite_uri, spread) -> None:
    _, _, table = spread
    with pytest.raises(ConfigurationError, match="rotation='svd' is not supported"):
        _store(lite_uri, table, "svd")
    raw = _store(lite_uri, table, None, "plain")
    raw.add_texts(["d1", "d2"], ids=["d1", "d2"])
    with pytest.raises(ConfigurationError, match="built with rotation=None"):
        _store(lite_uri, table, "pca", "plain")


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_matryoshka import MatryoshkaMilvus

    store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=16), collection_name="r",
                             connection_args={"uri": sys.argv[1]}, search_dim=4,
                             rotation="pca")
    store.add_texts([f"text {i}" for i in range(60)], ids=[f"t{i}" for i in range(60)])
    np.save(sys.argv[2], store.rotation)
    """
)


def test_another_process_uses_the_same_basis(tmp_path) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    uri, saved = str(tmp_path / "r.db"), tmp_path / "basis.npy"
    subprocess.run([sys.executable, "-c", WRITER, uri, str(saved)], check=True, timeout=300)
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16), collection_name="r", connection_args={"uri": uri}
    )
    np.testing.assert_array_equal(store.rotation, np.load(saved))
    assert store.similarity_search("text 7", k=1)[0].id == "t7"


def test_mmr_with_rotation_compares_in_one_basis(lite_uri, spread) -> None:
    docs, _, table = spread
    store = _store(lite_uri, table, "pca", search_dim=8)
    store.add_texts([f"d{i}" for i in range(len(docs))], ids=[f"d{i}" for i in range(len(docs))])
    for q in range(5):
        plain = [d.id for d in store.similarity_search(f"q{q}", k=5, candidates=40)]
        mmr = store.max_marginal_relevance_search(
            f"q{q}", k=5, fetch_k=20, lambda_mult=1.0, candidates=40
        )
        assert [d.id for d in mmr] == plain  # lambda 1: relevance only
