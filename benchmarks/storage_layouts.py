"""Storage layouts for the full vector on Milvus Lite: query latency, batch QPS, size, accuracy.

Each document is stored as the package stores it -- VARCHAR pk ``id``, VARCHAR ``text``,
JSON ``metadata``, FLOAT_VECTOR ``head`` (the L2-normalised first ``search_dim`` dims,
HNSW, IP) -- plus the full embedding in one of these layouts:

    A  ARRAY<FLOAT>(max_capacity=dim)          the package's layout in 0.1
    B  a second FLOAT_VECTOR(dim), unindexed    Milvus Lite only (2.3 servers refuse it)
    C  VARCHAR: base64 of the float16 bytes     (np.float16 .tobytes()): the package's layout
    D  VARCHAR: base64 of the float32 bytes
    E  VARCHAR: base64 of float32 row scale + int8 codes (max-abs / 127 per row)
    F  ARRAY<INT8>(dim) + FLOAT scale field     (same codes as E, as a Milvus array)
    G  JSON: the float32 list                   (opt-in: --layouts ...,G)

and the package itself (``MatryoshkaMilvus``, its own layout) for a per-stage breakdown.

Data: synthetic Matryoshka-like vectors: ``dim`` dims, 1,000 cluster centres, each row a
centre plus noise (0.8 sd), every dimension scaled by 1/sqrt(1 + i/8), so the leading
dims carry most of the variance and neighbours are meaningful. Queries are fresh draws
from the same clusters. Texts are short ("doc 123 about topic 45"), metadata two keys.

Per layout: insert rows/s (batches of 1,000, the layouts interleaved batch by batch),
flush, release + load (finishes the HNSW builds that Milvus Lite started in the
background when its 128 MB memtable spilled during the inserts), a clean timed rebuild of
the head index (drop, create, load; HNSW M=16, efConstruction=200, nested under "params"
as Milvus Lite requires), disk size of the collection's folder, segment count; then
interleaved repetitions (layouts shuffled each repetition) of

    one-step   head search, limit=candidates, output_fields [text, metadata, full],
               then decode to a float32 [candidates, dim] array (as hits_to_candidates);
    two-step   head search with output_fields ["id"], then
               query(filter='id in [...]', output_fields=[full]) and decode;
    batch      the same 32 queries as one search call (one-step) and as one search plus
               one query for the union of the ids (two-step), vs 32 single calls.

Accuracy of the lossy layouts (C, E/F) is measured in numpy: exact head top-``candidates``,
then the package's funnel rerank (``funnel_rerank``, default scales) on float32 vs the
decoded vectors: max abs error of the full-dimension cosine and the fraction of queries
whose top-10 ids differ.

Hardware of the reported run: 2-core x86_64 VM, no GPU, other jobs running beside it;
compare the ratios within one run, not absolute times across runs.

Run:  python benchmarks/storage_layouts.py --n 100000 --json results/storage_layouts.json
      (about 45 minutes at 100k rows on the loaded 2-core machine: 10 min inserts,
      5 min index builds, 20 min for 20 repetitions; --n 20000 for a quick check)
"""

from __future__ import annotations

import argparse
import binascii
import gc
import json
import math
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _synthetic import centres_for, synthetic  # noqa: E402

BATCH = 32  # queries per batch call
INSERT_BATCH = 1000
SERVER_OK = "yes"


# ---------------------------------------------------------------------------- data


def normalised_head(vectors: np.ndarray, search_dim: int) -> np.ndarray:
    head = np.array(vectors[:, :search_dim], dtype=np.float32)
    head /= np.linalg.norm(head, axis=1, keepdims=True)
    return head


# ---------------------------------------------------------------------------- layouts


def _b64(rows: np.ndarray) -> list[str]:
    return [binascii.b2a_base64(r.tobytes(), newline=False).decode("ascii") for r in rows]


def _unb64(values: Sequence[str]) -> bytes:
    return b"".join(map(binascii.a2b_base64, values))


def _int8_codes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = (np.abs(vectors).max(axis=1) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    return codes, scale


@dataclass
class Layout:
    """How one layout stores, returns and decodes the full vector."""

    key: str
    label: str
    server_ok: str  # works on a Milvus 2.3 server (one vector field per collection)
    add_fields: Callable[[Any, int], None]
    encode: Callable[[np.ndarray], dict[str, list]]  # field -> column values
    decode: Callable[[list[dict[str, Any]], int], np.ndarray]  # entities -> [m, dim]
    fields: list[str] = field(default_factory=lambda: ["full"])
    lossy: bool = False


def make_layouts() -> dict[str, Layout]:
    from pymilvus import DataType

    def f32_lists(vecs: np.ndarray) -> dict[str, list]:
        return {"full": vecs.tolist()}

    def dec_lists(ents: list[dict[str, Any]], dim: int) -> np.ndarray:
        return np.asarray([e["full"] for e in ents], dtype=np.float32).reshape(-1, dim)

    def dec_b64(dtype: Any) -> Callable[[list[dict[str, Any]], int], np.ndarray]:
        def dec(ents: list[dict[str, Any]], dim: int) -> np.ndarray:
            raw = _unb64([e["full"] for e in ents])
            return np.frombuffer(raw, dtype=dtype).reshape(-1, dim).astype(np.float32)

        return dec

    def enc_i8_b64(vecs: np.ndarray) -> dict[str, list]:
        codes, scale = _int8_codes(vecs)
        packed = np.concatenate([scale[:, None].view(np.uint8), codes.view(np.uint8)], axis=1)
        return {"full": _b64(packed)}

    def dec_i8_b64(ents: list[dict[str, Any]], dim: int) -> np.ndarray:
        raw = np.frombuffer(_unb64([e["full"] for e in ents]), np.uint8).reshape(-1, 4 + dim)
        scale = raw[:, :4].copy().view(np.float32)  # [m, 1]
        return raw[:, 4:].view(np.int8).astype(np.float32) * scale

    def enc_i8_array(vecs: np.ndarray) -> dict[str, list]:
        codes, scale = _int8_codes(vecs)
        return {"full": codes.tolist(), "scale": scale.tolist()}

    def dec_i8_array(ents: list[dict[str, Any]], dim: int) -> np.ndarray:
        codes = np.asarray([e["full"] for e in ents], dtype=np.float32).reshape(-1, dim)
        return codes * np.asarray([e["scale"] for e in ents], dtype=np.float32)[:, None]

    def varchar(chars_per_dim: float, extra: int = 0) -> Callable[[Any, int], None]:
        def add(schema: Any, dim: int) -> None:
            n_bytes = int(math.ceil(dim * chars_per_dim)) + extra
            schema.add_field("full", DataType.VARCHAR, max_length=4 * ((n_bytes + 2) // 3))

        return add

    def add_i8_array(schema: Any, dim: int) -> None:
        schema.add_field("full", DataType.ARRAY, element_type=DataType.INT8, max_capacity=dim)
        schema.add_field("scale", DataType.FLOAT)

    layouts = [
        Layout(
            "A", "ARRAY<FLOAT>", SERVER_OK,
            lambda s, d: s.add_field(
                "full", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=d
            ),
            f32_lists, dec_lists,
        ),
        Layout(
            "B", "FLOAT_VECTOR (2nd)", "no",
            lambda s, d: s.add_field("full", DataType.FLOAT_VECTOR, dim=d),
            f32_lists, dec_lists,
        ),
        Layout(
            "C", "VARCHAR b64 f16", SERVER_OK, varchar(2),
            lambda v: {"full": _b64(v.astype(np.float16))}, dec_b64(np.float16), lossy=True,
        ),
        Layout(
            "D", "VARCHAR b64 f32", SERVER_OK, varchar(4),
            lambda v: {"full": _b64(v.astype(np.float32))}, dec_b64(np.float32),
        ),
        Layout(
            "E", "VARCHAR b64 int8+scale", SERVER_OK, varchar(1, extra=4),
            enc_i8_b64, dec_i8_b64, lossy=True,
        ),
        Layout(
            "F", "ARRAY<INT8>+FLOAT scale", SERVER_OK, add_i8_array,
            enc_i8_array, dec_i8_array, fields=["full", "scale"], lossy=True,
        ),
        Layout(
            "G", "JSON list f32", "untested",
            lambda s, d: s.add_field("full", DataType.JSON),
            f32_lists, dec_lists,
        ),
    ]
    return {lay.key: lay for lay in layouts}


# ---------------------------------------------------------------------------- helpers


def dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def n_segments(db: str, collection: str) -> int:
    data = os.path.join(db, "collections", collection, "partitions", "_default", "data")
    return sum(1 for f in os.listdir(data) if f.startswith("data_")) if os.path.isdir(data) else -1


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def ms(x: float) -> str:
    return "n/a" if x != x else (f"{x * 1e3:.1f}" if x < 10 else f"{x * 1e3:,.0f}")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


class Bench:
    """One Milvus Lite client, one collection per layout."""

    def __init__(self, client: Any, db: str, args: argparse.Namespace) -> None:
        self.client = client
        self.db = db
        self.args = args
        self.search_params = {"metric_type": "IP", "params": {"ef": args.candidates}}

    def create(self, name: str, lay: Layout) -> None:
        from pymilvus import DataType

        c = self.client
        if c.has_collection(name):
            c.drop_collection(name)
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("text", DataType.VARCHAR, max_length=256)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("head", DataType.FLOAT_VECTOR, dim=self.args.search_dim)
        lay.add_fields(schema, self.args.dim)
        c.create_collection(name, schema=schema, index_params=self.index_params())

    def index_params(self) -> Any:
        index = self.client.prepare_index_params()
        index.add_index(
            field_name="head", index_type="HNSW", metric_type="IP",
            params={"params": {"M": 16, "efConstruction": 200}},  # Lite ignores them unnested
        )
        return index

    def rebuild_index(self, name: str) -> float:
        """Seconds to build the head index from scratch over every row: release, drop the
        index, create it again, load (which builds it)."""
        c = self.client
        c.release_collection(name)
        c.drop_index(name, "head")
        t0 = time.perf_counter()
        c.create_index(name, self.index_params())
        c.load_collection(name)
        return time.perf_counter() - t0

    def ingest(
        self, names: dict[str, str], layouts: list[Layout], data: dict[str, Any], seed: int = 0
    ) -> dict[str, dict[str, float]]:
        """Insert every row into every layout's collection, batch by batch, interleaved
        (layouts shuffled per batch); then per collection: flush, release + load (which
        forces the HNSW build of what was not built in the background during the inserts);
        then a clean rebuild of the head index, timed."""
        c = self.client
        n = len(data["ids"])
        out = {lay.key: {"encode_s": 0.0, "insert_s": 0.0} for lay in layouts}
        order = list(layouts)
        rng = random.Random(seed)
        for start in tqdm(range(0, n, INSERT_BATCH), desc="insert (all layouts)"):
            sl = slice(start, start + INSERT_BATCH)
            rng.shuffle(order)
            for lay in order:
                t0 = time.perf_counter()
                cols = lay.encode(data["vectors"][sl])
                rows = [
                    {"id": i, "text": t, "metadata": m, "head": h}
                    for i, t, m, h in zip(
                        data["ids"][sl], data["texts"][sl], data["metas"][sl],
                        data["heads"][sl].tolist(),
                    )
                ]
                for fname, values in cols.items():
                    for row, v in zip(rows, values):
                        row[fname] = v
                t1 = time.perf_counter()
                c.insert(names[lay.key], rows)
                t2 = time.perf_counter()
                out[lay.key]["encode_s"] += t1 - t0
                out[lay.key]["insert_s"] += t2 - t1
        for lay in tqdm(layouts, desc="flush + index build"):
            name = names[lay.key]
            t0 = time.perf_counter()
            c.flush(name)
            t1 = time.perf_counter()
            c.release_collection(name)
            c.load_collection(name)
            t2 = time.perf_counter()
            g = out[lay.key]
            g.update(
                insert_rows_per_s=n / g["insert_s"], flush_s=t1 - t0, load_s=t2 - t1,
                index_build_s=self.rebuild_index(name),
                disk_mb=dir_size(os.path.join(self.db, "collections", name)) / 1e6,
                segments=n_segments(self.db, name),
            )
        return out

    # -- the measured paths
    def search(self, name: str, heads: np.ndarray, output_fields: list[str]) -> Any:
        return self.client.search(
            name, data=heads.tolist(), anns_field="head", limit=self.args.candidates,
            output_fields=output_fields, search_params=self.search_params,
        )

    def fetch(self, name: str, lay: Layout, ids: Sequence[str]) -> list[dict[str, Any]]:
        expr = "id in [" + ", ".join(f'"{i}"' for i in ids) + "]"
        return list(self.client.query(name, filter=expr, output_fields=lay.fields))

    @staticmethod
    def decode_hits(lay: Layout, hits: Any, dim: int) -> tuple[list, list, list, np.ndarray]:
        """What hits_to_candidates does: ids, texts, metadata, float32 [n_q, m, dim]."""
        width = max((len(h) for h in hits), default=0)
        vectors = np.zeros((len(hits), width, dim), dtype=np.float32)
        ids, texts, metas = [], [], []
        for q, qh in enumerate(hits):
            ents = [h["entity"] for h in qh]
            if ents:
                vectors[q, : len(ents)] = lay.decode(ents, dim)
            ids.append([str(h["id"]) for h in qh])
            texts.append([e["text"] for e in ents])
            metas.append([e["metadata"] or {} for e in ents])
        return ids, texts, metas, vectors

    @staticmethod
    def decode_fetched(
        lay: Layout, id_lists: list[list[str]], rows: list[dict[str, Any]], dim: int
    ) -> np.ndarray:
        """Rows of a query (any order) back into float32 [n_q, m, dim], in hit order."""
        by_id = {str(r["id"]): k for k, r in enumerate(rows)}
        vecs = lay.decode(rows, dim) if rows else np.zeros((0, dim), np.float32)
        width = max((len(x) for x in id_lists), default=0)
        out = np.zeros((len(id_lists), width, dim), dtype=np.float32)
        for q, ids in enumerate(id_lists):
            out[q, : len(ids)] = vecs[[by_id[i] for i in ids]]
        return out

    def one_step(self, name: str, lay: Layout, heads: np.ndarray) -> tuple[float, float]:
        t0 = time.perf_counter()
        hits = self.search(name, heads, ["text", "metadata"] + lay.fields)
        t1 = time.perf_counter()
        self.decode_hits(lay, hits, self.args.dim)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    def two_step(self, name: str, lay: Layout, heads: np.ndarray) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        hits = self.search(name, heads, ["id"])
        id_lists = [[str(h["id"]) for h in qh] for qh in hits]
        t1 = time.perf_counter()
        union = list(dict.fromkeys(i for ids in id_lists for i in ids))
        rows = self.fetch(name, lay, union)
        t2 = time.perf_counter()
        self.decode_fetched(lay, id_lists, rows, self.args.dim)
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2


# ---------------------------------------------------------------------------- accuracy


def accuracy(
    layouts: list[Layout], vectors: np.ndarray, heads: np.ndarray, queries: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """Lossy layouts vs float32: cosine error and top-10 changes after the funnel."""
    from langchain_matryoshka.funnel import exact_top_k, funnel_rerank, make_plan

    plan = make_plan(dim=args.dim, search_dim=args.search_dim, k=10, candidates=args.candidates)
    qh = normalised_head(queries, args.search_dim)
    cand = np.argsort(-(qh @ heads.T), axis=1)[:, : args.candidates]  # exact head top-m
    cvec = vectors[cand]  # [nq, m, dim]
    n_valid = np.full(len(queries), args.candidates)

    def cosines(c: np.ndarray) -> np.ndarray:
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        cn = c / np.linalg.norm(c, axis=2, keepdims=True)
        return np.einsum("qmd,qd->qm", cn, qn)

    ref = funnel_rerank(queries, cvec, n_valid, plan)
    ref_ids = np.take_along_axis(cand, ref.indices, axis=1)
    exact_ids, _ = exact_top_k(queries, vectors, 10)
    out: dict[str, dict[str, float]] = {
        "float32": {
            "recall@10_vs_exact": float(
                np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ref_ids, exact_ids)])
            )
        }
    }
    ref_cos = cosines(cvec)
    for lay in layouts:
        flat = cvec.reshape(-1, args.dim)
        cols = lay.encode(flat)
        ents = [dict(zip(cols, vals)) for vals in zip(*cols.values())]
        lossy = lay.decode(ents, args.dim).reshape(cvec.shape)
        res = funnel_rerank(queries, lossy, n_valid, plan)
        ids = np.take_along_axis(cand, res.indices, axis=1)
        out[lay.key] = {
            "max_abs_cosine_error": float(np.abs(cosines(lossy) - ref_cos).max()),
            "max_abs_top10_score_error": float(np.abs(res.scores - ref.scores).max()),
            "frac_queries_top10_order_differs": float(np.mean((ids != ref_ids).any(axis=1))),
            "frac_queries_top10_set_differs": float(
                np.mean([set(a) != set(b) for a, b in zip(ids, ref_ids)])
            ),
            "recall@10_vs_exact": float(
                np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids)])
            ),
        }
    return out


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="rows per collection")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--search-dim", type=int, default=128)
    ap.add_argument("--candidates", type=int, default=256)
    ap.add_argument("--reps", type=int, default=20, help="interleaved repetitions")
    ap.add_argument("--warmup", type=int, default=2, help="repetitions not counted")
    ap.add_argument("--two-step-per-rep", type=int, default=4,
                    help="single two-step queries per layout and repetition")
    ap.add_argument("--package-per-rep", type=int, default=4,
                    help="package queries per repetition (>= 50 in all is advised)")
    ap.add_argument("--layouts", default="A,B,C,D,E",
                    help="subset of A..G, comma-separated (F, G: slow, opt-in)")
    ap.add_argument("--no-package", action="store_true", help="skip the package breakdown")
    ap.add_argument("--n-accuracy", type=int, default=500, help="queries for accuracy")
    ap.add_argument("--db-dir", default=None, help="folder for x.db (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the database folder")
    ap.add_argument("--json", default=None, help="write every figure here")
    args = ap.parse_args()

    from pymilvus import MilvusClient

    all_layouts = make_layouts()
    layouts = [all_layouts[k.strip().upper()] for k in args.layouts.split(",") if k.strip()]

    base = args.db_dir or tempfile.mkdtemp(prefix="storage_layouts_")
    os.makedirs(base, exist_ok=True)
    db = os.path.join(base, "x.db")
    client = MilvusClient(uri=db)
    bench = Bench(client, db, args)

    # -- data
    centres = centres_for(args.dim, 1000, seed=0)
    vectors, labels = synthetic(args.n, centres, seed=1)
    n_q = max(BATCH * 8, args.n_accuracy)
    queries, _ = synthetic(n_q, centres, seed=2)
    heads = normalised_head(vectors, args.search_dim)
    qheads = normalised_head(queries, args.search_dim)
    data = {
        "ids": [f"d{i}" for i in range(args.n)],
        "texts": [f"doc {i} about topic {int(c)}" for i, c in enumerate(labels)],
        "metas": [{"source": f"s{i % 10}", "topic": int(c)} for i, c in enumerate(labels)],
        "heads": heads,
        "vectors": vectors,
    }

    # -- ingest
    names = {lay.key: f"lay_{lay.key}" for lay in layouts}
    for lay in layouts:
        bench.create(names[lay.key], lay)
    ingest = bench.ingest(names, layouts, data)
    for lay in layouts:
        print(f"{lay.key} {lay.label}: " + ", ".join(
            f"{k}={v:,.1f}" for k, v in ingest[lay.key].items()), flush=True)

    store = None
    if not args.no_package:
        from langchain_core.embeddings import FakeEmbeddings

        from langchain_matryoshka import MatryoshkaMilvus

        store = MatryoshkaMilvus(
            FakeEmbeddings(size=args.dim), collection_name="pkg", client=client,
            search_dim=args.search_dim, drop_old=True,
        )
        t0 = time.perf_counter()
        store.add_embeddings(data["texts"], vectors, metadatas=data["metas"], ids=data["ids"])
        t1 = time.perf_counter()
        store.build_index()
        t2 = time.perf_counter()
        ingest["package"] = {
            "insert_rows_per_s": args.n / (t1 - t0), "build_index_s": t2 - t1,
            "disk_mb": dir_size(os.path.join(db, "collections", "pkg")) / 1e6,
            "segments": n_segments(db, "pkg"),
        }
        print("package: " + ", ".join(
            f"{k}={v:,.1f}" for k, v in ingest["package"].items()), flush=True)
        planned = store._engine.plan(10, {"candidates": args.candidates})
    del data

    # -- interleaved measurements
    keys = [lay.key for lay in layouts]
    rec: dict[str, dict[str, list[float]]] = {k: {} for k in keys + ["package"]}

    def add(key: str, metric: str, value: float) -> None:
        rec[key].setdefault(metric, []).append(value)

    order_rng = random.Random(0)
    qi = 0
    for rep in tqdm(range(args.warmup + args.reps), desc="repetitions"):
        counted = rep >= args.warmup
        batch = qheads[(rep * BATCH) % (n_q - BATCH) :][:BATCH]
        units = keys + (["package"] if store is not None else [])
        order_rng.shuffle(units)
        gc.collect()
        for key in units:
            if key == "package":
                for j in range(args.package_per_rep):
                    timings: dict[str, float] = {}
                    t0 = time.perf_counter()
                    store._engine.search(queries[(qi + j) % n_q][None, :], planned, timings)
                    total = time.perf_counter() - t0
                    if counted:
                        for stage, sec in timings.items():
                            add(key, stage, sec)
                        add(key, "total", total)
                        add(key, "overhead_frac", (total - timings["head_search"]) / total)
                qi += args.package_per_rep
                continue
            lay, name = all_layouts[key], names[key]
            # 32 single one-step calls
            t_loop = time.perf_counter()
            for j in range(BATCH):
                s, d = bench.one_step(name, lay, batch[j : j + 1])
                if counted:
                    add(key, "single_search", s)
                    add(key, "single_decode", d)
                    add(key, "single_total", s + d)
            if counted:
                add(key, "singles32_s", time.perf_counter() - t_loop)
            # one batch call with the same 32 queries
            s, d = bench.one_step(name, lay, batch)
            if counted:
                add(key, "batch_search", s)
                add(key, "batch_decode", d)
                add(key, "batch_total", s + d)
            # two-step, single queries
            for j in range(args.two_step_per_rep):
                s, f, d = bench.two_step(name, lay, batch[j : j + 1])
                if counted:
                    add(key, "two_search", s)
                    add(key, "two_fetch", f)
                    add(key, "two_decode", d)
                    add(key, "two_total", s + f + d)
            # two-step, batch of 32
            s, f, d = bench.two_step(name, lay, batch)
            if counted:
                add(key, "two_batch_search", s)
                add(key, "two_batch_fetch", f)
                add(key, "two_batch_decode", d)
                add(key, "two_batch_total", s + f + d)

    med = {k: {m: median(v) for m, v in metrics.items()} for k, metrics in rec.items()}
    for lay in layouts:
        med[lay.key]["segments_after"] = n_segments(db, names[lay.key])

    # -- accuracy (numpy, no Milvus)
    lossy = [lay for lay in layouts if lay.lossy]
    acc = accuracy(lossy, vectors, heads, queries[: args.n_accuracy], args)

    # -- report
    a = med.get("A", {})
    print(f"\n## Storage layouts, {args.n:,} rows, dim {args.dim}, head {args.search_dim}, "
          f"{args.candidates} candidates, medians of {args.reps} interleaved repetitions "
          f"(Milvus Lite, {platform.machine()}, {os.cpu_count()} cores)\n")
    print("### Ingest and storage\n")
    rows = []
    for lay in layouts:
        g = ingest[lay.key]
        rows.append([f"{lay.key} {lay.label}", lay.server_ok, f"{g['disk_mb']:,.0f}",
                     f"{int(g['segments'])}/{int(med[lay.key]['segments_after'])}",
                     f"{g['insert_rows_per_s']:,.0f}", f"{g['encode_s']:.1f}",
                     f"{g['flush_s']:.1f}", f"{g['load_s']:.1f}", f"{g['index_build_s']:.1f}"])
    if "package" in ingest:
        g = ingest["package"]
        rows.append(["package (A; add_embeddings, build_index())", SERVER_OK,
                     f"{g['disk_mb']:,.0f}",
                     f"{int(g['segments'])}", f"{g['insert_rows_per_s']:,.0f} (incl. encode)",
                     "", "", f"{g['build_index_s']:.1f}", ""])
    print(table(["layout", "2.3 server", "disk MB", "segments (start/end)", "insert rows/s",
                 "encode s", "flush s", "release+load s", "index rebuild s"], rows))

    print("\n### One query (ms): one-step = search with [text, metadata, full] + decode; "
          "two-step = search ids + query(id in [...], [full]) + decode\n")
    rows = []
    for lay in layouts:
        m = med[lay.key]
        rows.append([f"{lay.key} {lay.label}", ms(m["single_search"]), ms(m["single_decode"]),
                     ms(m["single_total"]), f"{m['single_total'] / a.get('single_total', 1):.2f}",
                     ms(m["two_search"]), ms(m["two_fetch"]), ms(m["two_decode"]),
                     ms(m["two_total"]), f"{m['two_total'] / m['single_total']:.2f}"])
    print(table(["layout", "search", "decode", "total", "vs A", "2-step search ids",
                 "2-step fetch", "2-step decode", "2-step total", "2-step / 1-step"], rows))

    print(f"\n### Batch of {BATCH} queries: one call vs {BATCH} single calls "
          "(ms for all 32; QPS; ratio = batch QPS / single QPS)\n")
    rows = []
    for lay in layouts:
        m = med[lay.key]
        single_qps = BATCH / m["singles32_s"]
        batch_qps = BATCH / m["batch_total"]
        two_single_qps = 1 / m["two_total"]
        two_batch_qps = BATCH / m["two_batch_total"]
        m.update(single_qps=single_qps, batch_qps=batch_qps, two_single_qps=two_single_qps,
                 two_batch_qps=two_batch_qps)
        rows.append([f"{lay.key} {lay.label}", ms(m["singles32_s"]), f"{single_qps:.1f}",
                     f"{ms(m['batch_search'])} + {ms(m['batch_decode'])}", f"{batch_qps:.1f}",
                     f"**{batch_qps / single_qps:.2f}x**",
                     f"{ms(m['two_batch_search'])} + {ms(m['two_batch_fetch'])} + "
                     f"{ms(m['two_batch_decode'])}", f"{two_batch_qps:.1f}",
                     f"{two_batch_qps / single_qps:.2f}x"])
    print(table(["layout", "32 singles", "single QPS", "1 batch: search + decode",
                 "batch QPS", "batch/single", "2-step batch: search + fetch + decode",
                 "2-step batch QPS", "2-step batch / 1-step single"], rows))

    print(f"\n### Accuracy of lossy layouts ({args.n_accuracy} queries, exact head "
          f"top-{args.candidates}, package funnel to top-10; float32 recall@10 vs exact "
          f"full search: {acc['float32']['recall@10_vs_exact']:.3f})\n")
    rows = [[f"{lay.key} {lay.label}", f"{acc[lay.key]['max_abs_cosine_error']:.2e}",
             f"{acc[lay.key]['max_abs_top10_score_error']:.2e}",
             f"{acc[lay.key]['frac_queries_top10_order_differs']:.3f}",
             f"{acc[lay.key]['frac_queries_top10_set_differs']:.3f}",
             f"{acc[lay.key]['recall@10_vs_exact']:.3f}"] for lay in lossy]
    print(table(["layout", "max abs cosine err (all candidates)", "max abs top-10 score err",
                 "queries with top-10 order changed", "queries with top-10 set changed",
                 "recall@10 vs exact"], rows))

    if store is not None:
        p = med["package"]
        stages = ["head_search", "decode", "rerank", "documents"]
        total = sum(p[s] for s in stages)
        n_pkg = len(rec["package"]["total"])
        print(f"\n### Package path (MatryoshkaMilvus, its own layout), one query, k=10, "
              f"{args.candidates} candidates, medians of {n_pkg} queries\n")
        rows = [[s, ms(p[s]), f"{p[s] / total:.1%}"] for s in stages]
        rows.append(["sum of stage medians", ms(total), "100%"])
        rows.append(["median total (timed outside)", ms(p["total"]), ""])
        print(table(["stage", "ms", "share"], rows))
        over = (p["decode"] + p["rerank"] + p["documents"]) / total
        print(f"\nplugin overhead (decode + rerank + documents) / total = {over:.1%} "
              f"(median of per-query ratios: {p['overhead_frac']:.1%}; target <= 20%)")
        med["package"]["overhead_of_medians"] = over

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({
                "args": vars(args),
                "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
                "layouts": {lay.key: {"label": lay.label, "server_ok": lay.server_ok}
                            for lay in layouts},
                "ingest": ingest, "medians": med, "accuracy": acc,
                "samples": {k: {m: len(v) for m, v in mm.items()} for k, mm in rec.items()},
                "quartiles": {
                    k: {m: [float(x) for x in np.percentile(v, [25, 75])] for m, v in mm.items()}
                    for k, mm in rec.items()
                },
            }, f, indent=2)
        print(f"\nwrote {args.json}")
    if store is not None:
        store.close()
    client.close()
    if not args.keep and not args.db_dir:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
