"""``MatryoshkaMilvusVectorStore``: the funnel store as a LlamaIndex vector store.

The same engine as :class:`~langchain_matryoshka.MatryoshkaMilvus` behind LlamaIndex's
``BasePydanticVectorStore`` interface: the two front ends differ only in how they take
and return documents, so one collection serves both (see :mod:`._llama_nodes` for how a
node is stored). Needs llama-index-core: ``pip install "langchain-matryoshka[llama-index]"``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "langchain_matryoshka.llama_index needs llama-index-core: "
        'pip install "langchain-matryoshka[llama-index]"'
    ) from exc

import numpy as np
from langchain_core.embeddings import Embeddings

from . import _hybrid, _milvus
from ._conventions import CALL_KEYWORDS, HYBRID_OPTIONS, check_timeout, write_options
from ._engine import FUNNEL_SETTINGS, Engine, Hit
from ._expressions import combine_exprs, ids_to_expr
from ._llama_nodes import REF_DOC_ID, filters_to_expr, ids_in, node_to_row, row_to_node
from ._llama_query import (  # noqa: F401 - DEFAULT_MMR_PREFETCH_FACTOR: public
    DEFAULT_MMR_PREFETCH_FACTOR,
    _mmr_threshold,
    _prefetch_k,
    _result,
)
from ._validation import reject_unknown
from .errors import ConfigurationError, InvalidInputError
from .vectorstore import MatryoshkaMilvus

if TYPE_CHECKING:
    from .calibration import CalibrationResult

#: Per-query options a ``VectorStoreQuery`` cannot carry, passed as ``query(q, **kwargs)``
#: (``as_retriever(vector_store_kwargs={...})``): the funnel settings, a raw Milvus
#: ``expr`` AND-ed with the filters, ``timeout`` (seconds per Milvus call), MMR's options
#: and the hybrid mode's fusion options.
QUERY_OPTIONS = (
    *FUNNEL_SETTINGS, "expr", "timeout", "mmr_threshold", "mmr_prefetch_k", "mmr_prefetch_factor",
    *HYBRID_OPTIONS,
)
_MMR_OPTIONS = ("mmr_threshold", "mmr_prefetch_k", "mmr_prefetch_factor")
#: Node ids per primary-key query of a get or delete with filters.
_CHUNK = 1024
#: Constructor options of MatryoshkaMilvus this store takes (all but the embedding).
STORE_OPTIONS = tuple(
    name
    for name, p in inspect.signature(MatryoshkaMilvus.__init__).parameters.items()
    if name not in ("self", "embedding") and p.kind is inspect.Parameter.KEYWORD_ONLY
)


class _EmbeddedByLlamaIndex(Embeddings):
    """The engine's embedding slot: LlamaIndex embeds nodes and queries itself."""

    def _refuse(self) -> Any:
        raise ConfigurationError(
            "MatryoshkaMilvusVectorStore stores the embeddings LlamaIndex computes and "
            "never embeds text; give LlamaIndex an embed_model (VectorStoreIndex(..., "
            "embed_model=...)) or use MatryoshkaMilvus for LangChain embeddings"
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._refuse()

    def embed_query(self, text: str) -> list[float]:
        return self._refuse()


class MatryoshkaMilvusVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store over Milvus that answers with funnel search.

    Milvus indexes a short head (``search_dim`` dims) of each node's embedding; a query
    fetches ``candidates`` hits with one head search and reranks them on growing
    prefixes of the stored full vectors, down to the top ``similarity_top_k`` by
    full-dimension cosine. Similarities are cosines in [-1, 1]. The collection is the
    one :class:`~langchain_matryoshka.MatryoshkaMilvus` reads and writes.

    Setup:
        .. code-block:: bash

            pip install "langchain-matryoshka[llama-index]"

    Key init args (the keyword options of ``MatryoshkaMilvus``, but the embedding):
        collection_name: str
            Milvus collection; created on the first write, reopened if it exists.
        connection_args: dict | None
            ``{"uri": "./docs.db"}`` (Milvus Lite, the default) or a server's
            ``{"uri": "http://host:19530", "token": ...}``. Or ``client=``: a ready
            ``MilvusClient`` (e.g. a LangChain store's ``store.client``).
        search_dim: int | None
            Leading dims indexed in Milvus (default: the largest power of two <=
            dim / 6). Read from the collection when it exists.
        candidates, scales, prune_ratio:
            Funnel defaults (per query: ``vector_store_kwargs``).
        rotation: str | None
            "pca" fits an orthogonal basis on the first write (better heads).
        consistency_level, index_type, index_params, search_params, batch_size,
        text_max_length, fetch_documents, show_progress, drop_old:
            As for ``MatryoshkaMilvus``.

    Instantiate:
        .. code-block:: python

            from langchain_matryoshka.llama_index import MatryoshkaMilvusVectorStore

            vector_store = MatryoshkaMilvusVectorStore(
                collection_name="docs", connection_args={"uri": "./docs.db"},
                search_dim=64, candidates=128,
            )

    Use within an index:
        .. code-block:: python

            from llama_index.core import StorageContext, VectorStoreIndex

            index = VectorStoreIndex.from_documents(
                documents,
                storage_context=StorageContext.from_defaults(vector_store=vector_store),
                embed_model=embed_model,
            )
            retriever = index.as_retriever(
                similarity_top_k=4, vector_store_kwargs={"candidates": 256}
            )
            retriever.retrieve("what is funnel search?")

    Query options (``vector_store_kwargs``): ``candidates``, ``scales``,
    ``prune_ratio``, ``expr`` (a Milvus expression AND-ed with the filters),
    ``timeout`` (seconds each Milvus call may take) and, in
    MMR mode, ``mmr_threshold`` (or ``VectorStoreQuery.mmr_threshold``; 1: relevance
    only, 0: diversity only, default 0.5), ``mmr_prefetch_k`` or
    ``mmr_prefetch_factor`` (funnel results MMR picks from: default 4 x top k);
    in HYBRID mode ``fusion``, ``rrf_k``, ``weights``, ``dense_k``, ``full_text_k``.
    Unknown options are refused.

    Query modes (``vector_store_query_mode``): DEFAULT (funnel), MMR, TEXT_SEARCH
    (Milvus' BM25 on ``query_str`` alone, top ``sparse_top_k`` or
    ``similarity_top_k``; similarities are BM25 scores) and HYBRID (the funnel fused
    with BM25, top ``hybrid_top_k`` or ``similarity_top_k``; ``alpha`` gives weighted
    fusion with weights ``(alpha, 1 - alpha)``, 1 being dense only, else the store's
    default fusion or the ``fusion`` option;
    ``sparse_top_k`` sets the BM25 side's depth; similarities are fused scores). The
    last two need a collection created with ``full_text_search=True``.
    """

    stores_text: bool = True
    """Nodes come back whole (text, metadata, relationships) from the store."""
    collection_name: str
    """The Milvus collection."""

    _store: MatryoshkaMilvus = PrivateAttr()
    _engine: Engine = PrivateAttr()

    def __init__(self, **options: Any) -> None:
        if "embedding" in options:
            raise ConfigurationError(
                "MatryoshkaMilvusVectorStore takes no embedding: LlamaIndex embeds nodes "
                "and queries (embed_model=...) and the store keeps what it computed"
            )
        reject_unknown(options, STORE_OPTIONS, "MatryoshkaMilvusVectorStore")
        store = MatryoshkaMilvus(_EmbeddedByLlamaIndex(), **options)
        # collection_name is this subclass's field: pydantic's __init__ takes every field
        super().__init__(collection_name=store.collection_name)  # type: ignore[call-arg]
        self._store = store
        self._engine = store._engine

    @classmethod
    def class_name(cls) -> str:
        return "MatryoshkaMilvusVectorStore"

    @property
    def client(self) -> Any:
        """The ``MilvusClient``."""
        return self._store.client

    @property
    def dim(self) -> int | None:
        """Full embedding dimension of the collection (None before the first write)."""
        return self._store.dim

    @property
    def search_dim(self) -> int | None:
        """Dimensions indexed in Milvus (None before the first write if not given)."""
        return self._store.search_dim

    @property
    def funnel_defaults(self) -> dict[str, Any]:
        """Candidates / scales / prune_ratio used when a query sets none (None: built-in)."""
        return self._store.funnel_defaults

    # ------------------------------------------------------------------ writes

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes with their embeddings; returns their ids (the primary keys).

        Re-adding a node id replaces its row. Every node is checked before the first
        row is written. Keywords: ``batch_size`` (rows per upsert call), ``timeout``
        (seconds each call may take); reads and deletes take ``timeout`` too.
        """
        write_options(add_kwargs, "add")  # batch_size, timeout: checked before any work
        rows = [node_to_row(node) for node in nodes]
        if not rows:
            return []
        ids, texts, metadatas, embeddings = (list(column) for column in zip(*rows))
        return self._store.add_embeddings(texts, embeddings, metadatas, ids=ids, **add_kwargs)

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **add_kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id`` (a list: of each)."""
        timeout = self._timeout(delete_kwargs, "delete")
        doc_ids = ids_in([ref_doc_id] if isinstance(ref_doc_id, str) else ref_doc_id)
        if doc_ids and self._has_collection():
            where = self._engine.expressions.compare(REF_DOC_ID, "in", doc_ids)
            self._engine.delete(None, where, timeout)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, by filters, or the nodes among ``node_ids`` matching both."""
        timeout = self._timeout(delete_kwargs, "delete_nodes")
        selection = self._select(node_ids, filters, "delete_nodes")
        if selection is None:
            return
        ids, condition, partitions = selection
        if ids is None:
            self._engine.delete(None, condition, timeout, partitions)
        elif not condition:
            self._engine.delete(ids, "", timeout)
        else:
            for chunk in _chunks(ids):
                where = combine_exprs(self._ids_expr(chunk), condition)
                self._engine.delete(None, where, timeout, partitions)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    def clear(self) -> None:
        """Delete every node.

        The collection stays, with its head size, rotation and funnel defaults
        (``drop_old=True`` at construction rebuilds it).
        """
        if self._has_collection():
            self._engine.delete(None, f'{_milvus.FIELD_ID} != ""')

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    # ------------------------------------------------------------------ reads

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **kwargs: Any,
    ) -> list[BaseNode]:
        """Nodes by id (in the order given, missing ones skipped), by filters, or both.

        Nodes carry their stored embedding: unit length, float16 precision.
        """
        timeout = self._timeout(kwargs, "get_nodes")
        selection = self._select(node_ids, filters, "get_nodes")
        if selection is None:
            return []
        ids, condition, _ = selection
        engine = self._engine
        if ids is None:  # pages through every match (no query-window limit)
            docs = engine.read(condition, None, 0, timeout)
        elif not condition:
            docs = engine.documents(ids, timeout)
        else:
            docs = [
                doc
                for chunk in _chunks(ids)
                for doc in engine.read(
                    combine_exprs(self._ids_expr(chunk), condition), len(chunk), 0, timeout
                )
            ]
        by_id = {cast(str, doc.id): doc for doc in docs}  # stored documents have ids
        order = [i for i in ids if i in by_id] if ids is not None else list(by_id)
        found, vectors = self._store.get_vectors(order)
        embeddings = dict(zip(found, vectors.tolist()))
        nodes = []
        for node_id in order:
            doc = by_id[node_id]
            node = row_to_node(node_id, doc.page_content, doc.metadata)
            node.embedding = embeddings.get(node_id)
            nodes.append(node)
        return nodes

    async def aget_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **kwargs: Any,
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters, **kwargs)

    # ------------------------------------------------------------------ queries

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Funnel search for ``query.query_embedding``.

        Modes: DEFAULT, MMR, TEXT_SEARCH, HYBRID (see the class docstring).

        ``doc_ids`` / ``node_ids`` restrict the search to those source documents /
        nodes; an empty list restricts nothing (``VectorStoreIndex.as_retriever``
        passes ``node_ids=[]`` for a store that keeps the text). ``kwargs`` are the
        per-query options (see the class docstring).
        """
        handler = _MODES.get(VectorStoreQueryMode(query.mode))
        if handler is None:
            raise ConfigurationError(
                f"query mode {VectorStoreQueryMode(query.mode).value!r} is not supported "
                f"by this store; use one of {', '.join(m.value for m in _MODES)}"
            )
        reject_unknown(kwargs, QUERY_OPTIONS, "query (vector_store_kwargs)")
        for mode, names in ((VectorStoreQueryMode.MMR, _MMR_OPTIONS),
                            (VectorStoreQueryMode.HYBRID, HYBRID_OPTIONS)):
            given = [name for name in names if name in kwargs]
            if query.mode != mode and given:
                raise ConfigurationError(
                    f"{', '.join(given)} apply to {mode.value.upper()} queries only; pass "
                    f"vector_store_query_mode={mode.value!r} or drop them"
                )
        if query.mode != VectorStoreQueryMode.TEXT_SEARCH and query.query_embedding is None:
            raise InvalidInputError(
                "VectorStoreQuery.query_embedding is None; this store searches by vector: "
                "query through an index with an embed_model, or pass query_embedding"
            )
        has_collection = self._has_collection()  # reads its declared columns first
        expressions = self._engine.expressions
        expr = combine_exprs(
            filters_to_expr(query.filters, expressions),
            expressions.compare(REF_DOC_ID, "in", ids_in(query.doc_ids)) if query.doc_ids else "",
            self._ids_expr(ids_in(query.node_ids)) if query.node_ids and has_collection else "",
        )
        options: dict[str, Any] = {
            n: kwargs[n] for n in (*FUNNEL_SETTINGS, "timeout") if n in kwargs
        }
        options["expr"] = combine_exprs(kwargs.get("expr"), expr)
        tenant = self._tenant_filter(query.filters)
        if tenant is not None:  # lets the engine search only that tenant's partitions
            options["filter"] = tenant
        if query.mode in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.HYBRID) and (
            not isinstance(query.query_str, str) or not query.query_str.strip()
        ):
            raise InvalidInputError(
                f"VectorStoreQuery.query_str is {query.query_str!r}; "
                f"{VectorStoreQueryMode(query.mode).value.upper()} queries search its "
                "words with BM25: pass the query text"
            )
        return handler(self, query, options, kwargs)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    def _search(self, embedding: Any, k: int, options: Mapping[str, Any]) -> list[Hit]:
        planned = self._engine.plan(k, options)
        if planned is None:
            return []
        return self._engine.search(np.asarray([embedding], dtype=np.float32), planned)[0]

    def _query_default(
        self, query: VectorStoreQuery, options: Mapping[str, Any], _: Mapping[str, Any]
    ) -> VectorStoreQueryResult:
        return _result(self._search(query.query_embedding, query.similarity_top_k, options))

    def _query_mmr(
        self, query: VectorStoreQuery, options: Mapping[str, Any], kwargs: Mapping[str, Any]
    ) -> VectorStoreQueryResult:
        """MMR (LlamaIndex's rule) over the funnel's top ``mmr_prefetch_k`` results."""
        k = query.similarity_top_k
        threshold = _mmr_threshold(query.mmr_threshold, kwargs.get("mmr_threshold"))
        fetch_k = _prefetch_k(k, kwargs.get("mmr_prefetch_k"), kwargs.get("mmr_prefetch_factor"))
        hits = self._search(query.query_embedding, fetch_k, options)
        if not hits:
            return _result([])
        layout = self._engine.layout
        assert layout is not None  # the search found hits
        q = self._engine.query_vectors(np.asarray([query.query_embedding]), layout)[0]
        _, picked = get_top_k_mmr_embeddings(
            q.tolist(),
            [hit.vector.tolist() for hit in hits],
            similarity_top_k=k,
            embedding_ids=list(range(len(hits))),
            mmr_threshold=threshold,
        )
        return _result([hits[i] for i in picked])

    def _query_text(
        self, query: VectorStoreQuery, options: Mapping[str, Any], _: Mapping[str, Any]
    ) -> VectorStoreQueryResult:
        """Milvus' BM25 ranking of ``query_str`` (similarities: BM25 scores)."""
        k = query.sparse_top_k or query.similarity_top_k
        planned = _hybrid.plan_text(self._engine, k, options)
        text = cast(str, query.query_str)  # query() refused a missing one
        return _result(_hybrid.text_search(self._engine, [text], planned)[0])

    def _query_hybrid(
        self, query: VectorStoreQuery, options: Mapping[str, Any], kwargs: Mapping[str, Any]
    ) -> VectorStoreQueryResult:
        """The funnel fused with BM25 (``alpha``: weighted fusion; fused scores)."""
        options = {**options, **{n: kwargs[n] for n in HYBRID_OPTIONS if n in kwargs}}
        if query.alpha is not None:
            if options.get("fusion", "weighted") != "weighted" or "weights" in options:
                raise ConfigurationError(
                    f"VectorStoreQuery.alpha={query.alpha!r} sets weighted fusion with weights "
                    "(alpha, 1 - alpha); drop fusion / weights from the options, or alpha"
                )
            alpha = query.alpha
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
                0 <= alpha <= 1
            ):
                raise ConfigurationError(
                    f"alpha={alpha!r} must be a number in [0, 1] (1: dense only, 0: BM25 "
                    "only); pass e.g. 0.5"
                )
            options.update(fusion="weighted", weights=(float(alpha), 1.0 - float(alpha)))
        if query.sparse_top_k is not None and "full_text_k" not in options:
            options["full_text_k"] = query.sparse_top_k
        k = query.hybrid_top_k or query.similarity_top_k
        planned, hp = _hybrid.plan_hybrid(self._engine, k, options)
        if planned is None:
            return _result([])
        vectors = np.asarray([query.query_embedding], dtype=np.float32)
        text = cast(str, query.query_str)  # query() refused a missing one
        return _result(_hybrid.hybrid_search(self._engine, vectors, [text], planned, hp)[0])

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _timeout(kwargs: Mapping[str, Any], where: str) -> float | None:
        """The ``timeout`` keyword of a read or delete (seconds per Milvus call)."""
        reject_unknown(kwargs, CALL_KEYWORDS["delete"], where)
        return check_timeout(kwargs.get("timeout"))

    def _has_collection(self) -> bool:
        return (self._engine.layout or self._engine.refresh()) is not None

    def _select(
        self, node_ids: list[str] | None, filters: MetadataFilters | None, where: str
    ) -> tuple[list[str] | None, str, list[str] | None] | None:
        """The nodes a get / delete names: ``(ids or None, condition, partitions)``.

        None when it names nothing (no collection yet, or ``node_ids=[]``).
        """
        if node_ids is None and filters is None:
            raise InvalidInputError(
                f"{where}() got neither node_ids nor filters; pass node_ids=[...] or "
                "filters=MetadataFilters(...) (clear() removes every node)"
            )
        has_collection = self._has_collection()  # reads its declared columns first
        condition = filters_to_expr(filters, self._engine.expressions)
        if node_ids is None and not condition:
            raise InvalidInputError(
                f"{where}() got filters with no condition; pass at least one MetadataFilter "
                "(clear() removes every node)"
            )
        ids = None if node_ids is None else list(dict.fromkeys(ids_in(node_ids)))
        if not has_collection or ids == []:
            return None
        partitions = self._engine.partitions_for(self._tenant_filter(filters))
        return ids, condition, partitions

    def _ids_expr(self, ids: Sequence[str]) -> str:
        """``pk in [...]`` for node ids (a primary-key lookup)."""
        layout = self._engine.layout
        assert layout is not None  # callers checked that the collection exists
        return ids_to_expr(layout.keys_of(ids), layout.pk)

    def _tenant_filter(self, filters: MetadataFilters | None) -> dict[str, Any] | None:
        """``{tenant key: value(s)}`` when the filters require a tenant, else None.

        A tenant is required by EQ / IN at the top level of an AND; the engine then
        searches only that tenant's partitions.
        """
        layout = self._engine.layout
        tenancy = layout.tenancy if layout is not None else None
        if tenancy is None or filters is None:
            return None
        if (filters.condition or FilterCondition.AND) != FilterCondition.AND:
            return None
        for item in filters.filters:
            if (
                isinstance(item, MetadataFilter)
                and item.key == tenancy.key
                and item.operator in (FilterOperator.EQ, FilterOperator.IN)
            ):
                return {item.key: item.value}
        return None

    def calibrate(self, query_embeddings: Any = None, **kwargs: Any) -> CalibrationResult:
        """Find and persist the cheapest funnel reaching a target recall@k.

        ``query_embeddings``: held-out query vectors ``[n, dim]`` (None: the recorded
        queries if any, else pseudo-queries drawn from the stored nodes: perturbed
        vectors, since this store has no model to embed spans of text). Keyword options
        as for :meth:`MatryoshkaMilvus.calibrate` (``k``, ``target_recall``, ...). The
        chosen settings become the defaults of every store on the collection,
        LangChain's too.
        """
        if query_embeddings is not None:
            kwargs["query_vectors"] = query_embeddings
        kwargs.setdefault("pseudo", "perturbed")
        return self._store.calibrate(None, **kwargs)

    def build_index(self) -> None:
        """Flush and index every row now; call it once at the end of a bulk ingestion."""
        self._store.build_index()

    def close(self) -> None:
        """Close the Milvus client if this store opened it."""
        self._store.close()


_MODES = {
    VectorStoreQueryMode.DEFAULT: MatryoshkaMilvusVectorStore._query_default,
    VectorStoreQueryMode.MMR: MatryoshkaMilvusVectorStore._query_mmr,
    VectorStoreQueryMode.TEXT_SEARCH: MatryoshkaMilvusVectorStore._query_text,
    VectorStoreQueryMode.HYBRID: MatryoshkaMilvusVectorStore._query_hybrid,
}


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]
