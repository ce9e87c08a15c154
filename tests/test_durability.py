"""Nothing lost: ingestion killed with SIGKILL and run again ends with every row exactly once.

A real subprocess ingests N documents with deterministic ids into a Milvus Lite file in
``add_texts`` calls of B; the test SIGKILLs it mid-way (twice, at different points), runs
the same ingestion again to completion, and checks that the file holds exactly N rows,
each id once with its own text and metadata, and that a reopened store searches them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import NamedTuple

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_matryoshka import MatryoshkaMilvus

N = 3000
BATCH = 100
COLLECTION = "ingest"

INGEST = textwrap.dedent(
    """
    import sys
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_matryoshka import MatryoshkaMilvus

    uri, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pause_at = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=16), collection_name="ingest",
                             connection_args={"uri": uri}, search_dim=4)
    count, ids = 0, []
    if store.dim is not None:
        count = store.client.query("ingest", filter="", output_fields=["count(*)"])[0]["count(*)"]
        rows = store.client.query("ingest", filter="", output_fields=["id"], limit=16384)
        ids = sorted({int(r["id"][4:]) for r in rows})
    print(f"found {count} {','.join(map(str, ids))}", flush=True)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        print(f"writing {start // batch}", flush=True)
        if start // batch == pause_at:
            sys.stdin.readline()  # the test says when to go on, then kills us
        store.add_texts(
            [f"text {i}" for i in range(start, stop)],
            metadatas=[{"i": i, "batch": start // batch} for i in range(start, stop)],
            ids=[f"doc-{i:05d}" for i in range(start, stop)],
        )
        print(f"wrote {start // batch}", flush=True)
    print("done", flush=True)
    """
)


def _start(uri: str, pause_at: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", INGEST, uri, str(N), str(BATCH), str(pause_at)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Found(NamedTuple):
    """What a writer found in the file when it opened it."""

    count: int
    """Milvus' count(*)."""
    ids: set[int]
    """The distinct ids (``doc-00042`` -> 42)."""


def _found(value: str) -> Found:
    count, _, ids = value.partition(" ")
    return Found(int(count), {int(i) for i in ids.split(",") if i})


def _check_survived(found: Found, acked: int) -> None:
    """Every batch acknowledged before the kill is there; at most the one in flight more.

    Milvus Lite 3.2 may also hold one batch twice: killed after a flush committed its
    manifest but before it deleted the write-ahead log, it replays that log on the next
    open, and count(*) (and query) count the replayed copies beside the flushed ones
    until the rows are written again (test_a_replayed_flush_leaves_no_duplicate_results).
    The distinct ids are what the ingestion guarantees.
    """
    assert set(range(acked * BATCH)) <= found.ids <= set(range((acked + 1) * BATCH))
    assert len(found.ids) <= found.count <= len(found.ids) + BATCH


def _run_and_kill(uri: str, kill_at: int, delay: float) -> tuple[Found, int]:
    """Ingest until batch ``kill_at`` is about to be written, let it start, SIGKILL it
    ``delay`` seconds later (the writer waits there until the test says go).

    In those ``delay`` seconds the writer may finish batch ``kill_at`` and start the next
    ones, so the batches acknowledged are read from everything it printed before the kill
    (its lines stay in the pipe).

    Returns (what the process found when it opened the file, batches acknowledged).
    """
    proc = _start(uri, kill_at)
    found, acked, killed = Found(-1, set()), 0, False
    try:
        for line in proc.stdout:
            word, _, value = line.strip().partition(" ")
            if word == "found":
                found = _found(value)
            elif word == "wrote":
                acked = int(value) + 1
            elif word == "writing" and int(value) == kill_at and not killed:
                proc.stdin.write("go\n")
                proc.stdin.flush()
                time.sleep(delay)  # somewhere inside add_texts: embedding, upsert or flush
                os.kill(proc.pid, signal.SIGKILL)
                killed = True  # read on: the lines printed before the kill
            elif word == "done":
                pytest.fail("the ingestion finished before it could be killed")
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-3000:]
    return found, acked


def _all_rows(store: MatryoshkaMilvus) -> list[dict]:
    return store.client.query(
        COLLECTION, filter="", output_fields=["id", "text", "metadata"], limit=16384
    )


def test_ingestion_killed_and_rerun_holds_every_row_once(tmp_path) -> None:
    uri = str(tmp_path / "ingest.db")

    found1, acked1 = _run_and_kill(uri, kill_at=6, delay=0.0)
    assert found1 == Found(0, set()) and 6 <= acked1 < 19

    found2, acked2 = _run_and_kill(uri, kill_at=19, delay=0.03)
    _check_survived(found2, acked1)
    assert 19 <= acked2 < N // BATCH

    proc = subprocess.run(
        [sys.executable, "-c", INGEST, uri, str(N), str(BATCH)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = proc.stdout.split("\n")
    found3 = _found(lines[0].partition(" ")[2])
    _check_survived(found3, acked2)
    assert lines[-2] == "done"

    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        collection_name=COLLECTION,
        connection_args={"uri": uri},
    )
    try:
        count = store.client.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"]
        rows = _all_rows(store)
        ids = [r["id"] for r in rows]
        print(
            f"\nrows after kill 1: {len(found2.ids)} (count(*) {found2.count}, acked "
            f"{acked1 * BATCH}), after kill 2: {len(found3.ids)} (count(*) {found3.count}, "
            f"acked {acked2 * BATCH}); expected {N}, found {count} ({len(set(ids))} distinct ids)"
        )
        assert count == N
        assert len(ids) == N and len(set(ids)) == N
        assert set(ids) == {f"doc-{i:05d}" for i in range(N)}
        for r in rows:
            i = int(r["id"][4:])
            assert r["text"] == f"text {i}"
            assert r["metadata"] == {"i": i, "batch": i // BATCH}

        # a reopened store returns what was written, searchable
        assert (store.dim, store.search_dim) == (16, 4)
        assert store.get_by_ids(["doc-02999", "doc-00000", "doc-03000"]) == [
            Document(id="doc-02999", page_content="text 2999", metadata={"i": 2999, "batch": 29}),
            Document(id="doc-00000", page_content="text 0", metadata={"i": 0, "batch": 0}),
        ]
        top = store.similarity_search("text 1234", k=1, candidates=64)
        assert [d.id for d in top] == ["doc-01234"]

        # deleting missing ids is a no-op, whatever they hold
        assert store.delete(["missing", "doc-99999", "x'] or id not in ['y", 'a"b\\']) is True
        assert (
            store.client.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"]
            == N
        )
        store.delete(["doc-00007"])
        assert len(_all_rows(store)) == N - 1
        assert store.get_by_ids(["doc-00007", "doc-00008"])[0].id == "doc-00008"
    finally:
        store.close()


REPLAY_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import milvus_lite.storage.wal as wal
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_matryoshka import MatryoshkaMilvus

    store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=16), collection_name="ingest",
                             connection_args={"uri": sys.argv[1]}, search_dim=4)
    def batch(b):
        store.add_texts([f"text {i}" for i in range(100 * b, 100 * b + 100)],
                        ids=[f"doc-{i:05d}" for i in range(100 * b, 100 * b + 100)])
    for b in range(5):
        batch(b)
    def killed(self):  # the flush committed its manifest; the log is not deleted yet
        print("killed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    wal.WAL.close_and_delete = killed
    batch(5)
    print("not killed", flush=True)
    """
)


def test_a_replayed_flush_leaves_no_duplicate_results(tmp_path) -> None:
    """Milvus Lite killed between a flush's manifest commit and its log deletion (the
    kill test above lands there now and then: 4 kills in 40 at random points of
    add_texts) holds the flushed batch twice after reopening. The store's searches,
    gets and scans return each document once; writing the rows again heals the file."""
    uri = str(tmp_path / "replay.db")
    proc = subprocess.run(
        [sys.executable, "-c", REPLAY_WRITER, uri], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "killed\n", proc.stderr[-3000:]
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        collection_name=COLLECTION,
        connection_args={"uri": uri},
    )
    try:
        raw = _all_rows(store)
        count = store.client.query(COLLECTION, filter="", output_fields=["count(*)"])
        print(
            f"\nafter the kill: count(*) {count[0]['count(*)']}, query rows {len(raw)}, "
            f"distinct ids {len({r['id'] for r in raw})}; expected 600"
        )
        assert {r["id"] for r in raw} == {f"doc-{i:05d}" for i in range(600)}

        top = store.similarity_search("text 550", k=10, candidates=600)
        assert top[0].id == "doc-00550" and len({d.id for d in top}) == 10
        assert [d.id for d in store.get_by_ids(["doc-00550", "doc-00001"])] == [
            "doc-00550",
            "doc-00001",
        ]
        ids, _ = store._engine.exact(store.embeddings.embed_documents(["text 550"]), k=600)
        assert sorted(ids[0]) == [f"doc-{i:05d}" for i in range(600)]
        assert sorted(store._engine.collection.all_ids()) == sorted(ids[0])

        store.add_texts(
            [f"text {i}" for i in range(500, 600)], ids=[f"doc-{i:05d}" for i in range(500, 600)]
        )
        rows = _all_rows(store)
        assert len(rows) == len({r["id"] for r in rows}) == 600
        count = store.client.query(COLLECTION, filter="", output_fields=["count(*)"])
        assert count[0]["count(*)"] == 600
    finally:
        store.close()


def test_delete_of_missing_ids_is_a_no_op(tmp_path) -> None:
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        connection_args={"uri": str(tmp_path / "d.db")},
        search_dim=4,
    )
    assert store.delete(["never-written"]) is True  # before the collection exists
    store.add_texts(["a", "b", "c"], ids=["1", "2", "3"])
    before = store.get_by_ids(["1", "2", "3"])
    for missing in (
        ["4"],
        ["4", "5"],
        ["'"],
        ['"'],
        ["\\"],
        ["1' or id != '"],
        ["3'] or id in ['1"],
    ):
        assert store.delete(missing) is True
        assert store.get_by_ids(["1", "2", "3"]) == before
    store.delete(["2", "missing"])
    assert [d.id for d in store.get_by_ids(["1", "2", "3"])] == ["1", "3"]
    store.close()


def test_a_truncated_index_file_is_rebuilt_on_open(tmp_path) -> None:
    """Milvus Lite writes index files in place: a process killed while it builds one
    leaves it truncated (seen with the kill test above under load) and every later load
    fails. Opening the store rebuilds the index from the intact rows."""
    uri = str(tmp_path / "idx.db")
    writer = textwrap.dedent(
        """
        import sys
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_matryoshka import MatryoshkaMilvus

        store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=16),
                                 connection_args={"uri": sys.argv[1]}, search_dim=4)
        store.add_texts([f"text {i}" for i in range(300)], ids=[f"i{i}" for i in range(300)])
        store.build_index()
        """
    )
    subprocess.run([sys.executable, "-c", writer, uri], check=True, timeout=300)
    index_files = list((tmp_path / "idx.db").rglob("*.idx"))
    assert index_files  # Milvus Lite keeps one index file per segment
    for path in index_files:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])  # what a SIGKILL mid-write leaves
    store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=16), connection_args={"uri": uri})
    try:
        count = store.client.query(store.collection_name, filter="", output_fields=["count(*)"])
        assert count[0]["count(*)"] == 300
        top = store.similarity_search("text 123", k=1)
        assert [(d.id, d.page_content) for d in top] == [("i123", "text 123")]
    finally:
        store.close()


def test_creating_the_head_index_again_keeps_the_built_one(tmp_path) -> None:
    """A long index build makes pymilvus retry ``create_index`` (Milvus Lite sends GOAWAY
    on keepalive pings during the call) and the retry finds the index the first call
    built: that index is kept, not reported as a failure."""
    store = MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=16),
        connection_args={"uri": str(tmp_path / "again.db")},
        search_dim=4,
    )
    try:
        store.add_texts([f"text {i}" for i in range(50)], ids=[f"i{i}" for i in range(50)])
        collection = store._engine.collection
        with pytest.raises(Exception, match="already exists"):  # what the retry meets
            store.client.create_index(
                store.collection_name,
                store.client.prepare_index_params("head", index_type="FLAT", metric_type="IP"),
            )
        collection._create_head_index(collection.layout)
        assert collection._has_head_index()
        top = store.similarity_search("text 7", k=1)
        assert [d.id for d in top] == ["i7"]
    finally:
        store.close()
