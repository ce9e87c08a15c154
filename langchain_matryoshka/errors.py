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
    ├── MilvusConnectionError                  Milvus cannot be opened, reached, or did not
    │                                          answer in time
    └── StorageFullError                       Milvus has no space left on its disk

``ConnectionError`` is the former name of :class:`MilvusConnectionError` (it shadowed
Python's builtin); importing it still works for one release and warns.
"""

from __future__ import annotations

import warnings
from typing import Any


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


class MilvusConnectionError(MatryoshkaError):
    """Milvus could not be opened or reached, or did not answer within the call's limit.

    The message names the uri and the call. Reads were retried before this was raised;
    a write that fails with it may or may not have been applied when the connection broke
    mid-call (the message says which): the store's writes are upserts by id and deletes,
    so running the same call again is safe. After the server is back, the same store works
    again: it reconnects by itself.
    """


class StorageFullError(MatryoshkaError):
    """Milvus could not write: no space is left on its disk.

    Not a :class:`MilvusConnectionError`: Milvus answered, and waiting does not help.
    The rows written before stay readable; free space, then run the same ingestion again
    (upserts by id: the rows already stored are not duplicated).
    """


_DEPRECATED = {"ConnectionError": MilvusConnectionError}


def deprecated_name(module: str, name: str, stacklevel: int) -> Any:
    """The class a deprecated name stands for, with a DeprecationWarning; or AttributeError."""
    if name not in _DEPRECATED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new = _DEPRECATED[name]
    warnings.warn(
        f"langchain_matryoshka.{name} is deprecated and will be removed in the next release; "
        f"use {new.__name__} (the same class)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    return new


def __getattr__(name: str) -> Any:
    return deprecated_name(__name__, name, stacklevel=2)
