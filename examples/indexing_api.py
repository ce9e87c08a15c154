"""LangChain's indexing API keeping a MatryoshkaMilvus in sync with its sources.

Indexes a small corpus of three sources with ``cleanup="incremental"``, re-indexes it
unchanged, then re-indexes a changed corpus (one document edited, one removed from a
source that is still indexed) and prints LangChain's figures for each run, and what the
store holds. Runs offline in a few seconds (Milvus Lite in a temporary directory,
langchain-core's deterministic fake embeddings)::

    python examples/indexing_api.py [--json benchmarks/results/indexing-api.json]

``--json PATH`` also writes the printed figures to PATH (docs/langchain.md's table).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import InMemoryRecordManager, index

from langchain_matryoshka import MatryoshkaMilvus

CORPUS = {
    "handbook.md": ["Funnel search indexes a short head.", "Candidates are reranked."],
    "faq.md": ["Milvus Lite runs in the process.", "Servers take a uri."],
    "notes.md": ["Calibration finds the cheapest funnel.", "Rotation helps raw models."],
}
CHANGED = {
    "handbook.md": ["Funnel search indexes a short head of each embedding.",  # edited
                    "Candidates are reranked."],
    "faq.md": ["Milvus Lite runs in the process.", "Servers take a uri."],
    "notes.md": ["Calibration finds the cheapest funnel."],  # one removed
}


def documents(corpus: dict[str, list[str]]) -> list[Document]:
    return [Document(page_content=text, metadata={"source": source})
            for source, texts in corpus.items() for text in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures here")
    args, _ = parser.parse_known_args()  # known only: the tests run this file inside pytest
    with tempfile.TemporaryDirectory() as tmp:
        store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=64), search_dim=16,
                                 connection_args={"uri": str(Path(tmp) / "docs.db")})
        records = InMemoryRecordManager("matryoshka/docs")
        records.create_schema()
        options = {"cleanup": "incremental", "source_id_key": "source",
                   "key_encoder": "sha256"}
        runs = {
            "first": index(documents(CORPUS), records, store, **options),
            "unchanged": index(documents(CORPUS), records, store, **options),
            "changed": index(documents(CHANGED), records, store, **options),
        }
        held = sorted(d.page_content for d in store.search_by_metadata(limit=None))
        result = {"runs": runs, "store_count": store.count(), "store": held}
        print(json.dumps(result, indent=2))
        store.close()
    if args.json:
        command = f"python examples/indexing_api.py --json {args.json}"
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {**result, "command": command}, indent=2))


if __name__ == "__main__":
    main()
