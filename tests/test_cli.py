"""The command line on real Milvus Lite files: help, version, one-line errors, store picking."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest
from click.testing import CliRunner

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka.cli import cli

from .conftest import TableEmbeddings, matryoshka_like

CALIBRATE = ["--k", "3", "--target", "0.8", "--n-pseudo", "100", "--dry-run"]


def _write_stores(uri: str, names: list[str]) -> None:
    """Stores of 200 deterministic 32-dim vectors (head 8), one per collection name."""
    docs = matryoshka_like(200, 32, seed=1)
    table = TableEmbeddings({f"doc {i}": v for i, v in enumerate(docs)})
    for name in names:
        store = MatryoshkaMilvus(
            table, connection_args={"uri": uri}, collection_name=name, search_dim=8
        )
        store.add_texts(list(table.table), ids=[f"id{i}" for i in range(len(docs))])
        store.close()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_shows_every_option_with_help_and_default(runner) -> None:
    for args in (["--help"], ["calibrate", "--help"], ["eval", "--help"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "``" not in result.output  # no RST markup
    for command in ("calibrate", "eval"):
        params = [p for p in cli.commands[command].params if p.param_type_name == "option"]
        for option in params:
            if option.name == "help":
                continue
            assert option.help, f"{command} {option.opts} has no help"
            assert option.show_default, f"{command} {option.opts} shows no default"
    out = " ".join(runner.invoke(cli, ["calibrate", "--help"]).output.split())
    assert "default: 10" in out and "[default: 0.99]" in out
    assert "(the only store in DB)" in out


def test_version_is_the_package_version(runner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert (
        result.output.strip() == f"langchain-matryoshka {metadata.version('langchain-matryoshka')}"
    )


def test_a_file_holding_one_store_is_used_without_collection(tmp_path, runner) -> None:
    uri = str(tmp_path / "docs.db")
    _write_stores(uri, ["docs"])  # not the default collection name
    result = runner.invoke(cli, ["calibrate", uri, *CALIBRATE])
    assert result.exit_code == 0, result.output
    assert "chosen: candidates=" in result.output and "not persisted" in result.output


def test_a_file_holding_several_stores_lists_them(tmp_path, runner) -> None:
    uri = str(tmp_path / "two.db")
    _write_stores(uri, ["docs", "notes"])
    result = runner.invoke(cli, ["calibrate", uri, *CALIBRATE])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: two.db holds 2 stores: docs, notes; pick one with --collection NAME\n"
    )
    picked = runner.invoke(cli, ["calibrate", uri, "--collection", "notes", *CALIBRATE])
    assert picked.exit_code == 0, picked.output
    wrong = runner.invoke(cli, ["calibrate", uri, "--collection", "nope", *CALIBRATE])
    assert wrong.exit_code == 2
    assert wrong.stderr == (
        "Error: two.db holds no store named 'nope' (stores: docs, notes); "
        "pass one of them with --collection NAME\n"
    )


def test_a_missing_file_is_one_error_line(tmp_path, runner) -> None:
    missing = tmp_path / "missing.db"
    result = runner.invoke(cli, ["calibrate", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {missing} does not exist; pass the path")
    assert result.stderr.count("\n") == 1
    assert not missing.exists()  # Milvus Lite was not asked to create it
    folder = runner.invoke(cli, ["eval", str(tmp_path / "no-beir")])
    assert folder.exit_code == 2
    assert folder.stderr.startswith("Error: ") and folder.stderr.count("\n") == 1


def test_a_package_error_is_one_line_and_status_2(tmp_path, runner) -> None:
    uri = str(tmp_path / "docs.db")
    _write_stores(uri, ["docs"])
    result = runner.invoke(cli, ["calibrate", uri, "--target", "1.5"])
    assert result.exit_code == 2  # ConfigurationError from MatryoshkaMilvus.calibrate
    assert result.stderr.splitlines()[-1] == (
        "Error: target_recall=1.5 must be in (0, 1]; pass e.g. 0.99"
    )


def test_a_locked_file_is_one_line_without_traceback_in_a_real_process(tmp_path) -> None:
    """This process holds the Lite file; the CLI, another process, cannot open it."""
    uri = str(tmp_path / "docs.db")
    _write_stores(uri, ["docs"])
    holder = MatryoshkaMilvus(
        TableEmbeddings({}), connection_args={"uri": uri}, collection_name="docs"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "langchain_matryoshka.cli", "calibrate", uri],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        holder.close()
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"Error: Milvus Lite file {uri!r} is held by another process")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_calibrate_chooses_the_head_index_for_a_memory_budget(tmp_path, runner) -> None:
    from langchain_matryoshka._indexes import read_head_index
    from langchain_matryoshka._milvus import Connection

    uri = str(tmp_path / "docs.db")
    _write_stores(uri, ["docs"])
    # 200 rows, head 8: HNSW ~0.03 MiB, IVF_SQ8 ~0.003 MiB
    args = ["calibrate", uri, "--k", "3", "--target", "0.8", "--n-pseudo", "100"]
    result = runner.invoke(cli, [*args, "--memory-budget-mb", "0.01", "--index-type", "ivf_sq8"])
    assert result.exit_code == 0, result.output
    assert "head index IVF_SQ8" in result.output and "nprobe |" in result.output
    connection = Connection.open({"uri": uri})
    try:
        assert read_head_index(connection.client, "docs")[0] == "IVF_SQ8"
    finally:
        connection.close()
    small = runner.invoke(cli, [*args, "--memory-budget-mb", "0.0001"])
    assert small.exit_code == 2
    assert small.stderr.splitlines()[-1].startswith("Error: no head index fits memory_budget_mb=")
