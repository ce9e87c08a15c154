"""The benchmarks run end to end on small synthetic sets and report sane figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCALE = BENCHMARKS / "scale.py"


def test_scale_benchmark_small_run(tmp_path) -> None:
    out = tmp_path / "scale.json"
    subprocess.run(
        [sys.executable, str(SCALE), "--workdir", str(tmp_path / "work"), "--json", str(out)]
        + "--sizes 3000 --dim 96 --search-dim 16 --queries 40 --flat-queries 8".split()
        + "--batch-reps 1 --candidates 64 256 --hnsw-ef 16 64".split(),
        check=True,
        timeout=600,
    )
    run = json.loads(out.read_text())["runs"]["synthetic-3000"]
    rows = run["rows"]
    assert set(rows) == {
        "funnel 64",
        "funnel 256",
        "head-only",
        "full HNSW ef=16",
        "full HNSW ef=64",
        "full exact (FLAT)",
    }
    for label, row in rows.items():
        assert 0.0 <= row["recall"] <= 1.0, label
        assert 0 < row["p50_ms"] <= row["p95_ms"], label
        assert row["qps_single"] > 0 and row["qps_batch"] > 0, label
    # Milvus' brute force agrees with numpy's exact search
    assert rows["full exact (FLAT)"]["recall"] >= 0.99
    # the rerank recovers what the 16-dim head alone misses, more so with more candidates
    assert rows["funnel 256"]["recall"] >= rows["funnel 64"]["recall"] > rows["head-only"]["recall"]
    stages = rows["funnel 256"]["stages_ms"]
    assert set(stages) == {"head_search", "decode", "rerank", "fetch_documents", "documents"}
    assert 0.0 < rows["funnel 256"]["overhead"] < 1.0
    paired = run["paired"]
    assert set(paired) == {"funnel 64", "funnel 256", "full HNSW ef=16", "full HNSW ef=64"}
    assert paired["full HNSW ef=16"]["median_ratio_to_hnsw"] == 1.0
    assert all(row["p50_ms"] > 0 for row in paired.values())
    engines = run["engines"]
    # the funnel's index holds 16 of 96 dims: far smaller than a full-dimension HNSW
    assert 0 < engines["funnel"]["index_mb"] < 0.5 * engines["hnsw"]["index_mb"]
    for engine in engines.values():
        assert engine["rss_loaded_mb"] > 0 and engine["disk_mb"] > 0
        assert engine["ingest_s"] > 0 and engine["index_build_s"] > 0
    # docs/benchmarks.md's table of this run, rendered from the JSON as report.py does
    sys.path.insert(0, str(BENCHMARKS))
    from report_tables import scale_table

    table = scale_table(json.loads(out.read_text()), "synthetic-3000")
    labels = {"funnel 64": "funnel, 64 candidates", "funnel 256": "funnel, 256 candidates",
              "head-only": "head-only, 16 dims", "full HNSW ef=16": "full HNSW, ef 16",
              "full HNSW ef=64": "full HNSW, ef 64", "full exact (FLAT)": "full exact (FLAT)"}
    for key, label in labels.items():
        assert f"| {label} | {rows[key]['recall']:.3f} | {rows[key]['p50_ms']:.0f} |" in table
    assert "median per-query ratio to full HNSW, ef 16: funnel, 64 candidates " in table
    ratio = engines["funnel"]["index_mb"] / engines["hnsw"]["index_mb"]
    assert f"Funnel against full HNSW: index {ratio:.2f}x" in table
    assert "3,000 vectors x 96 dims, head 16, 40 queries" in table


@pytest.mark.server
def test_server_benchmark_small_run(tmp_path, server_uri) -> None:
    from pymilvus import MilvusClient

    out = tmp_path / "server.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "server_paired.py"), "--uri", server_uri]
        + "--n 2000 --dim 96 --search-dim 16 --queries 64 --candidates 32 128".split()
        + ["--hnsw-ef", "16", "64", "--json", str(out)],
        check=True,
        timeout=600,
    )
    run = json.loads(out.read_text())
    rows = run["rows"]
    assert set(rows) == {"funnel 32", "funnel 128", "full HNSW ef=16", "full HNSW ef=64"}
    for label, row in rows.items():
        assert 0.0 <= row["recall"] <= 1.0, label
        assert 0 < row["p50_ms"] <= row["p95_ms"], label
        assert row["qps_single"] > 0 and row["qps_batch"] > 0, label
    assert rows["full HNSW ef=16"]["median_ratio_to_hnsw"] == 1.0
    # the rerank recovers what the 16-dim head alone misses, more so with more candidates
    assert rows["funnel 128"]["recall"] >= rows["funnel 32"]["recall"]
    assert rows["funnel 128"]["recall"] >= 0.9
    # on a server the documents come with the candidates: no second read
    assert set(rows["funnel 128"]["stages_ms"]) == {"head_search", "decode", "rerank", "documents"}
    assert run["consistency"] == "Bounded" and run["funnel_ingest_and_index_s"] > 0
    # the benchmark's collections are gone afterwards
    client = MilvusClient(uri=server_uri)
    try:
        assert not {"bench_funnel", "bench_funnel_mrl_meta", "bench_hnsw"} & set(
            client.list_collections()
        )
    finally:
        client.close()


def test_hybrid_latency_benchmark_small_run(tmp_path) -> None:
    out = tmp_path / "hybrid.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "hybrid.py"), "--workdir", str(tmp_path / "w"),
         "--json", str(out), *"--n 2000 --queries 6 --dim 32 --search-dim 8".split()],
        check=True,
        timeout=600,
    )
    report = json.loads(out.read_text())
    methods = {"funnel", "full_text", "hybrid", "hybrid_concurrent", "hybrid_sequential",
               "milvus_hybrid"}
    assert set(report["p50_ms"]) == set(report["ratio_to_funnel"]) == methods
    assert all(v > 0 for v in report["p50_ms"].values())
    assert report["ratio_to_funnel"]["funnel"] == 1.0
    assert {"head_search", "full_text_search", "fusion", "total"} <= set(
        report["hybrid_stages_ms"]
    )
    table = subprocess.run(
        [sys.executable, str(BENCHMARKS / "hybrid_report.py"), "--latency", str(out)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    assert "| hybrid, the store's default (on Lite: one call after the other) |" in table
    assert "| hybrid, two calls issued together |" in table


def test_filter_benchmark_small_run(tmp_path) -> None:
    out = tmp_path / "filters.json"
    script = BENCHMARKS / "filters.py"
    subprocess.run(
        [sys.executable, str(script), "--workdir", str(tmp_path / "work"), "--json", str(out)]
        + "--n 2000 --dim 32 --search-dim 8 --queries 4 --warmup 1 --cold 1".split(),
        check=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    names = ["unfiltered", "eq 10%", "eq 1%", "eq 0.1%", "range 10%", "tenant (1 of 100)"]
    assert set(result["searches"]) == {f"{s}: {n}" for s in ("declared", "json") for n in names}
    for label, row in result["searches"].items():
        assert row["p50_ms"] > 0 and row["first_search_p50_ms"] > 0, label
        if not label.endswith("unfiltered"):  # filtered searches are complete
            assert row["recall_at_10"] == 1.0, label
    assert result["stores"]["declared"]["ingest_s"] > 0
    assert result["stores"]["json"]["disk_mb"] > 0
    rendered = subprocess.run(
        [sys.executable, str(script), "--render", str(out)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    assert "| tenant (1 of 100) |" in rendered and "Milvus Lite, 2,000 rows" in rendered


def test_vs_langchain_milvus_smoke_run(tmp_path) -> None:
    out = tmp_path / "vs.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "vs_langchain_milvus.py"), "--smoke"]
        + ["--workdir", str(tmp_path / "w"), "--json", str(out)],
        check=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    assert result["n"] == 2000 and result["queries"] == 40 and result["backend"] == "Milvus Lite"
    assert set(result["rows"]) == {"funnel", "langchain_milvus"}
    for name, row in result["rows"].items():
        assert 0.0 <= row["recall_at_10"] <= 1.0, name
        assert 0 < row["p50_ms"] <= row["p95_ms"], name
        assert row["qps_batch_32"] > 0, name
        assert result["ingest"][name]["ingest_s"] > 0, name
        assert result["disk_mb"][name] > 0, name
    # langchain-milvus searches the full vectors: on unit vectors its L2 ranking is exact
    assert result["rows"]["langchain_milvus"]["recall_at_10"] >= 0.9
    assert result["median_ratio_funnel_to_langchain_milvus"] > 0
    # the funnel's index holds the head only: smaller than a full-dimension HNSW
    memory = result["index_memory"]
    assert memory["funnel"]["dims_indexed"] < memory["langchain_milvus"]["dims_indexed"] == 128
    assert 0 < memory["funnel"]["estimate_mb"] < memory["langchain_milvus"]["estimate_mb"]
    assert result["command"].endswith("--json " + str(out))
    assert "--workdir W " in result["command"]  # machine paths recorded as placeholders
    # the quantized head: the same rows searched through an IVF_SQ8 head index
    (variant,) = result["head_variants"]
    assert variant["index_type"] == variant["index_description"]["index_type"] == "IVF_SQ8"
    assert variant["index_build_s"] > 0
    assert 0 < variant["head_index_estimate_mb"] < memory["funnel"]["estimate_mb"]
    assert 0.0 <= variant["funnel"]["recall_at_10"] <= 1.0
    sys.path.insert(0, str(BENCHMARKS))
    from report import head_indexes_table

    table = head_indexes_table(result)
    assert "| IVF_SQ8 (store defaults) |" in table and "| HNSW (store defaults) |" in table
    # the floor phase: each store's Milvus call alone, paired with both whole searches
    floor = result["floor"]
    assert floor["candidates"] >= 10
    ratios = floor["median_ratio_to_langchain_milvus"]
    assert set(ratios) == {"funnel", "funnel_call", "funnel_call_without_full",
                           "funnel_call_ids_only", "langchain_milvus_call"}  # fmt: skip
    assert all(r > 0 for r in ratios.values())
    assert set(floor["p50_ms"]) == {"langchain_milvus", *ratios}
    from report_tables import floor_table

    rendered = floor_table([("Lite, 2k", result), ("no floor", {"queries": 40})])
    assert "| MatryoshkaMilvus, whole `similarity_search` |" in rendered
    assert f"| {ratios['funnel_call']:.2f}x |" in rendered.splitlines()[3]
    assert "no floor" not in rendered  # a run without a floor phase gets no column


def test_lite_profile_counts_a_sample_once_per_label_and_the_client_side_outside_its_calls(
    tmp_path: Path,
) -> None:
    """The py-spy sample parser of benchmarks/lite_profile.py, on a hand-written recording."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from lite_profile import samples
    finally:
        sys.path.remove(str(BENCHMARKS))
    raw = tmp_path / "raw.txt"
    raw.write_text(
        # a Lite server thread inside both per-row loops' caller, in the mask loop
        "Thread.run (t.py:1);Collection.search (c.py:1);_recall_source (e.py:2);"
        "execute_search_with_index.<locals>._build_local_mask (e.py:3) 7\n"
        # the main thread waiting in the package's head search call: not client-side work
        "<module> (x.py:1);SearchMethods.search (s.py:1);MilvusCollection.search (m.py:1);"
        "_blocking (g.py:1) 5\n"
        # the main thread reranking: client-side work
        "<module> (x.py:1);SearchMethods.search (s.py:1);funnel_rerank (f.py:1) 3\n"
        "<module> (x.py:1);SearchMethods.search (s.py:1);MilvusCollection.get (m.py:2) 2\n"
    )
    counts = samples(raw)
    assert counts["lite_search"] == 7
    assert counts["lite_build_local_mask"] == 7
    assert counts["lite_update_max_seqs"] == 0
    assert counts["package_client_side"] == 3
    assert counts["package_documents_lookup"] == 2


def test_calibrate_budget_smoke_run(tmp_path) -> None:
    """calibrate_budget.py: a budget per row, judged on held-out queries, and its table."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from calibrate_budget import main
        from report import calibrate_budget_table
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = tmp_path / "budget.json"
    result = main(
        ["--workdir", str(tmp_path), "--n", "2000", "--dim", "64", "--search-dim", "16"]
        + ["--calib-queries", "40", "--eval-queries", "30", "--target", "0.8"]
        + ["--budgets", "1.05", "0.2", "0.01", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == result
    roomy, tight, tiny = result["rows"]
    assert roomy["index_type"] == "HNSW" and [t["index_type"] for t in roomy["trials"]] == ["HNSW"]
    assert tight["index_type"] == "IVF_SQ8"
    assert tight["head_index_estimate_mb"] <= tight["budget_mb"]
    assert "no head index fits" in tiny["error"]
    for row in (roomy, tight):
        assert row["reached"] and 0.0 <= row["recall_at_10"] <= 1.0 and row["p50_ms"] > 0
    assert "--workdir W " in result["command"]
    table = calibrate_budget_table(result)
    assert "| IVF_SQ8 (nlist=" in table and "none fits: refused" in table


def test_client_costs_time_a_first_write_and_both_decoders(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "client_costs.py"), "--rounds", "2", "--candidates",
         "16", "--dim", "64"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["backend"] == "Milvus Lite" and len(result["first_write_ms"]) == 2
    assert all(t > 0 for t in result["first_write_ms"])
    assert result["decode_full_ms"] > 0 and result["binascii_ms"] > 0
    assert result["candidates_ms"] > 0 and result["candidates_all_metadata_ms"] > 0
    assert result["funnel_ms"] > 0
