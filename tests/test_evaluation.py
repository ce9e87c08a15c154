"""Evaluation on a tiny BEIR folder written by the test, metrics checked by hand."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from langchain_matryoshka.cli import main as cli_main
from langchain_matryoshka.errors import InvalidInputError
from langchain_matryoshka.evaluation import evaluate_beir, ir_metrics, load_beir, write_report

from .conftest import TableEmbeddings, matryoshka_like


def test_ir_metrics_match_hand_computed_values() -> None:
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1}}
    run = {"q1": {"a": 3.0, "x": 2.0, "b": 1.0}, "q2": {"y": 2.0, "z": 1.0}}
    got = ir_metrics(qrels, run, k=10)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert got["ndcg@10"] == pytest.approx((dcg / idcg + 0.0) / 2)
    assert got["recall@10"] == pytest.approx((1.0 + 0.0) / 2)


@pytest.fixture
def beir(tmp_path):
    """40 docs, 8 queries; each query's relevant doc is its exact nearest neighbour."""
    docs = matryoshka_like(40, 24, seed=5)
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    table = {}
    with open(folder / "corpus.jsonl", "w") as f:
        for i, v in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"body {i}"}) + "\n")
            table[f"T{i} body {i}"] = v
    rng = np.random.default_rng(0)
    with open(folder / "queries.jsonl", "w") as f, open(folder / "qrels" / "test.tsv", "w") as q:
        q.write("query-id\tcorpus-id\tscore\n")
        for j in range(8):
            f.write(json.dumps({"_id": f"q{j}", "text": f"query {j}"}) + "\n")
            table[f"query {j}"] = docs[3 * j] + 0.01 * rng.standard_normal(24)
            q.write(f"q{j}\td{3 * j}\t1\n")
        f.write(json.dumps({"_id": "unlabelled", "text": "not in qrels"}) + "\n")
        with open(folder / "qrels" / "train.tsv", "w") as t:
            t.write("query-id\tcorpus-id\tscore\n")
            for j in range(10):
                f.write(json.dumps({"_id": f"t{j}", "text": f"train {j}"}) + "\n")
                table[f"train {j}"] = docs[4 * j + 1] + 0.01 * rng.standard_normal(24)
                t.write(f"t{j}\td{4 * j + 1}\t1\n")
    return folder, TableEmbeddings(table)


def test_load_beir_reads_title_text_and_labelled_queries(beir) -> None:
    folder, _ = beir
    data = load_beir(folder)
    assert len(data.doc_ids) == 40 and data.doc_texts[2] == "T2 body 2"
    assert data.query_ids == [f"q{j}" for j in range(8)]
    assert data.qrels["q1"] == {"d3": 1}
    with pytest.raises(InvalidInputError, match="qrels/dev.tsv not found"):
        load_beir(folder, split="dev")


def test_evaluate_beir_compares_methods(beir, tmp_path) -> None:
    folder, table = beir
    report = evaluate_beir(folder, table, search_dim=4, candidates=(10, 40), prune_ratio=1.0,
                           uri=str(tmp_path / "e.db"), show_progress=False)
    by = {(r.method, r.rotation, r.candidates): r for r in report.results}
    for rotation in ("none", "pca"):
        exact = by[("exact full", rotation, None)]
        assert exact.ndcg == pytest.approx(1.0) and exact.recall_vs_exact == 1.0
        full_funnel = by[("funnel", rotation, 40)]  # covers the corpus, no pruning
        assert full_funnel.recall_vs_exact == 1.0 and full_funnel.ndcg == pytest.approx(1.0)
        assert set(full_funnel.stages_ms) == {
            "head_search",
            "decode",
            "rerank",
            "fetch_documents",
            "documents",
        }
        assert by[("head only", rotation, None)].recall_vs_exact <= 1.0
        for fusion in ("rrf", "weighted"):  # the funnel fused with BM25, default depths
            hybrid = next(r for r in report.results
                          if r.method == f"hybrid {fusion}" and r.rotation == rotation)
            assert 0.0 <= hybrid.ndcg <= 1.0
            assert {"head_search", "full_text_search", "fusion"} <= set(hybrid.stages_ms)
    # BM25 alone, once (it does not depend on the rotation)
    assert [r.method for r in report.results].count("full text (BM25)") == 1
    paths = write_report(report, tmp_path / "out")
    names = {p.name for p in paths}
    assert {"eval.json", "eval.md"} <= names
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["n_docs"] == 40
    assert "| funnel | pca | 40 |" in (tmp_path / "out" / "eval.md").read_text()
    # docs/evaluation.md's two tables, rendered from eval.json as benchmarks/report.py does
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from report_tables import eval_hybrid_table, eval_quality_table

    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    quality = eval_quality_table(saved)
    assert f"| funnel | pca | 40 | {full_funnel.ndcg:.4f} |" in quality
    assert "hybrid" not in quality and "BM25" not in quality
    hybrid = eval_hybrid_table(saved)
    bm25 = next(r for r in report.results if r.method == "full text (BM25)")
    assert f"| full text (BM25) | - | - | {bm25.ndcg:.4f} |" in hybrid
    assert "| hybrid weighted | pca |" in hybrid and "| none |" not in hybrid


def test_cli_help_lists_commands(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli_main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "eval" in out and "calibrate" in out


def test_evaluate_beir_calibrates_on_a_held_out_split(beir, tmp_path) -> None:
    folder, table = beir
    report = evaluate_beir(folder, table, search_dim=4, candidates=(10,), rotations=("pca",),
                           uri=str(tmp_path / "c.db"), calibrate_split="train",
                           target_recall=0.8, show_progress=False)
    calibration = report.calibrations["pca"]
    assert calibration["n_queries"] == 10 and not calibration["pseudo_queries"]
    assert calibration["reached"]
    row = next(r for r in report.results if r.method == "funnel calibrated")
    assert row.candidates == calibration["candidates"]


def test_default_grid_steps() -> None:
    from langchain_matryoshka.calibration import default_grid

    assert default_grid(10, 100_000)[:6] == [16, 24, 32, 48, 64, 96]
    assert default_grid(10, 100_000)[-1] == 2048
    assert default_grid(5, 40) == [8, 12, 16, 24, 32, 48]
