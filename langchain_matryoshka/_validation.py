"""Validation of user input, done before anything is embedded or written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import _milvus
from .errors import ConfigurationError, InvalidInputError


def prepare_texts(
    texts: Iterable[str],
    metadatas: list[dict] | None,
    ids: list[str | None] | None,
    text_max_length: int,
) -> tuple[list[str], list[dict], list[str]]:
    """Validate a write before anything is embedded or written."""
    if isinstance(texts, str):
        raise InvalidInputError("texts is a single string; pass a list of texts, e.g. [text]")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] is {type(text).__name__}, not str; pass strings")
    n = len(texts)
    if metadatas is not None and len(metadatas) != n:
        raise InvalidInputError(
            f"got {n} texts but {len(metadatas)} metadatas; pass one metadata dict per text"
        )
    if ids is not None and len(ids) != n:
        raise InvalidInputError(f"got {n} texts but {len(ids)} ids; pass one id per text")
    out_ids = [uuid.uuid4().hex if ids is None or ids[i] is None else ids[i] for i in range(n)]
    seen: set[str] = set()
    for doc_id in out_ids:
        if not isinstance(doc_id, str) or not doc_id:
            raise InvalidInputError(f"id {doc_id!r} is not a non-empty string; pass string ids")
        if len(doc_id.encode("utf-8")) > _milvus.ID_MAX_LENGTH:
            raise InvalidInputError(
                f"id {doc_id[:40]!r}... is longer than {_milvus.ID_MAX_LENGTH} bytes; "
                "pass shorter ids (e.g. a hash of the long one)"
            )
        if doc_id in seen:
            raise InvalidInputError(
                f"id {doc_id!r} appears twice in one call; pass each id once "
                "(re-adding an id in a later call replaces its row)"
            )
        seen.add(doc_id)
    limit = text_max_length
    for doc_id, text in zip(out_ids, texts):
        if len(text.encode("utf-8")) > limit:
            raise InvalidInputError(
                f"text of document {doc_id!r} is {len(text.encode('utf-8'))} bytes, over "
                f"the collection's limit of {limit}; split it into chunks (e.g. with a "
                "LangChain text splitter) before adding"
            )
    metas = []
    for doc_id, meta in zip(out_ids, metadatas or [{}] * n):
        meta = {} if meta is None else meta
        if not isinstance(meta, Mapping):
            raise InvalidInputError(
                f"metadata of document {doc_id!r} is {type(meta).__name__}, not a dict"
            )
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"metadata of document {doc_id!r} is not JSON-serialisable ({exc}); "
                "convert its values to strings, numbers, booleans, lists or dicts"
            ) from None
        metas.append(dict(meta))
    return texts, metas, out_ids


def reject_unknown(options: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for {where}; "
            f"allowed: {', '.join(allowed) if allowed else 'none'}"
        )


def check_queries(queries: Sequence[str]) -> None:
    if isinstance(queries, str):
        raise InvalidInputError("queries is a single string; pass a list of queries")
    for query in queries:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(
                f"query {query!r} is empty or not a string; pass the text to search for"
            )
