"""Evaluation on a BEIR-format folder: head-only, funnel, exact, BM25 and hybrid search.

Everything runs through the package's own store on Milvus: documents are ingested with
:meth:`MatryoshkaMilvus.add_embeddings`, exact search streams every stored full vector
(``store.engine.exact``), head-only search is Milvus' head ranking, and the funnel
is the store's own search; with ``full_text`` (the default) the store also indexes
the texts for Milvus' BM25, and BM25 alone and the hybrid search (the funnel fused
with BM25, RRF and weighted, at the store's defaults) are measured too. IR metrics
come from ``pytrec_eval`` (the evaluator BEIR and
MTEB use); recall against exact search is the overlap of the top ``k`` lists.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from langchain_core.embeddings import Embeddings

from .errors import ConfigurationError, InvalidInputError


@dataclass(frozen=True)
class BeirData:
    """A BEIR split: documents, the queries that have labels, and the labels."""

    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> BeirData:
    """Read a BEIR folder; document text is ``title + " " + text`` as BEIR does."""
    root = Path(folder)
    paths = {
        "corpus": root / "corpus.jsonl",
        "queries": root / "queries.jsonl",
        "qrels": root / "qrels" / f"{split}.tsv",
    }
    for path in paths.values():
        if not path.is_file():
            raise InvalidInputError(
                f"{path} not found: a BEIR folder holds corpus.jsonl, queries.jsonl and "
                f"qrels/{split}.tsv; pass the folder that contains them (or another split)"
            )
    doc_ids, doc_texts = [], []
    with paths["corpus"].open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                doc_ids.append(str(row["_id"]))
                doc_texts.append(f"{row.get('title', '')} {row.get('text', '')}".strip())
    qrels: dict[str, dict[str, int]] = {}
    with paths["qrels"].open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    query_ids, query_texts = [], []
    with paths["queries"].open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    query_ids.append(str(row["_id"]))
                    query_texts.append(row["text"])
    return BeirData(doc_ids, doc_texts, query_ids, query_texts, qrels)


def ir_metrics(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], k: int = 10
) -> dict[str, float]:
    """Mean nDCG@k and recall@k over the queries of ``qrels``, via pytrec_eval."""
    try:
        import pytrec_eval
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            'evaluation needs pytrec_eval: pip install "langchain-matryoshka[eval]"'
        ) from exc
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}", f"recall.{k}"})
    per_query = evaluator.evaluate({q: run.get(q, {}) for q in qrels})
    return {
        f"ndcg@{k}": float(np.mean([m[f"ndcg_cut_{k}"] for m in per_query.values()])),
        f"recall@{k}": float(np.mean([m[f"recall_{k}"] for m in per_query.values()])),
    }


def _run_from_lists(query_ids: Sequence[str], ranked: Sequence[Sequence[str]]) -> dict:
    # pytrec_eval ranks by score: give descending scores by rank.
    return {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in zip(query_ids, ranked)}


def _overlap(ranked: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], k: int) -> float:
    return float(np.mean([len(set(r[:k]) & set(e[:k])) / k for r, e in zip(ranked, exact)]))


def embed_corpus(
    embeddings: Embeddings,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    cache: str | os.PathLike[str] | None = None,
    desc: str = "embedding",
    show_progress: bool = True,
) -> np.ndarray:
    """Embed ``texts`` in batches with a progress bar; reuse ``cache`` (.npy) if present."""
    if cache is not None and Path(cache).is_file():
        vectors = np.load(cache)
        if len(vectors) == len(texts):
            return vectors
    from tqdm.auto import tqdm

    out = []
    bar = tqdm(total=len(texts), desc=desc, unit="doc", disable=not show_progress)
    for start in range(0, len(texts), batch_size):
        out.append(np.asarray(embeddings.embed_documents(list(texts[start : start + batch_size]))))
        bar.update(min(batch_size, len(texts) - start))
    bar.close()
    vectors = np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return vectors


@dataclass
class MethodResult:
    """Quality and latency of one search method."""

    method: str
    rotation: str
    candidates: int | None
    ndcg: float
    recall: float
    recall_vs_exact: float
    latency_ms: float
    """Median milliseconds per query (search only; the query embedding is separate)."""
    stages_ms: dict[str, float] = field(default_factory=dict)
    """Median milliseconds per query of each funnel stage."""


@dataclass
class EvalReport:
    """Everything :func:`evaluate_beir` measured."""

    data: str
    n_docs: int
    n_queries: int
    dim: int
    search_dim: int
    k: int
    query_embedding_ms: float
    results: list[MethodResult]
    settings: dict[str, Any]
    calibrations: dict[str, Any] = field(default_factory=dict)
    """Per rotation: the :class:`CalibrationResult` (as a dict), when calibrated."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """Markdown table of every method."""
        return methods_table(self.results, self.k)


def methods_table(results: Sequence[MethodResult], k: int) -> str:
    """Markdown table of these methods' quality and latency."""
    lines = [
        f"| method | rotation | candidates | nDCG@{k} | recall@{k} | recall@{k} vs exact "
        "| ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cands = "-" if r.candidates is None else str(r.candidates)
        lines.append(
            f"| {r.method} | {r.rotation} | {cands} | {r.ndcg:.4f} | {r.recall:.4f} | "
            f"{r.recall_vs_exact:.4f} | {r.latency_ms:.1f} |"
        )
    return "\n".join(lines)


def evaluate_beir(
    data_dir: str | os.PathLike[str],
    embeddings: Embeddings,
    *,
    search_dim: int,
    rotations: Sequence[str | None] = (None, "pca"),
    candidates: Sequence[int] = (32, 64, 128, 256, 512),
    k: int = 10,
    prune_ratio: float = 0.5,
    split: str = "test",
    uri: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    model_name: str = "model",
    calibrate_split: str | None = None,
    target_recall: float = 0.99,
    show_progress: bool = True,
    full_text: bool = True,
) -> EvalReport:
    """Ingest a BEIR folder into Milvus and compare head-only, funnel and exact search.

    For each rotation (None, "pca"), one collection; every query is searched one at a
    time so latencies are per query. With ``calibrate_split`` (e.g. "train"), the
    store is calibrated on that split's queries for ``target_recall`` and the
    calibrated funnel is evaluated on the evaluation split ("funnel calibrated").
    With ``full_text``, "full text (BM25)" (once), "hybrid rrf" and "hybrid weighted"
    (per rotation; :mod:`._hybrid`'s default depths and weights) are measured too.
    """
    from tqdm.auto import tqdm

    from .vectorstore import MatryoshkaMilvus

    for r in rotations:
        if r not in (None, "pca"):
            raise ConfigurationError(f"rotation {r!r} is not supported; pass None or 'pca'")
    data = load_beir(data_dir, split)
    key = hashlib.sha1(f"{model_name}|{Path(data_dir).resolve()}".encode()).hexdigest()[:12]
    cache = None if cache_dir is None else Path(cache_dir) / f"corpus-{key}.npy"
    doc_vecs = embed_corpus(
        embeddings,
        data.doc_texts,
        cache=cache,
        desc="embedding corpus",
        show_progress=show_progress,
    )
    started = time.perf_counter()
    query_vecs = _embed_queries(embeddings, data.query_texts)
    query_ms = 1000 * (time.perf_counter() - started) / max(1, len(data.query_texts))
    held_out = None
    if calibrate_split is not None:
        held_out = _embed_queries(embeddings, load_beir(data_dir, calibrate_split).query_texts)

    tmp = None
    if uri is None:
        tmp = tempfile.TemporaryDirectory()
        uri = os.path.join(tmp.name, "eval.db")
    results: list[MethodResult] = []
    calibrations: dict[str, Any] = {}
    try:
        for rotation in rotations:
            label = rotation or "none"
            store = MatryoshkaMilvus(
                embeddings,
                collection_name=f"eval_{label}",
                connection_args={"uri": uri},
                search_dim=search_dim,
                rotation=rotation,
                drop_old=True,
                full_text_search=full_text,
                show_progress=show_progress,
            )
            # One write (upserts of 1,000 rows, one flush): Milvus Lite keeps BM25
            # statistics per flushed segment, so one segment scores like one index.
            store.add_embeddings(data.doc_texts, doc_vecs, ids=data.doc_ids)
            store.build_index()
            engine = store.engine

            # exact full-dimension search, streamed from Milvus
            t0 = time.perf_counter()
            exact_ids, _ = engine.exact(query_vecs, k)
            exact_ms = 1000 * (time.perf_counter() - t0) / len(query_vecs)
            results.append(
                _result("exact full", label, None, data, exact_ids, exact_ids, k, [exact_ms], {})
            )
            # head-only: Milvus' ranking of the head, one query at a time
            head_ids, lat = [], []
            for q in query_vecs:
                t0 = time.perf_counter()
                _, cands = engine.head_candidates(q[None, :], k)
                lat.append(1000 * (time.perf_counter() - t0))
                head_ids.append(cands.ids[0])
            results.append(_result("head only", label, None, data, head_ids, exact_ids, k, lat, {}))
            # funnel at each candidate count
            for c in tqdm(candidates, desc=f"funnel ({label})", disable=not show_progress):
                options = {"candidates": c, "prune_ratio": prune_ratio}
                ranked, lat, stage_ms = _run_funnel(engine, query_vecs, k, options)
                results.append(
                    _result("funnel", label, c, data, ranked, exact_ids, k, lat, stage_ms)
                )
            if held_out is not None:
                calibration = store.calibrate(
                    query_vectors=held_out,
                    k=k,
                    target_recall=target_recall,
                    show_progress=show_progress,
                )
                calibrations[label] = calibration.to_dict()
                if calibration.reached:
                    ranked, lat, stage_ms = _run_funnel(engine, query_vecs, k, {})
                    results.append(
                        _result(
                            "funnel calibrated",
                            label,
                            calibration.candidates,
                            data,
                            ranked,
                            exact_ids,
                            k,
                            lat,
                            stage_ms,
                        )
                    )
            if full_text:
                results.extend(
                    _text_and_hybrid(engine, data, query_vecs, exact_ids, k, label,
                                     bm25=rotation == rotations[0])
                )
            store.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    return EvalReport(
        data=Path(data_dir).name,
        n_docs=len(data.doc_ids),
        n_queries=len(data.query_ids),
        dim=int(doc_vecs.shape[1]),
        search_dim=search_dim,
        k=k,
        query_embedding_ms=query_ms,
        results=results,
        settings={
            "prune_ratio": prune_ratio,
            "split": split,
            "model": model_name,
            "candidates": list(candidates),
            "rotations": [r or "none" for r in rotations],
            "calibrate_split": calibrate_split,
            "target_recall": target_recall,
            "full_text": full_text,
        },
        calibrations=calibrations,
    )


def _embed_queries(embeddings: Embeddings, texts: Sequence[str]) -> np.ndarray:
    batch = getattr(embeddings, "embed_queries", None)
    if callable(batch):
        return np.asarray(batch(list(texts)), dtype=np.float32)
    return np.asarray([embeddings.embed_query(t) for t in texts], dtype=np.float32)


def _run_funnel(
    engine: Any, query_vecs: np.ndarray, k: int, options: dict[str, Any]
) -> tuple[list[list[str]], list[float], dict[str, float]]:
    """Search one query at a time; ranked ids, latencies (ms) and median stage ms."""
    ranked, lat, stages = [], [], []
    for q in query_vecs:
        timings: dict[str, float] = {}
        planned = engine.plan(k, options)
        t0 = time.perf_counter()
        hits = engine.search(q[None, :], planned, timings, record=False)[0]
        lat.append(1000 * (time.perf_counter() - t0))
        stages.append(timings)
        ranked.append([h.document.id for h in hits])
    stage_ms = {s: 1000 * statistics.median(t[s] for t in stages) for s in stages[0]}
    return ranked, lat, stage_ms


def _text_and_hybrid(
    engine: Any,
    data: BeirData,
    query_vecs: np.ndarray,
    exact: Sequence[Sequence[str]],
    k: int,
    label: str,
    bm25: bool,
) -> list[MethodResult]:
    """BM25 alone (when ``bm25``) and both hybrid fusions, one query at a time."""
    from . import _hybrid

    out = []
    if bm25:
        ranked, lat = [], []
        for text in data.query_texts:
            t0 = time.perf_counter()
            planned = _hybrid.plan_text(engine, k, {})
            hits = _hybrid.text_search(engine, [text], planned)[0]
            lat.append(1000 * (time.perf_counter() - t0))
            ranked.append([cast(str, h.document.id) for h in hits])  # stored: ids set
        out.append(_result("full text (BM25)", "-", None, data, ranked, exact, k, lat, {}))
    for fusion in ("rrf", "weighted"):
        ranked, lat, stages = [], [], []
        for q, text in zip(query_vecs, data.query_texts):
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            planned, hp = _hybrid.plan_hybrid(engine, k, {"fusion": fusion})
            hits = _hybrid.hybrid_search(
                engine, q[None, :], [text], planned, hp, timings, record=False
            )[0]
            lat.append(1000 * (time.perf_counter() - t0))
            stages.append(timings)
            ranked.append([cast(str, h.document.id) for h in hits])  # stored: ids set
        stage_ms = {s: 1000 * statistics.median(t[s] for t in stages) for s in stages[0]}
        cands = planned.plan.candidates if planned is not None else None
        out.append(
            _result(f"hybrid {fusion}", label, cands, data, ranked, exact, k, lat, stage_ms)
        )
    return out


def _result(
    method: str,
    rotation: str,
    candidates: int | None,
    data: BeirData,
    ranked: Sequence[Sequence[str]],
    exact: Sequence[Sequence[str]],
    k: int,
    latencies: Sequence[float],
    stages: dict[str, float],
) -> MethodResult:
    metrics = ir_metrics(data.qrels, _run_from_lists(data.query_ids, ranked), k)
    return MethodResult(
        method=method,
        rotation=rotation,
        candidates=candidates,
        ndcg=metrics[f"ndcg@{k}"],
        recall=metrics[f"recall@{k}"],
        recall_vs_exact=_overlap(ranked, exact, k),
        latency_ms=float(statistics.median(latencies)),
        stages_ms=stages,
    )


def write_report(report: EvalReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``eval.json``, ``eval.md`` and, with matplotlib, ``quality.png`` / ``latency.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "eval.json", out / "eval.md"]
    paths[0].write_text(json.dumps(report.to_dict(), indent=2))
    paths[1].write_text(
        f"# {report.data}: {report.n_docs} docs, {report.n_queries} queries, "
        f"dim {report.dim}, head {report.search_dim}\n\n{report.table()}\n\n"
        f"Query embedding: {report.query_embedding_ms:.1f} ms/query. ms/query is the median "
        "of single-query searches, except exact full: one streamed brute-force pass over "
        "every stored vector for all queries at once, amortised per query.\n"
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional
        return paths
    k = report.k
    for name, attr, ylabel in (
        ("quality.png", "recall_vs_exact", f"recall@{k} vs exact full search"),
        ("latency.png", "latency_ms", "median ms per query"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for rotation in report.settings["rotations"]:
            pts = [r for r in report.results if r.method == "funnel" and r.rotation == rotation]
            (line,) = ax.plot(
                cast("list[int]", [p.candidates for p in pts]),  # funnel rows have candidates
                [getattr(p, attr) for p in pts],
                "o-",
                label=f"funnel, rotation {rotation}",
            )
            for ref, style in (("exact full", ":"), ("head only", "--")):
                base = [r for r in report.results if r.method == ref and r.rotation == rotation]
                if base and not (attr == "recall_vs_exact" and ref == "exact full"):
                    ax.axhline(
                        getattr(base[0], attr),
                        linestyle=style,
                        linewidth=1,
                        color=line.get_color(),
                        label=f"{ref}, rotation {rotation}",
                    )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("candidates")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{report.data}: head {report.search_dim} of {report.dim} dims")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        paths.append(out / name)
    if report.settings.get("full_text"):
        paths.append(_plot_ndcg(report, out, plt))
    return paths


def _plot_ndcg(report: EvalReport, out: Path, plt: Any) -> Path:
    """``ndcg.png``: nDCG@k of BM25, exact, the funnel (most candidates) and hybrid."""
    k, rows = report.k, []
    bm25 = [r for r in report.results if r.method == "full text (BM25)"]
    rows += [("BM25", bm25[0].ndcg)] if bm25 else []
    for rotation in report.settings["rotations"]:
        mine = [r for r in report.results if r.rotation == rotation]
        funnels = [r for r in mine if r.method == "funnel"]
        picked = [r for r in mine if r.method in ("exact full", "hybrid rrf", "hybrid weighted")]
        if funnels:
            picked.insert(1, max(funnels, key=lambda r: r.candidates or 0))
        for r in picked:
            extra = f" {r.candidates}" if r.method == "funnel" else ""
            rows.append((f"{r.method}{extra}\n({rotation})", r.ndcg))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    bars = ax.bar(range(len(rows)), [v for _, v in rows], color="#4C72B0")
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], fontsize=7)
    ax.set_ylabel(f"nDCG@{k}")
    ax.set_ylim(0, max(v for _, v in rows) * 1.15 if rows else 1)
    ax.set_title(f"{report.data}: BM25, dense and hybrid search")
    fig.tight_layout()
    path = out / "ndcg.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
