"""Indexes and what the Milvus behind a client can do: part of the Milvus adapter.

Index and search parameters of the head (HNSW on the normalised head, inner product),
the BM25 index and the declared columns' scalar indexes, and :class:`Backend`, which
tells Milvus Lite from servers and servers' versions apart.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._layout import FIELD_HEAD, METRIC

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
    "IVF_PQ": {"nprobe": 16},
}
#: What ``describe_index`` reports besides an index's build parameters.
_INDEX_INFO_KEYS = frozenset(
    {"index_type", "metric_type", "field_name", "index_name", "total_rows", "indexed_rows",
     "pending_index_rows", "state", "params"}
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


def index_new_collection(client: Any, collection: str, index_params: Any) -> None:
    """Create the indexes of a collection just created, so empty, without waiting.

    pymilvus waits for each index it creates by sleeping half a second before its first
    look at the build state, on Milvus Lite and servers alike: 0.5 s per index on every
    new collection (measured: 0.52 of the 0.57 s a new Lite collection took). An empty
    collection's index has nothing to build, and loading it needs the index to exist,
    not built: the request alone (``sync=False``) is enough.
    """
    client.create_index(collection, index_params, sync=False)


def wait_until_indexed_by_creator(
    client: Any, collection: str, field: str, timeout: float = 30.0
) -> None:
    """Wait for the writer that just created ``collection`` to add ``field``'s index.

    Its next call after the creation; loading fails until then.
    """
    deadline = time.monotonic() + timeout
    while not has_index(client, collection, field) and time.monotonic() < deadline:
        time.sleep(0.02)


#: Seconds a server may take to index every row again after a head index rebuild
#: (1M rows, IVF_SQ8 with 1,024 lists: 919 s on the 2-core test machine).
INDEX_BUILD_TIMEOUT = 6 * 3600.0


def wait_for_index(
    client: Any, collection: str, field: str, timeout: float = INDEX_BUILD_TIMEOUT
) -> None:
    """A server builds indexes in the background: wait until every row is indexed."""
    from .errors import MilvusConnectionError

    deadline = time.monotonic() + timeout
    while True:
        info = client.describe_index(collection, index_name=field) or {}
        # indexed_rows counts rows an upsert replaced too, so it may exceed total_rows;
        # nothing pending: all the server will index now is indexed
        indexed, total = int(info.get("indexed_rows", 0)), int(info.get("total_rows", 1))
        pending = int(info.get("pending_index_rows", 1))
        if info.get("state") == "Finished" and (indexed >= total or pending == 0):
            return
        if time.monotonic() > deadline:
            raise MilvusConnectionError(
                f"the server did not finish the {field!r} index of {collection!r} within "
                f"{timeout:g} s ({info.get('indexed_rows')} of {info.get('total_rows')} rows); "
                "its build goes on: search once describe_index says Finished"
            )
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


#: A server builds no index on a segment of fewer rows (``minSegmentNumRowsToEnableIndex``).
MIN_INDEXED_SEGMENT_ROWS = 1024
#: ``SegmentState.Growing``: searched through the server's temporary index whatever is built.
_GROWING = 2
#: How long :func:`wait_for_served_index` waits for the query node to swap indexes in.
INDEX_SERVE_TIMEOUT = 300.0


def wait_for_served_index(
    client: Any, collection: str, timeout: float = INDEX_SERVE_TIMEOUT
) -> bool:
    """After an index is built, wait until the server searches every segment through it.

    ``describe_index`` says Finished once the index files exist; the query node swaps
    each sealed segment's raw data (searched through a temporary IVF index of its own,
    approximate) for the built index a while later (measured on Milvus 2.3.5: a
    21,000-row segment still unindexed a minute after Finished). Segments too small to
    be indexed and growing ones are not waited for. Returns whether every segment was
    served indexed in time; a server that does not list its loaded segments is not
    waited for (True).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            segments = client.list_loaded_segments(collection)
        except Exception:  # noqa: BLE001 - an older server or Milvus Lite: nothing to wait for
            return True
        if all(
            s.index_name or s.num_rows < MIN_INDEXED_SEGMENT_ROWS or s.state == _GROWING
            for s in segments
        ):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def build_params(index_type: str, params: Mapping[str, Any] | None, dim: int) -> dict[str, Any]:
    """Build parameters of a ``dim``-wide head index: the type's defaults, then ``params``.

    IVF_PQ (servers only) gets 128 lists of ``m`` 8-bit codes, ``m`` the largest divisor
    of ``dim`` up to ``dim / 4`` (the server refuses IVF_PQ without ``nlist`` and ``m``).
    """
    build = dict(DEFAULT_INDEX_PARAMS.get(index_type.upper(), {}))
    if index_type.upper() == "IVF_PQ":
        build.update(nlist=128, m=pq_m(dim), nbits=8)
    build.update(params or {})
    return build


def pq_m(dim: int) -> int:
    """Sub-spaces of an IVF_PQ head: the largest divisor of ``dim`` up to ``dim / 4``."""
    return max((m for m in range(1, dim // 4 + 1) if dim % m == 0), default=1)


def read_head_index(client: Any, collection: str) -> tuple[str, dict[str, Any]] | None:
    """The type and build parameters of the collection's head index (None: no index).

    Milvus Lite nests the parameters under ``params``; servers list them beside the
    type, as strings.
    """
    names = client.list_indexes(collection, field_name=FIELD_HEAD) or []
    if not names:
        return None
    info = client.describe_index(collection, names[0]) or {}
    raw = info.get("params")
    if isinstance(raw, str):
        raw = json.loads(raw or "{}")
    if not isinstance(raw, Mapping):
        raw = {k: v for k, v in info.items() if k not in _INDEX_INFO_KEYS}
    return str(info.get("index_type", "")).upper(), {k: _number(v) for k, v in raw.items()}


def _number(value: Any) -> Any:
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def index_params_for(
    client: Any, lite: bool, index_type: str, params: Mapping[str, Any] | None, dim: int = 0
) -> Any:
    """Index parameters for the head field (IP metric, defaults per index type)."""
    build = build_params(index_type, params, dim)
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
    index_type: str, params: Mapping[str, Any] | None, limit: int, ef: int | None = None
) -> dict[str, Any]:
    """Search parameters for a head search of ``limit`` hits (HNSW: ``ef`` at least)."""
    merged = dict(DEFAULT_SEARCH_PARAMS.get(index_type, {}))
    merged.update(params or {})
    if index_type.upper().startswith("HNSW"):
        # HNSW must explore at least `limit` nodes (Milvus servers refuse ef < limit).
        merged["ef"] = max(int(merged.get("ef", 64)), limit, ef or 0)
    return {"metric_type": METRIC, "params": merged}


# ---------------------------------------------------------------------------- backend


@dataclass(frozen=True)
class Backend:
    """What the Milvus behind a client can do (Milvus Lite, or a server's version)."""

    lite: bool
    version: tuple[int, int] | None = None
    """A server's (major, minor); None for Milvus Lite or when it does not say."""

    def at_least(self, major: int, minor: int) -> bool:
        return self.lite or (self.version is not None and self.version >= (major, minor))

    @property
    def nullable(self) -> bool:
        """Fields that hold nulls (Milvus Lite 3.2; servers from 2.5)."""
        return self.at_least(2, 5)

    @property
    def full_text(self) -> bool:
        """The BM25 function and SPARSE_INVERTED_INDEX (Milvus Lite 3.2; servers from 2.5)."""
        return self.at_least(2, 5)

    def scalar_index(self, kind: str) -> str | None:
        """The scalar index a declared column gets, or None where none helps or exists.

        Servers from 2.4 build INVERTED (not on ARRAY fields); 2.3 has Trie for VARCHAR
        and STL_SORT for numbers. Milvus Lite 3.2 gets none: its INVERTED index is
        written in the background after a flush, and a release and load while it is
        being written fails (``File is too small: 0``, measured on build_index right
        after a write); its filters on columns evaluate vectorised anyway (about 1 ms
        at 100k rows, docs/filters.md).
        """
        if kind.startswith("list[") or self.lite:
            return None
        if self.at_least(2, 4):
            return "INVERTED"
        return {"str": "Trie", "int": "STL_SORT", "float": "STL_SORT"}.get(kind)

    def describe(self) -> str:
        if self.lite:
            return "Milvus Lite"
        return "Milvus " + (".".join(map(str, self.version)) if self.version else "(unknown)")


def backend_of(client: Any, lite: bool) -> Backend:
    """Ask the server behind ``client`` what it is."""
    if lite:
        return Backend(lite=True)
    try:
        text = str(client.get_server_version())
    except Exception:  # noqa: BLE001 - an old server without the call
        return Backend(lite=False)
    match = re.match(r"v?(\d+)\.(\d+)", text.strip())
    return Backend(lite=False, version=(int(match[1]), int(match[2])) if match else None)


