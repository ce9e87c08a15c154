"""The default read consistency, "Session": a store's reads see its own writes.

pymilvus' own "Session" uses the timestamp a write's response carries, which Milvus 2.3
servers left unusable (a search after a delete returned the deleted document). Here a
store's :class:`Session` notes each of its own writes; its next read asks the server for
a timestamp (one ``AllocTimestamp`` call, bounded by the read's timeout like every other
call) and reads at that timestamp ("Customized" consistency with ``guarantee_timestamp``):
the server answers once it has applied everything up to it, this store's writes included.
Later reads reuse that timestamp (already served, so they do not wait) for
:data:`SESSION_WINDOW_S` seconds, after which the server's "Bounded" staleness covers the
write; reads with no write of this store pending run at "Bounded" and do not wait for the
server's next time tick, as "Strong" reads do (about 200 ms on a 2.3 server).

A store's first read also waits for such a timestamp: it sees every write acknowledged
before that read (by any process). After it, writes by another store object or process
become visible to this store's reads within the server's bounded staleness
(``common.gracefulTime``, 5 s by default), or at once with ``consistency_level="Strong"``.
Milvus Lite serves every read after the writes before it: the store passes the level
through unchanged there.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

#: Seconds a store's reads keep the timestamp taken after its last write (longer than
#: the 5 s a Milvus server's "Bounded" reads may lag by default).
SESSION_WINDOW_S = 10.0


class Session:
    """Read consistency of one store object: see :mod:`._consistency`."""

    def __init__(self, connection: Any, level: str) -> None:
        self.connection = connection
        self.level = level
        self.active = level == "Session" and not connection.lite
        # A write not yet covered by ``timestamp``: at first, every write acknowledged
        # before this store was opened (another process's, another store object's).
        self.pending = self.active
        self.timestamp: int | None = None  # server timestamp taken after the last write
        self.taken_at = 0.0
        self.allocations = 0  # timestamps asked of the server (for tests and benchmarks)
        self._lock = threading.Lock()

    def wrote(self) -> None:
        """Note a write of this store, once it returned or failed."""
        if self.active:
            with self._lock:
                self.pending = True

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around a write: noted when it ends, whether it succeeded or not.

        A failed write may have been applied. A read racing the write that takes its
        timestamp before the write lands leaves the write pending for the next read.
        """
        try:
            yield
        finally:
            self.wrote()

    def read_kwargs(self, timeout: float | None = None, call: str = "query") -> dict[str, Any]:
        """The consistency keywords of one read.

        ``timeout``: the read's own; ``call``: the client method it is, named by the
        error if the timestamp is not given.
        """
        if not self.active:
            return {"consistency_level": self.level}
        with self._lock:
            pending = self.pending
            self.pending = False
        if pending:
            try:
                ts: int | None = self._allocate(timeout, call)
            except BaseException:
                with self._lock:
                    self.pending = True
                raise
            with self._lock:
                self.timestamp, self.taken_at = ts, time.monotonic()
        with self._lock:
            ts = self.timestamp
            if ts is not None and time.monotonic() - self.taken_at >= SESSION_WINDOW_S:
                ts = self.timestamp = None
        if ts is None:
            return {"consistency_level": "Bounded"}
        return {"consistency_level": "Customized", "guarantee_timestamp": ts}

    def _allocate(self, timeout: float | None, call: str) -> int:
        conn = self.connection
        limit = conn.limit_of(call)
        caller = timeout is not None
        if timeout is not None and (limit is None or timeout < limit):
            limit = float(timeout)
        handler = conn.client._get_connection()

        def attempt(left: float | None) -> int:
            return int(handler.alloc_timestamp(timeout=left))

        # Part of the read: its errors name the read, and it is retried as reads are.
        ts = conn.run(call, attempt, limit, None, caller)
        self.allocations += 1
        return ts
