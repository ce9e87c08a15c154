"""Where a Milvus Lite search's time goes: py-spy samples of both stores' searches.

Milvus Lite runs its server in the caller's process, so one py-spy recording of a process
doing back-to-back ``similarity_search`` calls (k=10) sees Lite's work and the client's.
Each store searches in a process of its own (its stores opened from ``--workdir``, as
``benchmarks/vs_langchain_milvus.py --workdir W`` left them); the shares of samples in
Lite's per-row loops, its hit materialisation, faiss, and this package's client side are
written as JSON, as milliseconds per search (samples / rate / searches during the
recording: on-CPU time, which py-spy samples in every thread) and as shares of the
measured time per search. Needs py-spy (``pip install py-spy``; it reads another
process's stacks, so it runs as the same user or root).

    python benchmarks/vs_langchain_milvus.py --workdir W --n 100000
    python benchmarks/lite_profile.py --workdir W
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = Path(__file__).resolve().parent / "results"

#: Row label -> (a frame name, frames that must not be in the stack); a sample counts once
#: per label. The package's own client-side work: its search frame, outside its two Milvus
#: calls (the head search, the documents' lookup).
FRAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "lite_search": ("Collection.search", ()),
    "lite_build_local_mask": ("_build_local_mask", ()),
    "lite_update_max_seqs": ("_update_max_seqs", ()),
    "lite_row_to_dict": ("row_to_dict", ()),
    "faiss_search": ("FaissHnswIndex.search", ()),
    "package_client_side": (
        "SearchMethods.search", ("MilvusCollection.search", "MilvusCollection.get")
    ),
    "package_documents_lookup": ("MilvusCollection.get", ()),
}


def child(workdir: str, which: str, seconds: float) -> None:
    from _synthetic import centres_for, synthetic
    from scale import unit
    from vs_langchain_milvus import K, Precomputed, open_stores

    dim = 768
    queries = unit(synthetic(60, centres_for(dim, 1000, seed=7), seed=13)[0]).astype(np.float32)
    qtexts = [f"query {i}" for i in range(len(queries))]
    emb = Precomputed(dict(zip(qtexts, queries.tolist())), dim)
    warnings.simplefilter("ignore")
    funnel, plain = open_stores(argparse.Namespace(uri=None, workdir=workdir), emb, drop=False)
    store = funnel if which == "funnel" else plain
    for q in qtexts[:10]:
        store.similarity_search(q, k=K)
    print("ready", flush=True)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        store.similarity_search(qtexts[n % len(qtexts)], k=K)
        n += 1
    print(n, time.monotonic() - t0, flush=True)


def _has(names: set[str], frame: str) -> bool:
    """Whether a stack's function names hold ``frame`` (or ``<outer>.frame``)."""
    return any(name == frame or name.endswith("." + frame) for name in names)


def samples(raw: Path) -> dict[str, int]:
    """Samples (any thread) whose stack holds each :data:`FRAMES` frame."""
    counts = dict.fromkeys(FRAMES, 0)
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        names = {f.split(" (")[0] for f in stack.split(";")}
        for label, (frame, outside) in FRAMES.items():
            if _has(names, frame) and not any(_has(names, o) for o in outside):
                counts[label] += int(n)
    return counts


def profile(workdir: str, which: str, seconds: float, rate: int) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--workdir", workdir, "--child", which,
         "--seconds", str(seconds + 10)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"the {which} search process did not start")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "samples.txt"
        subprocess.run(
            ["py-spy", "record", "-p", str(proc.pid), "-d", str(int(seconds)), "-r", str(rate),
             "--format", "raw", "-o", str(raw)],
            check=True, capture_output=True,
        )
        n, elapsed = proc.stdout.readline().split()
        proc.wait()
        per_search_s = float(elapsed) / int(n)
        searched = seconds / per_search_s  # searches during the recording
        ms = {label: 1000 * c / rate / searched for label, c in samples(raw).items()}
        return {
            "ms_per_search": 1000 * per_search_s,
            "ms_in": ms,
            "share_of_search": {label: v / (1000 * per_search_s) for label, v in ms.items()},
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--child", choices=["funnel", "langchain_milvus"], help=argparse.SUPPRESS)
    ap.add_argument("--json", default=str(RESULTS / "lite-profile-100000.json"))
    args = ap.parse_args()
    if args.child:
        child(args.workdir, args.child, args.seconds)
        return
    result = {
        "command": "python benchmarks/lite_profile.py --workdir W",  # W: the stores' folder
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "sample_rate": args.rate,
        "stores": {w: profile(args.workdir, w, args.seconds, args.rate)
                   for w in ("funnel", "langchain_milvus")},
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
