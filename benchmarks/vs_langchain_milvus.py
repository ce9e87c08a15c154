"""MatryoshkaMilvus against langchain-milvus's ``Milvus`` store, each at its defaults.

Both stores get the same synthetic Matryoshka-like unit vectors (``_synthetic.py``)
through ``add_embeddings``, and the same query texts, which a precomputed-vectors
``Embeddings`` looks up; so every search goes through each store's own LangChain
``similarity_search`` (query embedding, search, documents). Nothing but the collection
name and the connection is passed to either store: their own index, metric, search
parameters and consistency level are used (langchain-milvus 0.4: AUTOINDEX with L2 on
the full vector, "Session"; MatryoshkaMilvus: HNSW on the default head, funnel rerank,
"Session").

Measured: recall@10 against exact numpy search (cosine on the unit vectors); paired
latency (every query runs both stores, in alternating order; the median of the
per-query ratios funnel / langchain-milvus is reported); QPS on batches of 32 queries
(ours: one ``search_batch_with_score`` call; langchain-milvus has no batch search, so 32
sequential ``similarity_search`` calls); ingest time (writes, flush and index build
until searchable at full speed); growth of this process's resident memory over each
ingest (on Milvus Lite the engine runs in this process); the disk size of each Milvus
Lite file; an estimate of each index's memory (HNSW: float32 vectors of the indexed
field plus 2 * M links of 4 bytes per row on layer 0; M from the index description,
16 where it gives none).

Where each store's time goes (``floor`` in the JSON): paired again with both whole
searches, the funnel's head-search call alone (its fields, parameters and consistency,
nothing done with the hits), that call without the full vectors, with ids only, and
langchain-milvus's own call alone, each as a median per-query ratio to
langchain-milvus's whole search. The funnel's call alone is the least its search can
cost at its candidate count; the call without the full vectors bounds what any
encoding of them could save.

Milvus Lite, one .db file per store in ``--workdir``::

    python benchmarks/vs_langchain_milvus.py --workdir W --n 100000

A server you started (``python tests/server.py`` prints a throwaway one's uri)::

    python benchmarks/vs_langchain_milvus.py --uri http://127.0.0.1:19530 --n 100000

Quantized heads (``--head-indexes``): after the default comparison, the funnel's head
index is rebuilt as each given type in turn (``TYPE`` or ``TYPE:key=value,...``, e.g.
``IVF_SQ8 IVF_PQ:m=32 IVF_SQ8:nlist=1024,nprobe=32``; ``nprobe``/``ef`` are search
parameters, the rest build parameters) on the same rows, and each is measured against
langchain-milvus again (paired ratio, recall, QPS), with its head index memory: the
estimate of ``head_index_mb`` and, on a server whose data folder is given
(``--server-data``), the size of the index files it built (``index_files_mb``), for
both stores::

    python benchmarks/vs_langchain_milvus.py --uri URI --n 1000000 --server-data DIR \\
        --head-indexes IVF_SQ8 IVF_SQ8:nlist=1024,nprobe=64

JSON goes to ``benchmarks/results/vs-langchain-milvus-<lite|server>-<n>.json`` unless
``--json``. ``--smoke``: 2,000 rows of 128 dims, 40 queries, Milvus Lite (with an
IVF_SQ8 head variant).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import centres_for, synthetic  # noqa: E402
from scale import dir_bytes, exact_ids, paired, pct, rss_mb, unit  # noqa: E402
from server_paired import _wait_for_index  # noqa: E402

from langchain_matryoshka._head_choice import head_index_mb  # noqa: E402
from langchain_matryoshka._indexes import build_params  # noqa: E402
from langchain_matryoshka._layout import FIELD_FULL, FIELD_HEAD  # noqa: E402

K = 10
BATCH = 32
CHUNK = 10000
FUNNEL = "vs_funnel"
PLAIN = "vs_langchain_milvus"
RESULTS = Path(__file__).resolve().parent / "results"


class Precomputed(Embeddings):
    """Vectors looked up by text: the same query vectors reach both stores."""

    def __init__(self, vectors: dict[str, list[float]], dim: int) -> None:
        self.vectors = vectors
        self.dim = dim

    def embed_query(self, text: str) -> list[float]:
        try:
            return self.vectors[text]
        except KeyError:
            raise KeyError(f"no precomputed vector for {text!r}") from None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def _index_info(client: Any, collection: str) -> dict[str, Any]:
    out = {}
    for name in client.list_indexes(collection):
        info = client.describe_index(collection, index_name=name)
        out[name] = {k: v for k, v in info.items() if isinstance(v, (str, int, float))}
    return out


def _hnsw_mb(n: int, dim: int, info: dict[str, Any]) -> dict[str, Any]:
    params = {}
    if isinstance(info.get("params"), str):
        try:
            params = json.loads(info["params"])
        except ValueError:
            params = {}
    m = int(info.get("M", params.get("M", 16)))
    return {
        "index_type": info.get("index_type"),
        "dims_indexed": dim,
        "M": m,
        "estimate_mb": head_index_mb(n, dim, "HNSW", {"M": m}),
    }


def _parse_variant(spec: str, search_dim: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``TYPE[:key=value,...]`` as (type, build params, search params)."""
    kind, _, rest = spec.partition(":")
    kind = kind.upper()
    build: dict[str, Any] = {}
    search: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--head-indexes {spec!r}: expected key=value, got {item!r}")
        (search if key in ("nprobe", "ef") else build)[key] = int(value)
    return kind, build_params(kind, build, search_dim), search


def index_files_mb(client: Any, data_dir: str | None, collection: str) -> float | None:
    """Size of the index files a server built for the collection's loaded segments.

    Milvus keeps each segment's built index under ``index_files/<build>/<version>/
    <partition>/<segment>/``; the newest build of each loaded segment is the index in
    use (a dropped index's files linger until garbage collection). Knowhere's HNSW and
    IVF files are its in-memory structures serialised, so this is the index's memory
    as the server holds it. Milvus 2.3 reports no segment memory
    (``get_query_segment_info`` gives 0), hence the files. None without ``data_dir``.
    """
    if not data_dir:
        return None
    root = Path(data_dir) / "index_files"
    segments = {str(s.segment_id) for s in client.list_loaded_segments(collection)}
    newest: dict[str, Path] = {}
    for seg_dir in root.glob("*/*/*/*"):
        if seg_dir.name in segments:
            build = int(seg_dir.parts[-4])
            if seg_dir.name not in newest or build > int(newest[seg_dir.name].parts[-4]):
                newest[seg_dir.name] = seg_dir
    if set(newest) != segments:
        return None  # a segment without index files (still growing): no figure
    files = [f for d in newest.values() for f in d.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 2**20


def head_variants(
    args: argparse.Namespace,
    emb: Embeddings,
    plain: Any,
    qtexts: list[str],
    truth: np.ndarray,
    search_dim: int,
) -> list[dict[str, Any]]:
    """The funnel with its head index rebuilt as each ``--head-indexes`` type."""
    from langchain_matryoshka import MatryoshkaMilvus

    rows = []
    built: tuple[str, dict[str, Any]] | None = None
    for spec in args.head_indexes:
        kind, build, search = _parse_variant(spec, search_dim)
        conn = {"uri": args.uri} if args.uri else {"uri": str(Path(args.workdir) / "funnel.db")}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store = MatryoshkaMilvus(
                emb, collection_name=FUNNEL, connection_args=conn, search_params=search
            )
            client = store.client
            t0 = time.perf_counter()
            if (kind, build) != built:  # variants that differ in search params share a build
                store.rebuild_head_index(kind, build)  # on a server: until every row is indexed
                built = (kind, build)
                build_s: float | None = time.perf_counter() - t0
            else:
                build_s = None
            measured = measure(args, store, plain, qtexts, truth)
        rows.append(
            {
                "spec": spec,
                "index_type": kind,
                "build_params": build,
                "search_params": search,
                "index_build_s": build_s,
                "index_description": _index_info(client, FUNNEL).get(FIELD_HEAD, {}),
                "head_index_estimate_mb": head_index_mb(args.n, search_dim, kind, build),
                "index_files_mb": index_files_mb(client, args.server_data, FUNNEL),
                "funnel": measured["rows"]["funnel"],
                "langchain_milvus": measured["rows"]["langchain_milvus"],
                "median_ratio_funnel_to_langchain_milvus": measured[
                    "median_ratio_funnel_to_langchain_milvus"
                ],
            }
        )
        store.close()
        print(
            f"{spec}: recall@10 {rows[-1]['funnel']['recall_at_10']:.3f}, median ratio "
            f"{rows[-1]['median_ratio_funnel_to_langchain_milvus']:.3f}, head index "
            f"{rows[-1]['head_index_estimate_mb']:.1f} MB (est.)"
        )
    return rows


def open_stores(args: argparse.Namespace, emb: Embeddings, drop: bool) -> tuple[Any, Any]:
    from langchain_milvus import Milvus

    from langchain_matryoshka import MatryoshkaMilvus

    if args.uri:
        conn_f = conn_p = {"uri": args.uri}
    else:
        conn_f = {"uri": str(Path(args.workdir) / "funnel.db")}
        conn_p = {"uri": str(Path(args.workdir) / "langchain_milvus.db")}
    funnel = MatryoshkaMilvus(emb, collection_name=FUNNEL, connection_args=conn_f, drop_old=drop)
    plain = Milvus(emb, collection_name=PLAIN, connection_args=conn_p, drop_old=drop)
    return funnel, plain


def ingest(args: argparse.Namespace, funnel: Any, plain: Any, docs: np.ndarray) -> dict:
    n = len(docs)
    texts = [f"document {i}" for i in range(n)]
    out: dict[str, Any] = {}
    for name, store in (("funnel", funnel), ("langchain_milvus", plain)):
        rss0 = rss_mb()
        t0 = time.perf_counter()
        for s in range(0, n, CHUNK):
            store.add_embeddings(
                texts[s : s + CHUNK],
                docs[s : s + CHUNK].tolist(),
                metadatas=[{"i": i} for i in range(s, min(n, s + CHUNK))],
                ids=[f"d{i}" for i in range(s, min(n, s + CHUNK))],
            )
        if store is funnel:
            funnel.build_index()
            if args.uri:
                _wait_for_index(funnel.client, FUNNEL, "head")
        else:
            client, col = plain.client, PLAIN
            client.flush(col)
            if args.uri:
                for field in client.list_indexes(col):
                    _wait_for_index(client, col, field)
            else:  # Lite builds in the background; release + load builds it now
                client.release_collection(col)
            client.load_collection(col)
        out[name] = {"ingest_s": time.perf_counter() - t0, "rss_growth_mb": rss_mb() - rss0}
    return out


def measure(
    args: argparse.Namespace, funnel: Any, plain: Any, qtexts: list[str], truth: np.ndarray
) -> dict[str, Any]:
    def f_one(q: str) -> list[str]:
        return [str(d.id) for d in funnel.similarity_search(q, k=K)]

    def p_one(q: str) -> list[str]:
        return [str(d.metadata["pk"]) for d in plain.similarity_search(q, k=K)]

    settings = {"funnel": f_one, "langchain_milvus": p_one}
    times, found = paired(settings, np.asarray(qtexts, dtype=object), warmup=min(10, len(qtexts)))
    ratios = np.asarray(times["funnel"]) / np.asarray(times["langchain_milvus"])
    rows: dict[str, Any] = {}
    batches = [qtexts[s : s + BATCH] for s in range(0, len(qtexts) - BATCH + 1, BATCH)]
    batch_fns = {
        "funnel": lambda b: funnel.search_batch_with_score(b, k=K),
        "langchain_milvus": lambda b: [plain.similarity_search(q, k=K) for q in b],
    }
    for name in settings:
        batch = []
        for b in batches:
            t0 = time.perf_counter()
            batch_fns[name](b)
            batch.append(time.perf_counter() - t0)
        hits = sum(len(set(f) & {f"d{j}" for j in row}) for f, row in zip(found[name], truth))
        rows[name] = {
            "recall_at_10": hits / (len(qtexts) * K),
            "p50_ms": pct(times[name], 50) * 1000,
            "p95_ms": pct(times[name], 95) * 1000,
            "qps_batch_32": BATCH * len(batches) / sum(batch) if batch else None,
        }
    return {
        "rows": rows,
        "median_ratio_funnel_to_langchain_milvus": float(np.median(ratios)),
        "p95_ratio_funnel_to_langchain_milvus": rows["funnel"]["p95_ms"]
        / rows["langchain_milvus"]["p95_ms"],
    }


#: Calls paired against langchain-milvus's whole search by :func:`floor`.
FLOOR_CALLS = (
    "funnel",
    "funnel_call",
    "funnel_call_without_full",
    "funnel_call_ids_only",
    "langchain_milvus_call",
)


def floor(funnel: Any, plain: Any, qtexts: list[str], queries: np.ndarray) -> dict[str, Any]:
    """How much of each store's search is the Milvus call itself, paired query by query.

    Beside both stores' whole ``similarity_search``: the funnel's head-search call alone
    (the same fields, parameters and consistency, through pymilvus, nothing done with
    its hits), that call without the full vectors (no encoding of them can cost less),
    with ids only, and langchain-milvus's own call alone. Each as the median of its
    per-query ratios to langchain-milvus's whole search.
    """
    from langchain_matryoshka._indexes import search_params_for
    from langchain_matryoshka._layout import FIELD_ID
    from langchain_matryoshka.funnel import head_of

    engine = funnel._engine
    coll = engine.collection
    layout = coll._require()
    limit = engine.plan(K, {})[0].candidates
    heads = head_of(engine.query_vectors(queries, layout), layout.search_dim)
    params = search_params_for(coll.index_type, coll.head_search_params(None), limit, None)
    row_of = {t: i for i, t in enumerate(qtexts)}
    docs = layout.document_fields()

    def funnel_call(fields: list[str]) -> Any:
        def run(q: str) -> Any:
            return coll.client.search(
                coll.name,
                data=[heads[row_of[q]].tolist()],
                anns_field=FIELD_HEAD,
                limit=limit,
                filter="",
                output_fields=fields,
                search_params=params,
                **coll.session.read_kwargs(None, "search"),
            )

        return run

    plain_params = plain._as_list(plain.search_params)[0]
    plain_fields = plain._get_output_fields()

    def plain_call(q: str) -> Any:
        return plain.client.search(
            PLAIN,
            data=[queries[row_of[q]].tolist()],
            anns_field=plain._vector_field,
            search_params=plain_params,
            limit=K,
            filter="",
            output_fields=plain_fields,
        )

    settings = {
        "langchain_milvus": lambda q: plain.similarity_search(q, k=K),
        "funnel": lambda q: funnel.similarity_search(q, k=K),
        "funnel_call": funnel_call([*docs, FIELD_FULL]),
        "funnel_call_without_full": funnel_call(docs),
        "funnel_call_ids_only": funnel_call([FIELD_ID] if layout.version >= 3 else []),
        "langchain_milvus_call": plain_call,
    }
    times, _ = paired(settings, np.asarray(qtexts, dtype=object), warmup=min(10, len(qtexts)))
    base = np.asarray(times["langchain_milvus"])
    return {
        "candidates": limit,
        "p50_ms": {name: pct(t, 50) * 1000 for name, t in times.items()},
        "median_ratio_to_langchain_milvus": {
            name: float(np.median(np.asarray(times[name]) / base)) for name in FLOOR_CALLS
        },
    }


#: Options whose values name this machine: recorded as placeholders.
PLACEHOLDERS = {"--uri": "URI", "--workdir": "W", "--server-data": "DIR"}


def recorded_command(argv: list[str], script: str = "benchmarks/vs_langchain_milvus.py") -> str:
    """The command line as the JSON records it, machine-specific values as placeholders."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        key, eq, _ = arg.partition("=")
        if key in PLACEHOLDERS:
            out.append(f"{key}={PLACEHOLDERS[key]}" if eq else f"{key} {PLACEHOLDERS[key]}")
            if not eq:
                next(args, None)
        else:
            out.append(arg)
    return " ".join(["python " + script, *out])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("langchain-matryoshka", "langchain-milvus", "pymilvus", "milvus-lite", "milvus"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workdir", help="Milvus Lite: a folder for the two .db files")
    where.add_argument("--uri", help="a Milvus server, e.g. http://127.0.0.1:19530")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="2,000 x 128 dims, 40 queries, Lite")
    ap.add_argument(
        "--head-indexes",
        nargs="*",
        default=[],
        metavar="TYPE[:k=v,...]",
        help="rebuild the funnel's head index as each of these after the default run",
    )
    ap.add_argument(
        "--server-data",
        default=None,
        metavar="DIR",
        help="the server's data folder (with index_files/): report its index files' size",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.smoke:
        if args.uri:
            ap.error("--smoke runs on Milvus Lite; drop --uri")
        args.n, args.dim, args.queries = 2000, 128, 40
        args.head_indexes = args.head_indexes or ["IVF_SQ8"]
    if args.uri and args.uri.endswith(".db"):
        ap.error(f"--uri {args.uri!r} is a Milvus Lite file; pass --workdir FOLDER instead")
    own_dir = not args.uri and not args.workdir
    if own_dir:
        args.workdir = tempfile.mkdtemp(prefix="vs-langchain-milvus-")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        for name in ("funnel.db", "langchain_milvus.db"):
            shutil.rmtree(Path(args.workdir) / name, ignore_errors=True)
    kind = "server" if args.uri else "lite"

    centres = centres_for(args.dim, 1000, seed=7)
    docs = unit(synthetic(args.n, centres, seed=11)[0]).astype(np.float32)
    queries = unit(synthetic(args.queries, centres, seed=13)[0]).astype(np.float32)
    truth = exact_ids(docs, queries, K)
    qtexts = [f"query {i}" for i in range(len(queries))]
    emb = Precomputed(dict(zip(qtexts, queries.tolist())), args.dim)

    result: dict[str, Any] = {
        "command": recorded_command(sys.argv[1:]),
        "backend": "Embedded Milvus server" if args.uri else "Milvus Lite",
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "k": K,
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "versions": _versions(),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        funnel, plain = open_stores(args, emb, drop=True)
        result["ingest"] = ingest(args, funnel, plain, docs)
    result.update(measure(args, funnel, plain, qtexts, truth))
    result["floor"] = floor(funnel, plain, qtexts, queries)
    result["funnel_search_dim"] = funnel.search_dim
    f_idx = _index_info(funnel.client, FUNNEL)
    p_idx = _index_info(plain.client, PLAIN)
    result["index_description"] = {"funnel": f_idx, "langchain_milvus": p_idx}
    result["index_memory"] = {
        "funnel": _hnsw_mb(args.n, funnel.search_dim, f_idx.get("head", {})),
        "langchain_milvus": _hnsw_mb(args.n, args.dim, next(iter(p_idx.values()), {})),
    }
    result["index_files_mb"] = {
        "funnel": index_files_mb(funnel.client, args.server_data, FUNNEL),
        "langchain_milvus": index_files_mb(plain.client, args.server_data, PLAIN),
    }
    search_dim = funnel.search_dim
    funnel.close()
    result["head_variants"] = head_variants(args, emb, plain, qtexts, truth, search_dim)
    if not args.uri:
        result["disk_mb"] = {
            "funnel": dir_bytes(Path(args.workdir) / "funnel.db") / 2**20,
            "langchain_milvus": dir_bytes(Path(args.workdir) / "langchain_milvus.db") / 2**20,
        }
    else:
        from langchain_matryoshka._milvus import META_SUFFIX

        for name in (FUNNEL, FUNNEL + META_SUFFIX, PLAIN):
            plain.client.drop_collection(name)
    print(
        json.dumps(
            {k: result[k] for k in ("ingest", "rows", "floor", "index_memory", "index_files_mb")},
            indent=1,
        )
    )
    print(
        f"median per-query p50 ratio funnel / langchain-milvus: "
        f"{result['median_ratio_funnel_to_langchain_milvus']:.3f}"
    )
    out = Path(args.json) if args.json else RESULTS / f"vs-langchain-milvus-{kind}-{args.n}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    if own_dir:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
