"""Data written by one process is there, loaded and searchable, in the next."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_matryoshka import MatryoshkaMilvus

WRITER = textwrap.dedent(
    """
    import sys
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_matryoshka import MatryoshkaMilvus

    store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=24), collection_name="kept",
                             connection_args={"uri": sys.argv[1]}, search_dim=6)
    store.add_texts([f"text {i}" for i in range(40)],
                    metadatas=[{"i": i, "tag": "kept"} for i in range(40)],
                    ids=[f"k{i}" for i in range(40)])
    store.delete(["k39"])
    """
)


def test_data_survives_a_fresh_process(tmp_path) -> None:
    uri = str(tmp_path / "kept.db")
    subprocess.run([sys.executable, "-c", WRITER, uri], check=True, timeout=300)
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=24), collection_name="kept", connection_args={"uri": uri}
    )
    assert (store.dim, store.search_dim) == (24, 6)
    assert store._engine.collection.count() == 39
    assert store.get_by_ids(["k7", "k39"]) == [
        Document(id="k7", page_content="text 7", metadata={"i": 7, "tag": "kept"})
    ]
    top = store.similarity_search("text 12", k=1)  # the collection is loaded: search works
    assert top == [Document(id="k12", page_content="text 12", metadata={"i": 12, "tag": "kept"})]
    store.close()
