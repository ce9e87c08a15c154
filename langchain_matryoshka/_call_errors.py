"""Part of the Milvus adapter: Milvus errors a caller caused, as the package's errors.

A condition Milvus cannot parse or type-check (``expr="year >= 2020"`` on a store whose
metadata lives in JSON, a syntax error, a string compared with a number) comes back
from pymilvus as a ``MilvusException``; :func:`milvus_call` turns it into
:class:`InvalidInputError` naming the expression, Milvus' reason and the fix. A call
that overran the caller's own ``timeout=`` becomes :class:`MilvusConnectionError`.

pymilvus also logs every failed call at ERROR with a traceback (logger
``pymilvus.decorators``), which reaches the user's terminal although the exception is
raised anyway. While a thread is inside :func:`milvus_call`, a filter drops those
records for the errors this module turns into the package's own (and the query
iterator's Milvus Lite warning about MVCC timestamps); every other record (other
threads, other errors) passes. The filter is added on first use, not on import.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence

from .errors import InvalidInputError, MilvusConnectionError

#: Words of Milvus' messages for a condition it refused (Milvus Lite 3.2: "unexpected
#: token ... at column 16", "unknown field 'foo' at column 1", "comparison '>' between
#: incompatible types"; Milvus 2.3: "cannot parse expression: ..., error: ...").
_EXPRESSION_MARKERS = (
    "at column",
    "cannot parse expression",
    "unknown field",
    "incompatible types",
    "field not exist",
    "not exist in schema",
    "invalid expression",
    "parse expr",
)
_PYMILVUS_LOGGERS = ("pymilvus.decorators", "pymilvus.client.iterator.query_iterator")
#: pymilvus' WARNING for every query iterator on Milvus Lite, which has no MVCC
#: timestamp to hand out; the client-side one it falls back to is the documented
#: behaviour, so the line says nothing a user can act on.
_NOISE = ("failed to get mvccts from milvus server",)

_active: dict[int, int] = {}  # thread id -> nesting depth inside milvus_call
_active_guard = threading.Lock()
_filter_installed = False


def is_expression_error(exc: BaseException) -> bool:
    """Whether Milvus refused the call's filter expression."""
    text = str(exc).lower()
    return any(marker in text for marker in _EXPRESSION_MARKERS)


def _deadline_exceeded(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            code = code()
        except Exception:  # noqa: BLE001 - not a gRPC error
            code = None
    text = str(exc).lower()
    return getattr(code, "name", "") == "DEADLINE_EXCEEDED" or "deadline exceeded" in text


class _QuietCallerErrors(logging.Filter):
    """Drops pymilvus' ERROR records of errors :func:`milvus_call` re-raises as ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread not in _active:
            return True
        message = record.getMessage().lower()
        return not (
            any(m in message for m in _EXPRESSION_MARKERS + _NOISE)
            or "deadline exceeded" in message
        )


def _install_filter() -> None:
    global _filter_installed
    if not _filter_installed:
        quiet = _QuietCallerErrors()
        for name in _PYMILVUS_LOGGERS:
            logging.getLogger(name).addFilter(quiet)
        _filter_installed = True


@contextlib.contextmanager
def milvus_call(
    call: str, expr: str = "", timeout: float | None = None, fields: Sequence[str] = ()
) -> Iterator[None]:
    """Run one Milvus call of the store: caller-caused errors raised as the package's."""
    me = threading.get_ident()
    with _active_guard:
        _install_filter()
        _active[me] = _active.get(me, 0) + 1
    try:
        yield
    except InvalidInputError:
        raise
    except Exception as exc:
        if expr and is_expression_error(exc):
            reason = getattr(exc, "message", None) or str(exc)
            own = ", ".join(fields) if fields else "id, text, metadata"
            raise InvalidInputError(
                f"Milvus refused the expression {expr!r} in {call}: {reason.strip()}; "
                'write metadata keys as JSON paths (metadata["year"] >= 2020, '
                'metadata["source"] == "a.txt") or name the store\'s own fields '
                f"({own}); for plain equalities pass filter={{'key': value}} instead"
            ) from exc
        if timeout is not None and _deadline_exceeded(exc):
            raise MilvusConnectionError(
                f"Milvus did not answer {call} within timeout={timeout:g} s; pass a larger "
                "timeout, or check that the server is up and not overloaded"
            ) from exc
        raise
    finally:
        with _active_guard:
            depth = _active.pop(me) - 1
            if depth:
                _active[me] = depth
