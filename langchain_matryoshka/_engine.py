"""The store's sync core: state, writes and the funnel search, shared by sync and async.

``MatryoshkaMilvus`` (LangChain API), its async methods and the LlamaIndex store call
these plain blocking methods; async ones run them on a worker thread. Every decision
lives here once: collection creation and rotation here, planning, the head search,
reranking and filtered routing in :mod:`._engine_search`, reads and deletes by id or
condition in :mod:`._engine_reads`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _filtered, _layout, _milvus
from ._engine_reads import ReadMethods
from ._engine_search import (  # noqa: F401 - re-exported: the store and adapters import them
    FUNNEL_SETTINGS,
    SEARCH_OPTIONS,
    Hit,
    Planned,
    SearchMethods,
    mmr_documents,
    pairs,
)
from ._expressions import Expressions
from .errors import ConfigurationError, DimensionMismatchError, InvalidInputError
from .funnel import (
    check_vectors,
    default_search_dim,
    head_of,
    make_plan,
    validate_search_dim,
)
from .rotation import check_orthogonal, fit_pca_rotation, rotate

ROTATIONS = (None, "pca")
#: When texts and metadata come back: with every candidate of the head search, or
#: for the final documents only, with a primary-key lookup after the rerank. "auto"
#: picks the faster one: after the rerank on Milvus Lite, where a pk lookup costs a few
#: ms and bringing 256 candidates' texts back costs much more (20k rows, 1.5 KB texts:
#: 44 ms per search with texts, 18 ms without, 3 ms for the lookup); with the
#: candidates on servers, where a read at "Strong" consistency (or the first read after
#: this store's own write at the default "Session") waits about 200 ms (Milvus 2.3), so a
#: second read could double the latency.
FETCH_DOCUMENTS = ("auto", "with_candidates", "after_rerank")
_ROTATION_KEY = "rotation"
_HEAD_KEY = "head_index"



class Engine(SearchMethods, ReadMethods):
    """Collection, settings collection, dimensions, rotation and funnel defaults."""

    def __init__(
        self,
        collection: _milvus.MilvusCollection,
        meta: _milvus.MetaCollection,
        *,
        search_dim: int | None,
        defaults: Mapping[str, Any],
        text_max_length: int,
        batch_size: int,
        rotation: str | None,
        rotation_sample: int,
        show_progress: bool = False,
        fetch_documents: str = "auto",
        declared: _layout.Declared | None = None,
    ) -> None:
        if rotation not in ROTATIONS:
            raise ConfigurationError(
                f"rotation={rotation!r} is not supported; pass rotation='pca' (fit an "
                "orthogonal basis on the documents) or None"
            )
        if fetch_documents not in FETCH_DOCUMENTS:
            raise ConfigurationError(
                f"fetch_documents={fetch_documents!r} is not supported; pass one of "
                + ", ".join(repr(f) for f in FETCH_DOCUMENTS)
            )
        self.collection = collection
        self.meta = meta
        self.fetch_after_rerank = fetch_documents == "after_rerank" or (
            fetch_documents == "auto" and collection.lite
        )
        self.requested_search_dim = (
            None if search_dim is None else validate_search_dim(search_dim, None)
        )
        self.explicit = {k: v for k, v in defaults.items() if v is not None}
        self.text_max_length = text_max_length
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.rotation = rotation
        self.rotation_sample = rotation_sample
        self.lock = threading.Lock()
        self.declared = declared or _layout.Declared()
        #: Builds this store's filter expressions (declared columns, JSON paths).
        self.expressions = Expressions(
            {f.name: f.kind for f in self.declared.fields},
            nullable=[f.name for f in self.declared.fields if f.nullable],
            native_unknown=collection.lite,
        )
        #: Filtered searches matching at most this many rows rank them exactly (0: never).
        self.exact_rows = _filtered.EXACT_ROWS
        #: Counts of matching rows that route filtered searches (cleared on writes).
        self.counts = _filtered.CountCache()
        #: Rows of selective filters (Milvus Lite only; cleared on writes).
        self.rows = _filtered.RowsCache() if collection.lite else None
        self.basis: np.ndarray | None = None
        self.config: dict[str, Any] = {}
        #: The query sample (``record_queries=N``), set by the store; None: not recording.
        self.query_log: Any = None
        self.layout = collection.open()
        if self.layout is not None:
            self._load(self.layout)

    # ------------------------------------------------------------------ state

    def _load(self, layout: _milvus.Layout) -> None:
        """Read the dims check, stored settings and rotation of an existing collection."""
        name = self.collection.name
        if self.requested_search_dim not in (None, layout.search_dim):
            raise DimensionMismatchError(
                f"collection {name!r} indexes a {layout.search_dim}-dim head but "
                f"search_dim={self.requested_search_dim} was passed; omit search_dim, pass "
                "the collection's, or use drop_old=True to rebuild"
            )
        self._check_declared(layout)
        self.expressions = layout.expressions(self.collection.lite)
        self.config = self.meta.read_config()
        self._adopt_head_settings()
        properties = self.collection.properties()
        # The collection's properties name its rotation and basis (set when it was
        # created); collections from 0.1 name them in the settings config only.
        stored_rotation = properties.get(_milvus.PROPERTY_ROTATION, self.config.get(_ROTATION_KEY))
        if self.rotation is not None and stored_rotation != self.rotation:
            raise ConfigurationError(
                f"rotation={self.rotation!r} was passed but collection {name!r} was built "
                f"with rotation={stored_rotation!r}; omit rotation to use the stored one, "
                "or use drop_old=True to rebuild"
            )
        if stored_rotation is not None:
            basis = self.meta.read_matrix(_basis_key(properties), layout.dim)
            check_orthogonal(basis)
            self.basis = basis
        self.check_defaults(layout)

    def _check_declared(self, layout: _milvus.Layout) -> None:
        """A declaration passed to the constructor must be the collection's own."""
        declared, name = self.declared, self.collection.name
        if declared.empty:
            return
        if layout.version < 3:
            raise ConfigurationError(
                f"collection {name!r} was written by langchain-matryoshka 0.{layout.version} "
                "and has no declared metadata fields, tenants or full-text field; omit "
                "metadata_fields / partition_key / full_text_search to use it as it is, or "
                "rebuild it with drop_old=True"
            )
        stored = ", ".join(f"{f.name}: {f.kind}" for f in layout.fields) or "none"
        if declared.fields and not _layout.same_declaration(layout.fields, declared.fields):
            raise ConfigurationError(
                f"collection {name!r} declares metadata_fields {{{stored}}}, not "
                f"{{{', '.join(f'{f.name}: {f.kind}' for f in declared.fields)}}}; omit "
                "metadata_fields to use the stored ones, or rebuild with drop_old=True"
            )
        key = layout.tenancy.key if layout.tenancy else None
        if declared.partition_key is not None and declared.partition_key != key:
            raise ConfigurationError(
                f"partition_key={declared.partition_key!r} was passed but collection {name!r} "
                f"has partition key {key!r}; omit partition_key, or rebuild with drop_old=True"
            )
        if declared.full_text is not None and layout.full_text is None:
            raise ConfigurationError(
                f"full_text_search=True was passed but collection {name!r} was created "
                "without a full-text field; rebuild it with drop_old=True (and "
                "full_text_search=True) to search it by keywords"
            )

    def refresh(self) -> _milvus.Layout | None:
        """Open the collection if another store or process has created it since."""
        with self.lock:
            if self.layout is None:
                layout = self.collection.open()
                if layout is not None:
                    self._load(layout)
                    self.layout = layout
            return self.layout

    def defaults(self) -> dict[str, Any]:
        """Funnel defaults: constructor arguments, else calibrated/stored ones, else None."""
        stored = self.config.get("defaults", {})
        return {name: self.explicit.get(name, stored.get(name)) for name in FUNNEL_SETTINGS}

    def check_defaults(self, layout: _milvus.Layout) -> None:
        make_plan(dim=layout.dim, search_dim=layout.search_dim, k=1, **self.defaults())

    def save_defaults(
        self,
        settings: Mapping[str, Any],
        report: Mapping[str, Any],
        head_search: Mapping[str, Any] | None = None,
    ) -> None:
        """Persist new funnel defaults (calibration) with the collection.

        ``head_search``: the head search parameters calibrated with them (an IVF head's
        ``nprobe``), kept with the head index type they were measured on.
        """
        with self.lock:
            config = dict(self.config)
            config["defaults"] = {k: settings[k] for k in FUNNEL_SETTINGS if k in settings}
            config["calibration"] = dict(report)
            config[_HEAD_KEY] = {
                "index_type": self.collection.index_type,
                "search_params": dict(head_search or {}),
            }
            self.meta.write_config(config)
            self.config = config
            self._adopt_head_settings()

    def _adopt_head_settings(self) -> None:
        """Calibrated head search parameters, if measured on the head index it has now."""
        head = self.config.get(_HEAD_KEY) or {}
        same = head.get("index_type") == self.collection.index_type
        self.collection.calibrated_search_params = dict(
            (head.get("search_params") or {}) if same else {}
        )

    def rebuild_head_index(self, index_type: str, params: Mapping[str, Any] | None = None) -> None:
        """Replace the head index (every row is indexed again: minutes at scale)."""
        layout = self.layout or self.refresh()
        if layout is None:
            raise InvalidInputError(
                f"collection {self.collection.name!r} is empty; pass index_type= when "
                "creating the store instead"
            )
        kind = str(index_type).upper()
        if self.collection.lite and kind not in _milvus.LITE_INDEX_TYPES:
            raise ConfigurationError(
                f"index_type={index_type!r} is not supported by Milvus Lite; pass one of "
                + ", ".join(_milvus.LITE_INDEX_TYPES)
            )
        with self.lock:
            build = _milvus.build_params(kind, params, layout.search_dim)
            self.collection.rebuild_head(kind, build)
            self.collection.explicit_index_type = False
            self._adopt_head_settings()

    def drop(self) -> None:
        self.collection.drop()
        self.meta.drop()

    def build_index(self) -> None:
        """Flush and index every row now (nothing while the store is empty)."""
        if (self.layout or self.refresh()) is not None:
            self.collection.build_index()

    # ------------------------------------------------------------------ writes

    def ensure_collection(self, vectors: np.ndarray) -> _milvus.Layout:
        """Create the collection on the first write (fitting the rotation if asked)."""
        with self.lock:
            if self.layout is not None:
                return self.layout
            dim = vectors.shape[1]
            search_dim = self.requested_search_dim or default_search_dim(dim)
            layout = self._new_layout(dim, validate_search_dim(search_dim, dim))
            self.check_defaults(layout)
            self.expressions = layout.expressions(self.collection.lite)
            if self.rotation is None:
                if not self.collection.create(layout):
                    self._load(layout)  # another writer created it: read its settings
                self.layout = layout
                return layout
            # The basis first, under an id of its own; then the collection, whose
            # properties name the basis in the same call. Writers racing to create the
            # collection each store a basis, but only the winner's is named, and every
            # writer then uses that one. A crash in between leaves no collection (the
            # next write starts over) or an unnamed basis, never a collection without
            # its basis.
            basis = fit_pca_rotation(vectors, sample=self.rotation_sample)
            basis_id = uuid.uuid4().hex[:16]
            properties = {
                _milvus.PROPERTY_ROTATION: self.rotation,
                _milvus.PROPERTY_BASIS: basis_id,
            }
            self.meta.write_matrix(_basis_key(properties), basis)
            if self.collection.create(layout, properties):
                config: dict[str, Any] = {
                    "version": 2,
                    "dim": dim,
                    "search_dim": layout.search_dim,
                    _ROTATION_KEY: self.rotation,
                    "rotation_fitted_on": int(min(len(vectors), self.rotation_sample)),
                }
                self.meta.write_config(config)
                self.config = config
                self.basis = basis
            else:
                self.meta.delete_matrix(_basis_key(properties), dim)  # lost: not named
                self._load(layout)
            self.layout = layout
            return layout

    def _new_layout(self, dim: int, search_dim: int) -> _milvus.Layout:
        backend = self.collection.backend
        if self.declared.full_text is not None and not backend.full_text:
            raise ConfigurationError(
                f"full_text_search=True needs Milvus 2.5 or later (or Milvus Lite), but the "
                f"server is {backend.describe()}; upgrade the server, or pass "
                "full_text_search=False"
            )
        return _layout.new_layout(
            dim,
            search_dim,
            self.text_max_length,
            self.declared,
            lite=self.collection.lite,
            nullable=backend.nullable,
        )

    def check_metadata(self, metas: list[dict], ids: list[str]) -> None:
        """Check declared metadata columns' values before anything is embedded."""
        layout = self.layout
        if layout is None:
            if not self.declared.fields:
                return
            layout = self._new_layout(2, 1)
        _layout.split_metadata(metas, ids, layout)

    def write(
        self,
        texts: list[str],
        metas: list[dict],
        ids: list[str],
        embeddings: Any,
        batch_size: int | None = None,
        timeout: float | None = None,
    ) -> None:
        """Upsert validated rows with their (rotated) full vectors and heads.

        ``batch_size`` rows per upsert call (None: the store's), each call bounded by
        ``timeout`` seconds (None: the connection's ``call_timeout``).
        """
        if not texts:
            return
        vectors = check_vectors(embeddings, self.dim, "document embeddings")
        if len(vectors) != len(texts):
            raise InvalidInputError(
                f"got {len(texts)} texts but {len(vectors)} embeddings; pass one per text"
            )
        layout = self.ensure_collection(vectors)
        vectors = rotate(vectors, self.basis)
        rows = _milvus.make_rows(
            ids, texts, metas, head_of(vectors, layout.search_dim), vectors, layout
        )
        try:
            self.collection.upsert(
                rows, batch_size or self.batch_size, progress=self.show_progress, timeout=timeout
            )
        finally:
            self.clear_caches()

    @property
    def dim(self) -> int | None:
        return None if self.layout is None else self.layout.dim

    def clear_caches(self) -> None:
        """Forget cached counts and rows of filters (after a write or delete)."""
        self.counts.clear()
        if self.rows is not None:
            self.rows.clear()

    def _require_layout(self) -> _milvus.Layout:
        if self.layout is None:
            raise InvalidInputError(
                f"collection {self.collection.name!r} is empty; add documents first"
            )
        return self.layout


def _basis_key(properties: Mapping[str, str]) -> str:
    """Where the settings collection keeps the basis the collection's properties name."""
    basis_id = properties.get(_milvus.PROPERTY_BASIS)
    return f"{_ROTATION_KEY}-{basis_id}" if basis_id else _ROTATION_KEY
