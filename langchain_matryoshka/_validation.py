r"""Validation of user input, done before anything is embedded or written.

Every check here runs on the whole call before the first row reaches Milvus, so a bad
text, id or metadata value anywhere in a batch leaves the collection untouched.

What is accepted, and why:

- texts: any ``str``, the empty string and NUL characters included (Milvus stores them
  as they are); not lone surrogates (``"\ud800"``), which are not valid UTF-8 and which
  Milvus refuses; at most ``text_max_length`` UTF-8 bytes.
- ids: non-empty strings of at most :data:`_milvus.ID_MAX_LENGTH` UTF-8 bytes, each once
  per call (re-adding an id in a later call replaces its row).
- metadata: a dict of JSON values that survive the round trip unchanged: string keys,
  strings, booleans, ``None``, finite floats, integers within int64 (Milvus' JSON
  integers), lists / tuples and dicts of these.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from . import _milvus
from ._conventions import reject_unknown  # noqa: F401 - re-exported
from .errors import InvalidInputError

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _surrogate_at(text: str) -> int | None:
    """Position of the first character that is not valid UTF-8 (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_json(value: Any, path: str, doc_id: str) -> None:
    """Raise if ``value`` (at ``path`` in a document's metadata) would not round-trip."""
    fix = "convert it to a string, a finite number, a boolean, None, a list or a dict"
    where = f"metadata{path} of document {doc_id!r}"
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidInputError(
                f"{where} is {value}, outside Milvus' 64-bit integer range; "
                "store it as a string (e.g. str(value)) or a float"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{where} is {value!r}, which is not JSON-serialisable (JSON has no "
                "NaN or infinity); store None or a finite number instead"
            )
        return
    if isinstance(value, str):
        pos = _surrogate_at(value)
        if pos is not None:
            raise InvalidInputError(
                f"{where} holds a lone surrogate {value[pos]!r} at position {pos}, which is "
                "not valid UTF-8; fix the string's decoding (e.g. errors='replace')"
            )
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; metadata keys "
                    f"must be strings (JSON would silently turn it into {json.dumps(str(key))}): "
                    f"use str keys, e.g. {str(key)!r}"
                )
            pos = _surrogate_at(key)
            if pos is not None:
                raise InvalidInputError(
                    f"{where} has the key {key!r} holding a lone surrogate at position {pos}, "
                    "which is not valid UTF-8; fix the key's decoding"
                )
            _check_json(item, f"{path}[{key!r}]", doc_id)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", doc_id)
        return
    raise InvalidInputError(
        f"{where} is {_short(value)} of type {type(value).__name__}, which is not "
        f"JSON-serialisable; {fix}"
    )


def prepare_texts(
    texts: Iterable[str],
    metadatas: list[dict] | None,
    ids: Sequence[str | None] | None,
    text_max_length: int,
) -> tuple[list[str], list[dict], list[str]]:
    """Validate a write before anything is embedded or written."""
    if isinstance(texts, str):
        raise InvalidInputError("texts is a single string; pass a list of texts, e.g. [text]")
    if isinstance(metadatas, Mapping):
        raise InvalidInputError(
            "metadatas is a single dict; pass a list with one metadata dict per text"
        )
    if isinstance(ids, str):
        raise InvalidInputError("ids is a single string; pass a list with one id per text")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] is {type(text).__name__}, not str; pass strings")
    n = len(texts)
    if metadatas is not None:
        metadatas = list(metadatas)
        if len(metadatas) != n:
            raise InvalidInputError(
                f"got {n} texts but {len(metadatas)} metadatas; pass one metadata dict per text"
            )
    if ids is not None:
        ids = list(ids)
        if len(ids) != n:
            raise InvalidInputError(f"got {n} texts but {len(ids)} ids; pass one id per text")
    out_ids = cast(  # the loop below refuses any id that is not a string
        "list[str]",
        [uuid.uuid4().hex if ids is None or ids[i] is None else ids[i] for i in range(n)],
    )
    seen: set[str] = set()
    for doc_id in out_ids:
        if not isinstance(doc_id, str) or not doc_id:
            raise InvalidInputError(f"id {doc_id!r} is not a non-empty string; pass string ids")
        pos = _surrogate_at(doc_id)
        if pos is not None:
            raise InvalidInputError(
                f"id {doc_id!r} holds a lone surrogate at position {pos}, which is not valid "
                "UTF-8; pass ids that encode to UTF-8"
            )
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
        pos = _surrogate_at(text)
        if pos is not None:
            raise InvalidInputError(
                f"text of document {doc_id!r} holds a lone surrogate {text[pos]!r} at "
                f"position {pos}, which is not valid UTF-8; fix the text's decoding "
                "(e.g. bytes.decode(errors='replace'))"
            )
        size = len(text.encode("utf-8"))
        if size > limit:
            raise InvalidInputError(
                f"text of document {doc_id!r} is {size} bytes, over the collection's limit "
                f"of {limit}; split it into chunks (e.g. with a LangChain text splitter) "
                "before adding"
            )
    metas = []
    for doc_id, meta in zip(out_ids, metadatas or [{}] * n):
        meta = {} if meta is None else meta
        if not isinstance(meta, Mapping):
            raise InvalidInputError(
                f"metadata of document {doc_id!r} is {type(meta).__name__}, not a dict; "
                "pass a dict such as {'source': 'a.txt'}"
            )
        meta = dict(meta)
        try:
            _check_json(meta, "", doc_id)
        except RecursionError:
            raise InvalidInputError(
                f"metadata of document {doc_id!r} is nested too deeply to store; "
                "flatten it (e.g. store the deep part as a JSON string)"
            ) from None
        metas.append(meta)
    return texts, metas, out_ids


def check_queries(queries: Sequence[str]) -> None:
    if isinstance(queries, str):
        raise InvalidInputError("queries is a single string; pass a list of queries")
    for query in queries:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(
                f"query {query!r} is empty or not a string; pass the text to search for"
            )
        pos = _surrogate_at(query)
        if pos is not None:
            raise InvalidInputError(
                f"query {query!r} holds a lone surrogate at position {pos}, which is not "
                "valid UTF-8; fix the query's decoding (e.g. errors='replace')"
            )
