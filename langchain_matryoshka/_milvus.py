"""The Milvus adapter: the only code that talks to Milvus.

This module holds the collection layout and every data call; connecting (Lite files,
servers, timeouts, locks) lives in :mod:`._connection` and safe expression building
in :mod:`._expressions`; both are re-exported here.

Collection layout (one collection per store)::

    id        VARCHAR primary key        Document.id
    text      VARCHAR                    Document.page_content
    metadata  JSON                       Document.metadata
    head      FLOAT_VECTOR[search_dim]   L2-normalised first search_dim dims, indexed (IP)
    full      VARCHAR                    the L2-normalised full embedding as float16,
                                         base64: read back for reranking

plus two collection properties, ``matryoshka.full`` (the full vector's encoding) and
``matryoshka.dim`` (its dimension, which a VARCHAR does not carry).

How the full vector is stored was chosen by measurement (``benchmarks/storage_layouts.py``;
Milvus Lite 3.2.2, 2 cores, 100k rows, head 128 + full 768 dims, HNSW head, 256 hits with
their full vectors, 500 queries):

=========================  ===============  ======================  =====
full vector stored as      single query     batch of 32 queries     disk
                           (vs ARRAY)       (QPS vs 32 single)
=========================  ===============  ======================  =====
ARRAY<FLOAT>               1.00             3.29x                   1.00
second FLOAT_VECTOR        1.03             3.24x                   -
VARCHAR base64 float32     0.68             3.56x                   -
VARCHAR base64 float16     0.66             5.77x                   0.76
ARRAY<INT8> + scale        0.66             6.98x                   -
=========================  ===============  ======================  =====

Milvus 2.3 servers refuse a second vector field ("multiple vector fields is not
supported"), Milvus Lite refuses FLOAT16_VECTOR, and int8 changed the top-10 set for
14.6% of queries. float16 of a unit vector keeps the cosine to about 1e-4 (it changed the
top-10 set for 1 query in 500, by one document near the cut), moves a VARCHAR over the
wire that Milvus neither parses nor converts, and decodes with one ``frombuffer`` per
search. Vectors are normalised before the cast, so no component can overflow float16;
cosine scores do not change. Collections written by 0.1 (ARRAY<FLOAT>) are still read.

The head is stored normalised and searched with the inner product (= cosine), so the
index never depends on a metric normalising for us.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._connection import (  # noqa: F401 - the adapter's public names
    CONSISTENCY_LEVELS,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_LITE_URI,
    DEFAULT_TIMEOUT,
    client_is_lite,
    connect,
    consistency_level_name,
    created_by_another,
    is_lite_uri,
    lite_writes,
    with_call_limits,
)
from ._expressions import combine_exprs, filter_to_expr, ids_to_expr, quote  # noqa: F401
from .errors import ConfigurationError, SchemaError

FIELD_ID = "id"
FIELD_TEXT = "text"
FIELD_METADATA = "metadata"
FIELD_HEAD = "head"
FIELD_FULL = "full"
METRIC = "IP"

#: Longest id, in UTF-8 bytes, the primary key field holds.
ID_MAX_LENGTH = 512
#: Longest text, in UTF-8 bytes (the VARCHAR maximum).
TEXT_MAX_LENGTH = 65535
#: Largest embedding dimension (the largest ARRAY capacity Milvus allows; settings
#: matrices are stored one ARRAY row per matrix row).
MAX_DIM = 4096
#: Rows per page when exact search streams every stored vector. Each page of a Milvus Lite
#: query iterator costs about the same whatever its size (1M rows x 768 dims: 2.7 s per page
#: of 4,096 rows, 3.2 s per page of 16,384), so large pages cut a full pass about 3.4x; the
#: largest a Milvus query may return is 16,384 rows (about 50 MB of float32 at 768 dims).
SCAN_BATCH = 16384

#: Full vectors as base64 float16 in a VARCHAR (the default, see the module docstring).
STORAGE_FLOAT16 = "float16-base64"
#: Full vectors as ARRAY<FLOAT> (collections written by langchain-matryoshka 0.1).
STORAGE_ARRAY = "float32-array"
#: Largest error float16 storage adds to a cosine score: each component of a unit vector
#: is rounded by at most 2**-11 of itself (plus 2**-25 below float16's normal range),
#: and sum(|q_i| |d_i|) <= 1 for unit q and d.
FLOAT16_COSINE_ERROR = 2.0**-11 + 64 * 2.0**-25
PROPERTY_STORAGE = "matryoshka.full"
PROPERTY_DIM = "matryoshka.dim"
#: The rotation a collection was built with, and the id of its basis in the settings
#: collection: set atomically with the collection, so racing first writers agree.
PROPERTY_ROTATION = "matryoshka.rotation"
PROPERTY_BASIS = "matryoshka.basis"

# Index defaults. HNSW on the short head: small (search_dim floats + graph per row) and
# fast. Milvus Lite ignores build parameters unless they are nested under "params".
DEFAULT_INDEX_TYPE = "HNSW"
#: Index types Milvus Lite builds (others are accepted, then break or fall back).
LITE_INDEX_TYPES = ("HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "FLAT", "AUTOINDEX")
DEFAULT_INDEX_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "HNSW_SQ": {"M": 16, "efConstruction": 200, "sq_type": "SQ8"},
    "IVF_FLAT": {"nlist": 128},
    "IVF_SQ8": {"nlist": 128},
}
DEFAULT_SEARCH_PARAMS: dict[str, dict[str, Any]] = {
    "IVF_FLAT": {"nprobe": 16},
    "IVF_SQ8": {"nprobe": 16},
}


@dataclass(frozen=True)
class Layout:
    """Dimensions of a store's collection."""

    dim: int
    search_dim: int
    text_max_length: int = TEXT_MAX_LENGTH
    storage: str = STORAGE_FLOAT16


def full_max_length(dim: int) -> int:
    """Characters of a base64 float16 vector of ``dim`` components."""
    return 4 * -(-2 * dim // 3)


def encode_full(vectors: np.ndarray, storage: str) -> list[Any]:
    """Full vectors ``[n, dim]`` as the ``full`` field's values."""
    if storage == STORAGE_ARRAY:
        return vectors.tolist()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float16)
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in unit]


def decode_full(values: Sequence[Any], layout: Layout) -> np.ndarray:
    """The ``full`` field's values as float32 ``[n, dim]``."""
    if layout.storage == STORAGE_ARRAY:
        return np.asarray(values, dtype=np.float32).reshape(len(values), layout.dim)
    raw = b"".join(map(binascii.a2b_base64, values))
    return np.frombuffer(raw, dtype=np.float16).reshape(len(values), layout.dim).astype(np.float32)


def _field(desc: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for field in desc.get("fields", []):
        if field.get("name") == name:
            return field
    return None


def _expect(cond: bool, collection: str, what: str) -> None:
    if not cond:
        raise SchemaError(
            f"collection {collection!r} exists but was not written by langchain-matryoshka: "
            f"{what}; pass another collection_name, or drop_old=True to replace it"
        )


def read_layout(client: Any, collection: str) -> Layout:
    """Dimensions of an existing collection, or :class:`SchemaError` if it is foreign."""
    from pymilvus import DataType

    desc = client.describe_collection(collection)
    pk = _field(desc, FIELD_ID)
    _expect(
        pk is not None and pk.get("is_primary") and pk.get("type") == DataType.VARCHAR,
        collection,
        f"no VARCHAR primary key named {FIELD_ID!r}",
    )
    text = _field(desc, FIELD_TEXT)
    _expect(
        text is not None and text.get("type") == DataType.VARCHAR,
        collection,
        f"no VARCHAR field {FIELD_TEXT!r}",
    )
    meta = _field(desc, FIELD_METADATA)
    _expect(
        meta is not None and meta.get("type") == DataType.JSON,
        collection,
        f"no JSON field {FIELD_METADATA!r}",
    )
    head = _field(desc, FIELD_HEAD)
    _expect(
        head is not None and head.get("type") == DataType.FLOAT_VECTOR,
        collection,
        f"no FLOAT_VECTOR field {FIELD_HEAD!r}",
    )
    full = _field(desc, FIELD_FULL)
    properties = desc.get("properties") or {}
    if full is not None and full.get("type") == DataType.VARCHAR:
        storage = properties.get(PROPERTY_STORAGE)
        _expect(
            storage == STORAGE_FLOAT16 and str(properties.get(PROPERTY_DIM, "")).isdigit(),
            collection,
            f"VARCHAR field {FIELD_FULL!r} without the properties {PROPERTY_STORAGE}="
            f"{STORAGE_FLOAT16!r} and {PROPERTY_DIM}",
        )
        dim = int(properties[PROPERTY_DIM])
        _expect(
            int(full["params"].get("max_length", 0)) >= full_max_length(dim),
            collection,
            f"VARCHAR field {FIELD_FULL!r} too short for {dim} float16 values",
        )
    else:
        _expect(
            full is not None
            and full.get("type") == DataType.ARRAY
            and full.get("element_type") == DataType.FLOAT,
            collection,
            f"no VARCHAR or ARRAY<FLOAT> field {FIELD_FULL!r}",
        )
        storage = STORAGE_ARRAY
        dim = int(full["params"]["max_capacity"])
    search_dim = int(head["params"]["dim"])
    _expect(search_dim < dim, collection, f"head dim {search_dim} >= full dim {dim}")
    return Layout(
        dim=dim,
        search_dim=search_dim,
        text_max_length=int(text["params"].get("max_length", TEXT_MAX_LENGTH)),
        storage=storage,
    )


def has_index(client: Any, collection: str, field: str) -> bool:
    return field in (client.list_indexes(collection, field_name=field) or [])


def create_index(client: Any, collection: str, field: str, index_params: Any) -> None:
    """Create ``field``'s index; an index that exists once the call fails is kept.

    Building an index over rows already written takes minutes at scale (Milvus Lite,
    300k rows: 77 s for a 128-dim head, 257 s for 768 dims). During such a call Milvus
    Lite's gRPC server answers the client's keepalive pings with GOAWAY
    ("too_many_pings"); pymilvus then retries ``create_index``, and the retry fails with
    "index already exists" for the index the first call built.
    """
    try:
        client.create_index(collection, index_params)
    except Exception:
        if not has_index(client, collection, field):
            raise


def index_params_for(
    client: Any, lite: bool, index_type: str, params: Mapping[str, Any] | None
) -> Any:
    """Index parameters for the head field (IP metric, defaults per index type)."""
    build = dict(DEFAULT_INDEX_PARAMS.get(index_type, {}))
    build.update(params or {})
    index_params = client.prepare_index_params()
    # Milvus Lite honours build parameters only when nested under "params".
    index_params.add_index(
        field_name=FIELD_HEAD,
        index_type=index_type,
        metric_type=METRIC,
        params={"params": build} if lite and build else build,
    )
    return index_params


def search_params_for(
    index_type: str, params: Mapping[str, Any] | None, limit: int
) -> dict[str, Any]:
    """Search parameters for a head search of ``limit`` hits."""
    merged = dict(DEFAULT_SEARCH_PARAMS.get(index_type, {}))
    merged.update(params or {})
    if index_type.upper().startswith("HNSW"):
        # HNSW must explore at least `limit` nodes (Milvus servers refuse ef < limit).
        merged["ef"] = max(int(merged.get("ef", 64)), limit)
    return {"metric_type": METRIC, "params": merged}


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Candidates:
    """Head-search hits of a batch of queries, padded to a rectangle."""

    ids: list[list[str]]
    texts: list[list[str]] | None
    """Texts of each hit; None when the search did not bring them back."""
    metadatas: list[list[dict[str, Any]]] | None
    vectors: np.ndarray
    """``[n_queries, n_candidates, dim]`` full embeddings (zeros past ``n_valid``)."""
    n_valid: np.ndarray
    """``[n_queries]`` hits returned for each query."""


def _distinct(rows: Sequence[Mapping[str, Any]], key: str) -> Sequence[Mapping[str, Any]]:
    """``rows`` without repeated primary keys (the first of each kept).

    Milvus Lite 3.2 killed between a flush's manifest commit and its write-ahead-log
    deletion replays that log on the next open: the flushed rows then exist twice with
    the same sequence number, and search, query and count(*) return both copies until
    the rows are written again.
    """
    seen = {r[key] for r in rows}
    if len(seen) == len(rows):
        return rows
    seen = set()
    return [r for r in rows if not (r[key] in seen or seen.add(r[key]))]


def hits_to_candidates(hits: Sequence[Sequence[Mapping[str, Any]]], layout: Layout) -> Candidates:
    """Turn a Milvus search result into padded numpy candidates (one decode for all).

    A hit repeating an earlier hit's id is dropped (see :func:`_distinct`).
    """
    hits = [_distinct(query_hits, "id") for query_hits in hits]
    n_valid = np.array([len(h) for h in hits], dtype=np.int64)
    width = int(n_valid.max()) if len(hits) else 0
    vectors = np.zeros((len(hits), width, layout.dim), dtype=np.float32)
    flat = decode_full([h["entity"][FIELD_FULL] for query_hits in hits for h in query_hits], layout)
    vectors[np.arange(width) < n_valid[:, None]] = flat
    ids = [[str(h["id"]) for h in query_hits] for query_hits in hits]
    first = next((query_hits[0] for query_hits in hits if query_hits), None)
    if first is None or FIELD_TEXT not in first["entity"]:
        return Candidates(ids, None, None, vectors, n_valid)
    texts = [[h["entity"][FIELD_TEXT] for h in query_hits] for query_hits in hits]
    metas = [[h["entity"][FIELD_METADATA] or {} for h in query_hits] for query_hits in hits]
    return Candidates(ids, texts, metas, vectors, n_valid)


# ---------------------------------------------------------------------------- collection


class MilvusCollection:
    """One collection of the store's layout; every Milvus call goes through here.

    Methods are plain blocking calls on a thread-safe ``MilvusClient``; the store's
    async methods run them on a worker thread.
    """

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        lite: bool,
        consistency_level: str = "Strong",
        index_type: str = DEFAULT_INDEX_TYPE,
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = with_call_limits(client)
        self.name = name
        self.lite = lite
        self.consistency_level = consistency_level_name(consistency_level)
        if lite and str(index_type).upper() not in LITE_INDEX_TYPES:
            raise ConfigurationError(
                f"index_type={index_type!r} is not supported by Milvus Lite (it would fall "
                "back to brute force); pass one of " + ", ".join(LITE_INDEX_TYPES)
            )
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})

    # -- lifecycle
    def exists(self) -> bool:
        return bool(self.client.has_collection(self.name))

    def open(self) -> Layout | None:
        """Layout of the existing collection (indexed and loaded), or None if absent."""
        if not self.exists():
            return None
        layout = read_layout(self.client, self.name)
        if not self._has_head_index():
            self._create_head_index()
        try:
            self.client.load_collection(self.name)
        except Exception as exc:
            if not (self.lite and ".idx" in str(exc)):
                raise
            self._rebuild_index()
        return layout

    def _rebuild_index(self) -> None:
        """Drop and rebuild the head index, then load: recovers a Lite file whose index.

        Milvus Lite writes index files in place (no temporary file and rename): a process
        killed while it builds one in the background leaves it truncated, and every later
        load fails with a faiss "read error in ....idx". The rows themselves are intact;
        the index is derived from them, so dropping and rebuilding it loses nothing.
        """
        self.client.release_collection(self.name)
        self.client.drop_index(self.name, FIELD_HEAD)
        self._create_head_index()
        self.client.load_collection(self.name)

    def _has_head_index(self) -> bool:
        return has_index(self.client, self.name, FIELD_HEAD)

    def _create_head_index(self) -> None:
        create_index(
            self.client,
            self.name,
            FIELD_HEAD,
            index_params_for(self.client, self.lite, self.index_type, self.index_params),
        )

    def properties(self) -> dict[str, str]:
        """The collection's properties (the ``matryoshka.*`` keys this package sets)."""
        return dict(self.client.describe_collection(self.name).get("properties") or {})

    def create(self, layout: Layout, properties: Mapping[str, str] | None = None) -> bool:
        """Create the collection with its head index, loaded; False if another writer did.

        ``properties`` are stored with the collection in the same call: when writers
        race, the winner's are the ones every writer then reads.
        """
        from pymilvus import DataType

        if layout.dim > MAX_DIM:
            raise ConfigurationError(
                f"embedding dimension {layout.dim} exceeds the {MAX_DIM} floats a Milvus "
                "array holds; use a model with at most 4096 dimensions"
            )
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(FIELD_ID, DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
        schema.add_field(FIELD_TEXT, DataType.VARCHAR, max_length=layout.text_max_length)
        schema.add_field(FIELD_METADATA, DataType.JSON)
        schema.add_field(FIELD_HEAD, DataType.FLOAT_VECTOR, dim=layout.search_dim)
        if layout.storage == STORAGE_ARRAY:
            schema.add_field(
                FIELD_FULL, DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=layout.dim
            )
            props = dict(properties or {})
        else:
            schema.add_field(FIELD_FULL, DataType.VARCHAR, max_length=full_max_length(layout.dim))
            props = {
                **(properties or {}),
                PROPERTY_STORAGE: layout.storage,
                PROPERTY_DIM: str(layout.dim),
            }
        created = True
        try:
            self.client.create_collection(
                self.name,
                schema=schema,
                index_params=index_params_for(
                    self.client, self.lite, self.index_type, self.index_params
                ),
                consistency_level=self.consistency_level,
                properties=props,
            )
        except Exception as exc:
            if not created_by_another(self.client, self.name, exc):
                raise
            created = False
            # Another writer (a second store, another process on a server) won the race
            # to create it: write into theirs if it has the same layout.
            existing = read_layout(self.client, self.name)
            if existing != layout:
                raise SchemaError(
                    f"collection {self.name!r} was created at the same time by another writer "
                    f"with {existing} instead of {layout}; open the store again to use it, "
                    "or pass another collection_name"
                ) from None
        self.client.load_collection(self.name)
        return created

    def drop(self) -> None:
        if self.exists():
            self.client.drop_collection(self.name)

    # -- writes
    def upsert(self, rows: list[dict[str, Any]], batch_size: int, progress: bool = False) -> None:
        starts = range(0, len(rows), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"writing to {self.name}", unit="batch")
        with lite_writes(self.lite, self.name):
            for start in starts:
                self.client.upsert(self.name, rows[start : start + batch_size])
            if self.lite and rows:
                # Milvus Lite re-snapshots unflushed rows on every search; flushing keeps
                # searches at their floor and lets the index build.
                self.client.flush(self.name)

    def build_index(self) -> None:
        """Flush, then release and reload so the head index covers every row now.

        Milvus Lite builds indexes in the background after a flush and searches by
        brute force until they finish; reloading forces the build (measured: 60k rows,
        456 ms per search before, 37 ms after).
        """
        with lite_writes(self.lite, self.name):
            self.client.flush(self.name)
        self.client.release_collection(self.name)
        self.client.load_collection(self.name)

    def delete(self, ids: Sequence[str] | None = None, expr: str = "") -> None:
        with lite_writes(self.lite, self.name):
            if ids is not None:
                if ids:
                    # pymilvus' ids= quotes string keys without escaping them: an id holding
                    # a quote could rewrite the expression (and delete other rows).
                    self.client.delete(self.name, filter=ids_to_expr(ids))
            elif expr:
                self.client.delete(self.name, filter=expr)

    # -- reads
    def get(
        self, ids: Sequence[str], with_vectors: bool = False, chunk: int = 1024
    ) -> list[dict[str, Any]]:
        """Rows with these ids (missing ones skipped), ``chunk`` ids per query.

        A query on ``id in [...]`` is a primary-key lookup: its cost grows with the
        ids asked for, not with the collection (Milvus Lite serves it from its pk index).
        """
        fields = [FIELD_TEXT, FIELD_METADATA] + ([FIELD_FULL] if with_vectors else [])
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), chunk):
            rows.extend(
                self.client.query(
                    self.name,
                    filter=ids_to_expr(ids[start : start + chunk]),
                    output_fields=fields,
                    consistency_level=self.consistency_level,
                )
            )
        return list(_distinct(rows, FIELD_ID))

    def query(self, expr: str, limit: int | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"limit": limit} if limit else {}
        # Milvus servers refuse an empty filter without a limit; this one matches all.
        rows = self.client.query(
            self.name,
            filter=expr or f'{FIELD_ID} != ""',
            output_fields=[FIELD_TEXT, FIELD_METADATA],
            consistency_level=self.consistency_level,
            **kwargs,
        )
        return list(_distinct(rows, FIELD_ID))

    def count(self) -> int:
        rows = self.client.query(
            self.name,
            filter="",
            output_fields=["count(*)"],
            consistency_level=self.consistency_level,
        )
        return int(rows[0]["count(*)"])

    def search(self, heads: np.ndarray, limit: int, expr: str, with_documents: bool = True) -> Any:
        """One head search for all queries, bringing back what reranking needs.

        With ``with_documents`` the hits carry their texts and metadata too; else only
        their ids and full vectors. Returns Milvus' raw hits; :func:`hits_to_candidates`
        turns them into arrays.
        """
        fields = [FIELD_TEXT, FIELD_METADATA, FIELD_FULL] if with_documents else [FIELD_FULL]
        return self.client.search(
            self.name,
            data=heads.tolist(),
            anns_field=FIELD_HEAD,
            limit=limit,
            filter=expr,
            output_fields=fields,
            search_params=search_params_for(self.index_type, self.search_params, limit),
            consistency_level=self.consistency_level,
        )

    def iterate_vectors(
        self, layout: Layout, batch_size: int = SCAN_BATCH
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every row's id and full vector, ``batch_size`` rows at a time (bounded memory)."""
        iterator = self.client.query_iterator(
            self.name, batch_size=batch_size, filter="", output_fields=[FIELD_FULL]
        )
        try:
            while True:
                batch = _distinct(iterator.next(), FIELD_ID)
                if not batch:
                    return
                yield (
                    [str(r[FIELD_ID]) for r in batch],
                    decode_full([r[FIELD_FULL] for r in batch], layout),
                )
        finally:
            iterator.close()

    def all_ids(self, batch_size: int = 16384) -> list[str]:
        """Every row's id."""
        iterator = self.client.query_iterator(
            self.name, batch_size=batch_size, filter="", output_fields=[FIELD_ID]
        )
        ids: list[str] = []
        try:
            while True:
                batch = _distinct(iterator.next(), FIELD_ID)
                if not batch:
                    return ids
                ids.extend(str(r[FIELD_ID]) for r in batch)
        finally:
            iterator.close()


def make_rows(
    ids: Iterable[str],
    texts: Iterable[str],
    metadatas: Iterable[dict[str, Any]],
    heads: np.ndarray,
    vectors: np.ndarray,
    layout: Layout,
) -> list[dict[str, Any]]:
    """Rows in the collection's layout."""
    return [
        {
            FIELD_ID: i,
            FIELD_TEXT: t,
            FIELD_METADATA: m,
            FIELD_HEAD: h,
            FIELD_FULL: v,
        }
        for i, t, m, h, v in zip(
            ids, texts, metadatas, heads.tolist(), encode_full(vectors, layout.storage)
        )
    ]


# ---------------------------------------------------------------------------- settings

META_SUFFIX = "_mrl_meta"
_META_KEY = "key"
_META_VALUE = "value"
_META_ROW = "row"
_META_DUMMY = "dummy"  # Milvus wants a vector field in every collection
_CONFIG_KEY = "config"


class MetaCollection:
    """Settings stored beside a store's collection: ``<name>_mrl_meta``.

    Holds a JSON config row (funnel defaults, rotation, calibration) and matrices
    (the rotation basis) as one ARRAY<FLOAT> row per matrix row, so a reopened store,
    another process or a server client sees exactly what was written.
    """

    def __init__(self, client: Any, name: str, *, lite: bool, consistency_level: str) -> None:
        self.client = with_call_limits(client)
        self.name = name + META_SUFFIX
        self.lite = lite
        self.consistency_level = consistency_level_name(consistency_level)

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.name))

    def drop(self) -> None:
        if self.exists():
            self.client.drop_collection(self.name)

    def _ensure(self) -> None:
        from pymilvus import DataType

        if self.exists():
            self.client.load_collection(self.name)
            return
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_META_KEY, DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field(_META_VALUE, DataType.JSON)
        schema.add_field(
            _META_ROW, DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=MAX_DIM
        )
        schema.add_field(_META_DUMMY, DataType.FLOAT_VECTOR, dim=2)
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name=_META_DUMMY, index_type="FLAT", metric_type="L2")
        try:
            self.client.create_collection(
                self.name,
                schema=schema,
                index_params=index_params,
                consistency_level=self.consistency_level,
            )
        except Exception as exc:
            if not created_by_another(self.client, self.name, exc):
                raise
        self.client.load_collection(self.name)

    def _row(self, key: str, value: Any, row: Sequence[float] = ()) -> dict[str, Any]:
        return {_META_KEY: key, _META_VALUE: value, _META_ROW: list(row), _META_DUMMY: [0.0, 0.0]}

    def read_config(self) -> dict[str, Any]:
        """The stored config, or {} when nothing was stored."""
        if not self.exists():
            return {}
        self.client.load_collection(self.name)
        rows = self.client.get(self.name, ids=[_CONFIG_KEY], output_fields=[_META_VALUE])
        return dict(rows[0][_META_VALUE]) if rows else {}

    def write_config(self, config: Mapping[str, Any]) -> None:
        self._ensure()
        with lite_writes(self.lite, self.name):
            self.client.upsert(self.name, [self._row(_CONFIG_KEY, dict(config))])
            if self.lite:
                self.client.flush(self.name)

    def write_matrix(self, key: str, matrix: np.ndarray) -> None:
        """Store a 2-D float matrix under ``key`` (one row per matrix row)."""
        self._ensure()
        rows = [self._row(f"{key}/{i:05d}", {"i": i}, r) for i, r in enumerate(matrix.tolist())]
        with lite_writes(self.lite, self.name):
            for start in range(0, len(rows), 256):
                self.client.upsert(self.name, rows[start : start + 256])
            if self.lite:
                self.client.flush(self.name)

    def delete_matrix(self, key: str, n_rows: int) -> None:
        """Remove the matrix stored under ``key`` (missing rows are fine)."""
        ids = [f"{key}/{i:05d}" for i in range(n_rows)]
        with lite_writes(self.lite, self.name):
            for start in range(0, n_rows, 256):
                self.client.delete(
                    self.name, filter=ids_to_expr(ids[start : start + 256], _META_KEY)
                )

    def read_matrix(self, key: str, n_rows: int) -> np.ndarray:
        """The matrix stored under ``key``; :class:`SchemaError` if rows are missing."""
        ids = [f"{key}/{i:05d}" for i in range(n_rows)]
        found: dict[str, list[float]] = {}
        for start in range(0, n_rows, 256):
            for r in self.client.get(
                self.name, ids=ids[start : start + 256], output_fields=[_META_ROW]
            ):
                found[str(r[_META_KEY])] = r[_META_ROW]
        missing = [i for i in ids if i not in found]
        if missing:
            raise SchemaError(
                f"collection {self.name!r} lacks {len(missing)} rows of {key!r} "
                f"(first: {missing[0]!r}); rebuild the store with drop_old=True"
            )
        return np.asarray([found[i] for i in ids], dtype=np.float32)
