"""Filtered and tenant-scoped search: latency and recall, declared columns vs JSON keys.

Two stores hold the same synthetic Matryoshka-like vectors and the same metadata: one
declares the filtered keys as typed columns (``metadata_fields``) with ``tenant`` as
its partition key, the other keeps every key in the JSON field (0.2's layout of
metadata). Every query runs every search back to back in a rotating order (paired), so
load from other jobs hits them alike; each figure is the median of the per-query ratios
to the unfiltered search of the same store. Recall@10 is against exact filtered search
(numpy over the rows that pass, from the generated vectors).

    python benchmarks/filters.py --n 100000 --workdir W --json benchmarks/results/filters-lite.json
    python benchmarks/filters.py --n 100000 --uri http://127.0.0.1:19530 \\
        --json benchmarks/results/filters-server.json   # a server (python tests/server.py)
    python benchmarks/filters.py --render benchmarks/results/filters-lite.json

Filters (value 3 of each key): ``sel10``, ``sel1``, ``sel01`` equality at 10%, 1% and
0.1% of the rows; ``year >= 2018`` a range at 10%; ``tenant`` one of 100 tenants (1%).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import centres_for, synthetic  # noqa: E402
from scale import paired  # noqa: E402

FIELDS = {"sel10": int, "sel1": int, "sel01": int, "year": int, "tenant": str}
TENANTS = 100


def metadata(n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    order = rng.permutation(n)  # values spread over the collection, not in blocks
    return [
        {
            "sel10": int(i % 10),
            "sel1": int(i % 100),
            "sel01": int(i % 1000),
            "year": 2000 + int(i % 20),
            "tenant": f"t{i % TENANTS}",
            "title": f"document {j}",
        }
        for j, i in enumerate(order.tolist())
    ]


FILTERS: dict[str, tuple[dict[str, Any] | None, str | None, Any]] = {
    # name: (filter, expr on a declared column / JSON path, Python predicate)
    "eq 10%": ({"sel10": 3}, None, lambda m: m["sel10"] == 3),
    "eq 1%": ({"sel1": 3}, None, lambda m: m["sel1"] == 3),
    "eq 0.1%": ({"sel01": 3}, None, lambda m: m["sel01"] == 3),
    "range 10%": (None, "year >= 2018", lambda m: m["year"] >= 2018),
    "tenant (1 of 100)": ({"tenant": "t3"}, None, lambda m: m["tenant"] == "t3"),
}


def _store(args: argparse.Namespace, name: str, declared: bool, dim: int) -> Any:
    from langchain_core.embeddings import FakeEmbeddings

    from langchain_matryoshka import MatryoshkaMilvus

    if args.uri:
        conn = {"uri": args.uri}
    else:
        conn = {"uri": str(Path(args.workdir) / f"{name}.db")}
    options: dict[str, Any] = {}
    if declared:
        options = {"metadata_fields": FIELDS, "partition_key": "tenant"}
    return MatryoshkaMilvus(
        FakeEmbeddings(size=dim),
        collection_name=f"filters_{name}",
        connection_args=conn,
        search_dim=args.search_dim,
        drop_old=True,
        **options,
    )


def _disk_mb(args: argparse.Namespace, name: str) -> float | None:
    if args.uri:
        return None
    path = Path(args.workdir) / f"{name}.db"
    files = [path] if path.is_file() else list(path.rglob("*"))
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


def reference(docs: np.ndarray, queries: np.ndarray, keep: np.ndarray, k: int) -> list[set]:
    rows = np.flatnonzero(keep)
    d = docs[rows] / np.linalg.norm(docs[rows], axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    top = np.argsort(-(q @ d.T), axis=1)[:, :k]
    return [{f"id{rows[j]}" for j in row} for row in top]


def run(args: argparse.Namespace) -> dict[str, Any]:
    centres = centres_for(args.dim, 200, seed=1)
    docs, _ = synthetic(args.n, centres, seed=2)
    queries, _ = synthetic(args.queries, centres, seed=3)
    metas = metadata(args.n)
    ids = [f"id{i}" for i in range(args.n)]
    texts = [m["title"] for m in metas]
    out: dict[str, Any] = {"stores": {}, "searches": {}}
    stores = {}
    for name, declared in (("declared", True), ("json", False)):
        if not args.uri:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        store = _store(args, name, declared, args.dim)
        t0 = time.perf_counter()
        for start in range(0, args.n, 10_000):
            store.add_embeddings(
                texts[start : start + 10_000],
                docs[start : start + 10_000].tolist(),
                metas[start : start + 10_000],
                ids=ids[start : start + 10_000],
            )
        store.build_index()
        out["stores"][name] = {
            "ingest_s": time.perf_counter() - t0,
            "disk_mb": _disk_mb(args, name),
        }
        stores[name] = store
        ingest_s = out["stores"][name]["ingest_s"]
        print(f"{name}: ingested {args.n} rows in {ingest_s:.1f} s", flush=True)

    k = args.k
    settings: dict[str, Any] = {}
    truth: dict[str, list[set]] = {}
    everything = np.ones(args.n, dtype=bool)
    truth["unfiltered"] = reference(docs, queries, everything, k)
    for name, store in stores.items():
        def search(store=store, flt=None, expr=None):
            return lambda q: [
                d.id for d, _ in store.similarity_search_with_score_by_vector(
                    q.tolist(), k=k, filter=flt, expr=expr
                )
            ]

        settings[f"{name}: unfiltered"] = search()
        for label, (flt, expr, keep) in FILTERS.items():
            if name == "json" and expr is not None:
                expr = expr.replace("year", 'metadata["year"]')
            settings[f"{name}: {label}"] = search(flt=flt, expr=expr)
            if label not in truth:
                mask = np.array([bool(keep(m)) for m in metas])
                truth[label] = reference(docs, queries, mask, k)
    times, results = paired(settings, queries, args.warmup)
    # The first search with a condition pays its count (and, on Milvus Lite, the read of
    # a selective filter's rows): the same searches with the store's caches emptied.
    cold: dict[str, list[float]] = {}
    for label, search_fn in settings.items():
        store = stores[label.split(": ", 1)[0]]
        for q in queries[: args.cold]:
            store.engine.clear_caches()
            t0 = time.perf_counter()
            search_fn(q)
            cold.setdefault(label, []).append(time.perf_counter() - t0)
    for label, secs in times.items():
        store_name, search_name = label.split(": ", 1)
        base = times[f"{store_name}: unfiltered"]
        want = truth[search_name]
        got = results[label]
        out["searches"][label] = {
            "p50_ms": 1000 * statistics.median(secs),
            "ratio_to_unfiltered": statistics.median(s / b for s, b in zip(secs, base)),
            "recall_at_10": float(np.mean([len(set(g) & w) / len(w) for g, w in zip(got, want)])),
            "returned": float(np.mean([len(g) for g in got])),
            "times_ms": [1000 * t for t in secs],
            "first_search_p50_ms": 1000 * statistics.median(cold[label]),
        }
    # The stores' unfiltered searches against each other (tenant partitions cost the
    # declared store's unfiltered search a pass per partition on Milvus Lite).
    out["declared_vs_json_unfiltered"] = statistics.median(
        a / b for a, b in zip(times["declared: unfiltered"], times["json: unfiltered"])
    )
    for store in stores.values():
        store.close()
    out["command"] = "python benchmarks/filters.py " + " ".join(
        "W" if prev == "--workdir" else a for prev, a in zip([""] + sys.argv[1:], sys.argv[1:])
    )
    out["setup"] = {
        "n": args.n, "dim": args.dim, "search_dim": args.search_dim, "k": k,
        "queries": args.queries, "backend": "server" if args.uri else "Milvus Lite",
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    return out


def render(result: dict[str, Any]) -> str:
    setup = result["setup"]
    lines = [
        f"{setup['backend']}, {setup['n']:,} rows, {setup['dim']} dims (head "
        f"{setup['search_dim']}), k={setup['k']}, {setup['queries']} paired queries, "
        f"{setup['machine']}",
        "",
        "| search | declared p50 ms | ratio | recall@10 | JSON p50 ms | ratio | recall@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    names = ["unfiltered", *FILTERS]
    for name in names:
        cells = [name]
        for store in ("declared", "json"):
            row = result["searches"][f"{store}: {name}"]
            cells += [f"{row['p50_ms']:.1f}", f"{row['ratio_to_unfiltered']:.2f}",
                      f"{row['recall_at_10']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "First search with a new condition (its count, and on Milvus Lite the read of a "
        "selective filter's rows, not cached yet), p50 ms:",
        "",
        "| search | declared | JSON |",
        "|---|---|---|",
    ]
    for name in names:
        cells = [name] + [
            f"{result['searches'][f'{store}: {name}']['first_search_p50_ms']:.1f}"
            for store in ("declared", "json")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Unfiltered search, declared store (tenant partitions) / JSON store, median of "
        f"paired ratios: {result['declared_vs_json_unfiltered']:.2f}",
        "",
        "| store | ingest s | disk MB |",
        "|---|---|---|",
    ]
    for store, row in result["stores"].items():
        disk = "-" if row["disk_mb"] is None else f"{row['disk_mb']:.0f}"
        lines.append(f"| {store} | {row['ingest_s']:.1f} | {disk} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="rows (default 100000)")
    ap.add_argument("--dim", type=int, default=384, help="vector dims (default 384)")
    ap.add_argument("--search-dim", type=int, default=64, help="head dims (default 64)")
    ap.add_argument("--queries", type=int, default=30, help="paired queries (default 30)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up queries (default 2)")
    ap.add_argument("--k", type=int, default=10, help="results per search (default 10)")
    ap.add_argument("--cold", type=int, default=5,
                    help="first searches timed with the caches emptied (default 5)")
    ap.add_argument("--uri", default=None, help="a Milvus server (default: Milvus Lite)")
    ap.add_argument("--workdir", default="filters-work", help="Milvus Lite files' folder")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--render", default=None, help="print the tables of a results file")
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    result = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(render(result))
    if not args.uri and args.workdir == "filters-work":
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
