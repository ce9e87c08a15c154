"""Connecting to Milvus: Lite files and servers, timeouts, consistency levels, write locks.

Part of the Milvus adapter (:mod:`langchain_matryoshka._milvus` re-exports these names);
nothing outside the adapter talks to Milvus.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError, ConnectionError

DEFAULT_LITE_URI = "./docs.db"
#: Seconds ``connect`` waits for a server (MilvusClient's connect timeout).
DEFAULT_TIMEOUT = 10
#: Seconds each search, query, get, upsert or delete may take on a server
#: (``connection_args["call_timeout"]``; None: no limit). Without one, a server that
#: accepts the connection but stops answering blocks the call for ever (measured).
DEFAULT_CALL_TIMEOUT = 60
#: Read consistency levels a store may use (pymilvus' names).
CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")


def is_lite_uri(uri: str) -> bool:
    """True for a Milvus Lite file (``./docs.db``), False for a server URI."""
    return "://" not in uri and uri.endswith(".db")


def connect(connection_args: Mapping[str, Any] | None) -> tuple[Any, bool, str]:
    """Open a ``MilvusClient``; returns ``(client, is_lite, uri)``.

    ``connection_args``: ``uri`` (a ``.db`` file for Milvus Lite, or
    ``http(s)://host:port``), and for servers ``token``, ``user``, ``password``,
    ``db_name``, ``timeout`` (seconds to connect, default 10) and ``call_timeout``
    (seconds each search, query, get, upsert or delete may take, default 60; None for
    no limit). Other keys go to ``MilvusClient``.
    """
    from pymilvus import MilvusClient

    args = dict(connection_args or {})
    uri = str(args.pop("uri", DEFAULT_LITE_URI))
    lite = is_lite_uri(uri)
    if lite:
        parent = os.path.dirname(os.path.abspath(uri))
        if not os.path.isdir(parent):
            raise ConnectionError(
                f"cannot open Milvus Lite file {uri!r}: its folder {parent!r} does not exist; "
                "create the folder or pass another uri"
            )
    elif "://" not in uri:
        raise ConnectionError(
            f"uri={uri!r} is neither a Milvus Lite file (ending in '.db') nor a server URI; "
            "pass e.g. uri='./docs.db' or uri='http://localhost:19530'"
        )
    timeout = _seconds("timeout", args.setdefault("timeout", DEFAULT_TIMEOUT), DEFAULT_TIMEOUT)
    call_timeout = args.pop("call_timeout", DEFAULT_CALL_TIMEOUT)
    if call_timeout is not None:
        call_timeout = _seconds("call_timeout", call_timeout, DEFAULT_CALL_TIMEOUT)
    try:
        client = MilvusClient(uri=uri, **args)
    except Exception as exc:  # pymilvus raises several unrelated types here
        text = str(exc)
        if lite and ("lock" in text.lower() or "open local milvus failed" in text.lower()):
            raise ConnectionError(
                f"Milvus Lite file {uri!r} is held by another process ({text.strip()}); "
                "one process at a time may open a Lite file. To share it, run "
                f"'milvus-lite server --data-dir {uri} --host 127.0.0.1 --port 19530' and "
                "connect every process with "
                "uri='http://127.0.0.1:19530', or use a Milvus server"
            ) from exc
        raise ConnectionError(
            f"cannot connect to Milvus at {uri!r} within {args['timeout']} s: {text.strip()}; "
            "check that the server runs and the uri, token and db_name are right"
        ) from exc
    if not lite:
        # MilvusClient neither checks db_name nor credentials: one cheap call does,
        # so a wrong one fails here and not at the first write.
        try:
            client.list_collections(timeout=timeout)
        except Exception as exc:
            client.close()
            raise ConnectionError(
                f"Milvus at {uri!r} refused db_name={args.get('db_name') or 'default'!r} "
                f"or the credentials: {str(exc).strip()}; check the token (user:password) "
                "and that the database exists"
            ) from exc
        if call_timeout is not None:
            _CALL_LIMITS[client] = (call_timeout, uri)
    return client, lite, uri


def _seconds(name: str, value: Any, example: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(
            f"connection_args {name}={value!r} must be a positive number of seconds, e.g. {example}"
        )
    return float(value)


#: Server clients opened by :func:`connect` -> (call_timeout, uri).
_CALL_LIMITS: weakref.WeakKeyDictionary[Any, tuple[float, str]] = weakref.WeakKeyDictionary()
_DATA_CALLS = frozenset({"search", "query", "get", "upsert", "insert", "delete"})


def with_call_limits(client: Any) -> Any:
    """``client``, or for a server client from :func:`connect` a view of it whose data
    calls (search, query, get, upsert, insert, delete) carry its ``call_timeout`` and
    raise :class:`ConnectionError` when the server does not answer in time."""
    limits = _CALL_LIMITS.get(client)
    return client if limits is None else _LimitedClient(client, *limits)


def _deadline_exceeded(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            code = code()
        except Exception:  # noqa: BLE001 - not a gRPC error
            code = None
    return (
        getattr(code, "name", "") == "DEADLINE_EXCEEDED" or "deadline exceeded" in str(exc).lower()
    )


class _LimitedClient:
    """A MilvusClient whose data calls have a deadline; everything else passes through."""

    def __init__(self, client: Any, timeout: float, uri: str) -> None:
        self._client = client
        self._timeout = timeout
        self._uri = uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in _DATA_CALLS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", self._timeout)
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                if not _deadline_exceeded(exc):
                    raise
                raise ConnectionError(
                    f"Milvus at {self._uri!r} did not answer {name} within "
                    f"{kwargs['timeout']:g} s; check that the server is up and not "
                    "overloaded, or raise connection_args call_timeout"
                ) from exc

        return call


def created_by_another(client: Any, name: str, exc: Exception, wait_s: float = 10.0) -> bool:
    """Whether a failed create_collection lost a race: the collection now exists.

    Milvus answers "already exists" (Milvus Lite may also answer "File exists" while the
    winner is still creating it, so wait a little for it to appear).
    """
    if "exist" not in str(exc).lower():
        return False
    deadline = time.monotonic() + wait_s
    while not client.has_collection(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


_LITE_WRITE_LOCKS: dict[str, threading.Lock] = {}
_LITE_WRITE_LOCKS_GUARD = threading.Lock()


def lite_writes(lite: bool, name: str) -> contextlib.AbstractContextManager:
    """Serialise this process's writes to a Milvus Lite collection.

    Milvus Lite 3.2 freezes its memtable outside its own lock when it flushes (on
    ``flush()`` and on the automatic flush inside insert/upsert/delete): two threads
    writing at once can commit the flushes out of order and one of them fails with
    "current_seq is monotonic; tried to set 300 < 350" although its rows were written.
    Servers need no lock. Only one process may open a Lite file, so a process-wide
    lock per collection name is enough.
    """
    if not lite:
        return contextlib.nullcontext()
    with _LITE_WRITE_LOCKS_GUARD:
        return _LITE_WRITE_LOCKS.setdefault(name, threading.Lock())


def client_is_lite(client: Any) -> bool:
    """Whether a ready ``MilvusClient`` talks to Milvus Lite.

    Milvus Lite reports ``milvus_lite-3.2.2``; Embedded Milvus (a real 2.3 server,
    PyPI package ``milvus``) reports ``v2.3.5-lite``, so "lite" alone is not enough.
    """
    try:
        version = str(client.get_server_version()).lower()
    except Exception:  # an old server without the call: not Lite
        return False
    return version.startswith(("milvus_lite", "milvus-lite"))


def consistency_level_name(level: Any) -> str:
    """The canonical name of a read consistency level, or :class:`ConfigurationError`.

    The store passes it on every search, get and query (and at creation), so it
    governs reads even on a collection created with another level. On Milvus 2.3
    servers "Strong" waits for the next time tick: about 200 ms per read, against
    3-10 ms for "Session" (which still sees this client's own writes).
    """
    if isinstance(level, str):
        for name in CONSISTENCY_LEVELS:
            if level.strip().lower() == name.lower():
                return name
    raise ConfigurationError(
        f"consistency_level={level!r} is not one of {', '.join(CONSISTENCY_LEVELS)}; "
        "pass e.g. 'Session' (sees this client's writes) or 'Strong' (sees every write)"
    )
