"""Matryoshka funnel search on Milvus for LangChain.

Milvus indexes a short head of each Matryoshka embedding; the candidates of one
low-dimensional search are reranked on growing prefixes of the stored full vectors.
"""

from importlib import metadata
from typing import Any

from .embeddings import MatryoshkaEmbeddings
from .errors import (
    ConfigurationError,
    DimensionMismatchError,
    EmbeddingError,
    InvalidInputError,
    MatryoshkaError,
    MilvusConnectionError,
    SchemaError,
    StorageFullError,
)
from .funnel import FunnelPlan, exact_top_k, funnel_rerank, make_plan
from .retriever import FunnelRetriever
from .self_query import MatryoshkaTranslator
from .vectorstore import MatryoshkaMilvus

try:
    __version__ = metadata.version(__package__ or __name__)
except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    __version__ = "0.0.0"

__all__ = [
    "ConfigurationError",
    "DimensionMismatchError",
    "EmbeddingError",
    "FunnelPlan",
    "FunnelRetriever",
    "InvalidInputError",
    "MatryoshkaEmbeddings",
    "MatryoshkaError",
    "MatryoshkaMilvus",
    "MatryoshkaTranslator",
    "MilvusConnectionError",
    "SchemaError",
    "StorageFullError",
    "__version__",
    "exact_top_k",
    "funnel_rerank",
    "make_plan",
]


def __getattr__(name: str) -> Any:
    # Deprecated names (``ConnectionError``) resolve with a DeprecationWarning.
    from .errors import deprecated_name

    return deprecated_name(__name__, name, stacklevel=2)
