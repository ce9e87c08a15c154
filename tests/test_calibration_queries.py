"""Calibration on the queries a store will really see: pseudo-queries that do not
over-promise, an honest bound, recorded queries shared across processes, staleness."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._bounds import recall_lower_bounds
from langchain_matryoshka._querylog import FLUSH_EVERY, read_recorded
from langchain_matryoshka.errors import ConfigurationError

DIM, HEAD, TOPICS, WORDS = 48, 8, 30, 40
_CENTERS = np.random.default_rng(0).standard_normal((TOPICS, DIM))


class BagOfWords(Embeddings):
    """A text is the sum of its words' vectors; a word of topic t leans towards t.

    Long documents average their words' noise away and sit near their topic, where a
    short head finds them easily; a five-word query keeps most of its words' noise,
    like a real short question against long passages.
    """

    def _one(self, text: str) -> list[float]:
        v = np.zeros(DIM)
        for w in text.replace(".", " ").split():
            topic = int(w.split("_")[0][1:])
            noise = np.random.default_rng(zlib.crc32(w.encode())).standard_normal(DIM)
            v += 0.3 * _CENTERS[topic] + noise
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def _sentence(rng: np.random.Generator, topic: int, n: int = 5) -> str:
    return " ".join(f"t{topic}_w{rng.integers(WORDS)}" for _ in range(n)) + "."


@pytest.fixture
def bow_store(lite_uri):
    rng = np.random.default_rng(1)
    docs = [" ".join(_sentence(rng, t) for _ in range(8)) for t in rng.integers(TOPICS, size=400)]
    store = MatryoshkaMilvus(
        BagOfWords(), connection_args={"uri": lite_uri}, search_dim=HEAD, rotation="pca"
    )
    store.add_texts(docs, ids=[f"d{i}" for i in range(len(docs))])
    store.build_index()
    yield store
    store.close()


def _real_recall(store: MatryoshkaMilvus, result, k: int = 5) -> float:
    """Recall@k vs exact of fresh real queries at the calibrated setting."""
    rng = np.random.default_rng(7)
    queries = [_sentence(rng, int(t)) for t in rng.integers(TOPICS, size=200)]
    vectors = np.asarray(store.embedding.embed_documents(queries), dtype=np.float32)
    exact, _ = store.engine.exact(vectors, k)
    options = {
        "candidates": result.candidates,
        "prune_ratio": result.prune_ratio,
        "scales": list(result.scales),
    }
    found = store.search_batch_with_score_by_vector(vectors, k=k, **options)
    return float(np.mean([len({d.id for d, _ in f} & set(e)) / k for f, e in zip(found, exact)]))


def test_documents_as_queries_over_promise_and_spans_do_not(bow_store) -> None:
    options = {
        "k": 5,
        "target_recall": 0.95,
        "n_pseudo": 200,
        "persist": False,
        "measure_latency": False,
        "prune_ratios": [1.0],
        "scales": [DIM],
    }
    old = bow_store.calibrate(pseudo="documents", pseudo_margin=1.0, **options)
    new = bow_store.calibrate(**options)
    assert old.reached and new.reached and new.pseudo_method == "spans"
    old_real, new_real = _real_recall(bow_store, old), _real_recall(bow_store, new)
    # documents promised 0.95 and real queries get clearly less
    assert old.recall_lower >= 0.95 and old_real < 0.94
    # spans (with their measured margin) keep the promise, at more candidates
    assert new_real >= 0.95 and new.candidates > old.candidates
    assert new.margin_cost["candidates"] <= new.candidates


def _level_sample(rng: np.random.Generator, n: int, p_miss: float) -> np.ndarray:
    """Per-query recall@10: most queries perfect, a tail missing 1, 2 or 5 of 10."""
    tail = rng.choice([0.9, 0.8, 0.5], size=n, p=[0.7, 0.2, 0.1])
    return np.where(rng.random(n) < p_miss, tail, 1.0)


@pytest.mark.parametrize("n", [30, 300])
@pytest.mark.parametrize("p_miss", [0.02, 0.2])
def test_the_bound_covers_the_true_mean(n: int, p_miss: float) -> None:
    true_mean = 1.0 - p_miss * (0.7 * 0.1 + 0.2 * 0.2 + 0.1 * 0.5)
    rng = np.random.default_rng(n + int(100 * p_miss))
    trials = 300
    samples = np.stack([_level_sample(rng, n, p_miss) for _ in range(trials)])
    bounds = np.array(
        [recall_lower_bounds(s, 10, 0.95, n_draws=1000, seed=i)[0] for i, s in enumerate(samples)]
    )
    coverage = float(np.mean(bounds <= true_mean))
    # nominal 95%; 300 trials put a binomial 99% band at about +-0.032 around it
    assert coverage >= 0.95 - 0.032
    assert np.all(bounds <= samples.mean(axis=1))  # a lower bound, never above the mean
    # and it is not vacuous: with more queries it closes in on the mean
    assert float(np.mean(samples.mean(axis=1) - bounds)) < (0.08 if n == 30 else 0.02)


def test_a_sample_without_misses_proves_little() -> None:
    assert recall_lower_bounds(np.ones(30), 10)[0] < 0.97
    assert recall_lower_bounds(np.ones(3000), 10)[0] > 0.998


def test_recorded_queries_are_kept_trimmed_and_used(lite_uri, store, corpus, table) -> None:
    _, _, qtexts, queries = corpus
    store.close()
    with pytest.raises(ConfigurationError, match="record_queries=-1"):
        MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, record_queries=-1)
    rec = MatryoshkaMilvus(table, connection_args={"uri": lite_uri}, record_queries=20)
    for text in qtexts:
        rec.similarity_search(text, k=3)
    rec.close()  # writes what is still in memory
    plain = MatryoshkaMilvus(table, connection_args={"uri": lite_uri})
    vectors, texts, summary = read_recorded(plain.engine.meta, 32)
    # the last 20 of 25, as searched, and no texts
    np.testing.assert_allclose(vectors, queries[-20:], rtol=1e-6)
    assert texts == [None] * 20 and summary["n"] == 20 and summary["with_texts"] == 0
    result = plain.calibrate(k=3, target_recall=0.8, measure_latency=False, persist=False)
    assert result.queries == "recorded" and result.n_queries == 20
    assert "recorded sample of real queries" in result.summary()
    ignored = plain.calibrate(
        k=3,
        target_recall=0.8,
        use_recorded=False,
        pseudo="documents",
        n_pseudo=20,
        measure_latency=False,
        persist=False,
    )
    assert ignored.queries == "pseudo"
    plain.close()
    with_texts = MatryoshkaMilvus(
        table, connection_args={"uri": lite_uri}, record_queries=5, record_query_texts=True
    )
    with_texts.search_batch_with_score(qtexts[:2], k=3)
    with_texts.close()
    again = MatryoshkaMilvus(table, connection_args={"uri": lite_uri})
    _, texts, _ = read_recorded(again.engine.meta, 32)
    assert texts[-2:] == qtexts[:2] and len(texts) == 5
    again.close()


def test_recorded_queries_flush_in_batches_in_the_background(store, corpus, table) -> None:
    _, _, _, queries = corpus
    rec = MatryoshkaMilvus(table, client=store.client, record_queries=500)
    log = rec.engine.query_log
    vectors = np.tile(queries, (3, 1))[: FLUSH_EVERY + 3]
    for v in vectors:
        rec.similarity_search_by_vector(v.tolist(), k=2)
    log._thread.join()
    stored, _, _ = read_recorded(rec.engine.meta, 32)
    assert len(stored) >= FLUSH_EVERY  # one batch written without close()
    rec.close()
    assert len(read_recorded(rec.engine.meta, 32)[0]) == FLUSH_EVERY + 3


_WRITER = textwrap.dedent(
    """
    import json, sys
    from langchain_core.embeddings import Embeddings
    from langchain_matryoshka import MatryoshkaMilvus

    class Table(Embeddings):
        def __init__(self, table):
            self.table = table
        def embed_documents(self, texts):
            return [self.table[t] for t in texts]
        def embed_query(self, text):
            return self.table[text]

    table = json.loads(sys.stdin.read())
    store = MatryoshkaMilvus(Table(table), connection_args={"uri": sys.argv[1]},
                             search_dim=8, record_queries=int(sys.argv[2]))
    docs = [t for t in table if t.startswith("doc")]
    store.add_texts(docs, ids=[f"id{i}" for i in range(len(docs))])
    for text in table:
        if text.startswith("query") and int(sys.argv[2]):
            store.similarity_search(text, k=3)
    store.close()
    """
)


def _write_in_another_process(uri: str, corpus, record: int) -> None:
    """A real second process creates the store and answers the queries (Milvus Lite
    lets one process at a time open a file, so the test process opens it only after)."""
    texts, docs, qtexts, queries = corpus
    table = {t: v.tolist() for t, v in [*zip(texts, docs), *zip(qtexts, queries)]}
    subprocess.run(
        [sys.executable, "-c", _WRITER, uri, str(record)],
        input=json.dumps(table).encode(),
        check=True,
        timeout=300,
        capture_output=True,
    )


def _cli_calibrate(uri: str, *extra: str) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "langchain_matryoshka.cli",
            "calibrate",
            uri,
            "--k",
            "3",
            "--target",
            "0.8",
            "--dry-run",
            *extra,
        ],
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_recorded_queries_are_shared_with_another_process(lite_uri, corpus, table) -> None:
    _, _, qtexts, queries = corpus
    _write_in_another_process(lite_uri, corpus, record=100)
    # a third process, the CLI, finds them and says so
    out = _cli_calibrate(lite_uri)
    assert f"queries: {len(qtexts)}, the store's recorded sample of real queries" in out
    reopened = MatryoshkaMilvus(table, connection_args={"uri": lite_uri})
    vectors, texts, summary = read_recorded(reopened.engine.meta, 32)
    assert summary["n"] == len(qtexts) and summary["writers"] == 1 and texts[0] is None
    np.testing.assert_allclose(vectors, queries, rtol=1e-6)
    result = reopened.calibrate(k=3, target_recall=0.8, measure_latency=False)
    assert result.queries == "recorded" and result.n_queries == len(qtexts)
    assert reopened.engine.config["calibration"]["queries"] == "recorded"
    reopened.close()


def test_cli_says_when_pseudo_queries_were_used(lite_uri, corpus) -> None:
    _write_in_another_process(lite_uri, corpus, record=0)
    out = _cli_calibrate(lite_uri, "--n-pseudo", "100")
    assert "queries: 100, pseudo-queries made from stored documents (perturbed)" in out
    assert "the margin costs" in out and "not persisted" in out
    assert "record_queries=1000" in out


def test_a_grown_collection_says_its_calibration_is_stale(store, corpus, table) -> None:
    texts, docs, qtexts, _ = corpus
    store.calibrate(qtexts, k=3, target_recall=0.8, measure_latency=False)
    assert not store.calibration_stale
    assert store.engine.config["calibration"]["corpus_size"] == 200
    more = np.concatenate([np.roll(docs, 1, axis=1), docs[:1] * -1.0])
    table.table.update({f"more {i}": v for i, v in enumerate(more)})
    store.add_texts([f"more {i}" for i in range(201)], ids=[f"m{i}" for i in range(201)])
    assert store.calibration_stale  # 401 rows > 2 x 200
    with pytest.warns(UserWarning, match="calibrated at 200 rows"):
        reopened = MatryoshkaMilvus(table, client=store.client)
    assert reopened.calibration_stale
    reopened.calibrate(qtexts, k=3, target_recall=0.8, measure_latency=False)
    assert not reopened.calibration_stale


def test_the_recording_cost_benchmark_runs(tmp_path) -> None:
    out = tmp_path / "cost.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "query_log_cost.py"
    subprocess.run(
        [
            sys.executable,
            str(script),
            "--rows",
            "500",
            "--dim",
            "32",
            "--search-dim",
            "8",
            "--queries",
            "20",
            "--record",
            "50",
            "--out",
            str(out),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    report = json.loads(out.read_text())
    assert report["median_ms_plain"] > 0 and report["median_ms_recording"] > 0
    assert report["median_paired_ratio"] > 0 and report["record_call_us"] > 0
