"""Part of the Milvus adapter: what went wrong reaching Milvus (:mod:`._connection` retries)."""

from __future__ import annotations

import errno
from collections.abc import Iterator

_FULL = ("no space left on device", f"[errno {errno.ENOSPC}]", "disk quota exceeded")
_BROKEN = (
    "socket closed",
    "connection reset",
    "broken pipe",
    "goaway",
    "stream removed",
    "rst_stream",
    "keepalive watchdog",
    "end of tcp stream",
    "eof",
)
_UNREACHABLE = (
    "fail connecting to server",
    "failed to connect to all addresses",
    "connection refused",
    "connect failed",
    "no route to host",
    "server unavailable",
    "dns resolution failed",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def _code_name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            code = code()
        except Exception:  # noqa: BLE001 - not a gRPC error
            code = None
    return str(getattr(code, "name", code) or "")


def _fault(exc: BaseException) -> str | None:
    """What went wrong reaching Milvus, or None for an answer from Milvus.

    "deadline", "broken" (the connection was lost, maybe mid-call), "unreachable" (never
    reached), "full" (no space left), or None (an answer from Milvus, e.g. a refused
    expression: not the connection's business).
    """
    chain = list(_chain(exc))
    texts = [str(e).lower() for e in chain]
    codes = [_code_name(e) for e in chain]
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain) or any(
        marker in t for t in texts for marker in _FULL
    ):
        return "full"
    if codes[0] == "DEADLINE_EXCEEDED" or "deadline exceeded" in texts[0]:
        return "deadline"
    if any(marker in t for t in texts for marker in _BROKEN):
        return "broken"
    if any(marker in t for t in texts for marker in _UNREACHABLE):
        return "unreachable"
    if "DEADLINE_EXCEEDED" in codes or any("deadline exceeded" in t for t in texts):
        return "deadline"
    if "retry timeout" in texts[0]:  # pymilvus' own retries ran out of our deadline
        return "deadline"
    if "UNAVAILABLE" in codes:
        return "broken"
    return None


def _not_loaded(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "not loaded" in text or "in state 'released'" in text or "code=101" in text


def _detail(exc: BaseException) -> str:
    for e in _chain(exc):
        details = getattr(e, "details", None)
        if callable(details):
            try:
                return str(details())
            except Exception:  # noqa: BLE001
                pass
    text = str(getattr(exc, "message", None) or exc).strip()
    return text if len(text) < 300 else text[:300] + "..."


def _full_message(uri: str, name: str, exc: BaseException) -> str:
    return (
        f"Milvus at {uri!r} has no space left on its disk ({name}: {_detail(exc)}); rows "
        "written before stay readable. Free space (or move the Milvus Lite file to a larger "
        "disk), then run the same ingestion again: writes are upserts by id, so rows "
        "already stored are not duplicated"
    )
