"""Pytest fixtures for a real Milvus server (loaded from tests/conftest.py as a plugin).

``milvus_server`` (session): one Embedded Milvus 2.3 server for the whole run, in a
private network namespace, reached at ``http://127.0.0.1:<free port>`` (see
tests/server.py). ``server_uri``: its uri. ``server_collection``: a fresh collection
name, dropped (with its ``_mrl_meta`` companion) after the test (``module_server_collections``:
names for a module's shared stores, dropped after the module). ``restartable_server``
(module): a server of the module's own, for tests that kill and restart it.

Environment:
    MATRYOSHKA_TEST_MILVUS_URI   use this running server instead of starting one
    MATRYOSHKA_REQUIRE_SERVER=1  fail, instead of skipping, when no server can start
                                 (.ci/run sets it)
    MATRYOSHKA_SERVER_START_TIMEOUT  bound on the start, seconds (default 120)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from langchain_matryoshka import _milvus
from tests.server import START_TIMEOUT, MilvusTestServer, ServerUnavailable


@dataclass(frozen=True)
class ServerInfo:
    uri: str
    start_seconds: float = 0.0
    external: bool = False


def _drop(uri: str, names: list[str]) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=10)
    try:
        for name in names:
            if client.has_collection(name):
                client.drop_collection(name)
    finally:
        client.close()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    external = os.environ.get("MATRYOSHKA_TEST_MILVUS_URI")
    if external:
        yield ServerInfo(uri=external, external=True)
        return
    server = MilvusTestServer(tmp_path_factory.mktemp("milvus-server"))
    try:
        server.start(timeout=START_TIMEOUT)
    except (ServerUnavailable, RuntimeError) as exc:
        if os.environ.get("MATRYOSHKA_REQUIRE_SERVER") == "1" or not isinstance(
            exc, ServerUnavailable
        ):
            pytest.fail(f"Milvus test server: {exc}", pytrace=False)
        pytest.skip(f"no Milvus test server: {exc}")
    try:
        yield ServerInfo(uri=server.uri, start_seconds=server.start_seconds)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def restartable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusTestServer]:
    """A server of the module's own, which its tests may SIGKILL and restart
    (:meth:`MilvusTestServer.kill`, :meth:`~MilvusTestServer.restart`)."""
    if os.environ.get("MATRYOSHKA_TEST_MILVUS_URI"):
        pytest.skip("restart tests need a server the tests start, not MATRYOSHKA_TEST_MILVUS_URI")
    server = MilvusTestServer(tmp_path_factory.mktemp("milvus-restartable"))
    try:
        server.start(timeout=START_TIMEOUT)
    except (ServerUnavailable, RuntimeError) as exc:
        if os.environ.get("MATRYOSHKA_REQUIRE_SERVER") == "1" or not isinstance(
            exc, ServerUnavailable
        ):
            pytest.fail(f"Milvus test server: {exc}", pytrace=False)
        pytest.skip(f"no Milvus test server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_uri(milvus_server: ServerInfo) -> str:
    return milvus_server.uri


def _collections(uri: str) -> Iterator[Callable[[], str]]:
    names: list[str] = []

    def make() -> str:
        names.append(f"t_{uuid.uuid4().hex[:16]}")
        return names[-1]

    yield make
    suffix = getattr(_milvus, "META_SUFFIX", "_mrl_meta")
    _drop(uri, [n + s for n in names for s in ("", suffix)])


@pytest.fixture
def server_collections(milvus_server: ServerInfo) -> Iterator[Callable[[], str]]:
    """A factory of collection names no other test uses; all dropped afterwards."""
    yield from _collections(milvus_server.uri)


@pytest.fixture(scope="module")
def module_server_collections(milvus_server: ServerInfo) -> Iterator[Callable[[], str]]:
    """The same for a module's shared stores: dropped after the module's last test."""
    yield from _collections(milvus_server.uri)


@pytest.fixture
def server_collection(server_collections: Callable[[], str]) -> str:
    """A collection name no other test uses; dropped afterwards."""
    return server_collections()
