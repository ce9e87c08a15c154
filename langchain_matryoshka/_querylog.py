"""A sample of the queries a store answers, kept for calibration (``record_queries=N``).

What is stored: the last ``N`` query embeddings as searched (the full vector the
embedding model returned, before the store's rotation), each with the time it was
recorded; the query texts only with ``record_query_texts=True``. They live in the
store's settings collection (``<name>_mrl_meta``) under keys ``queries/<writer>/<seq>``,
so every process that opens the store, and a later ``calibrate()``, sees them; dropping
the store (``drop_old=True``) deletes them. An embedding is not the text, but it is
derived from it and partly invertible: treat the settings collection as holding query
data, and leave recording off where queries must not be kept.

Cost on the search path: one lock and one list append per search call. Rows are written
in batches of :data:`FLUSH_EVERY` queries by a background thread (one upsert and a trim
of the oldest rows beyond ``N``), and on ``store.close()``; queries still in memory when
a process ends without ``close()`` are lost.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._milvus import MAX_DIM, MetaCollection
from .errors import ConfigurationError

PREFIX = "queries/"
#: Queries kept in memory before a background write.
FLUSH_EVERY = 64
#: Largest sample a store may keep (one settings-collection query reads it whole).
MAX_RECORDED = 10_000


def check_capacity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RECORDED:
        raise ConfigurationError(
            f"record_queries={value!r} must be an integer in [0, {MAX_RECORDED}] (how many "
            "recent query vectors to keep for calibration; 0 keeps none), e.g. 1000"
        )
    return value


class QueryLog:
    """Appends query vectors in memory; writes them to the settings collection in batches."""

    def __init__(
        self,
        meta: MetaCollection,
        capacity: int,
        *,
        texts: bool = False,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        self.meta = meta
        self.capacity = check_capacity(capacity)
        self.texts = texts
        self.flush_every = flush_every
        self.writer = uuid.uuid4().hex[:12]
        self._seq = 0
        self._pending: list[tuple[float, np.ndarray, str | None]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- hot path

    def record(self, vectors: np.ndarray, texts: Sequence[str] | None = None) -> None:
        """Remember ``vectors`` ``[n, dim]`` (and their texts when recording texts)."""
        now = time.time()
        with self._lock:
            for i, vector in enumerate(vectors):
                text = texts[i] if self.texts and texts is not None else None
                self._pending.append((now, vector, text))
            due = len(self._pending) >= self.flush_every and (
                self._thread is None or not self._thread.is_alive()
            )
            if due:
                self._thread = threading.Thread(
                    target=self._flush_quietly, name="matryoshka-query-log", daemon=True
                )
                self._thread.start()

    # ---------------------------------------------------------------- writes

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # a background write must never break searches
            warnings.warn(
                f"recording queries into {self.meta.name!r} failed ({exc}); they stay in "
                "memory and are written on the next flush",
                RuntimeWarning,
                stacklevel=1,
            )

    def flush(self) -> None:
        """Write the pending queries, then drop the oldest rows beyond the capacity."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            batch = batch[-self.capacity :]
            keys = []
            for _ in batch:
                keys.append(f"{PREFIX}{self.writer}/{self._seq:012d}")
                self._seq += 1
            values = [{"t": t, **({"text": s} if s is not None else {})} for t, _, s in batch]
            rows = [np.asarray(v, dtype=np.float32).tolist() for _, v, _ in batch]
            try:
                self.meta.append_rows(keys, values, rows)
            except Exception:
                with self._lock:  # keep them for the next try
                    self._pending = batch + self._pending
                raise
            stored = self.meta.read_prefix(PREFIX, with_rows=False)
            if len(stored) > self.capacity:
                stored.sort(key=lambda r: (r["value"].get("t", 0.0), r["key"]))
                self.meta.delete_keys([r["key"] for r in stored[: len(stored) - self.capacity]])

    def close(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.join()
        self.flush()


def read_recorded(
    meta: MetaCollection, dim: int, limit: int | None = None
) -> tuple[np.ndarray, list[str | None], dict[str, Any]]:
    """Recorded query vectors ``[n, dim]`` (newest last), their texts and a summary."""
    if dim > MAX_DIM:  # pragma: no cover - the collection could not hold them
        return np.zeros((0, dim), np.float32), [], {"n": 0}
    rows = [r for r in meta.read_prefix(PREFIX, with_rows=True) if len(r["row"] or ()) == dim]
    rows.sort(key=lambda r: (r["value"].get("t", 0.0), r["key"]))
    if limit is not None:
        rows = rows[-limit:]
    vectors = np.asarray([r["row"] for r in rows], dtype=np.float32).reshape(len(rows), dim)
    texts = [r["value"].get("text") for r in rows]
    times = [r["value"].get("t", 0.0) for r in rows]
    summary = {
        "n": len(rows),
        "writers": len({r["key"].split("/")[1] for r in rows}),
        "with_texts": sum(t is not None for t in texts),
        "first": min(times, default=None),
        "last": max(times, default=None),
    }
    return vectors, texts, summary


def clear_recorded(meta: MetaCollection) -> int:
    """Delete every recorded query; returns how many there were."""
    keys = [r["key"] for r in meta.read_prefix(PREFIX, with_rows=False)]
    if keys:
        meta.delete_keys(keys)
    return len(keys)
