"""Exceptions raised by langchain-matryoshka.

Every error the package raises on purpose derives from :class:`MatryoshkaError`,
and each message names the offending value and ends with the fix.

Tree::

    MatryoshkaError
    ├── ConfigurationError (also ValueError)   a setting or argument is invalid
    │   └── DimensionMismatchError             embedding / collection / funnel dims disagree
    ├── InvalidInputError (also ValueError)    texts, ids, metadata or queries are unusable
    ├── EmbeddingError (also ValueError)       the embedding model returned bad vectors
    ├── SchemaError                            an existing collection has an incompatible schema
    └── ConnectionError                        Milvus cannot be opened or reached
"""

from __future__ import annotations


class MatryoshkaError(Exception):
    """Base class of every error raised by langchain-matryoshka."""


class ConfigurationError(MatryoshkaError, ValueError):
    """A setting of the store, the retriever or the funnel is invalid."""


class DimensionMismatchError(ConfigurationError):
    """Embedding, collection and funnel dimensions disagree."""


class InvalidInputError(MatryoshkaError, ValueError):
    """Texts, ids, metadata or a query cannot be stored or searched."""


class EmbeddingError(MatryoshkaError, ValueError):
    """The embedding model returned vectors that cannot be searched (NaN, zero, ragged)."""


class SchemaError(MatryoshkaError):
    """An existing collection does not have the layout this package writes."""


class ConnectionError(MatryoshkaError):  # noqa: A001 - scoped to the package
    """Milvus could not be opened or reached."""
