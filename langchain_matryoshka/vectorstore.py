"""``MatryoshkaMilvus``: a LangChain vector store that answers with funnel search."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from . import _milvus
from ._async_store import AsyncStoreMethods
from ._conventions import CALL_KEYWORDS, check_timeout, write_options
from ._engine import Engine, pairs
from ._hybrid_store import HybridStoreMethods
from ._layout import declare
from ._metadata_reads import MetadataReads
from ._mmr_store import MMRMethods
from ._store_tools import StoreTools
from ._validation import check_queries, prepare_texts, reject_unknown
from .errors import ConfigurationError, InvalidInputError
from .rotation import DEFAULT_SAMPLE

if TYPE_CHECKING:
    from .retriever import FunnelRetriever
    from .self_query import MatryoshkaTranslator


class MatryoshkaMilvus(
    MMRMethods, StoreTools, MetadataReads, AsyncStoreMethods, HybridStoreMethods, VectorStore
):
    """Milvus vector store that indexes a short head of Matryoshka embeddings.

    Milvus indexes only the first ``search_dim`` dims of each embedding (normalised);
    a query fetches ``candidates`` hits with one head search, and the funnel reranks
    them by cosine similarity on growing prefixes of the stored full vectors
    (``scales``), keeping ``prune_ratio`` of them at each stage, down to the top ``k``
    by full-dimension cosine. Scores are cosine similarities in [-1, 1] (higher is
    more similar); relevance scores map them to [0, 1] as ``(1 + cos) / 2``.

    Setup:
        .. code-block:: bash

            pip install langchain-matryoshka

    Key init args — indexing params:
        embedding: Embeddings
            Any LangChain embeddings; a Matryoshka-trained model gives the best heads.
        collection_name: str
            Milvus collection; created on the first write, reopened if it exists.
        search_dim: int | None
            Leading dims indexed in Milvus (default: largest power of two <= dim / 6,
            128 for a 768-dim model). Read from the collection when it exists.

    Key init args — client params:
        connection_args: dict | None
            ``{"uri": "./docs.db"}`` (Milvus Lite, the default) or
            ``{"uri": "http://host:19530", "token": ..., "db_name": ..., "timeout": 10,
            "call_timeout": 60}`` (``timeout``: seconds to connect; ``call_timeout``:
            seconds any search or write may take on a server, None for no limit).
        client: MilvusClient | None
            A ready client instead of ``connection_args``.

        consistency_level: str
            Read consistency on servers: "Session" (default: this store's reads see
            its own writes, deletes included, waiting only on the first read after a
            write; reads with none pending run at "Bounded", so another process's writes
            show within the server's bounded staleness, 5 s by default), "Strong" (every
            read sees every earlier write; Milvus 2.3 adds about 200 ms per read),
            "Bounded" or "Eventually". Milvus Lite reads are always current. See
            docs/speed.md.

    Key init args — metadata, tenants and full text (docs/filters.md, docs/hybrid.md):
        metadata_fields: Mapping[str, type] | None
            Metadata keys stored as typed columns beside the JSON field, e.g.
            ``{"source": str, "year": int, "score": float, "public": bool,
            "tags": list[str]}`` (pymilvus DataTypes accepted): filters on them are
            fast and exact; documents come back with the same ``metadata``. A
            document lacking a declared key stores null (Milvus Lite, servers 2.5+) or
            is refused (older servers). Read from the collection when it exists.
        partition_key: str | None
            A declared ``str`` or ``int`` key naming each document's tenant: a search,
            count, read or delete filtered on it touches that tenant's partition only
            (Milvus' partition key on servers; partitions the store manages on Milvus
            Lite). ``num_partitions``: default 64 on servers, 16 on Milvus Lite.
        full_text_search: bool
            Index the texts for BM25 (Milvus Lite, servers 2.5+), with ``analyzer``.

    Key init args — funnel defaults (overridable per call):
        candidates: int | None
            Hits fetched by the head search (default: max(128, 8 x k)).
        scales: Sequence[int] | None
            Ascending rerank prefixes ending at the full dim (default doubling from
            2 x search_dim: 256, 512, 768 for 128 of 768).
        prune_ratio: float | None
            Fraction kept after each stage but the last (default 0.5).

    Key init args — search:
        fetch_documents: str
            "with_candidates" (texts and metadata come back with every candidate of
            the head search), "after_rerank" (only ids and full vectors do; the final
            documents' texts come from one primary-key lookup) or "auto" (default:
            after the rerank on Milvus Lite, with the candidates on servers, where a
            second read at "Strong" consistency costs a second wait).

    Key init args — calibration:
        record_queries: int
            Keep the last N query vectors in the settings collection for
            :meth:`calibrate` (default 0: none). No texts unless
            ``record_query_texts=True``; see ``langchain_matryoshka._querylog``.

    Key init args — ingestion:
        batch_size: int
            Rows per Milvus upsert (default 1000).
        show_progress: bool
            A progress bar over the upserts of each write (tqdm). For the embedding
            step, ``MatryoshkaEmbeddings(show_progress=True)`` shows the model's own.

    Instantiate:
        .. code-block:: python

            from langchain_matryoshka import MatryoshkaEmbeddings, MatryoshkaMilvus

            embeddings = MatryoshkaEmbeddings("nomic-ai/nomic-embed-text-v1.5",
                                              trust_remote_code=True)
            store = MatryoshkaMilvus(embeddings, collection_name="docs",
                                     connection_args={"uri": "./docs.db"},
                                     search_dim=128)

    Add Documents:
        .. code-block:: python

            from langchain_core.documents import Document

            store.add_documents([Document(page_content="foo", metadata={"src": "a"})],
                                ids=["1"])

    Delete Documents:
        .. code-block:: python

            store.delete(ids=["1"])

    Search:
        .. code-block:: python

            store.similarity_search("query", k=4, filter={"src": "a"})
            store.similarity_search("query", k=4, expr='year >= 2020 and src == "a"')
            store.similarity_search_with_score("query", k=4, candidates=256)

        A filtered search returns k documents when k match, whatever the filter's
        selectivity: few matching rows are ranked exactly, many are searched with a
        larger HNSW ``ef`` (docs/filters.md).

    Keyword and hybrid search (``full_text_search=True``; docs/hybrid.md):
        .. code-block:: python

            store.full_text_search_with_score("error E1234", k=4)  # BM25 scores
            store.hybrid_search_with_score("query", k=4, fusion="rrf")  # fused scores

    Read by metadata (no query vector):
        .. code-block:: python

            store.search_by_metadata(filter={"src": "a"}, limit=10, offset=0)
            store.get_pks(expr='metadata["year"] >= 2020')
            store.count(filter={"src": "a"})
            for doc in store.iter_documents(filter={"src": "a"}, batch_size=1000):
                ...

    Keyword arguments LangChain passes (``batch_size`` and ``timeout`` on writes,
    ``timeout`` on every search, read and delete) are accepted and do what their names
    say; the rule is :data:`langchain_matryoshka._conventions.CALL_KEYWORDS`.

    Async:
        .. code-block:: python

            await store.asimilarity_search("query", k=4)

    Use as Retriever:
        .. code-block:: python

            retriever = store.as_retriever(search_kwargs={"k": 4, "candidates": 256})
            retriever.invoke("query")
    """

    def __init__(
        self,
        embedding: Embeddings,
        *,
        collection_name: str = "langchain_matryoshka",
        connection_args: Mapping[str, Any] | None = None,
        client: Any | None = None,
        search_dim: int | None = None,
        candidates: int | None = None,
        scales: Sequence[int] | None = None,
        prune_ratio: float | None = None,
        index_type: str | None = None,
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
        consistency_level: str = "Session",
        text_max_length: int = _milvus.TEXT_MAX_LENGTH,
        batch_size: int = 1000,
        show_progress: bool = False,
        fetch_documents: str = "auto",
        rotation: str | None = None,
        rotation_sample: int = DEFAULT_SAMPLE,
        metadata_fields: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        num_partitions: int | None = None,
        full_text_search: bool = False,
        analyzer: str | Mapping[str, Any] | None = None,
        record_queries: int = 0,
        record_query_texts: bool = False,
        drop_old: bool = False,
    ) -> None:
        if not isinstance(embedding, Embeddings):
            raise ConfigurationError(
                f"embedding={embedding!r} is not a LangChain Embeddings; pass e.g. "
                "MatryoshkaEmbeddings('nomic-ai/nomic-embed-text-v1.5')"
            )
        if not isinstance(collection_name, str) or not collection_name:
            raise ConfigurationError(
                f"collection_name={collection_name!r} must be a non-empty string"
            )
        if client is not None and connection_args is not None:
            raise ConfigurationError("pass either client= or connection_args=, not both")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(
                f"batch_size={batch_size!r} must be a positive integer, e.g. 1000"
            )
        if not isinstance(show_progress, bool):
            raise ConfigurationError(f"show_progress={show_progress!r} must be True or False")
        if not (isinstance(text_max_length, int) and 1 <= text_max_length <= 65535):
            raise ConfigurationError(
                f"text_max_length={text_max_length!r} must be an integer in [1, 65535]"
            )
        declared = declare(
            metadata_fields, partition_key, num_partitions, full_text_search, analyzer
        )
        self.embedding = embedding
        self.collection_name = collection_name
        self.batch_size = batch_size
        self.text_max_length = text_max_length
        if client is None:
            connection = _milvus.Connection.open(connection_args)
        else:
            connection = _milvus.Connection.wrap(client)
        self._connection = connection
        self.client = connection.client
        common: dict[str, Any] = {"lite": connection.lite, "consistency_level": consistency_level}
        collection = _milvus.MilvusCollection(
            connection,
            collection_name,
            index_type=index_type,
            index_params=index_params,
            search_params=search_params,
            **common,
        )
        meta = _milvus.MetaCollection(connection, collection_name, **common)
        if drop_old:
            collection.drop()
            meta.drop()
        self._engine = Engine(
            collection,
            meta,
            search_dim=search_dim,
            defaults={"candidates": candidates, "scales": scales, "prune_ratio": prune_ratio},
            text_max_length=text_max_length,
            batch_size=batch_size,
            show_progress=show_progress,
            fetch_documents=fetch_documents,
            rotation=rotation,
            rotation_sample=rotation_sample,
            declared=declared,
        )
        if record_queries:
            from ._querylog import QueryLog

            self._engine.query_log = QueryLog(meta, record_queries, texts=record_query_texts)
        if self._engine.layout is not None:
            from .calibration import warn_if_stale

            warn_if_stale(self._engine)

    # ------------------------------------------------------------------ properties

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    @property
    def dim(self) -> int | None:
        """Full embedding dimension of the collection (None before the first write)."""
        return self._engine.dim

    @property
    def search_dim(self) -> int | None:
        """Dimensions indexed in Milvus (None before the first write if not given)."""
        layout = self._engine.layout
        return layout.search_dim if layout else self._engine.requested_search_dim

    @property
    def rotation(self) -> np.ndarray | None:
        """The orthogonal ``[dim, dim]`` basis applied to every vector, if any."""
        return self._engine.basis

    @property
    def engine(self) -> Engine:
        """The store's sync core, for calibration and evaluation (not LangChain API)."""
        return self._engine

    @property
    def calibration_stale(self) -> bool:
        """True when the collection has grown well past the size it was calibrated at.

        Past ``calibration.GROWTH_FACTOR`` x that size: rerun :meth:`calibrate`.
        """
        from .calibration import is_stale

        return is_stale(self._engine)

    @property
    def funnel_defaults(self) -> dict[str, Any]:
        """Candidates / scales / prune_ratio used when a call sets none (None: built-in)."""
        return self._engine.defaults()

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: (1.0 + score) / 2.0

    # ------------------------------------------------------------------ writes

    def _text_limit(self) -> int:
        layout = self._engine.layout
        return layout.text_max_length if layout else self.text_max_length

    def add_embeddings(
        self,
        texts: Iterable[str],
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store texts with precomputed full embeddings; returns the ids.

        Re-adding an id replaces its row. Everything is validated before the first
        row is written. Keywords: ``batch_size`` (rows per upsert call), ``timeout``
        (seconds each call may take).
        """
        batch_size, timeout = write_options(kwargs, "add_embeddings")
        texts, metas, ids_out = prepare_texts(texts, metadatas, ids, self._text_limit())
        self._engine.check_metadata(metas, ids_out)
        self._engine.write(texts, metas, ids_out, embeddings, batch_size, timeout)
        return ids_out

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts; given ids are kept, missing ones generated.

        Re-adding an id replaces its row and never duplicates it. Nothing is written
        if any text, id, metadata or embedding is invalid. Keywords: ``batch_size``
        (rows per upsert call; ``index()`` passes its own), ``timeout`` (seconds each
        call may take).
        """
        batch_size, timeout = write_options(kwargs, "add_texts")
        texts, metas, ids_out = prepare_texts(texts, metadatas, ids, self._text_limit())
        if not texts:
            return []
        self._engine.check_metadata(metas, ids_out)
        vectors = self.embedding.embed_documents(texts)
        self._engine.write(texts, metas, ids_out, vectors, batch_size, timeout)
        return ids_out

    def delete(
        self,
        ids: list[str] | None = None,
        *,
        expr: str | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002
        **kwargs: Any,
    ) -> bool:
        """Delete by ids (missing ids are ignored), or by ``expr`` / ``filter``.

        Keyword: ``timeout`` (seconds the Milvus call may take).
        """
        reject_unknown(kwargs, CALL_KEYWORDS["delete"], "delete")
        timeout = check_timeout(kwargs.get("timeout"))
        where = self._engine.where(expr, filter)
        if ids is None and not where:
            raise InvalidInputError(
                "delete() got no ids, expr or filter; pass ids=[...] or a condition "
                "(to empty the store, create it with drop_old=True)"
            )
        if ids is not None:
            ids = list(ids)
            bad = [i for i in ids if not isinstance(i, str)]
            if bad:
                raise InvalidInputError(f"id {bad[0]!r} is not a string; pass string ids")
            if where:
                raise InvalidInputError("delete() got both ids and a condition; pass one of them")
        self._engine.delete(ids, where, timeout, self._engine.partitions_for(filter))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in the order given; missing ids are skipped."""
        return self._engine.documents([str(i) for i in ids])

    def get_vectors(self, ids: Sequence[str], /) -> tuple[list[str], np.ndarray]:
        """Stored full embeddings: the ids found (in the order given) and ``[n, dim]``.

        Vectors come back as stored: unit length and float16 precision, in the
        embedding's own basis (a rotation is undone). Missing ids are skipped.
        """
        ids = [str(i) for i in ids]
        layout = self._engine.layout or self._engine.refresh()
        if not ids or layout is None:
            return [], np.zeros((0, layout.dim if layout else 0), dtype=np.float32)
        found, vectors = self._engine.stored_vectors(ids)
        basis = self._engine.basis
        return found, vectors @ basis.T if basis is not None else vectors

    # ------------------------------------------------------------------ search core

    def _embed_queries(self, queries: Sequence[str]) -> list[list[float]]:
        """Check, then embed queries (see :meth:`_embed`)."""
        check_queries(queries)
        return self._embed(queries)

    def _embed(self, queries: Sequence[str]) -> list[list[float]]:
        """Embed checked queries in one call when the model offers ``embed_queries``."""
        batch = getattr(self.embedding, "embed_queries", None)
        if callable(batch):
            return batch(list(queries))
        return [self.embedding.embed_query(q) for q in queries]

    # ------------------------------------------------------------------ search API

    def search_batch_with_score(
        self, queries: Sequence[str], k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        """Funnel search for many queries: one embedding call and one Milvus search."""
        planned = self._engine.plan(k, kwargs)
        check_queries(queries)  # the one check of the queries
        if planned is None:
            return [[] for _ in queries]
        vectors = np.asarray(self._embed(queries))
        return pairs(self._engine.search(vectors, planned, query_texts=list(queries)))

    def search_batch_with_score_by_vector(
        self, embeddings: Sequence[Sequence[float]] | np.ndarray, k: int = 4, **kwargs: Any
    ) -> list[list[tuple[Document, float]]]:
        """Funnel search for many precomputed query embeddings: one Milvus search."""
        planned = self._engine.plan(k, kwargs)
        vectors = np.asarray(embeddings, dtype=np.float32)
        if planned is None:
            return [[] for _ in range(len(vectors))]
        return pairs(self._engine.search(vectors, planned))

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Top ``k`` documents with their full-dimension cosine similarity (-1..1).

        Keyword options: ``candidates``, ``scales``, ``prune_ratio``, ``expr`` (a
        Milvus boolean expression), ``filter`` (metadata equalities), ``timeout``
        (seconds each Milvus call may take).
        """
        return self.search_batch_with_score([query], k, **kwargs)[0]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Like :meth:`similarity_search_with_score` for a full query embedding."""
        return self.search_batch_with_score_by_vector([embedding], k, **kwargs)[0]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> MatryoshkaMilvus:
        """Create (or open) a store and add ``texts``; keyword args go to the constructor."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def as_retriever(self, **kwargs: Any) -> FunnelRetriever:  # type: ignore[override]
        """A :class:`FunnelRetriever` over this store.

        ``search_type`` ("similarity", "mmr", "similarity_score_threshold", "full_text",
        "hybrid" or "hybrid_mmr") and ``search_kwargs`` (``k``, ``candidates``,
        ``scales``, ``prune_ratio``, ``expr``, ``filter``, ``score_threshold``,
        ``fetch_k``, ``lambda_mult``, and for hybrid search ``fusion``, ``rrf_k``,
        ``weights``, ``dense_k``, ``full_text_k``) set the retriever's defaults;
        ``tags`` and ``metadata`` go to the retriever.
        """
        from .retriever import FunnelRetriever

        tags = list(kwargs.pop("tags", None) or []) + self._get_retriever_tags()
        return FunnelRetriever(vectorstore=self, tags=tags, **kwargs)

    def structured_query_translator(self) -> MatryoshkaTranslator:
        """A SelfQueryRetriever translator for this store's metadata layout.

        ``SelfQueryRetriever.from_llm(llm, store, "contents", fields,
        structured_query_translator=store.structured_query_translator())``.
        """
        from .self_query import MatryoshkaTranslator

        return MatryoshkaTranslator(self)

    def close(self) -> None:
        """Write recorded queries still in memory; close the client if this store opened it."""
        if self._engine.query_log is not None:
            self._engine.query_log.close()
        self._connection.close()
