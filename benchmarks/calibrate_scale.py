"""Calibration at scale: time and peak memory of ``store.calibrate`` on N documents.

Data: synthetic Matryoshka-like vectors (768 dims, variance decaying along the
dimensions, with clustered structure so neighbours are meaningful), ingested into a
Milvus Lite file through ``MatryoshkaMilvus.add_embeddings``; then ``calibrate`` with
pseudo-queries made by perturbing stored vectors (``pseudo="perturbed"``: the fake embeddings
cannot embed spans), target recall@10 0.99.

Run:  python benchmarks/calibrate_scale.py --n 100000 \\
          --json benchmarks/results/calibrate-scale-100000.json
Prints the calibration curve, the chosen setting, wall time and peak resident memory
(ru_maxrss of this process, which hosts Milvus Lite too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np
from langchain_core.embeddings import FakeEmbeddings
from tqdm.auto import tqdm

from langchain_matryoshka import MatryoshkaMilvus


def synthetic(n: int, dim: int, seed: int = 0, clusters: int = 1000) -> np.ndarray:
    """Clustered vectors whose per-dimension scale decays like a Matryoshka model's."""
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(1.0 + np.arange(dim) / 8.0)).astype(np.float32)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 10000):
        m = min(10000, n - start)
        labels = rng.integers(0, clusters, m)
        out[start : start + m] = (
            centres[labels] + 0.8 * rng.standard_normal((m, dim)).astype(np.float32)
        ) * scale
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--search-dim", type=int, default=128)
    ap.add_argument("--n-pseudo", type=int, default=200)
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--db", default=None, help="Lite file (default: a temporary one)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    uri = args.db or os.path.join(tmp.name, "calib.db")
    store = MatryoshkaMilvus(
        FakeEmbeddings(size=args.dim), collection_name="calib", connection_args={"uri": uri},
        search_dim=args.search_dim, drop_old=True,
    )
    t0 = time.perf_counter()
    chunk = 5000
    for start in tqdm(range(0, args.n, chunk), desc="ingesting", unit="chunk"):
        m = min(chunk, args.n - start)
        vecs = synthetic(m, args.dim, seed=start)
        store.add_embeddings([f"doc {start + i}" for i in range(m)], vecs,
                             ids=[f"d{start + i}" for i in range(m)])
    store.build_index()
    ingest_s = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # FakeEmbeddings cannot embed spans: perturbed stored vectors need no model
    result = store.calibrate(k=10, target_recall=args.target, n_pseudo=args.n_pseudo,
                             pseudo="perturbed", show_progress=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(result.table())
    figures = {
        "n_docs": args.n, "dim": args.dim, "search_dim": args.search_dim,
        "ingest_and_index_s": round(ingest_s, 1), "calibration_s": round(result.seconds, 1),
        "peak_rss_mb_before_calibration": round(rss_before), "peak_rss_mb": round(peak),
        "chosen_candidates": result.candidates, "chosen_prune_ratio": result.prune_ratio,
        "reached": result.reached, "n_queries": result.n_queries,
        "pseudo_method": result.pseudo_method, "target_recall": args.target,
        "required_recall": result.required_recall, "margin_cost": result.margin_cost,
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "command": " ".join(["python", "benchmarks/calibrate_scale.py", *sys.argv[1:]]),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({**figures, "curve": result.to_dict()["curve"]}, f, indent=2)
    store.close()


if __name__ == "__main__":
    main()
