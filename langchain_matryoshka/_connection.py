"""Connecting to Milvus: one :class:`Connection` per store, bounding and retrying its calls.

Part of the Milvus adapter (:mod:`langchain_matryoshka._milvus` re-exports these names);
nothing outside the adapter talks to Milvus. A :class:`Connection` holds the client, its
uri, whether it is Milvus Lite, the time limits and the retry policy; the collections call
Milvus through :attr:`Connection.calls`, where every call on a server has a deadline and
a failure to reach Milvus becomes :class:`~langchain_matryoshka.errors.MilvusConnectionError`
naming the uri (a full disk: :class:`~langchain_matryoshka.errors.StorageFullError`).

What is retried (with backoff, within the call's deadline), and why:

* reads (search, query, get, describe, list, has): on any lost connection. They change
  nothing, so sending one again is always safe; this is what makes a store work again
  after its server restarted, without being rebuilt.
* writes (upsert, delete, flush, load, index creation): only when Milvus could not be
  reached at all (connection refused or not established): the request never left, so
  sending it again cannot apply it twice. A write whose connection broke mid-call, or
  that ran out of time, is not sent again by the package: it may have been applied, and
  by then another writer may have written the same ids. The error says so; the store's
  writes are upserts by id and deletes, so the caller can rerun the same call safely.
* no call is retried after its deadline: ``call_timeout`` bounds the call, retries included.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._faults import _detail, _fault, _full_message, _not_loaded
from ._quiet import _quiet, _quiet_lite_logs, _quiet_pymilvus_logs
from .errors import ConfigurationError, MilvusConnectionError, StorageFullError

DEFAULT_LITE_URI = "./docs.db"
#: Seconds ``connect`` waits for a server (MilvusClient's connect timeout).
DEFAULT_TIMEOUT = 10
#: Seconds each search, query, get, upsert or delete may take on a server, retries
#: included (``connection_args["call_timeout"]``; None: no limit). Without one, a server
#: that accepts the connection but stops answering blocks the call for ever (measured).
DEFAULT_CALL_TIMEOUT = 60
#: Seconds a flush, load, index creation or collection creation may take on a server
#: (``connection_args["index_timeout"]``): loading a large collection takes minutes.
DEFAULT_INDEX_TIMEOUT = 600
#: gRPC channel options for servers (a user's ``connection_args["grpc_options"]`` win).
#: gRPC waits longer and longer between reconnection attempts to a server that went away
#: (up to 120 s by default) and answers every call "connection refused" meanwhile: after
#: a restart the store would stay unusable for that long. At most 1 s here.
#: (Not ``grpc.min_reconnect_backoff_ms``: gRPC also takes it as the time a connection
#: attempt may take, 20 s by default; 100 ms failed every connection to a slow server.)
GRPC_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
}
#: gRPC channel options for Milvus Lite (a user's ``connection_args["grpc_options"]`` win).
#: pymilvus pings every 10 s, even between calls; Milvus Lite's in-process gRPC server
#: keeps gRPC's default ping policy (at most one ping per 5 minutes without data) and, after
#: about 30 s idle or inside a long call (an index build), answers with GOAWAY
#: "too_many_pings", which gRPC's C core prints to stderr (measured: a client idle for 70 s
#: printed it; with these options, nothing). A server in this process needs no keepalive.
LITE_GRPC_OPTIONS = {
    "grpc.keepalive_time_ms": 2**31 - 1,  # INT_MAX: keepalive pings off
    "grpc.keepalive_permit_without_calls": False,
}
#: Read consistency levels a store may use (pymilvus' names).
CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")

#: Calls that change nothing: retried on any lost connection.
READS = frozenset(
    {
        "search",
        "hybrid_search",
        "query",
        "query_iterator",
        "get",
        "has_collection",
        "describe_collection",
        "list_collections",
        "has_partition",
        "list_partitions",
        "list_indexes",
        "describe_index",
        "get_load_state",
        "get_collection_stats",
        "get_server_version",
    }
)
#: Calls bounded by ``index_timeout`` rather than ``call_timeout``.
SLOW_CALLS = frozenset({"flush", "load_collection", "create_index", "create_collection"})
#: pymilvus methods that make several calls, each given the whole ``timeout`` (flush:
#: the flush and the wait for it; load: the load and the wait for it; create_collection
#: with indexes: creation, index and load): each gets its share, so the whole stays
#: within the limit.
STEPS = {"flush": 2, "load_collection": 2, "create_index": 2, "create_collection": 5}
#: Client methods that build request objects locally: no network, passed through.
LOCAL = frozenset({"prepare_index_params", "create_schema", "close"})

logger = logging.getLogger("langchain_matryoshka")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call that lost Milvus is sent again."""

    retries: int = 5
    """Attempts after the first (``connection_args["max_retries"]``)."""
    backoff: float = 0.25
    """Seconds before the first retry, doubled before each next one
    (``connection_args["retry_backoff"]``)."""
    max_backoff: float = 4.0
    """Longest pause between two attempts."""

    def pauses(self) -> Iterator[float]:
        pause = self.backoff
        for _ in range(self.retries):
            yield pause
            pause = min(pause * 2, self.max_backoff)


def is_lite_uri(uri: str) -> bool:
    """True for a Milvus Lite file (``./docs.db``), False for a server URI."""
    return "://" not in uri and uri.endswith(".db")


class Connection:
    """A Milvus client and how this package calls it.

    ``calls``: the client's methods, each with a deadline on servers (``call_timeout``,
    or ``index_timeout`` for flush, load and index or collection creation), retried per
    :class:`RetryPolicy`, and failing with the package's errors. ``client``: the raw
    ``MilvusClient``, for callers that want pymilvus itself.
    """

    def __init__(
        self,
        client: Any,
        uri: str,
        lite: bool,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
        index_timeout: float | None = DEFAULT_INDEX_TIMEOUT,
        retry: RetryPolicy | None = None,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.uri = uri
        self.lite = lite
        self.timeout = timeout
        # Milvus Lite runs in this process: no network to bound, and its index builds
        # take minutes at scale.
        self.call_timeout = None if lite else call_timeout
        self.index_timeout = None if lite else index_timeout
        self.retry = retry or RetryPolicy()
        self.owns_client = owns_client
        self.calls = _Calls(self)
        _quiet_pymilvus_logs()
        if lite:
            _quiet_lite_logs()

    # -- opening
    @classmethod
    def open(cls, connection_args: Mapping[str, Any] | None) -> Connection:
        """Open a ``MilvusClient`` from ``connection_args``.

        ``uri`` (a ``.db`` file for Milvus Lite, or ``http(s)://host:port``), and for
        servers ``token``, ``user``, ``password``, ``db_name``, ``timeout`` (seconds to
        connect, default 10), ``call_timeout`` (seconds each search, query, get, upsert or
        delete may take, retries included, default 60; None for no limit),
        ``index_timeout`` (flush, load, index creation; default 600), ``max_retries``
        (default 5) and ``retry_backoff`` (seconds, default 0.25). Other keys go to
        ``MilvusClient``.
        """
        from pymilvus import MilvusClient

        args = dict(connection_args or {})
        uri = str(args.pop("uri", DEFAULT_LITE_URI))
        lite = is_lite_uri(uri)
        if lite:
            parent = os.path.dirname(os.path.abspath(uri))
            if not os.path.isdir(parent):
                raise MilvusConnectionError(
                    f"cannot open Milvus Lite file {uri!r}: its folder {parent!r} does not "
                    "exist; create the folder or pass another uri"
                )
            if importlib.util.find_spec("milvus_lite") is None:
                raise MilvusConnectionError(
                    f"uri={uri!r} is a Milvus Lite file, but milvus-lite is not installed "
                    "(or has no build for this platform): pip install milvus-lite, or pass "
                    "a Milvus server uri such as uri='http://localhost:19530'"
                )
        elif "://" not in uri:
            raise MilvusConnectionError(
                f"uri={uri!r} is neither a Milvus Lite file (ending in '.db') nor a server URI; "
                "pass e.g. uri='./docs.db' or uri='http://localhost:19530'"
            )
        if lite:
            _quiet_lite_logs()  # before the first open: a locked file logs a traceback
        limits = _limits(args)
        retry = _retry_policy(args)
        own = LITE_GRPC_OPTIONS if lite else GRPC_OPTIONS
        args["grpc_options"] = {**own, **dict(args.get("grpc_options") or {})}
        try:
            with _quiet():
                client = MilvusClient(uri=uri, **args)
        except Exception as exc:  # pymilvus raises several unrelated types here
            text = str(exc)
            if lite and ("lock" in text.lower() or "open local milvus failed" in text.lower()):
                raise MilvusConnectionError(
                    f"Milvus Lite file {uri!r} is held by another process ({text.strip()}); "
                    "one process at a time may open a Lite file. To share it, run "
                    f"'milvus-lite server --data-dir {uri} --host 127.0.0.1 --port 19530' and "
                    "connect every process with "
                    "uri='http://127.0.0.1:19530', or use a Milvus server"
                ) from exc
            if _fault(exc) == "full":
                raise StorageFullError(_full_message(uri, "open", exc)) from exc
            raise MilvusConnectionError(
                f"cannot connect to Milvus at {uri!r} within {args['timeout']} s: "
                f"{text.strip()}; check that the server runs and the uri, token and db_name "
                "are right"
            ) from exc
        conn = cls(client, uri, lite, retry=retry, owns_client=True, **limits)
        if not lite:
            # MilvusClient neither checks db_name nor credentials: one cheap call does,
            # so a wrong one fails here and not at the first write.
            try:
                with _quiet():
                    client.list_collections(timeout=conn.timeout)
            except Exception as exc:
                client.close()
                if _fault(exc) is not None:
                    raise MilvusConnectionError(
                        conn._message("list_collections", _fault(exc) or "", conn.timeout, 1,
                                      conn.timeout, exc)
                    ) from exc
                raise MilvusConnectionError(
                    f"Milvus at {uri!r} refused db_name={args.get('db_name') or 'default'!r} "
                    f"or the credentials: {str(exc).strip()}; check the token (user:password) "
                    "and that the database exists"
                ) from exc
        return conn

    @classmethod
    def wrap(cls, client: Any) -> Connection:
        """A connection over a ready ``MilvusClient`` (closing it stays the caller's job)."""
        if isinstance(client, Connection):
            return client
        uri = str(getattr(client, "_uri", "") or getattr(client, "uri", "") or "the given client")
        return cls(client, uri, client_is_lite(client))

    def close(self) -> None:
        """Close the client if this connection opened it."""
        if self.owns_client:
            self.client.close()

    # -- calling
    def limit_of(self, name: str) -> float | None:
        """The deadline, in seconds, of the client method ``name`` (None: no limit)."""
        return self.index_timeout if name in SLOW_CALLS else self.call_timeout

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<name>(*args, **kwargs)`` with a deadline, retries and the package's errors.

        See the module docstring for what is retried.
        """
        method = getattr(self.client, name)
        limit = self.limit_of(name)
        caller = kwargs.get("timeout")  # the caller's own, e.g. LangChain's timeout=
        if caller is not None and (limit is None or caller < limit):
            limit = float(caller)

        steps = STEPS.get(name, 1)

        def attempt(timeout: float | None) -> Any:
            if timeout is not None:
                kwargs["timeout"] = timeout / steps
            return method(*args, **kwargs)

        collection = args[0] if args and isinstance(args[0], str) else None
        result = self.run(name, attempt, limit, collection, caller is not None)
        return _BoundedIterator(self, result, limit) if name == "query_iterator" else result

    def run(
        self,
        name: str,
        attempt: Callable[[float | None], Any],
        limit: float | None,
        collection: str | None = None,
        caller_limit: bool = False,
    ) -> Any:
        """``attempt(seconds left)`` until it succeeds or may not be retried.

        Retried while the fault allows and ``limit`` seconds (None: no limit) have not
        passed.

        A read of ``collection`` refused because it is not loaded (a restarted Milvus 2.3
        server loads its collections again in the background: "collection not loaded"
        for about a second) loads it and reads again.
        """
        began = time.monotonic()
        deadline = None if limit is None else began + limit
        pauses = self.retry.pauses()
        attempts = 0
        while True:
            attempts += 1
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                with _quiet():
                    return attempt(left)
            except Exception as exc:
                fault = _fault(exc)
                if fault is None and collection and name in READS and _not_loaded(exc):
                    pause = next(pauses, None)
                    if pause is not None:
                        self.call("load_collection", collection, timeout=left)
                        continue
                if fault is None:
                    raise
                if fault == "full":
                    raise StorageFullError(_full_message(self.uri, name, exc)) from exc
                retry = fault == "unreachable" or (fault == "broken" and name in READS)
                pause = next(pauses, None) if retry else None
                if pause is not None and (deadline is None or time.monotonic() + pause < deadline):
                    time.sleep(pause)
                    continue
                elapsed = time.monotonic() - began
                raise MilvusConnectionError(
                    self._message(name, fault, limit, attempts, elapsed, exc, caller_limit)
                ) from exc

    def _message(
        self,
        name: str,
        fault: str,
        limit: float | None,
        attempts: int,
        elapsed: float,
        exc: BaseException,
        caller_limit: bool = False,
    ) -> str:
        tries = f"{attempts} {'try' if attempts == 1 else 'tries'} in {elapsed:.1f} s"
        if fault == "deadline" and caller_limit:
            head = (
                f"Milvus at {self.uri!r} did not answer {name} within timeout={limit:g} s; "
                f"pass a larger timeout, or check that the server is up and not overloaded "
                f"({tries})"
            )
        elif fault == "deadline":
            knob = "index_timeout" if name in SLOW_CALLS else "call_timeout"
            within = "in time" if limit is None else f"within {limit:g} s"
            head = (
                f"Milvus at {self.uri!r} did not answer {name} {within} ({tries}); "
                "check that the server is up and not overloaded, or raise connection_args "
                f"{knob}"
            )
        else:
            what = "could not be reached" if fault == "unreachable" else "dropped the connection"
            head = (
                f"Milvus at {self.uri!r} {what} during {name} ({tries}: {_detail(exc)}); "
                "check that the server runs; this store reconnects by itself once it answers"
            )
        if name in READS:
            return head
        if fault == "unreachable":
            return head + f". The {name} was not applied"
        return (
            head + f". The {name} may or may not have been applied; the store's writes are "
            "upserts by id and deletes, so running the same call again is safe"
        )


class _Calls:
    """The client's methods, each through :meth:`Connection.call`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in LOCAL:
            return getattr(self._conn.client, name)
        conn = self._conn

        def call(*args: Any, **kwargs: Any) -> Any:
            return conn.call(name, *args, **kwargs)

        call.__name__ = name
        return call


class _BoundedIterator:
    """A pymilvus query iterator whose pages fail with the package's errors.

    Each page is a query with the iterator's own timeout (the call's deadline); a page
    that failed did not move the iterator's cursor, so it is asked for again like any read.
    """

    def __init__(self, conn: Connection, iterator: Any, limit: float | None) -> None:
        self._conn = conn
        self._iterator = iterator
        self._limit = limit

    def next(self) -> list[dict[str, Any]]:
        # each attempt is bounded by the page's own timeout, set when the iterator was made
        return self._conn.run("query_iterator", lambda _left: self._iterator.next(), self._limit)

    def close(self) -> None:
        with _quiet():
            self._iterator.close()


# ---------------------------------------------------------------------------- settings


def _seconds(name: str, value: Any, example: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(
            f"connection_args {name}={value!r} must be a positive number of seconds, e.g. {example}"
        )
    return float(value)


def _limits(args: dict[str, Any]) -> dict[str, Any]:
    """The time limits in ``args`` (``timeout`` stays there: MilvusClient takes it too)."""
    timeout = _seconds("timeout", args.setdefault("timeout", DEFAULT_TIMEOUT), DEFAULT_TIMEOUT)
    limits: dict[str, Any] = {"timeout": timeout}
    for key, default in (
        ("call_timeout", DEFAULT_CALL_TIMEOUT),
        ("index_timeout", DEFAULT_INDEX_TIMEOUT),
    ):
        value = args.pop(key, default)
        limits[key] = None if value is None else _seconds(key, value, default)
    return limits


def _retry_policy(args: dict[str, Any]) -> RetryPolicy:
    default = RetryPolicy()
    retries = args.pop("max_retries", default.retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(
            f"connection_args max_retries={retries!r} must be an integer >= 0, e.g. 5 "
            "(0: never send a call again)"
        )
    backoff = _seconds("retry_backoff", args.pop("retry_backoff", default.backoff), 0.25)
    return RetryPolicy(retries=retries, backoff=backoff, max_backoff=max(backoff, 4.0))


# ---------------------------------------------------------------------------- helpers


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


_LITE_WRITE_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LITE_WRITE_LOCKS_GUARD = threading.Lock()


def lite_writes(lite: bool, name: str, uri: str) -> contextlib.AbstractContextManager:
    """Serialise this process's writes to a Milvus Lite collection.

    Milvus Lite 3.2 freezes its memtable outside its own lock when it flushes (on
    ``flush()`` and on the automatic flush inside insert/upsert/delete): two threads
    writing at once can commit the flushes out of order and one of them fails with
    "current_seq is monotonic; tried to set 300 < 350" although its rows were written.
    Servers need no lock. Only one process may open a Lite file, so a process-wide
    lock per collection of a file is enough: the key is the file's resolved path
    (``uri``, the connection's) and the collection name, so collections of the same
    name in two Lite files do not wait on each other.
    """
    if not lite:
        return contextlib.nullcontext()
    key = (os.path.realpath(uri), name)
    with _LITE_WRITE_LOCKS_GUARD:
        return _LITE_WRITE_LOCKS.setdefault(key, threading.Lock())


def client_is_lite(client: Any) -> bool:
    """Whether a ready ``MilvusClient`` talks to Milvus Lite.

    Milvus Lite reports ``milvus_lite-3.2.2``; Embedded Milvus (a real 2.3 server,
    PyPI package ``milvus``) reports ``v2.3.5-lite``, so "lite" alone is not enough.
    """
    try:
        with _quiet():
            version = str(client.get_server_version(timeout=DEFAULT_TIMEOUT)).lower()
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


def connect(connection_args: Mapping[str, Any] | None) -> tuple[Any, bool, str]:
    """``(client, is_lite, uri)`` of :meth:`Connection.open` (kept for scripts)."""
    conn = Connection.open(connection_args)
    return conn.client, conn.lite, conn.uri


def as_connection(client: Any) -> Connection:
    """``client`` if it is a :class:`Connection`, else a connection over that client."""
    return Connection.wrap(client)
