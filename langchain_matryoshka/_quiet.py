"""Part of the Milvus adapter: pymilvus' and Milvus Lite's log lines kept off the terminal."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

logger = logging.getLogger("langchain_matryoshka")

_QUIET = threading.local()
_INSTALL_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """While this thread calls Milvus for the package, pymilvus' log lines are its own.

    The failure comes back as the package's own error.
    """
    _QUIET.depth = getattr(_QUIET, "depth", 0) + 1
    try:
        yield
    finally:
        _QUIET.depth -= 1


class _PymilvusNoise(logging.Filter):
    """Drops pymilvus' records emitted inside the package's calls; the rest passes.

    They are logged at DEBUG on the ``langchain_matryoshka`` logger instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_QUIET, "depth", 0) <= 0:
            return True
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("pymilvus: %s", record.getMessage())
        return False


_NOISE = _PymilvusNoise()


def _quiet_pymilvus_logs() -> None:
    """Put the filter on pymilvus' own console handlers.

    pymilvus logs a warning and a traceback for every retried call it gives up on, e.g.
    70 tracebacks during one server restart. Idempotent; done when the first connection
    opens, not at import.
    """
    with _INSTALL_LOCK:
        for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
            for handler in logging.getLogger(name).handlers:
                if _NOISE not in handler.filters:
                    handler.addFilter(_NOISE)


def _quiet_lite_logs() -> None:
    """Give Milvus Lite's loggers a NullHandler.

    Milvus Lite runs in this process and logs through Python logging without a
    handler, so Python prints its records to stderr: about 30 tracebacks from its
    background threads when a disk fills up. A NullHandler, as libraries should add
    for themselves, keeps them out of the terminal; an application that configures
    logging still receives them.
    """
    lite = logging.getLogger("milvus_lite")
    with _INSTALL_LOCK:
        if not any(isinstance(h, logging.NullHandler) for h in lite.handlers):
            lite.addHandler(logging.NullHandler())
