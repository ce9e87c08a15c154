"""The collection layout: fields, versions, declared metadata columns, row encoding.

Pure: builds schemas and rows and reads them back; the Milvus calls live in
:mod:`._milvus`. Three layout versions exist, named by the collection property
``matryoshka.layout`` (absent before 0.3):

=======  ===============  ========================================================
version  written by       fields
=======  ===============  ========================================================
1        0.1              id VARCHAR pk, text, metadata JSON, head, full ARRAY<FLOAT>
2        0.2              as 1, full = float16 base64 VARCHAR (+ matryoshka.full/dim)
3        0.3 and later    pk INT64 (a hash of the id), id VARCHAR, text, metadata JSON,
                          declared metadata columns, head, full float16 VARCHAR;
                          optional: sparse (BM25 of text), tenant partitions
=======  ===============  ========================================================

Every version is read and written in its own layout. Why each choice was made, with the
measurements: ``docs/storage.md``.
"""

from __future__ import annotations

import base64
import hashlib
import keyword
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pybase64 import b64decode

from ._expressions import KINDS, Expressions
from .errors import ConfigurationError, InvalidInputError

FIELD_PK = "pk"
FIELD_ID = "id"
FIELD_TEXT = "text"
FIELD_METADATA = "metadata"
FIELD_HEAD = "head"
FIELD_FULL = "full"
FIELD_SPARSE = "sparse"
RESERVED = frozenset(
    {FIELD_PK, FIELD_ID, FIELD_TEXT, FIELD_METADATA, FIELD_HEAD, FIELD_FULL, FIELD_SPARSE}
)
METRIC = "IP"

#: Newest layout this version writes; a collection naming a newer one is refused.
LAYOUT_VERSION = 3
#: Longest id, in UTF-8 bytes, the id field holds.
ID_MAX_LENGTH = 512
#: Longest text, in UTF-8 bytes (the VARCHAR maximum).
TEXT_MAX_LENGTH = 65535
#: Largest embedding dimension (the largest ARRAY capacity Milvus allows; settings
#: matrices are stored one ARRAY row per matrix row).
MAX_DIM = 4096
#: Default longest value of a declared ``str`` column, in UTF-8 bytes.
DEFAULT_STR_LENGTH = 1024
#: Default most elements of a declared list column.
DEFAULT_LIST_CAPACITY = 64

#: Full vectors as base64 float16 in a VARCHAR (the default, see the module docstring).
STORAGE_FLOAT16 = "float16-base64"
#: Full vectors as ARRAY<FLOAT> (collections written by langchain-matryoshka 0.1).
STORAGE_ARRAY = "float32-array"
#: Largest error float16 storage adds to a cosine score: each component of a unit vector
#: is rounded by at most 2**-11 of itself (plus 2**-25 below float16's normal range),
#: and sum(|q_i| |d_i|) <= 1 for unit q and d.
FLOAT16_COSINE_ERROR = 2.0**-11 + 64 * 2.0**-25

PROPERTY_LAYOUT = "matryoshka.layout"
PROPERTY_STORAGE = "matryoshka.full"
PROPERTY_DIM = "matryoshka.dim"
#: JSON list of the declared metadata columns' names.
PROPERTY_FIELDS = "matryoshka.fields"
#: JSON ``{"key": ..., "mode": "partition_key" | "partitions", "partitions": n}``.
PROPERTY_TENANCY = "matryoshka.tenancy"
#: JSON analyzer parameters of the BM25 full-text field.
PROPERTY_FULL_TEXT = "matryoshka.full_text"
#: The rotation a collection was built with, and the id of its basis in the settings
#: collection: set atomically with the collection, so racing first writers agree.
PROPERTY_ROTATION = "matryoshka.rotation"
PROPERTY_BASIS = "matryoshka.basis"

#: Tenancy modes: Milvus' own partition key (servers), or partitions the store picks
#: from the tenant value (Milvus Lite, which accepts a partition key but never prunes).
TENANCY_PARTITION_KEY = "partition_key"
TENANCY_PARTITIONS = "partitions"
#: Partitions a Milvus Lite store spreads tenants over (a tenant's partition is a hash
#: of its value; tenants sharing one are still told apart by the filter).
#: 16: an unfiltered search passes over every partition (Milvus Lite 3.2, 100k rows:
#: 52 partitions cost 1.6x one; 10 partitions 1.02x), and a tenant's search passes over
#: one sixteenth of the rows (docs/filters.md).
DEFAULT_LITE_PARTITIONS = 16
#: Partitions of a server's partition key (Milvus' own default is 16).
DEFAULT_SERVER_PARTITIONS = 64

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


# ---------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class MetadataField:
    """A metadata key stored as its own typed column beside the JSON field."""

    name: str
    kind: str
    """One of ``str``, ``int``, ``float``, ``bool``, ``list[str]``, ``list[int]``,
    ``list[float]``, ``list[bool]``."""
    max_length: int = DEFAULT_STR_LENGTH
    """Longest ``str`` value (or list element), in UTF-8 bytes."""
    max_capacity: int = DEFAULT_LIST_CAPACITY
    """Most elements of a list value."""
    nullable: bool = True
    """Documents may lack the key (Milvus Lite and servers from 2.5; not 2.3/2.4)."""

    @property
    def element(self) -> str:
        return self.kind[5:-1] if self.kind.startswith("list[") else self.kind

    @property
    def is_list(self) -> bool:
        return self.kind.startswith("list[")


_PY_KINDS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool"}


def _kind_of(spec: Any, key: str) -> str:
    """The kind of a declared type: a Python type, ``list[T]``, a pymilvus DataType or a name."""
    from pymilvus import DataType

    if spec in _PY_KINDS:
        return _PY_KINDS[spec]
    if typing.get_origin(spec) in (list, Sequence) and len(typing.get_args(spec)) == 1:
        inner = typing.get_args(spec)[0]
        if inner in _PY_KINDS:
            return f"list[{_PY_KINDS[inner]}]"
    if isinstance(spec, DataType):
        by_type = {
            DataType.VARCHAR: "str",
            DataType.INT8: "int",
            DataType.INT16: "int",
            DataType.INT32: "int",
            DataType.INT64: "int",
            DataType.FLOAT: "float",
            DataType.DOUBLE: "float",
            DataType.BOOL: "bool",
        }
        if spec in by_type:
            return by_type[spec]
    if isinstance(spec, str) and spec in KINDS:
        return spec
    raise ConfigurationError(
        f"metadata_fields[{key!r}] = {spec!r} is not a supported type; pass one of str, int, "
        "float, bool, list[str], list[int], list[float], list[bool] (or a pymilvus DataType "
        "such as DataType.VARCHAR)"
    )


def parse_fields(declared: Mapping[str, Any] | None) -> tuple[MetadataField, ...]:
    """Validate ``metadata_fields`` into :class:`MetadataField` s, in the order given.

    Each value is a type (``str``, ``int``, ``float``, ``bool``, ``list[str]``, ...,
    or a pymilvus ``DataType``), or a dict ``{"type": ..., "max_length": n,
    "max_capacity": n}``.
    """
    if declared is None:
        return ()
    if not isinstance(declared, Mapping):
        raise ConfigurationError(
            f"metadata_fields={declared!r} is not a dict; pass e.g. "
            "metadata_fields={'source': str, 'year': int}"
        )
    fields = []
    for key, spec in declared.items():
        if not isinstance(key, str) or not _IDENTIFIER.match(key) or keyword.iskeyword(key):
            raise ConfigurationError(
                f"metadata_fields key {key!r} cannot be a Milvus field name; declare keys made "
                "of letters, digits and '_' that start with a letter (undeclared keys of any "
                "name stay in the JSON metadata)"
            )
        if key in RESERVED or key.lower() in ("and", "or", "not", "in", "like", "true", "false"):
            raise ConfigurationError(
                f"metadata_fields key {key!r} is reserved by the collection layout "
                f"({', '.join(sorted(RESERVED))}) or the expression grammar; leave it "
                "undeclared (it stays in the JSON metadata) or rename it"
            )
        options: dict[str, Any] = {}
        if isinstance(spec, Mapping):
            options = dict(spec)
            spec = options.pop("type", None)
            unknown = sorted(set(options) - {"max_length", "max_capacity"})
            if unknown:
                raise ConfigurationError(
                    f"metadata_fields[{key!r}] has unknown option(s) {unknown}; allowed: "
                    "type, max_length, max_capacity"
                )
        kind = _kind_of(spec, key)
        for name, limit in (("max_length", 65535), ("max_capacity", 4096)):
            value = options.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit
            ):
                raise ConfigurationError(
                    f"metadata_fields[{key!r}] {name}={value!r} must be an integer in "
                    f"[1, {limit}]"
                )
        fields.append(MetadataField(key, kind, **options))
    return tuple(fields)


# ---------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Tenancy:
    """How documents are spread over partitions by a declared tenant key."""

    key: str
    mode: str
    """:data:`TENANCY_PARTITION_KEY` or :data:`TENANCY_PARTITIONS`."""
    partitions: int

    def partition_of(self, value: Any) -> str:
        """The partition a tenant value's documents live in (store-managed mode)."""
        digest = hashlib.blake2b(_tenant_bytes(value), digest_size=8).digest()
        return f"tenant_{int.from_bytes(digest, 'little') % self.partitions:04d}"


def _tenant_bytes(value: Any) -> bytes:
    return (("s:" + value) if isinstance(value, str) else f"i:{int(value)}").encode()


#: Analyzer names ``full_text_search`` accepts, and Milvus' analyzer_params for each on
#: Milvus Lite and on servers. Milvus Lite 3.2.2 knows only the "standard" and "jieba"
#: tokenizers and lowercases; it accepts stop-word and stemmer filters but does not
#: apply them (measured: "the" and "dogs" vs "dog" behave as without them).
ANALYZERS: dict[str, dict[str, Any]] = {
    "english": {
        "server": {"type": "english"},
        "lite": {
            "tokenizer": "standard",
            "filter": [
                "lowercase",
                {"type": "stop", "stop_words": ["_english_"]},
                {"type": "stemmer", "language": "english"},
            ],
        },
    },
    "standard": {
        "server": {"type": "standard"},
        "lite": {"tokenizer": "standard", "filter": ["lowercase"]},
    },
    "chinese": {"server": {"type": "chinese"}, "lite": {"tokenizer": "jieba"}},
}


@dataclass(frozen=True)
class FullText:
    """BM25 full-text search on the text field, computed by Milvus on every write."""

    analyzer: Mapping[str, Any] | str = "english"
    """An :data:`ANALYZERS` name, or Milvus analyzer_params."""

    def params(self, lite: bool) -> dict[str, Any]:
        """Milvus' analyzer_params for this analyzer on Milvus Lite or a server."""
        if isinstance(self.analyzer, str):
            return dict(ANALYZERS[self.analyzer]["lite" if lite else "server"])
        return dict(self.analyzer)


@dataclass(frozen=True)
class Layout:
    """Everything the store needs to know about its collection's fields."""

    dim: int
    search_dim: int
    text_max_length: int = TEXT_MAX_LENGTH
    storage: str = STORAGE_FLOAT16
    version: int = LAYOUT_VERSION
    fields: tuple[MetadataField, ...] = ()
    tenancy: Tenancy | None = None
    full_text: FullText | None = None

    @property
    def pk(self) -> str:
        """The primary key field: the id itself (versions 1, 2) or its hash (3)."""
        return FIELD_PK if self.version >= 3 else FIELD_ID

    @property
    def columns(self) -> dict[str, str]:
        """Declared metadata key -> kind (for :class:`~._expressions.Expressions`)."""
        return {f.name: f.kind for f in self.fields}

    def expressions(self, native_unknown: bool = True) -> Expressions:
        """The expression builder for this layout's declared columns (see Expressions)."""
        return Expressions(
            self.columns,
            nullable=[f.name for f in self.fields if f.nullable],
            native_unknown=native_unknown,
        )

    def keys_of(self, ids: Sequence[str]) -> list[Any]:
        """Primary-key values of string ids."""
        if self.version < 3:
            return list(ids)
        return [id_key(i) for i in ids]

    def document_fields(self) -> list[str]:
        """Output fields that rebuild a Document (id, text, metadata)."""
        return [FIELD_ID, FIELD_TEXT, FIELD_METADATA, *(f.name for f in self.fields)]

    def metadata_of(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A row's metadata dict: the JSON field with the declared columns merged back."""
        meta = dict(row.get(FIELD_METADATA) or {})
        for f in self.fields:
            value = row.get(f.name)
            if value is not None:
                meta[f.name] = list(value) if f.is_list else value
        return meta


def id_key(doc_id: str) -> int:
    """The INT64 primary key of a string id (64 bits of BLAKE2b; collisions are refused)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def full_max_length(dim: int) -> int:
    """Characters of a base64 float16 vector of ``dim`` components."""
    return 4 * -(-2 * dim // 3)


def encode_full(vectors: np.ndarray, storage: str) -> list[Any]:
    """Full vectors ``[n, dim]`` as the ``full`` field's values."""
    if storage == STORAGE_ARRAY:
        return vectors.tolist()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float16)
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in unit]


def decode_full(values: Sequence[Any], layout: Layout, dtype: Any = np.float32) -> np.ndarray:
    """The ``full`` field's values as ``[n, dim]`` of ``dtype``.

    ``dtype=np.float16`` keeps a float16 layout's values as stored (no conversion): the
    funnel converts only the prefixes each stage scores (:func:`.funnel.funnel_rerank`).
    """
    if layout.storage == STORAGE_ARRAY:
        return np.asarray(values, dtype=np.float32).reshape(len(values), layout.dim)
    # pybase64 (SIMD), not binascii; validate=True is its fast path (the lenient default
    # first filters the text). Without padding (2 * dim bytes a multiple of 3) the rows'
    # texts decode as one. Timings: benchmarks/client_costs.py, docs/storage.md.
    if (2 * layout.dim) % 3 == 0:
        raw = b64decode("".join(values), validate=True)
    else:
        raw = b"".join(b64decode(v, validate=True) for v in values)
    half = np.frombuffer(raw, dtype=np.float16).reshape(len(values), layout.dim)
    return half if dtype == np.float16 else half.astype(dtype)


# ---------------------------------------------------------------------------- rows


def split_metadata(
    metas: Sequence[Mapping[str, Any]], ids: Sequence[str], layout: Layout
) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """Per row, the JSON part of the metadata and the declared columns' values.

    Raises :class:`InvalidInputError` for a value of the wrong type, a list too long, a
    string too long, or a missing key on a column that cannot hold nulls, naming the
    document and the fix; nothing is written then.
    """
    if not layout.fields:
        return [dict(m) for m in metas], {}
    names = {f.name for f in layout.fields}
    json_part = [{k: v for k, v in m.items() if k not in names} for m in metas]
    columns: dict[str, list[Any]] = {}
    for f in layout.fields:
        values: list[Any] = []
        for doc_id, meta in zip(ids, metas):
            value = meta.get(f.name)
            if value is None:
                if not f.nullable:
                    why = (
                        "it is the tenant key"
                        if layout.tenancy and layout.tenancy.key == f.name
                        else "this Milvus server cannot store nulls (Milvus 2.5+ can)"
                    )
                    raise InvalidInputError(
                        f"metadata of document {doc_id!r} lacks the declared key {f.name!r}, "
                        f"which must be present ({why}); add it to every document"
                    )
                values.append(None)
                continue
            values.append(_checked(value, f, doc_id))
        columns[f.name] = values
    return json_part, columns


def _checked(value: Any, f: MetadataField, doc_id: str) -> Any:
    where = f"metadata[{f.name!r}] of document {doc_id!r}"
    if f.is_list:
        if not isinstance(value, (list, tuple)):
            raise InvalidInputError(
                f"{where} is {value!r} but {f.name!r} is declared {f.kind}; pass a list"
            )
        if len(value) > f.max_capacity:
            raise InvalidInputError(
                f"{where} holds {len(value)} elements, over the declared max_capacity "
                f"{f.max_capacity}; declare a larger max_capacity or shorten the list"
            )
        return [_scalar(v, f, where) for v in value]
    return _scalar(value, f, where)


def _scalar(value: Any, f: MetadataField, where: str) -> Any:
    element = f.element
    if element == "bool":
        ok = isinstance(value, bool)
    elif element == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -(2**63) <= value < 2**63:
            raise InvalidInputError(f"{where} = {value} is outside the 64-bit integer range")
    elif element == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    else:
        ok = isinstance(value, str)
        if ok and len(value.encode("utf-8")) > f.max_length:
            raise InvalidInputError(
                f"{where} is {len(value.encode('utf-8'))} bytes, over the declared max_length "
                f"{f.max_length}; declare a larger max_length (up to 65535)"
            )
    if not ok:
        raise InvalidInputError(
            f"{where} is {value!r} ({type(value).__name__}) but {f.name!r} is declared "
            f"{f.kind}; convert it (e.g. {element}(value)) or leave the key undeclared"
        )
    return value


def make_rows(
    ids: Sequence[str],
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any]],
    heads: np.ndarray,
    vectors: np.ndarray,
    layout: Layout,
) -> list[dict[str, Any]]:
    """Rows in the collection's layout (metadata already validated by :func:`split_metadata`)."""
    json_part, columns = split_metadata(metadatas, ids, layout)
    fulls = encode_full(vectors, layout.storage)
    head_lists = heads.tolist()
    rows = []
    for i, doc_id in enumerate(ids):
        row: dict[str, Any] = {
            FIELD_ID: doc_id,
            FIELD_TEXT: texts[i],
            FIELD_METADATA: json_part[i],
            FIELD_HEAD: head_lists[i],
            FIELD_FULL: fulls[i],
        }
        if layout.version >= 3:
            row[FIELD_PK] = id_key(doc_id)
        for name, values in columns.items():
            row[name] = values[i]
        rows.append(row)
    return rows


def same_declaration(stored: Iterable[MetadataField], wanted: Iterable[MetadataField]) -> bool:
    """Whether a ``metadata_fields`` declaration matches a collection's (names and kinds)."""
    return [(f.name, f.kind) for f in stored] == [(f.name, f.kind) for f in wanted]


# ---------------------------------------------------------------------------- declaration


@dataclass(frozen=True)
class Declared:
    """What a store's constructor asks of a new collection beyond its dimensions."""

    fields: tuple[MetadataField, ...] = ()
    partition_key: str | None = None
    num_partitions: int | None = None
    full_text: FullText | None = None

    @property
    def empty(self) -> bool:
        return not self.fields and self.partition_key is None and self.full_text is None


def declare(
    metadata_fields: Mapping[str, Any] | None,
    partition_key: str | None,
    num_partitions: int | None,
    full_text_search: bool,
    analyzer: str | Mapping[str, Any] | None,
) -> Declared:
    """Validate the constructor's layout options (before any Milvus call)."""
    fields = parse_fields(metadata_fields)
    if partition_key is not None:
        by_name = {f.name: f for f in fields}
        f = by_name.get(partition_key) if isinstance(partition_key, str) else None
        if f is None or f.kind not in ("str", "int"):
            raise ConfigurationError(
                f"partition_key={partition_key!r} must name a str or int key declared in "
                "metadata_fields; pass e.g. metadata_fields={'tenant': str}, "
                "partition_key='tenant'"
            )
        fields = tuple(replace(g, nullable=False) if g is f else g for g in fields)
    if num_partitions is not None:
        if partition_key is None:
            raise ConfigurationError(
                f"num_partitions={num_partitions!r} needs partition_key; pass both or neither"
            )
        if isinstance(num_partitions, bool) or not isinstance(num_partitions, int) or not (
            1 <= num_partitions <= 1024
        ):
            raise ConfigurationError(
                f"num_partitions={num_partitions!r} must be an integer in [1, 1024], e.g. 64"
            )
    if not isinstance(full_text_search, bool):
        raise ConfigurationError(f"full_text_search={full_text_search!r} must be True or False")
    full_text = None
    if full_text_search:
        if analyzer is None:
            analyzer = "english"
        if not isinstance(analyzer, (str, Mapping)) or (
            isinstance(analyzer, str) and analyzer not in ANALYZERS
        ):
            raise ConfigurationError(
                f"analyzer={analyzer!r} must be one of {', '.join(ANALYZERS)}, or Milvus "
                "analyzer_params as a dict (e.g. {'tokenizer': 'standard', 'filter': "
                "['lowercase']})"
            )
        full_text = FullText(analyzer if isinstance(analyzer, str) else dict(analyzer))
    elif analyzer is not None:
        raise ConfigurationError(
            f"analyzer={analyzer!r} needs full_text_search=True; pass both or neither"
        )
    return Declared(fields, partition_key, num_partitions, full_text)


def new_layout(
    dim: int, search_dim: int, text_max_length: int, declared: Declared, *, lite: bool,
    nullable: bool,
) -> Layout:
    """The version-3 layout of a new collection (``nullable``: the backend stores nulls)."""
    fields = tuple(f if nullable or not f.nullable else replace(f, nullable=False)
                   for f in declared.fields)
    full_text = declared.full_text
    if full_text is not None:
        full_text = FullText(full_text.params(lite))
    tenancy = None
    if declared.partition_key is not None:
        mode = TENANCY_PARTITIONS if lite else TENANCY_PARTITION_KEY
        default = DEFAULT_LITE_PARTITIONS if lite else DEFAULT_SERVER_PARTITIONS
        tenancy = Tenancy(declared.partition_key, mode, declared.num_partitions or default)
    return Layout(
        dim=dim,
        search_dim=search_dim,
        text_max_length=text_max_length,
        fields=fields,
        tenancy=tenancy,
        full_text=full_text,
    )
