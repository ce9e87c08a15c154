"""Disk full under Milvus Lite, on a real size-limited file system the test makes.

A launcher process enters a private mount namespace (as root, or in an unprivileged user
namespace), mounts a small tmpfs there and fills part of it with a ballast file; two
ingestion processes then run inside that namespace, one after the other, as a user would
run an ingestion script twice:

1. ingests batches until the disk is full: the call fails with the package's
   :class:`StorageFullError`, nothing else reaches the terminal (Milvus Lite's threads
   log about a hundred tracebacks), and the rows written before stay readable; it then
   deletes the ballast and runs the same ingestion again from the start, which completes
   with every row exactly once;
2. a new process opens the file (intact: every row once) and runs the ingestion again.

Measured (Milvus Lite 3.2.2): the batch whose flush failed is not visible in the process
that wrote it, but it reached Lite's write-ahead log and reappears when the file is opened
again; as every write is an upsert by id, running the ingestion again never duplicates it.

The tmpfs vanishes with the namespace; nothing is mounted where the tests run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

N = 3000
BATCH = 250
FS_KB = 4096
BALLAST_KB = 3584

LAUNCHER = textwrap.dedent(
    r"""
    import ctypes, json, os, subprocess, sys
    CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
    MS_REC, MS_PRIVATE = 0x4000, 0x40000
    libc = ctypes.CDLL(None, use_errno=True)
    mnt, fs_kb, ballast_kb, phase_script = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWNS) != 0:
        first = os.strerror(ctypes.get_errno())
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
            print(json.dumps({"unavailable": f"unshare(CLONE_NEWNS): {first}; with a user "
                              f"namespace: {os.strerror(ctypes.get_errno())}"}))
            sys.exit(0)
        open("/proc/self/setgroups", "w").write("deny")
        open("/proc/self/uid_map", "w").write(f"0 {uid} 1")
        open("/proc/self/gid_map", "w").write(f"0 {gid} 1")
    # our mounts stay in this namespace
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        print(json.dumps({"unavailable": "mount --make-rprivate /: "
                          + os.strerror(ctypes.get_errno())}))
        sys.exit(0)
    if libc.mount(b"tmpfs", mnt.encode(), b"tmpfs", 0, f"size={fs_kb}k".encode()) != 0:
        print(json.dumps({"unavailable": "mount tmpfs: " + os.strerror(ctypes.get_errno())}))
        sys.exit(0)
    ballast = os.path.join(mnt, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"\0" * (ballast_kb << 10))
    out = {}
    for phase in ("fill", "rerun"):
        proc = subprocess.run([sys.executable, "-c", phase_script, phase, mnt],
                              capture_output=True, text=True, timeout=600)
        out[phase] = {"rc": proc.returncode, "stderr": proc.stderr[-20000:]}
        if proc.returncode == 0:
            out[phase].update(json.loads(proc.stdout.strip().splitlines()[-1]))
        if phase == "fill":
            if os.path.exists(ballast):  # freed by the first process, unless it failed
                os.remove(ballast)
    print(json.dumps(out))
    """
)

PHASE = textwrap.dedent(
    r"""
    import json, os, sys, time
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_matryoshka import MatryoshkaMilvus, StorageFullError

    phase, mnt = sys.argv[1], sys.argv[2]
    N, BATCH = %(n)d, %(batch)d
    ids = [f"doc-{i:05d}" for i in range(N)]
    store = MatryoshkaMilvus(DeterministicFakeEmbedding(size=16), collection_name="full",
                             connection_args={"uri": mnt + "/full.db"}, search_dim=4)
    out = {}

    def count():
        rows = store.client.query("full", filter="", output_fields=["id"], limit=16384)
        return len(rows), len({r["id"] for r in rows})

    def ingest():
        acked = 0
        for start in range(0, N, BATCH):
            began = time.monotonic()
            try:
                store.add_texts([f"text {i}" for i in range(start, start + BATCH)],
                                metadatas=[{"i": i} for i in range(start, start + BATCH)],
                                ids=ids[start : start + BATCH])
            except StorageFullError as exc:
                return acked, {"class": type(exc).__name__, "message": str(exc),
                               "seconds": round(time.monotonic() - began, 3)}
            acked = start + BATCH
        return acked, None

    def check(out):
        out["rows"], out["distinct"] = count()
        sample = ids[: out["acked"] : 97]
        out["sample_readable"] = [d.id for d in store.get_by_ids(sample)] == sample
        out["search"] = [d.id for d in store.similarity_search("text 123", k=1)]
        docs = store.get_by_ids([ids[0], ids[out["acked"] - 1]]) if out["acked"] else []
        out["contents"] = [(d.page_content, d.metadata) for d in docs]

    if phase == "rerun":  # a new process, after the launcher freed the space
        out["rows_on_open"], out["distinct_on_open"] = count()
    out["acked"], out["error"] = ingest()
    check(out)
    if phase == "fill":  # the same process goes on once space is freed
        os.remove(mnt + "/ballast")
        again = {}
        again["acked"], again["error"] = ingest()
        check(again)
        out["same_process"] = again
    print(json.dumps(out))
    """
)


def test_disk_full_is_a_clear_error_and_the_rerun_completes(tmp_path) -> None:
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    phase = PHASE % {"n": N, "batch": BATCH}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(mnt), str(FS_KB), str(BALLAST_KB), phase],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "unavailable" in out:
        pytest.skip(f"this OS cannot make a private small file system: {out['unavailable']}")
    fill, rerun = out["fill"], out["rerun"]
    assert fill["rc"] == 0, fill["stderr"][-5000:]
    assert rerun["rc"] == 0, rerun["stderr"][-5000:]
    same = fill["same_process"]
    print(
        f"\n{FS_KB} KiB tmpfs, {BALLAST_KB} KiB ballast: {fill['error']['class']} after "
        f"{fill['acked']} acknowledged rows, in {fill['error']['seconds']} s: "
        f"{fill['error']['message'][:160]}...; rows readable then {fill['rows']} "
        f"({fill['distinct']} distinct); the same process after freeing the ballast: "
        f"{same['rows']} rows ({same['distinct']} distinct); a new process: "
        f"{rerun['rows_on_open']} rows on opening ({rerun['distinct_on_open']} distinct), "
        f"{rerun['rows']} after the rerun ({rerun['distinct']} distinct); expected {N}"
    )

    # 1. the clear error, and nothing else on the terminal
    error = fill["error"]
    assert error is not None, "the disk never filled up"
    assert error["class"] == "StorageFullError"
    assert "no space left" in error["message"] and "full.db" in error["message"]
    assert "run the same ingestion again" in error["message"]
    assert fill["stderr"].strip() == "", fill["stderr"][-3000:]  # no Lite tracebacks
    # the rows written before stay readable and searchable
    assert BATCH < fill["acked"] < N
    assert fill["acked"] <= fill["distinct"] == fill["rows"] <= fill["acked"] + BATCH
    assert fill["sample_readable"] and fill["search"] == ["doc-00123"]
    assert fill["contents"][0] == ["text 0", {"i": 0}]

    # 2. space freed, the same process runs the ingestion again: complete, no duplicates
    assert same["error"] is None, same["error"]
    assert same["acked"] == N and same["rows"] == same["distinct"] == N
    assert same["sample_readable"] and same["search"] == ["doc-00123"]

    # 3. a new process opens the file intact and its rerun changes nothing
    assert rerun["rows_on_open"] == rerun["distinct_on_open"] == N
    assert rerun["error"] is None and rerun["acked"] == N
    assert rerun["rows"] == rerun["distinct"] == N
    assert rerun["sample_readable"] and rerun["search"] == ["doc-00123"]
    assert rerun["contents"] == [["text 0", {"i": 0}], [f"text {N - 1}", {"i": N - 1}]]
    assert rerun["stderr"].strip() == "", rerun["stderr"][-3000:]
