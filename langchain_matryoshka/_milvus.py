"""The Milvus adapter: the only code that talks to Milvus.

This module holds every data call on a store's collection (the settings collection
beside it: :mod:`._meta`); the collection layout (fields, versions, row encoding) lives in
:mod:`._layout`, connecting (Lite files, servers, timeouts, locks) in
:mod:`._connection` and safe expression building in :mod:`._expressions`.

Methods are plain blocking calls on a thread-safe ``MilvusClient``; the store's async
methods run them on a worker thread. Why the layout is what it is, measured:
``docs/storage.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._candidates import Candidates, hits_to_candidates  # noqa: F401
from ._connection import (  # noqa: F401 - the adapter's public names
    CONSISTENCY_LEVELS,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_INDEX_TIMEOUT,
    DEFAULT_LITE_URI,
    DEFAULT_TIMEOUT,
    Connection,
    as_connection,
    client_is_lite,
    connect,
    consistency_level_name,
    created_by_another,
    is_lite_uri,
    lite_writes,
)
from ._consistency import Session
from ._expressions import combine_exprs, filter_to_expr, ids_to_expr, quote  # noqa: F401
from ._index_upkeep import IndexUpkeep, _partial_index
from ._indexes import (  # noqa: F401 - the adapter's public names
    DEFAULT_INDEX_PARAMS,
    DEFAULT_INDEX_TYPE,
    DEFAULT_SEARCH_PARAMS,
    LITE_INDEX_TYPES,
    Backend,
    backend_of,
    build_params,
    create_index,
    has_index,
    index_new_collection,
    index_params_for,
    read_head_index,
    search_params_for,
    wait_until_indexed_by_creator,
)
from ._layout import (  # noqa: F401 - the adapter's public names
    FIELD_FULL,
    FIELD_HEAD,
    FIELD_ID,
    FIELD_METADATA,
    FIELD_PK,
    FIELD_SPARSE,
    FIELD_TEXT,
    FLOAT16_COSINE_ERROR,
    ID_MAX_LENGTH,
    MAX_DIM,
    METRIC,
    PROPERTY_BASIS,
    PROPERTY_DIM,
    PROPERTY_LAYOUT,
    PROPERTY_ROTATION,
    PROPERTY_STORAGE,
    STORAGE_ARRAY,
    STORAGE_FLOAT16,
    TENANCY_PARTITION_KEY,
    TENANCY_PARTITIONS,
    TEXT_MAX_LENGTH,
    Layout,
    decode_full,
    encode_full,
    full_max_length,
    make_rows,
)
from ._meta import META_SUFFIX, MetaCollection  # noqa: F401 - the adapter's public names
from ._reads_adapter import (  # noqa: F401
    OWN_FIELDS,
    QUERY_WINDOW,
    ConditionReads,
    call_timeout,
)
from ._reads_adapter import distinct as _distinct
from ._schema import build_schema, layout_properties, read_layout
from ._text_search import TextSearch
from .errors import ConfigurationError, InvalidInputError, SchemaError

#: Rows per page when exact search streams every stored vector. Each page of a Milvus Lite
#: query iterator costs about the same whatever its size (1M rows x 768 dims: 2.7 s per page
#: of 4,096 rows, 3.2 s per page of 16,384), so large pages cut a full pass about 3.4x; the
#: largest a Milvus query may return is 16,384 rows (about 50 MB of float32 at 768 dims).
SCAN_BATCH = 16384

#: Bytes one search response may take. Milvus Lite refuses to send a message over 256 MB
#: (809 queries x 512 candidates of 384 dims would take 326 MB: about 790 bytes per hit
#: of a 512-character vector); a batch that would pass this is split into calls.
SEARCH_RESPONSE_BUDGET = 64 * 2**20


def _hit_bytes(layout: Layout, with_documents: bool) -> int:
    """A generous estimate of one hit's share of a search response (texts: up to 8 KB)."""
    full = full_max_length(layout.dim) if layout.storage == STORAGE_FLOAT16 else 8 * layout.dim
    return 2 * (full + 128) + (8192 if with_documents else 0)

def _partition_kwargs(partitions: Sequence[str] | None) -> dict[str, Any]:
    return {} if partitions is None else {"partition_names": list(partitions)}


# ---------------------------------------------------------------------------- collection


class MilvusCollection(IndexUpkeep, ConditionReads, TextSearch):
    """One collection of the store's layout; every Milvus call goes through here.

    :attr:`layout` is the collection's, known once it was opened or created.
    """

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        lite: bool,
        consistency_level: str = "Session",
        index_type: str | None = None,
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.connection = as_connection(client)
        self.client = self.connection.calls
        self.name = name
        self.lite = lite
        self.consistency_level = consistency_level_name(consistency_level)
        self.session = Session(self.connection, self.consistency_level)
        if lite and index_type is not None and str(index_type).upper() not in LITE_INDEX_TYPES:
            raise ConfigurationError(
                f"index_type={index_type!r} is not supported by Milvus Lite (it would fall "
                "back to brute force); pass one of " + ", ".join(LITE_INDEX_TYPES)
            )
        #: The head index's type: the one passed, else the existing collection's, else HNSW.
        self.index_type = str(index_type or DEFAULT_INDEX_TYPE).upper()
        self.explicit_index_type = index_type is not None
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        #: Head search parameters calibrated for this index type (``nprobe``), persisted
        #: with the store's settings; ``search_params`` passed to the constructor win.
        self.calibrated_search_params: dict[str, Any] = {}
        self.layout: Layout | None = None
        self._backend: Backend | None = None
        self._partitions: set[str] = set()  # store-managed partitions known to exist

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = backend_of(self.client, self.lite)
        return self._backend

    # -- lifecycle
    def exists(self) -> bool:
        return bool(self.client.has_collection(self.name))

    def open(self) -> Layout | None:
        """Layout of the existing collection (indexed and loaded), or None if absent."""
        if not self.exists():
            return None
        layout = read_layout(self.client.describe_collection(self.name), self.name)
        existing = read_head_index(self.client, self.name)
        if existing is None:
            self._create_head_index(layout)
        else:
            self._adopt(*existing)
        try:
            self.client.load_collection(self.name)
        except Exception as exc:
            if not (self.lite and _partial_index(exc)):
                raise
            self._rebuild_index()
        self._opened(layout)
        return layout

    def _adopt(self, index_type: str, params: dict[str, Any]) -> None:
        """Search the head index the collection has (its type sets the search parameters)."""
        if self.explicit_index_type and index_type != self.index_type:
            raise ConfigurationError(
                f"index_type={self.index_type!r} was passed but collection {self.name!r} "
                f"has a {index_type} head index; omit index_type to use it, or call "
                f"store.rebuild_head_index({self.index_type!r}) to replace it"
            )
        self.index_type, self.index_params = index_type, params

    def head_search_params(self, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Head search parameters: calibrated, then the constructor's, then ``override``."""
        return {**self.calibrated_search_params, **self.search_params, **(override or {})}

    def _opened(self, layout: Layout) -> None:
        self.layout = layout
        if layout.tenancy is not None and layout.tenancy.mode == TENANCY_PARTITIONS:
            self._partitions = set(self.client.list_partitions(self.name))

    def properties(self) -> dict[str, str]:
        """The collection's properties (the ``matryoshka.*`` keys this package sets)."""
        return dict(self.client.describe_collection(self.name).get("properties") or {})

    def create(self, layout: Layout, properties: Mapping[str, str] | None = None) -> bool:
        """Create the collection with its indexes, loaded; False if another writer did.

        ``properties`` are stored with the collection in the same call: when writers
        race, the winner's are the ones every writer then reads.
        """
        if layout.dim > MAX_DIM:
            raise ConfigurationError(
                f"embedding dimension {layout.dim} exceeds the {MAX_DIM} floats a Milvus "
                "array holds; use a model with at most 4096 dimensions"
            )
        created = True
        try:
            self.client.create_collection(
                self.name,
                schema=build_schema(layout),
                consistency_level=self.consistency_level,
                properties={**(properties or {}), **layout_properties(layout)},
                **(
                    {"num_partitions": layout.tenancy.partitions}
                    if layout.tenancy is not None and layout.tenancy.mode != TENANCY_PARTITIONS
                    else {}
                ),
            )
        except Exception as exc:
            if not created_by_another(self.client, self.name, exc):
                raise
            created = False
            # Another writer (a second store, another process on a server) won the race
            # to create it: write into theirs if it has the same layout.
            existing = read_layout(self.client.describe_collection(self.name), self.name)
            if existing != layout:
                raise SchemaError(
                    f"collection {self.name!r} was created at the same time by another writer "
                    f"with {existing} instead of {layout}; open the store again to use it, "
                    "or pass another collection_name"
                ) from None
            wait_until_indexed_by_creator(self.client, self.name, FIELD_HEAD)
        else:
            index_new_collection(self.client, self.name, self._index_params(layout))
        self.client.load_collection(self.name)
        self._opened(layout)
        return created

    def drop(self) -> None:
        if self.exists():
            self.client.drop_collection(self.name)
        self.layout = None
        self._partitions = set()

    # -- writes
    def _require(self) -> Layout:
        if self.layout is None and self.open() is None:
            raise InvalidInputError(f"collection {self.name!r} is empty; add documents first")
        assert self.layout is not None  # open() set it
        return self.layout

    def upsert(
        self,
        rows: list[dict[str, Any]],
        batch_size: int,
        progress: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Write rows (replacing rows with the same ids), then flush on Milvus Lite.

        Version 3 keys are 64-bit hashes of the ids: a call whose ids collide with each
        other or with a stored row of another id is refused before anything is written.
        In store-managed tenant partitions each row goes to its tenant's partition. A
        document whose tenant changed is deleted first: Milvus Lite's query() and get()
        return only the latest row of a primary key across partitions, but a search
        confined to the old partition still returns the old row there (measured), and a
        delete by primary key removes every version whatever ``partition_name`` says. A
        process killed between that delete and the upsert leaves the moved document out
        until it is written again (the call was not acknowledged; the indexing API and a
        re-run both write it again). With a server's partition key, every stored row of
        the call's ids is deleted first and the rows inserted (below), with the same
        caveat.
        """
        layout = self._require()
        keyed = layout.tenancy is not None and layout.tenancy.mode == TENANCY_PARTITION_KEY
        if keyed:  # inserted, not upserted (below): one row per key, the last one given
            rows = list({row[FIELD_PK]: row for row in rows}.values())
        groups = self._by_partition(rows, layout)
        starts = [(p, s) for p, part in groups.items() for s in range(0, len(part), batch_size)]
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"writing to {self.name}", unit="batch")
        t = call_timeout(timeout)
        # Milvus 2.3.5 ignores the partition key on upsert (measured: a tenant's count
        # found 42 of its 300 rows); with a partition key, stored rows of these ids are
        # deleted and the rows inserted.
        with lite_writes(self.lite, self.name, self.connection.uri), \
                self._call("upsert", timeout=timeout), self.session.writing():
            moved, stored = self._check_keys(rows, layout, t) if layout.version >= 3 else ([], [])
            stale = stored if keyed else moved
            for start in range(0, len(stale), 1024):
                self.client.delete(
                    self.name, filter=ids_to_expr(stale[start : start + 1024], FIELD_PK), **t
                )
            self._ensure_partitions([p for p in groups if p is not None])
            write = self.client.insert if keyed else self.client.upsert
            for partition, start in starts:
                batch = groups[partition][start : start + batch_size]
                kwargs = {} if partition is None else {"partition_name": partition}
                write(self.name, batch, **kwargs, **t)
            if self.lite and rows:
                # Milvus Lite re-snapshots unflushed rows on every search; flushing keeps
                # searches at their floor and lets the index build.
                self.client.flush(self.name, **t)

    def _by_partition(
        self, rows: list[dict[str, Any]], layout: Layout
    ) -> dict[str | None, list[dict[str, Any]]]:
        tenancy = layout.tenancy
        if tenancy is None or tenancy.mode != TENANCY_PARTITIONS:
            return {None: rows}
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tenancy.partition_of(row[tenancy.key]), []).append(row)
        return groups

    def _ensure_partitions(self, names: Sequence[str]) -> None:
        for name in names:
            if name not in self._partitions:
                if not self.client.has_partition(self.name, name):
                    self.client.create_partition(self.name, name)
                self._partitions.add(name)

    def _check_keys(
        self, rows: list[dict[str, Any]], layout: Layout, t: Mapping[str, float]
    ) -> tuple[list[int], list[int]]:
        """Refuse colliding keys; return the moved documents' keys and the stored keys.

        Moved: documents whose tenant partition changed.

        Ids that collide with each other, or with a stored row of another id, are refused.
        """
        wanted: dict[int, dict[str, Any]] = {}
        for row in rows:
            other = wanted.setdefault(row[FIELD_PK], row)
            if other[FIELD_ID] != row[FIELD_ID]:
                raise _collision(other[FIELD_ID], row[FIELD_ID])
        tenancy = layout.tenancy
        managed = tenancy is not None and tenancy.mode == TENANCY_PARTITIONS
        fields = [FIELD_ID] + ([tenancy.key] if managed and tenancy is not None else [])
        keys = list(wanted)
        moved, stored = [], []
        for start in range(0, len(keys), 1024):
            found = self.client.query(
                self.name,
                filter=ids_to_expr(keys[start : start + 1024], FIELD_PK),
                output_fields=fields,
                **self.session.read_kwargs(t.get("timeout")),
                **t,
            )
            for row in found:
                new = wanted[row[FIELD_PK]]
                if row[FIELD_ID] != new[FIELD_ID]:
                    raise _collision(row[FIELD_ID], new[FIELD_ID])
                if managed and tenancy is not None and tenancy.partition_of(
                    row[tenancy.key]
                ) != tenancy.partition_of(
                    new[tenancy.key]
                ):
                    moved.append(row[FIELD_PK])
                stored.append(row[FIELD_PK])
        return moved, stored

    def delete(
        self,
        ids: Sequence[str] | None = None,
        expr: str = "",
        partitions: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> None:
        layout = self._require()
        t = call_timeout(timeout)
        with lite_writes(self.lite, self.name, self.connection.uri), \
                self._call("delete", expr, timeout), self.session.writing():
            if ids is not None:
                if ids:
                    # pymilvus' ids= quotes string keys without escaping them: an id holding
                    # a quote could rewrite the expression (and delete other rows).
                    for start in range(0, len(ids), 1024):
                        keys = layout.keys_of(ids[start : start + 1024])
                        self.client.delete(self.name, filter=ids_to_expr(keys, layout.pk), **t)
            elif expr:
                for partition in partitions if partitions is not None else [None]:
                    kwargs = {} if partition is None else {"partition_name": partition}
                    if partition is None or partition in self._partitions:
                        self.client.delete(self.name, filter=expr, **kwargs, **t)

    # -- reads
    def get(
        self,
        ids: Sequence[str],
        with_vectors: bool = False,
        chunk: int = 1024,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Rows with these ids (missing ones skipped), ``chunk`` ids per query.

        A query on the primary key is a lookup: its cost grows with the ids asked for,
        not with the collection (Milvus Lite serves it from its pk index).
        """
        layout = self._require()
        fields = layout.document_fields() + ([FIELD_FULL] if with_vectors else [])
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            with self._call("get", timeout=timeout):
                found = self.client.query(
                    self.name,
                    filter=ids_to_expr(layout.keys_of(part), layout.pk),
                    output_fields=fields,
                    **self.session.read_kwargs(timeout),
                    **call_timeout(timeout),
                )
            if layout.version >= 3:
                asked = set(part)
                found = [r for r in found if r[FIELD_ID] in asked]
            rows.extend(found)
        return list(_distinct(rows, FIELD_ID))

    def query(
        self,
        expr: str,
        limit: int | None = None,
        partitions: Sequence[str] | None = None,
        offset: int = 0,
        timeout: float | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching ``expr`` (all rows for an empty one), with document fields.

        ``offset + limit`` may not exceed :data:`QUERY_WINDOW`; ``fields``: these
        instead of the document fields.
        """
        layout = self._require()
        partitions = self._existing(partitions)
        if partitions == []:
            return []
        kwargs: dict[str, Any] = {"limit": limit} if limit else {}
        if offset:
            kwargs["offset"] = offset
        # Milvus servers refuse an empty filter without a limit; this one matches all.
        with self._call("query", expr, timeout):
            rows = self.client.query(
                self.name,
                filter=expr or f'{FIELD_ID} != ""',
                output_fields=list(fields) if fields else layout.document_fields(),
                **self.session.read_kwargs(timeout),
                **_partition_kwargs(partitions),
                **kwargs,
                **call_timeout(timeout),
            )
        return list(_distinct(rows, FIELD_ID))

    def count(
        self,
        expr: str = "",
        partitions: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> int:
        partitions = self._existing(partitions)
        if partitions == []:
            return 0
        with self._call("count", expr, timeout):
            rows = self.client.query(
                self.name,
                filter=expr,
                output_fields=["count(*)"],
                **self.session.read_kwargs(timeout),
                **_partition_kwargs(partitions),
                **call_timeout(timeout),
            )
        return int(rows[0]["count(*)"])

    def _existing(self, partitions: Sequence[str] | None) -> list[str] | None:
        """Of store-managed partitions, those that exist (searching others is an error)."""
        return None if partitions is None else [p for p in partitions if p in self._partitions]

    def search(
        self,
        heads: np.ndarray,
        limit: int,
        expr: str,
        with_documents: bool = True,
        partitions: Sequence[str] | None = None,
        timeout: float | None = None,
        ef: int | None = None,
        head_params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One head search for all queries, bringing back what reranking needs.

        With ``with_documents`` the hits carry their texts and metadata too; else only
        their ids and full vectors. Returns Milvus' raw hits; :func:`hits_to_candidates`
        turns them into arrays. ``partitions``: search only these; ``ef``: at least
        this HNSW exploration (filtered searches, see :mod:`._filtered`);
        ``head_params``: search parameters of this search only (calibration's sweeps).
        A batch whose response would pass :data:`SEARCH_RESPONSE_BUDGET` takes several
        calls, each for as many queries as fit.
        """
        layout = self._require()
        partitions = self._existing(partitions)
        if partitions == []:
            return [[] for _ in range(len(heads))]
        if with_documents:
            fields = [*layout.document_fields(), FIELD_FULL]
        else:
            fields = ([FIELD_ID] if layout.version >= 3 else []) + [FIELD_FULL]
        per_call = max(1, SEARCH_RESPONSE_BUDGET // (limit * _hit_bytes(layout, with_documents)))
        params = search_params_for(self.index_type, self.head_search_params(head_params), limit, ef)
        hits: list[Any] = []
        for start in range(0, len(heads), per_call):
            with self._call("search", expr, timeout):
                found = self.client.search(
                    self.name,
                    data=heads[start : start + per_call].tolist(),
                    anns_field=FIELD_HEAD,
                    limit=limit,
                    filter=expr,
                    output_fields=fields,
                    search_params=params,
                    **self.session.read_kwargs(timeout, "search"),
                    **_partition_kwargs(partitions),
                    **call_timeout(timeout),
                )
            if len(heads) <= per_call:
                return found
            hits.extend(found)
        return hits

    def all_ids(self, batch_size: int = 16384) -> list[str]:
        """Every row's id."""
        with self._call("query_iterator"):
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


def _collision(first: str, second: str) -> InvalidInputError:
    return InvalidInputError(
        f"ids {first!r} and {second!r} map to the same 64-bit key of this collection (a hash "
        "collision, about one in 10^19 per pair); rename one of them, e.g. add a suffix"
    )
