"""The core install where Milvus Lite is missing: a local file uri fails with the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_lite_uri_without_milvus_lite_names_the_install_and_the_server_uri(
    tmp_path: Path,
) -> None:
    # sys.modules[name] = None is how Python marks a module as absent: its import fails
    # and importlib.util.find_spec returns None, as where milvus-lite is not installed.
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["milvus_lite"] = None
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_matryoshka import MatryoshkaMilvus, MilvusConnectionError
        try:
            MatryoshkaMilvus(DeterministicFakeEmbedding(size=16), search_dim=8,
                             connection_args={{"uri": {str(tmp_path / "a.db")!r}}})
        except MilvusConnectionError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "milvus-lite is not installed" in out.stdout
    assert "pip install milvus-lite" in out.stdout
    assert "uri='http://localhost:19530'" in out.stdout
    assert not (tmp_path / "a.db").exists()
