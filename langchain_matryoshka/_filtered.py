"""Filtered search that stays complete when the filter is selective (pure logic).

A filtered HNSW search in Milvus walks the graph and skips the rows the filter rejects;
when few rows pass, it runs out of exploration budget before finding them, and returns
fewer and worse hits (0.1% selectivity: 1 to 4 of 10). The store routes each filtered
search by a cheap count of the matching rows: when they are few (at most
:data:`EXACT_ROWS`), it reads them and ranks them exactly; when they are many, the
head search runs with a larger ``ef``, growing as the filter narrows. Measured in
``docs/filters.md`` (``benchmarks/filters.py``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

#: At most this many matching rows: read them (id and full vector) and rank exactly.
#: A read of ~1,000 rows costs about what a head search costs, and it is exact.
EXACT_ROWS = 1024
#: The largest ``ef`` a filtered head search asks for (Milvus allows up to 32,768).
MAX_EF = 4096
#: Seconds a count of matching rows is reused; this store's own writes clear it. On
#: Milvus Lite a count costs about one search (a pass over every row in Python).
COUNT_TTL = 300.0
#: Bytes of matching rows (ids and float16 full vectors) a Milvus Lite store keeps for
#: repeated selective filters, as Lucene caches filters: on Lite a read by condition
#: passes over every row in Python (100k rows: about 170 ms, twice a search), while
#: ranking 1,024 cached rows takes about a millisecond.
ROWS_CACHE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Route:
    """How one filtered search runs."""

    exact: bool
    """Read every matching row and rank them exactly (else a head search)."""
    ef: int | None
    """The head search's ``ef`` (None: the index's default)."""
    matching: int
    """Rows matching the filter in the searched partitions (as counted)."""
    scope: int
    """Rows in the searched partitions."""


def choose(matching: int, scope: int, candidates: int, exact_rows: int = EXACT_ROWS) -> Route:
    """The route of a filtered search over ``scope`` rows of which ``matching`` pass.

    The ``ef`` of a head search is the candidate count divided by the selectivity: an
    HNSW walk that must collect ``candidates`` passing rows visits about that many
    nodes. (The square root of the selectivity, tried first, left recall@10 at 0.987 on
    a Milvus 2.3 server at 10% selectivity; docs/filters.md.)
    """
    if matching <= exact_rows:
        return Route(True, None, matching, scope)
    selectivity = min(1.0, matching / max(scope, 1))
    ef = min(MAX_EF, max(candidates, math.ceil(candidates / selectivity)))
    return Route(False, ef, matching, scope)


class CountCache:
    """Counts of matching rows by (condition, partitions), reused for ``ttl`` seconds.

    The store clears it on its own writes and deletes; another process's writes are
    seen once the entry expires. A stale count only picks a route, and both routes
    check it: an exact read that finds more rows than :data:`EXACT_ROWS` falls back to
    the head search, and a head search that returns fewer hits than it asked for
    falls back to the exact read.
    """

    def __init__(self, ttl: float = COUNT_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, int]] = {}

    def get(self, key: Hashable, count: Callable[[], int]) -> int:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.ttl:
            return entry[1]
        value = int(count())
        with self._lock:
            if len(self._entries) > 4096:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RowsCache:
    """The rows matching a condition (ids, float16 full vectors), kept for a while.

    Least recently used dropped past ``max_bytes``, each kept ``ttl`` seconds; cleared on
    the store's writes.

    Only Milvus Lite stores use it: a Lite file has one writer process, so the store's
    own writes are every write (another store object on the same file in the same
    process is seen once the entry expires).
    """

    def __init__(
        self,
        max_bytes: int = ROWS_CACHE_BYTES,
        ttl: float = COUNT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, list[str], np.ndarray]] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> tuple[list[str], np.ndarray] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() - entry[0] >= self.ttl:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[1], entry[2]

    def put(self, key: Hashable, ids: list[str], vectors: np.ndarray) -> None:
        stored = np.asarray(vectors, dtype=np.float16)
        size = stored.nbytes + 64 * len(ids)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (self._clock(), list(ids), stored)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        _, ids, vectors = self._entries.pop(key)
        self._bytes -= vectors.nbytes + 64 * len(ids)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
