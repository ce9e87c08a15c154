"""``MatryoshkaEmbeddings``: sentence-transformers models with query/document prompts."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .errors import ConfigurationError

#: Prompts and recipes of Matryoshka models whose saved config does not carry them.
#: Matched by substring of the model name; explicit arguments always win.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "nomic-embed-text": {
        "query_prompt": "search_query: ",
        "document_prompt": "search_document: ",
        "layer_norm": True,
        "trust_remote_code": True,
    },
    "mxbai-embed-large": {
        "query_prompt": "Represent this sentence for searching relevant passages: ",
    },
}


def preset_for(model_name: str) -> dict[str, Any]:
    """The preset whose key occurs in ``model_name`` (case-insensitive), or {}."""
    name = model_name.lower()
    for key, preset in MODEL_PRESETS.items():
        if key in name:
            return dict(preset)
    return {}


class MatryoshkaEmbeddings(BaseModel, Embeddings):
    """LangChain embeddings from a sentence-transformers model, with distinct prompts.

    Queries are encoded with ``query_prompt`` (or the model's prompt named
    ``query_prompt_name``, or its own "query" prompt), documents with
    ``document_prompt`` / ``document_prompt_name`` / its "document" prompt. Known
    Matryoshka models get their prompts and recipe from :data:`MODEL_PRESETS`
    (nomic-embed-text-v1.5: ``search_query: `` / ``search_document: `` and layer norm).

    Example:
        .. code-block:: python

            from langchain_matryoshka import MatryoshkaEmbeddings

            embeddings = MatryoshkaEmbeddings("nomic-ai/nomic-embed-text-v1.5")
            embeddings.embed_query("what is funnel search?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model_name: str
    """A local path or a model hub name loaded by ``SentenceTransformer``."""
    query_prompt: str | None = None
    """Text prepended to queries (e.g. "search_query: ")."""
    document_prompt: str | None = None
    """Text prepended to documents (e.g. "search_document: ")."""
    query_prompt_name: str | None = None
    """Name of one of the model's own prompts to use for queries."""
    document_prompt_name: str | None = None
    """Name of one of the model's own prompts to use for documents."""
    layer_norm: bool | None = None
    """Layer-normalise each embedding (nomic's recipe before truncation); None: preset."""
    normalize_embeddings: bool = False
    """L2-normalise the returned embeddings (the store normalises prefixes anyway)."""
    batch_size: int = Field(default=32, ge=1)
    """Texts encoded per forward pass."""
    device: str | None = None
    """torch device ("cpu", "cuda", ...); None lets sentence-transformers choose."""
    trust_remote_code: bool | None = None
    """Allow the model's own code (needed by nomic-embed-text); None: preset."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for ``SentenceTransformer(...)``."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for ``encode_query`` / ``encode_document``."""
    show_progress: bool = False
    """Show sentence-transformers' progress bar while encoding documents."""

    _model: Any = PrivateAttr(default=None)

    def __init__(self, model_name: str | os.PathLike[str] | None = None, /, **data: Any) -> None:
        if model_name is not None:
            data["model_name"] = model_name
        if isinstance(data.get("model_name"), os.PathLike):
            data["model_name"] = os.fspath(data["model_name"])
        model = data.pop("model", None)
        if "model_name" not in data:
            raise ConfigurationError(
                "MatryoshkaEmbeddings needs a model: pass a local path or a hub name, e.g. "
                "MatryoshkaEmbeddings('nomic-ai/nomic-embed-text-v1.5')"
            )
        preset = preset_for(str(data["model_name"]))
        for key, value in preset.items():
            if data.get(key) is None:
                data[key] = value
        super().__init__(**data)
        self._model = model if model is not None else self._load()

    def _load(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "MatryoshkaEmbeddings needs sentence-transformers: "
                'pip install "langchain-matryoshka[sentence-transformers]"'
            ) from exc
        with _no_loading_bars():
            return SentenceTransformer(
                self.model_name,
                device=self.device,
                trust_remote_code=bool(self.trust_remote_code),
                **self.model_kwargs,
            )

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer``."""
        return self._model

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        prompt = self.query_prompt if kind == "query" else self.document_prompt
        name = self.query_prompt_name if kind == "query" else self.document_prompt_name
        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size,
            "convert_to_numpy": True,
            "show_progress_bar": self.show_progress and kind == "document",
            **self.encode_kwargs,
        }
        if prompt is not None:
            kwargs["prompt"] = prompt
        elif name is not None:
            kwargs["prompt_name"] = name
        encode = self._model.encode_query if kind == "query" else self._model.encode_document
        vectors = np.asarray(encode(texts, **kwargs), dtype=np.float32)
        if self.layer_norm:
            mean = vectors.mean(axis=1, keepdims=True)
            std = np.sqrt(vectors.var(axis=1, keepdims=True) + 1e-5)
            vectors = (vectors - mean) / std
        if self.normalize_embeddings:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the document prompt."""
        return self._encode(list(texts), "document").tolist() if texts else []

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Embed many queries in one call, with the query prompt."""
        return self._encode(list(texts), "query").tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        """Embed one query with the query prompt."""
        return self.embed_queries([text])[0]

    async def aembed_queries(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_queries` (runs on a worker thread)."""
        return await asyncio.to_thread(self.embed_queries, texts)


@contextlib.contextmanager
def _no_loading_bars() -> Iterator[None]:
    """Without transformers' "Loading weights" bar, which the user did not ask for.

    transformers' switch is process-wide: it is restored as it was on the way out.
    """
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers brings transformers
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
