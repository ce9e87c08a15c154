"""The store and retriever inside LangChain's own machinery, with its real classes.

Retrievers from langchain-classic and langchain-community, SelfQueryRetriever with a
fake LLM that writes a structured query, an LCEL RAG chain with a fake chat model,
and a retriever tool. Embeddings: langchain-core's DeterministicFakeEmbedding (a
query equal to a document's text finds that document at cosine 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from langchain_classic.chains.query_constructor.schema import AttributeInfo
from langchain_classic.retrievers import (
    ContextualCompressionRetriever,
    EnsembleRetriever,
    MultiVectorRetriever,
    ParentDocumentRetriever,
    SelfQueryRetriever,
)
from langchain_classic.retrievers.document_compressors import EmbeddingsFilter
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.stores import InMemoryStore
from langchain_core.structured_query import (
    Comparator,
    Comparison,
    Operation,
    Operator,
    StructuredQuery,
)
from langchain_core.tools import create_retriever_tool
from langchain_text_splitters import RecursiveCharacterTextSplitter

from langchain_matryoshka import InvalidInputError, MatryoshkaMilvus, MatryoshkaTranslator

MOVIES = [
    ("A bunch of scientists bring back dinosaurs", {"year": 1993, "genre": "science fiction",
                                                    "rating": 7.7, "tags": ["dinosaurs"]}),
    ("Leo DiCaprio gets lost in a dream within a dream", {"year": 2010, "genre": "thriller",
                                                          "rating": 8.2, "tags": ["dreams"]}),
    ("A psychologist gets lost in a series of dreams", {"year": 2006, "genre": "thriller",
                                                        "rating": 8.6, "tags": ["dreams"]}),
    ("A bunch of normal-sized women are wholesome", {"year": 2019, "genre": "drama",
                                                     "rating": 8.3, "tags": []}),
    ("Toys come alive and have a blast doing so", {"year": 1995, "genre": "animated",
                                                   "rating": 9.1, "tags": ["toys", "fun"]}),
    ("Three men walk into the Zone", {"year": 1979, "genre": "science fiction",
                                      "rating": 9.9, "tags": ["zone"], "director": "Tarkovsky"}),
]


@pytest.fixture
def movies(tmp_path) -> Iterator[MatryoshkaMilvus]:
    store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=32), search_dim=8,
                             connection_args={"uri": str(tmp_path / "movies.db")})
    store.add_texts([t for t, _ in MOVIES], [m for _, m in MOVIES],
                    ids=[f"m{i}" for i in range(len(MOVIES))])
    yield store
    store.close()


def texts(docs) -> list[str]:
    return [d.page_content for d in docs]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
class TestEnsembleWithBM25:
    def test_ensemble_merges_the_funnel_and_bm25(self, movies) -> None:
        from langchain_community.retrievers import BM25Retriever

        corpus = [Document(page_content=t, metadata=m) for t, m in MOVIES]
        bm25 = BM25Retriever.from_documents(corpus, k=2)
        funnel = movies.as_retriever(search_kwargs={"k": 2})
        ensemble = EnsembleRetriever(retrievers=[bm25, funnel], weights=[0.5, 0.5])
        query = "Toys come alive and have a blast doing so"
        found = texts(ensemble.invoke(query))
        assert found[0] == query  # first in both lists
        assert set(texts(bm25.invoke(query))) | set(texts(funnel.invoke(query))) == set(found)

    async def test_async(self, movies) -> None:
        from langchain_community.retrievers import BM25Retriever

        corpus = [Document(page_content=t, metadata=m) for t, m in MOVIES]
        ensemble = EnsembleRetriever(
            retrievers=[BM25Retriever.from_documents(corpus, k=2), movies.as_retriever(k=2)]
        )
        query = "Three men walk into the Zone"
        assert texts(await ensemble.ainvoke(query))[0] == query


class TestContextualCompression:
    def test_embeddings_filter_over_the_funnel(self, movies) -> None:
        base = movies.as_retriever(search_kwargs={"k": 4})
        compressor = EmbeddingsFilter(embeddings=movies.embeddings, k=2)
        retriever = ContextualCompressionRetriever(base_compressor=compressor,
                                                   base_retriever=base)
        query = MOVIES[1][0]
        found = retriever.invoke(query)
        assert len(found) == 2 and found[0].page_content == query
        assert set(texts(found)) <= set(texts(base.invoke(query)))


class TestMultiVector:
    def test_summaries_in_the_store_find_their_parents(self, movies, tmp_path) -> None:
        store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=32), search_dim=8,
                                 connection_args={"uri": str(tmp_path / "summaries.db")})
        docstore = InMemoryStore()
        retriever = MultiVectorRetriever(vectorstore=store, docstore=docstore, id_key="doc_id",
                                         search_kwargs={"k": 1})
        parents = [Document(page_content=f"{t} (full plot)", metadata=m) for t, m in MOVIES]
        ids = [f"p{i}" for i in range(len(parents))]
        summaries = [Document(page_content=t, metadata={"doc_id": i})
                     for (t, _), i in zip(MOVIES, ids)]
        retriever.vectorstore.add_documents(summaries)
        retriever.docstore.mset(list(zip(ids, parents)))
        assert texts(retriever.invoke(MOVIES[2][0])) == [f"{MOVIES[2][0]} (full plot)"]
        mmr = MultiVectorRetriever(vectorstore=store, docstore=docstore, id_key="doc_id",
                                   search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
        assert len(mmr.invoke(MOVIES[2][0])) == 2
        store.close()


class TestParentDocument:
    @pytest.fixture
    def retriever(self, tmp_path) -> Iterator[ParentDocumentRetriever]:
        store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=32), search_dim=8,
                                 connection_args={"uri": str(tmp_path / "children.db")})
        yield ParentDocumentRetriever(
            vectorstore=store,
            docstore=InMemoryStore(),
            child_splitter=RecursiveCharacterTextSplitter(chunk_size=30, chunk_overlap=0),
            search_kwargs={"k": 2},
        )
        store.close()

    def parents(self) -> list[Document]:
        return [Document(page_content=f"{a[0]}. {b[0]}.", metadata={"n": i})
                for i, (a, b) in enumerate(zip(MOVIES[::2], MOVIES[1::2]))]

    def test_children_find_their_parent(self, retriever) -> None:
        retriever.add_documents(self.parents(), batch_size=2)
        children = retriever.vectorstore.search_by_metadata(limit=None)
        assert len(children) > 3 and all("doc_id" in c.metadata for c in children)
        child = next(c for c in children if c.metadata["n"] == 1)
        found = retriever.invoke(child.page_content)
        assert found[0].page_content == self.parents()[1].page_content

    async def test_async(self, retriever) -> None:
        await retriever.aadd_documents(self.parents())
        child = (await retriever.vectorstore.asearch_by_metadata(filter={"n": 2}, limit=1))[0]
        found = await retriever.ainvoke(child.page_content)
        assert found[0].page_content == self.parents()[2].page_content


def structured(query: str, filter: str, limit: int | None = None) -> str:  # noqa: A002
    body = {"query": query, "filter": filter}
    if limit is not None:
        body["limit"] = limit
    return "```json\n" + json.dumps(body) + "\n```"


FIELDS = [
    AttributeInfo(name="genre", description="The genre of the movie", type="string"),
    AttributeInfo(name="year", description="The year the movie was released", type="integer"),
    AttributeInfo(name="rating", description="A 1-10 rating for the movie", type="float"),
    AttributeInfo(name="tags", description="Topics of the movie", type="list[string]"),
]


class TestSelfQuery:
    def test_from_llm_with_the_packages_translator(self, movies) -> None:
        llm = FakeListLLM(responses=[
            structured("dreams", 'and(eq("genre", "thriller"), gt("rating", 8.4))'),
            structured("dinosaurs", 'or(lt("year", 1980), contain("tags", "dinosaurs"))', 5),
            structured("wholesome", "NO_FILTER"),
        ])
        retriever = SelfQueryRetriever.from_llm(
            llm, movies, "Brief summary of a movie", FIELDS,
            structured_query_translator=movies.structured_query_translator(),
        )
        assert texts(retriever.invoke("highly rated thrillers about dreams")) == [MOVIES[2][0]]
        assert set(texts(retriever.invoke("old movies or dinosaurs"))) == {
            MOVIES[0][0], MOVIES[5][0]}
        assert len(retriever.invoke("anything wholesome")) == 4  # no filter: k=4

    async def test_async_and_limit(self, movies) -> None:
        llm = FakeListLLM(responses=[structured("x", 'in("genre", ["thriller", "drama"])', 2)])
        retriever = SelfQueryRetriever.from_llm(
            llm, movies, "Brief summary of a movie", FIELDS,
            structured_query_translator=MatryoshkaTranslator(movies),
        )
        found = await retriever.ainvoke("thrillers or dramas")
        assert len(found) == 2 and {d.metadata["genre"] for d in found} <= {"thriller", "drama"}

    CASES = [
        (Comparator.EQ, "genre", "thriller", lambda m: m.get("genre") == "thriller"),
        (Comparator.NE, "genre", "thriller", lambda m: m.get("genre") != "thriller"),
        (Comparator.GT, "year", 2006, lambda m: m["year"] > 2006),
        (Comparator.GTE, "year", 2006, lambda m: m["year"] >= 2006),
        (Comparator.LT, "rating", 8.3, lambda m: m["rating"] < 8.3),
        (Comparator.LTE, "rating", 8.3, lambda m: m["rating"] <= 8.3),
        (Comparator.IN, "year", [1993, 2019], lambda m: m["year"] in (1993, 2019)),
        (Comparator.NIN, "genre", ["drama", "thriller"],
         lambda m: m["genre"] not in ("drama", "thriller")),
        (Comparator.CONTAIN, "tags", "dreams", lambda m: "dreams" in m["tags"]),
        (Comparator.LIKE, "genre", "fiction", lambda m: "fiction" in m["genre"]),
        (Comparator.LIKE, "genre", "thr%", lambda m: m["genre"].startswith("thr")),
        (Comparator.EQ, "director", "Tarkovsky", lambda m: m.get("director") == "Tarkovsky"),
    ]

    @pytest.mark.parametrize(("comparator", "key", "value", "reference"), CASES)
    def test_every_comparator_matches_a_python_reference(self, movies, comparator, key, value,
                                                         reference) -> None:
        translator = movies.structured_query_translator()
        expr = Comparison(comparator=comparator, attribute=key, value=value).accept(translator)
        assert f'metadata["{key}"]' in expr  # the store's JSON layout, never a bare name
        expected = {t for t, m in MOVIES if key in m and reference(m)}
        assert set(texts(movies.search_by_metadata(expr, limit=None))) == expected

    def test_operators(self, movies) -> None:
        translator = movies.structured_query_translator()
        thriller = Comparison(comparator=Comparator.EQ, attribute="genre", value="thriller")
        recent = Comparison(comparator=Comparator.GTE, attribute="year", value=2010)
        cases = {
            Operator.AND: lambda m: m["genre"] == "thriller" and m["year"] >= 2010,
            Operator.OR: lambda m: m["genre"] == "thriller" or m["year"] >= 2010,
        }
        for operator, reference in cases.items():
            expr = Operation(operator=operator, arguments=[thriller, recent]).accept(translator)
            expected = {t for t, m in MOVIES if reference(m)}
            assert set(texts(movies.search_by_metadata(expr, limit=None))) == expected
        negated = Operation(operator=Operator.NOT, arguments=[thriller]).accept(translator)
        assert set(texts(movies.search_by_metadata(negated, limit=None))) == {
            t for t, m in MOVIES if m["genre"] != "thriller"}
        query, kwargs = translator.visit_structured_query(
            StructuredQuery(query="q", filter=thriller, limit=None)
        )
        assert query == "q" and set(kwargs) == {"expr"}

    @pytest.mark.parametrize(
        ("comparison", "message"),
        [
            (Comparison(comparator=Comparator.GT, attribute="flag", value=True),
             "cannot order booleans"),
            (Comparison(comparator=Comparator.LIKE, attribute="year", value=1990),
             "needs a string pattern"),
            (Comparison(comparator=Comparator.EQ, attribute="genre", value={"a": 1}),
             "Milvus cannot hold"),
        ],
    )
    def test_what_milvus_cannot_express_is_a_clear_error(self, movies, comparison,
                                                          message) -> None:
        with pytest.raises(InvalidInputError, match=message):
            comparison.accept(movies.structured_query_translator())


def format_docs(docs: list[Document]) -> str:
    return "\n".join(d.page_content for d in docs)


class TestLCELChain:
    @pytest.fixture
    def chain(self, movies):
        retriever = movies.as_retriever(search_kwargs={"k": 2})
        prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
        llm = FakeListChatModel(responses=["an answer"] * 20)
        rag = ({"context": retriever | format_docs, "question": RunnablePassthrough()}
               | prompt | llm | StrOutputParser())
        return rag, retriever

    def test_invoke_batch_stream(self, chain) -> None:
        rag, _ = chain
        assert rag.invoke("dreams") == "an answer"
        assert rag.batch(["dreams", "toys"]) == ["an answer", "an answer"]
        assert "".join(rag.stream("dreams")) == "an answer"

    async def test_ainvoke_astream_astream_events(self, chain) -> None:
        rag, retriever = chain
        query = MOVIES[4][0]
        assert await rag.ainvoke(query) == "an answer"
        assert "".join([c async for c in rag.astream(query)]) == "an answer"
        events = [e async for e in rag.astream_events(query, version="v2")]
        ends = [e for e in events if e["event"] == "on_retriever_end"]
        assert [e["name"] for e in events if e["event"] == "on_retriever_start"] == [
            "FunnelRetriever"]
        assert texts(ends[0]["data"]["output"]) == texts(retriever.invoke(query))
        assert texts(ends[0]["data"]["output"])[0] == query
        prompt_in = next(e for e in events if e["event"] == "on_prompt_start")["data"]["input"]
        assert query in prompt_in["context"]


class TestRetrieverTool:
    def test_tool_returns_the_retrieved_texts(self, movies) -> None:
        tool = create_retriever_tool(movies.as_retriever(search_kwargs={"k": 1}), "movies",
                                     "Search the movie summaries")
        assert tool.name == "movies"
        assert tool.invoke({"query": MOVIES[3][0]}) == MOVIES[3][0]

    async def test_async(self, movies) -> None:
        tool = create_retriever_tool(movies.as_retriever(k=2), "movies", "Search movies")
        out = await tool.ainvoke({"query": MOVIES[0][0]})
        assert out.split("\n\n")[0] == MOVIES[0][0]


class TestSelfQueryOnDeclaredFields:
    """With metadata_fields= the translator names the typed columns, never a JSON path."""

    @pytest.fixture
    def typed(self, tmp_path) -> Iterator[MatryoshkaMilvus]:
        store = MatryoshkaMilvus(
            DeterministicFakeEmbedding(size=32), search_dim=8,
            connection_args={"uri": str(tmp_path / "typed.db")},
            metadata_fields={"year": "int", "genre": "str", "tags": "list[str]"},
        )
        store.add_texts([t for t, _ in MOVIES], [m for _, m in MOVIES],
                        ids=[f"m{i}" for i in range(len(MOVIES))])
        yield store
        store.close()

    @pytest.mark.parametrize(
        ("comparator", "key", "value", "reference"),
        [
            (Comparator.GT, "year", 2000, lambda m: m["year"] > 2000),
            (Comparator.IN, "genre", ["drama", "animated"],
             lambda m: m["genre"] in ("drama", "animated")),
            (Comparator.CONTAIN, "tags", "dreams", lambda m: "dreams" in m["tags"]),
            (Comparator.LTE, "rating", 8.3, lambda m: m["rating"] <= 8.3),  # still JSON
        ],
    )
    def test_columns_and_json_keys(self, typed, comparator, key, value, reference) -> None:
        expr = Comparison(comparator=comparator, attribute=key, value=value).accept(
            typed.structured_query_translator()
        )
        assert ('metadata["' in expr) == (key == "rating")
        expected = {t for t, m in MOVIES if reference(m)}
        assert set(texts(typed.search_by_metadata(expr, limit=None))) == expected

    def test_a_wrong_type_for_a_column_is_a_clear_error(self, typed) -> None:
        with pytest.raises(InvalidInputError, match="declared int"):
            Comparison(comparator=Comparator.EQ, attribute="year", value="1993").accept(
                typed.structured_query_translator()
            )
