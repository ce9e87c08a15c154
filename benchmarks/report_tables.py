"""Renderers for benchmarks/report.py: the Milvus Lite scale runs and the BEIR studies.

Each takes one benchmark's JSON (as written by the script named in its docstring) and
returns the Markdown that report.py puts between that table's markers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _scale_label(name: str, search_dim: int) -> str:
    if name.startswith("funnel calibrated"):
        return f"funnel, calibrated: {name.split('(')[1].rstrip(')')} candidates"
    if name.startswith("funnel "):
        return f"funnel, {name.split()[1]} candidates"
    if name == "head-only":
        return f"head-only, {search_dim} dims"
    return name.replace(" ef=", ", ef ")


def _ratio(a: float, b: float, spec: str = ".2f") -> str:
    return f"{a / b:{spec}}x"


def scale_table(result: dict[str, Any], run: str) -> str:
    """One run of benchmarks/scale.py: every search on one Milvus Lite data set."""
    data = result["runs"][run]
    engines = data["engines"]
    lines = [
        "| search | recall@10 | p50 ms | p95 ms | QPS single | QPS batch 32 | batch gain "
        "| index build s | index MB | RSS MB | disk MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["rows"].items():
        eng = engines[row["engine"]]
        batch, gain = "-", "-"
        if row["qps_batch"] is not None:
            batch = f"{row['qps_batch']:.1f}"
            gain = _ratio(row["qps_batch"], row["qps_single"], ".1f")
        lines.append(
            f"| {_scale_label(name, data['search_dim'])} | {row['recall']:.3f} "
            f"| {row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['qps_single']:.1f} | {batch} "
            f"| {gain} | {eng['index_build_s']:.0f} | {eng['index_mb']:.0f} "
            f"| {eng['rss_loaded_mb']:.0f} | {eng['disk_mb']:.0f} |"
        )
    lines.append("")
    paired = data.get("paired")
    if paired:
        base = next(name for name in paired if name.startswith("full HNSW"))
        others = ", ".join(
            f"{_scale_label(name, data['search_dim'])} {row['median_ratio_to_hnsw']:.3f}"
            for name, row in paired.items()
            if name != base
        )
        lines.append(
            f"Paired latency (each query by every setting in turn), median per-query ratio "
            f"to {base.replace(' ef=', ', ef ')}: {others}."
        )
    funnel, hnsw = engines.get("funnel"), engines.get("hnsw")
    if funnel and hnsw:
        lines.append(
            f"Funnel against full HNSW: index {_ratio(funnel['index_mb'], hnsw['index_mb'])}, "
            f"resident memory once loaded {_ratio(funnel['rss_loaded_mb'], hnsw['rss_loaded_mb'])}"
            f", disk {_ratio(funnel['disk_mb'], hnsw['disk_mb'])}, index build "
            f"{_ratio(funnel['index_build_s'], hnsw['index_build_s'])}."
        )
    calibration = (funnel or {}).get("calibration")
    if calibration:
        chosen = (
            f"{calibration['candidates']} candidates, prune {calibration['prune_ratio']:g}"
            if calibration["reached"]
            else "nothing (the store kept its defaults)"
        )
        lines.append(
            f"`store.calibrate()` (target recall@10 {calibration['target']}, perturbed "
            f"pseudo-queries) took {calibration['seconds']:.0f} s and chose {chosen}."
        )
    stages = [
        f"{_scale_label(name, data['search_dim'])}: "
        + ", ".join(f"{stage} {ms:.1f}" for stage, ms in row["stages_ms"].items())
        + f" (all but the head search: {row['overhead']:.1%} of the query; the head search "
        f"returning ids only: {row['head_search_ids_only_ms']:.1f})"
        for name, row in data["rows"].items()
        if "stages_ms" in row
    ]
    if stages:
        lines.append("Median ms per stage of one query: " + "; ".join(stages) + ".")
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines += [
        "",
        f"{data['n']:,} vectors x {data['dim']} dims, head {data['search_dim']}, "
        f"{data['n_queries']} queries, k=10; Milvus Lite; {result['hardware']} (shared); "
        f"{versions}; `{result['command']}`.",
    ]
    return "\n".join(lines)


def scale_1m_table(result: dict[str, Any]) -> str:
    return scale_table(result, "synthetic-1000000")


def scale_300k_table(result: dict[str, Any]) -> str:
    return scale_table(result, "synthetic-300000")


def scale_100k_table(result: dict[str, Any]) -> str:
    return scale_table(result, "synthetic-100000")


def scale_real_table(result: dict[str, Any]) -> str:
    return scale_table(result, "real")


def eval_quality_table(report: dict[str, Any]) -> str:
    """``langchain-matryoshka eval``'s dense rows (eval.json): quality against exact search."""
    from langchain_matryoshka.evaluation import MethodResult, methods_table

    rows = [MethodResult(**r) for r in report["results"]
            if not r["method"].startswith(("hybrid", "full text"))]
    return "\n".join([
        methods_table(rows, report["k"]),
        "",
        f"{report['n_docs']:,} documents, {report['n_queries']} queries, {report['dim']} dims, "
        f"head {report['search_dim']}, prune ratio {report['settings'].get('prune_ratio')}.",
    ])


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def calibration_methods_table(report: dict[str, Any]) -> str:
    """benchmarks/calibration_methods.py: each calibration and what real queries then get."""
    fit, ev = report["fit_split"], report["eval_split"]
    lines = [
        f"| calibration | queries | bound required | candidates | prune | scales | lower bound "
        f"| {fit} recall | {ev} recall | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        head = f"| {r['calibration']} | {r['n_queries']} | {_fmt(r['required'])} "
        if not r["reached"]:
            lines.append(f"{head}| not reached | | | | | | {r['seconds']:.0f} |")
            continue
        lines.append(
            f"{head}| {r['candidates']} | {r['prune_ratio']:g} "
            f"| {','.join(map(str, r['scales']))} | {_fmt(r['lower_bound'])} "
            f"| {_fmt(r.get('fit_real'))} | {_fmt(r.get('eval_real'))} | {r['seconds']:.0f} |"
        )
    lines += [
        "",
        f"{report['data']}, {report['n_docs']:,} documents, {report['model']}, head "
        f"{report['search_dim']}, target recall@{report['k']} {report['target']}; fit on "
        f"{report['n_fit_queries']} {fit} queries, judged on {report['n_eval_queries']} {ev} "
        f"queries; Milvus Lite; {report['hardware']}.",
    ]
    return "\n".join(lines)


SIM_METHODS = (
    ("real", "(the real queries themselves)"),
    ("documents", "documents"),
    ("spans", "spans (a sentence, <= 24 words, query prompt)"),
    ("first_sentence", "first sentences (often a title)"),
    ("window12", "12-word windows"),
    ("perturbed", "perturbed vectors (cosine 0.6)"),
)


def _span(values: list[Any], spec: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo} - {hi}"


def calibration_simulation_table(scifact: dict[str, Any]) -> str:
    """benchmarks/calibration_simulation.py on SciFact and on the Python FAQ (two JSONs)."""
    other = json.loads((RESULTS / "calibration-sim-pydocs.json").read_text(encoding="utf-8"))
    lines = [
        f"| pseudo-queries | miss ratio, {scifact['data']} {scifact['split']} | miss ratio, "
        f"{other['data']} {other['split']} | chosen for 0.99 without a margin "
        f"({scifact['data']}): real queries there |",
        "|---|---|---|---|",
    ]

    def ratios(report: dict[str, Any], method: str) -> str:
        if method == "real":
            return "1"
        rows = [shape[method] for shape in report["shapes"].values()]
        return _span([r["miss_ratio_min"] for r in rows] + [r["miss_ratio_max"] for r in rows],
                     ".2f")

    for method, label in SIM_METHODS:
        rows = [shape[method] for shape in scifact["shapes"].values()]
        chosen = _span([r["chosen_at_margin_1"] for r in rows], "d")
        real = _span([r["real_at_chosen"] for r in rows], ".3f")
        lines.append(f"| {label} | {ratios(scifact, method)} | {ratios(other, method)} "
                     f"| {chosen}: {real} |")
    shapes = "; ".join(
        f"prune {shape.split('|')[0]} on {shape.split('|')[1]} dims" for shape in scifact["shapes"]
    )
    lines += [
        "",
        f"Ranges over two funnel shapes ({shapes}). {scifact['data']}: {scifact['n_docs']:,} "
        f"documents, {scifact['n_real']} real queries; {other['data']}: {other['n_docs']:,} "
        f"passages, {other['n_real']} real questions.",
    ]
    return "\n".join(lines)


def eval_hybrid_table(report: dict[str, Any]) -> str:
    """The same eval.json's keyword and hybrid rows beside the rotated dense ones."""
    import hybrid_report

    rows = [r for r in report["results"]
            if r["rotation"] != "none" and r["method"] != "head only"
            and (r["candidates"] in (None, 64, 128, 256) or r["method"] == "funnel calibrated")]
    return str(hybrid_report.eval_table({**report, "results": rows}))


FLOOR_ROWS = (
    ("MatryoshkaMilvus, whole `similarity_search`", "funnel"),
    ("its head-search call alone ({c} hits: texts, metadata, full vectors)", "funnel_call"),
    ("the same call without the full vectors", "funnel_call_without_full"),
    ("the same call, ids only", "funnel_call_ids_only"),
    ("langchain-milvus's own search call alone", "langchain_milvus_call"),
)


def floor_table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """Where each store's search time goes, per run of benchmarks/vs_langchain_milvus.py.

    ``runs``: (column label, that run's JSON) for the runs with a ``floor`` phase.
    """
    runs = [(label, r) for label, r in runs if "floor" in r]
    if not runs:
        return "(no run with a floor phase yet)"
    lines = [
        "| median per-query ratio to langchain-milvus's whole search | "
        + " | ".join(label for label, _ in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    candidates = runs[0][1]["floor"]["candidates"]
    for text, key in FLOOR_ROWS:
        cells = [f"{r['floor']['median_ratio_to_langchain_milvus'][key]:.2f}x" for _, r in runs]
        lines.append(f"| {text.format(c=candidates)} | " + " | ".join(cells) + " |")
    p50 = [f"{r['floor']['p50_ms']['langchain_milvus']:.1f} ms" for _, r in runs]
    lines += [
        "| langchain-milvus, whole `similarity_search` (its p50) | " + " | ".join(p50) + " |",
        "",
        f"768 dims, k=10, {runs[0][1]['queries']} queries, each store at its defaults, all six "
        f"searches of a query back to back in a rotating order; {runs[0][1]['hardware']}; "
        "the `floor` phase of `python benchmarks/vs_langchain_milvus.py` (commands above).",
    ]
    return "\n".join(lines)
