"""Quiet by default: a Milvus Lite connection sends no keepalive pings for Lite to refuse.

pymilvus pings every 10 s; Milvus Lite's in-process gRPC server answers pings without data
with GOAWAY "too_many_pings", which gRPC prints to stderr after about 30 s idle (measured:
a plain ``MilvusClient`` idle for 70 s printed it, one with these options printed nothing).
The test checks that the options reach pymilvus' channel; the 30 s wait is not run here.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._connection import GRPC_OPTIONS, LITE_GRPC_OPTIONS, Connection


def _channel_options(client: object) -> dict:
    return dict(client._get_connection()._grpc_options)  # type: ignore[attr-defined]


def test_a_lite_store_turns_keepalive_pings_off(tmp_path: Path) -> None:
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        connection_args={"uri": str(tmp_path / "quiet.db")},
    )
    options = _channel_options(store.client)
    assert options["grpc.keepalive_time_ms"] == 2**31 - 1
    assert options["grpc.keepalive_permit_without_calls"] is False
    assert not set(GRPC_OPTIONS) & set(options)  # the server options are not Lite's


def test_a_users_grpc_options_win_over_the_lite_defaults(tmp_path: Path) -> None:
    conn = Connection.open(
        {"uri": str(tmp_path / "own.db"), "grpc_options": {"grpc.keepalive_time_ms": 60000}}
    )
    try:
        options = _channel_options(conn.client)
        assert options["grpc.keepalive_time_ms"] == 60000
        assert options["grpc.keepalive_permit_without_calls"] is LITE_GRPC_OPTIONS[
            "grpc.keepalive_permit_without_calls"
        ]
    finally:
        conn.client.close()
