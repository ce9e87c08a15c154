"""Matryoshka funnel search on Milvus for LangChain.

Milvus indexes a short head of each Matryoshka embedding; the candidates of one
low-dimensional search are reranked on growing prefixes of the stored full vectors.
"""

from importlib import metadata

from .embeddings import MatryoshkaEmbeddings
from .errors import (
    ConfigurationError,
    ConnectionError,
    DimensionMismatchError,
    EmbeddingError,
    InvalidInputError,
    MatryoshkaError,
    SchemaError,
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
    "ConnectionError",
    "DimensionMismatchError",
    "EmbeddingError",
    "FunnelPlan",
    "FunnelRetriever",
    "InvalidInputError",
    "MatryoshkaEmbeddings",
    "MatryoshkaError",
    "MatryoshkaMilvus",
    "MatryoshkaTranslator",
    "SchemaError",
    "__version__",
    "exact_top_k",
    "funnel_rerank",
    "make_plan",
]
