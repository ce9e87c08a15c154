"""Render the results tables of README.md and docs/*.md from benchmarks/results/*.json.

A table lives between ``<!-- report:NAME -->`` and ``<!-- /report:NAME -->``; NAME picks a
renderer below and the JSON it reads. Numbers in the docs are written by this script, never
by hand, so they cannot drift from the runs that produced them.

Command, from the repository root::

    python benchmarks/report.py            # rewrite every marked table in place
    python benchmarks/report.py --check    # exit 1 if any marked table differs from its JSON
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report_tables as tables  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"(<!-- report:([\w-]+) -->\n)(.*?)(<!-- /report:\2 -->)", re.S)


def _load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _demo_label(name: str, row: dict[str, Any], search_dim: int) -> str:
    if name == "full":
        return "full-dimension HNSW"
    if name == "head":
        return f"head-only HNSW ({search_dim} dims)"
    return f"funnel, {row['candidates']} candidates"


def demo_table(result: dict[str, Any], names: list[str] | None = None) -> str:
    """The demo's methods: recall@10 against exact search, index, disk, p50 latency."""
    methods = result["methods"]
    full = methods["full"]
    lines = [
        f"{result['passages']:,} passages of the Python {result['python']} stdlib docs, "
        f"{result['queries']} queries,",
        f"{result['model']}, head {result['search_dim']} dims, Milvus Lite;",
        f"{result['hardware']}; `{result['command']}`.",
        "",
        "| method | recall@10 vs exact | index MB | disk MB | p50 ms |",
        "|---|---|---|---|---|",
    ]
    for name in names or list(methods):
        row = methods[name]
        index = f"{row['index_mb']:.2f}"
        if name != "full":
            index += f" ({row['index_mb'] / full['index_mb']:.2f}x)"
        lines.append(
            f"| {_demo_label(name, row, result['search_dim'])} | {row['recall_at_10']:.3f} | "
            f"{index} | {row['disk_mb']:.2f} | {row['p50_ms']:.1f} |"
        )
    return "\n".join(lines)


def demo_headline(result: dict[str, Any]) -> str:
    """The README's subset: full, head-only and the funnel at 32, 64 and 128 candidates."""
    return demo_table(result, ["full", "head", "funnel 32", "funnel 64", "funnel 128"])


def consistency_table(result: dict[str, Any]) -> str:
    """docs/speed.md: read latency by consistency level on a server."""
    labels = {
        "session_no_write": '"Session", no write of this store pending',
        "strong": '"Strong"',
        "session_after_write": '"Session", first read right after a one-row write',
    }
    lines = ["| read | p50 | p95 |", "|---|---|---|"]
    for key, label in labels.items():
        row = result["ms"][key]
        lines.append(f"| {label} | {row['p50']:.1f} ms | {row['p95']:.1f} ms |")
    return "\n".join(lines)


def filters_table(result: dict[str, Any]) -> str:
    """docs/filters.md: benchmarks/filters.py's own rendering."""
    from filters import render

    return render(result)


def _hybrid_report() -> Any:
    import hybrid_report

    return hybrid_report


def hybrid_defaults_tables(result: dict[str, Any]) -> str:
    """docs/hybrid.md: fusion settings chosen on train, measured on test (hybrid_defaults.py)."""
    return str(_hybrid_report().defaults_tables(result))


def hybrid_latency_table(result: dict[str, Any]) -> str:
    """docs/hybrid.md: hybrid search's latency against the funnel's (benchmarks/hybrid.py)."""
    return str(_hybrid_report().latency_table(result))


def query_log_cost_table(result: dict[str, Any]) -> str:
    """docs/calibration.md: what ``record_queries`` costs a search (query_log_cost.py)."""
    return "\n".join([
        "| search | median ms |",
        "|---|---|",
        f"| plain store | {result['median_ms_plain']:.1f} |",
        f"| store recording queries | {result['median_ms_recording']:.1f} |",
        f"| median paired ratio, recording to plain | {result['median_paired_ratio']:.3f} |",
        f"| one `QueryLog.record` call alone | {result['record_call_us'] / 1000:.3f} |",
        "",
        f"{result['rows']:,} rows of {result['dim']} dims (head {result['search_dim']}), "
        f"{result['queries']} queries searched by each store in turn, Milvus Lite; "
        f"{result['hardware']}; `{result['command']}`.",
    ])


def indexing_api_table(result: dict[str, Any]) -> str:
    """docs/langchain.md: LangChain's figures for each run of examples/indexing_api.py."""
    labels = {"first": "first", "unchanged": "unchanged", "changed": "one edited, one removed"}
    lines = [
        '| run (`cleanup="incremental"`) | added | updated | skipped | deleted |',
        "|---|---|---|---|---|",
    ]
    for key, label in labels.items():
        run = result["runs"][key]
        lines.append(
            f"| {label} | {run['num_added']} | {run['num_updated']} | {run['num_skipped']} "
            f"| {run['num_deleted']} |"
        )
    return "\n".join(lines)


def calibrate_scale_table(result: dict[str, Any]) -> str:
    """docs/evaluation.md: time and memory of one ``calibrate()`` at scale (calibrate_scale.py)."""
    curve = result["curve"]

    def fewest(bound: float) -> str:
        points = [p for p in curve if p["recall_lower"] >= bound]
        if not points:
            best = max(curve, key=lambda p: p["recall_lower"])
            return (f"none (best: {best['recall_lower']:.4f} at {best['candidates']} "
                    f"candidates, recall {best['recall']:.4f})")
        p = min(points, key=lambda p: (p["candidates"], p["rerank_madds"]))
        return (f"{p['candidates']} candidates, prune {p['prune_ratio']:g} "
                f"(recall {p['recall']:.4f}, bound {p['recall_lower']:.4f})")

    chosen = (
        f"{result['chosen_candidates']} candidates, prune {result['chosen_prune_ratio']:g}"
        if result["reached"] else "none: the store keeps its defaults"
    )
    return "\n".join([
        "| calibration at scale | figure |",
        "|---|---|",
        f"| rows | {result['n_docs']:,} synthetic, {result['dim']} dims, head "
        f"{result['search_dim']} |",
        f"| pseudo-queries | {result['n_queries']}, {result['pseudo_method']} |",
        f"| ingest and index build | {result['ingest_and_index_s']:.0f} s |",
        f"| calibration | {result['calibration_s']:.0f} s |",
        f"| peak resident memory, before / after calibrating | "
        f"{result['peak_rss_mb_before_calibration']:,} / {result['peak_rss_mb']:,} MB |",
        f"| lower bound required (target {result['target_recall']}, with the method's margin) "
        f"| {result['required_recall']:.4f} |",
        f"| chosen | {chosen} |",
        f"| fewest reaching that bound | {fewest(result['required_recall'])} |",
        f"| fewest reaching {result['target_recall']} without the margin "
        f"| {fewest(result['target_recall'])} |",
        "",
        f"Milvus Lite; {result['hardware']}; `{result['command']}`.",
    ])


def calibrate_budget_table(result: dict[str, Any]) -> str:
    """docs/calibration.md: the head index calibrate() chose per memory budget."""
    lines = [
        "| budget MiB (x HNSW head) | chosen head index | nprobe | candidates | held-out "
        "recall@10 | p50 ms | head index MiB (est. / files) | types tried | calibration s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        budget = f"{row['budget_mb']:,.1f} ({row['budget_fraction']:g}x)"
        if "error" in row:
            lines.append(f"| {budget} | none fits: refused | - | - | - | - | - | - | - |")
            continue
        tried = ", ".join(
            t["index_type"] + ("" if t["reached"] else " (not reached)") for t in row["trials"]
        )
        if not row["reached"]:
            lines.append(f"| {budget} | none reached: {row['index_type']} kept | - | - | "
                         f"{row['recall_at_10']:.3f} | {row['p50_ms']:.1f} | - | {tried} | "
                         f"{row['calibration_s']:.0f} |")
            continue
        params = ", ".join(f"{k}={v}" for k, v in row["index_params"].items()) or "defaults"
        files = "-" if row["index_files_mb"] is None else f"{row['index_files_mb']:,.0f}"
        lines.append(
            f"| {budget} | {row['index_type']} ({params}) | "
            f"{(row['head_search_params'] or {}).get('nprobe', '-')} | {row['candidates']} | "
            f"{row['recall_at_10']:.3f} | {row['p50_ms']:.1f} | "
            f"{row['head_index_estimate_mb']:,.1f} / {files} | {tried} | "
            f"{row['calibration_s']:.0f} |"
        )
    where = result["server_version"] or "Milvus Lite"
    lines += [
        "",
        f"{result['n']:,} synthetic rows, {result['dim']} dims, head {result['search_dim']}; "
        f"calibrated on {result['calib_queries']} queries (target recall@10 "
        f"{result['target_recall']}), judged on {result['eval_queries']} others; {where}; "
        f"{result['hardware']} (shared); `{result['command']}`.",
    ]
    return "\n".join(lines)


def server_paired_table(result: dict[str, Any]) -> str:
    """docs/benchmarks.md: the funnel against full HNSW on a server (server_paired.py)."""
    base = next(name for name in result["rows"] if name.startswith("full HNSW"))
    lines = [
        f"| search | recall@10 | p50 ms | p95 ms | paired ratio to {base.replace('=', ' ')} "
        "| QPS single | QPS batch 32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        label = (f"funnel, {name.split()[1]} candidates" if name.startswith("funnel")
                 else name.replace(" ef=", ", ef "))
        ratio = f"{r['median_ratio_to_hnsw']:.3f}"
        batch = "-" if r["qps_batch"] is None else f"{r['qps_batch']:.1f}"
        lines.append(f"| {label} | {r['recall']:.4f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{ratio} | {r['qps_single']:.1f} | {batch} |")
    lines += [
        "",
        f"{result['n']:,} synthetic vectors, {result['dim']} dims, head {result['search_dim']}, "
        f"{result['queries']} queries, k=10, Milvus server ({result['server_version']}), "
        f"{result['consistency']} reads; {result['machine']} (shared); `{result['command']}`.",
    ]
    return "\n".join(lines)


VS_RUNS = (
    ("Milvus Lite, 100k", "vs-langchain-milvus-lite-100000.json"),
    ("server 2.3.5, 100k", "vs-langchain-milvus-server-100000.json"),
    ("server 2.3.5, 300k", "vs-langchain-milvus-server-300000.json"),
    ("server 2.3.5, 1M", "vs-langchain-milvus-server-1000000.json"),
)


def _variant_label(spec: str) -> str:
    kind, _, params = spec.partition(":")
    return f"{kind} ({params.replace(',', ', ')})" if params else f"{kind} (store defaults)"


def _mb(files: float | None, estimate: float, plain: float | None) -> str:
    """'files / estimate' MB and the share of langchain-milvus's index (files, else est.)."""
    shown = f"{files:.0f} / {estimate:.0f}" if files is not None else f"- / {estimate:.0f}"
    return f"{shown} | {(files if files is not None else estimate) / plain:.3f}" if plain else shown


def head_indexes_table(result: dict[str, Any]) -> str:
    """The funnel with each head index type against langchain-milvus, on one run's rows."""
    files = result.get("index_files_mb") or {}
    plain_est = result["index_memory"]["langchain_milvus"]["estimate_mb"]
    plain_mb = files.get("langchain_milvus") or plain_est
    lines = [
        "| funnel head index | recall@10 | p50 ms | paired p50 ratio to l-m "
        "| head index MB (files / est.) | head index / l-m's index | build s |",
        "|---|---|---|---|---|---|---|",
    ]
    f = result["rows"]["funnel"]
    lines.append(
        f"| HNSW (store defaults) | {f['recall_at_10']:.3f} | {f['p50_ms']:.1f} "
        f"| {result['median_ratio_funnel_to_langchain_milvus']:.2f}x "
        f"| {_mb(files.get('funnel'), result['index_memory']['funnel']['estimate_mb'], plain_mb)}"
        " | - |"
    )
    for v in result["head_variants"]:
        vf = v["funnel"]
        build = "shared" if v["index_build_s"] is None else f"{v['index_build_s']:.0f}"
        lines.append(
            f"| {_variant_label(v['spec'])} | {vf['recall_at_10']:.3f} | {vf['p50_ms']:.1f} "
            f"| {v['median_ratio_funnel_to_langchain_milvus']:.2f}x "
            f"| {_mb(v.get('index_files_mb'), v['head_index_estimate_mb'], plain_mb)} "
            f"| {build} |"
        )
    m = result["rows"]["langchain_milvus"]
    lines += [
        f"| langchain-milvus: {result['index_memory']['langchain_milvus']['index_type']} on "
        f"{result['dim']} dims | {m['recall_at_10']:.3f} | {m['p50_ms']:.1f} | 1 "
        f"| {_mb(files.get('langchain_milvus'), plain_est, None)} | 1 | - |",
        "",
        f"{result['n']:,} rows, {result['queries']} queries, k={result['k']}, "
        f"{result['backend']} {result['versions'].get('milvus', '')}; {result['hardware']}; "
        f"`{result['command']}`.",
    ]
    return "\n".join(lines)


def vs_langchain_milvus_table(_: dict[str, Any]) -> str:
    """Funnel against langchain-milvus's ``Milvus``, each at its defaults, per run."""
    lines = [
        "| 768 dims, k=10, defaults | recall@10: funnel / l-m | p50 ms: funnel / l-m "
        "| paired p50 ratio | batch-32 QPS ratio | index MB (est.): funnel / l-m "
        "| ingest s: funnel / l-m |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, name in VS_RUNS:
        if not (RESULTS / name).exists() and name.endswith("-1000000.json"):
            continue
        r = _load(name)
        f, m = r["rows"]["funnel"], r["rows"]["langchain_milvus"]
        fi, mi = r["ingest"]["funnel"], r["ingest"]["langchain_milvus"]
        fm, mm = r["index_memory"]["funnel"], r["index_memory"]["langchain_milvus"]
        lines.append(
            f"| {label} | {f['recall_at_10']:.3f} / {m['recall_at_10']:.3f} "
            f"| {f['p50_ms']:.1f} / {m['p50_ms']:.1f} "
            f"| {r['median_ratio_funnel_to_langchain_milvus']:.2f}x "
            f"| {f['qps_batch_32'] / m['qps_batch_32']:.2f}x "
            f"| {fm['estimate_mb']:.0f} / {mm['estimate_mb']:.0f} "
            f"| {fi['ingest_s']:.0f} / {mi['ingest_s']:.0f} |"
        )
    first = _load(VS_RUNS[0][1])
    lines += ["", f"{first['queries']} queries per run; {first['hardware']}; "
              "`python benchmarks/vs_langchain_milvus.py` (commands in docs/speed.md)."]
    return "\n".join(lines)


def floor_table(_: dict[str, Any]) -> str:
    """Each store's Milvus call against its whole search, per run that measured it."""
    runs = [(label, _load(name)) for label, name in VS_RUNS if (RESULTS / name).exists()]
    return tables.floor_table(runs)


LITE_PROFILE_ROWS = (
    ("Lite: `_build_local_mask` (per row: newest version, tombstones)", "lite_build_local_mask"),
    ("Lite: `_update_max_seqs` (a dict of every primary key)", "lite_update_max_seqs"),
    ("Lite: materialising the hits' rows (`row_to_dict`)", "lite_row_to_dict"),
    ("faiss HNSW search", "faiss_search"),
    ("Lite's search in all (the rows above and the rest of it)", "lite_search"),
    ("this package, client side (decode, rerank, documents)", "package_client_side"),
    ("this package's primary-key lookup of the documents", "package_documents_lookup"),
)


def lite_profile_table(result: dict[str, Any]) -> str:
    """Shares of a Milvus Lite search's time, per store (py-spy samples)."""
    f, m = result["stores"]["funnel"], result["stores"]["langchain_milvus"]
    lines = [
        "| share of a search's time | MatryoshkaMilvus | langchain-milvus |",
        "|---|---|---|",
    ]
    for label, key in LITE_PROFILE_ROWS:
        ours, theirs = f["share_of_search"][key], m["share_of_search"][key]
        lines.append(f"| {label} | {ours:.1%} | {theirs:.1%} |" if theirs or key.startswith(
            "lite") or key.startswith("faiss") else f"| {label} | {ours:.1%} | - |")
    lines += [
        f"| time per search while sampled | {f['ms_per_search']:.0f} ms "
        f"| {m['ms_per_search']:.0f} ms |",
        "",
        f"{result['hardware']}, py-spy at {result['sample_rate']} samples/s; "
        f"`{result['command']}`.",
    ]
    return "\n".join(lines)


#: NAME -> (JSON file in benchmarks/results, renderer)
REPORTS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "demo": ("demo.json", demo_table),
    "demo-headline": ("demo.json", demo_headline),
    "consistency": ("consistency-20000.json", consistency_table),
    "vs-langchain-milvus": ("vs-langchain-milvus-lite-100000.json", vs_langchain_milvus_table),
    "head-indexes": ("vs-langchain-milvus-server-1000000-head-indexes.json", head_indexes_table),
    "floor": ("vs-langchain-milvus-lite-100000.json", floor_table),
    "filters-lite": ("filters-lite.json", filters_table),
    "filters-server": ("filters-server.json", filters_table),
    "lite-profile": ("lite-profile-100000.json", lite_profile_table),
    "hybrid-latency": ("hybrid-100k.json", hybrid_latency_table),
    "query-log-cost": ("query-log-cost-20000.json", query_log_cost_table),
    "indexing-api": ("indexing-api.json", indexing_api_table),
    "calibrate-scale": ("calibrate-scale-100000.json", calibrate_scale_table),
    "calibrate-budget": ("calibrate-budget-lite-100000.json", calibrate_budget_table),
    "calibrate-budget-server": ("calibrate-budget-server-100000.json", calibrate_budget_table),
    "server-paired-100k": ("server-paired-100000.json", server_paired_table),
    "server-paired-300k": ("server-paired-300000.json", server_paired_table),
    "server-paired-1m": ("server-paired-1000000.json", server_paired_table),
    "scale-1m": ("scale-1000000.json", tables.scale_1m_table),
    "scale-300k": ("scale-300000.json", tables.scale_300k_table),
    "scale-100k": ("scale-100000.json", tables.scale_100k_table),
    "scale-real": ("scale-100000.json", tables.scale_real_table),
    "eval-scifact": ("scifact-eval.json", tables.eval_quality_table),
    "eval-hybrid-scifact": ("scifact-eval.json", tables.eval_hybrid_table),
    "hybrid-defaults": ("hybrid-defaults-scifact.json", hybrid_defaults_tables),
    "calibration-simulation": ("calibration-sim-scifact.json",
                               tables.calibration_simulation_table),
    "calibration-methods": ("calibration-methods-scifact.json", tables.calibration_methods_table),
}


def render_file(text: str, where: str) -> str:
    """``text`` with every marked table rendered afresh."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in REPORTS:
            sys.exit(f"error: {where} marks an unknown table {name!r}; known: {sorted(REPORTS)}")
        source, renderer = REPORTS[name]
        body = renderer(_load(source)).rstrip("\n") + "\n"
        return f"{match.group(1)}{body}{match.group(4)}"

    return MARKER.sub(fill, text)


#: a cell of figures: a number with a unit, a range ("5.2 - 36"), a pair ("256: 0.996")
NUMBER = re.compile(r"^[*~<>=]*[-+]?\d[\d,.]*(\s*(x|%|ms|s|MB|GB))?([\s:-]+\d[\d,.]*(x|%)?)*[*]*$")


def unmarked_tables(text: str) -> list[tuple[int, str]]:
    """Results tables typed by hand: tables of figures outside every marker.

    A results table is one whose data cells, past the first column, are mostly numbers;
    tables of options or API (words in most cells) are fine by hand.
    """
    marked = [m.span() for m in MARKER.finditer(text)]
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        header = i + 1 < len(lines) and lines[i].startswith("|")
        if not (header and lines[i + 1].startswith("|---")):
            i += 1
            continue
        end = i + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        cells = [c.strip() for row in lines[i + 2 : end] for c in row.strip("|").split("|")[1:]]
        numeric = sum(bool(NUMBER.match(c)) for c in cells)
        inside = any(a <= starts[i] < b for a, b in marked)
        if not inside and numeric * 2 > len(cells) > 0:
            found.append((i + 1, lines[i]))
        i = end
    return found


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a table is out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new = render_file(text, path.relative_to(ROOT).as_posix())
        if new != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(new, encoding="utf-8")
    unmarked = [
        f"{path.relative_to(ROOT).as_posix()}:{line}: {header[:60]}"
        for path in documents()
        for line, header in unmarked_tables(path.read_text(encoding="utf-8"))
    ]
    if args.check and unmarked:
        print(
            "results tables typed by hand (render them from JSON between report markers):\n  "
            + "\n  ".join(unmarked),
            file=sys.stderr,
        )
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python benchmarks/report.py", file=sys.stderr)
    if args.check and (stale or unmarked):
        return 1
    print(
        "every table matches its JSON"
        if args.check
        else f"rewrote: {', '.join(stale) or 'nothing'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
