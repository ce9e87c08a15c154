"""Collection schemas of the store's layouts, built and read back. Pure, no I/O.

:func:`build_schema` makes the pymilvus schema of a new collection from a
:class:`~._layout.Layout`; :func:`read_layout` reads a layout back from
``describe_collection`` (any version, 1 to :data:`~._layout.LAYOUT_VERSION`), or
raises :class:`SchemaError` for a collection this package did not write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from ._layout import (
    DEFAULT_LIST_CAPACITY,
    DEFAULT_STR_LENGTH,
    FIELD_FULL,
    FIELD_HEAD,
    FIELD_ID,
    FIELD_METADATA,
    FIELD_PK,
    FIELD_SPARSE,
    FIELD_TEXT,
    ID_MAX_LENGTH,
    LAYOUT_VERSION,
    PROPERTY_DIM,
    PROPERTY_FIELDS,
    PROPERTY_FULL_TEXT,
    PROPERTY_LAYOUT,
    PROPERTY_STORAGE,
    PROPERTY_TENANCY,
    STORAGE_ARRAY,
    STORAGE_FLOAT16,
    TENANCY_PARTITION_KEY,
    TEXT_MAX_LENGTH,
    FullText,
    Layout,
    MetadataField,
    Tenancy,
    full_max_length,
)
from .errors import SchemaError


def build_schema(layout: Layout) -> Any:
    """The pymilvus schema of a new collection in ``layout`` (version 3, or 2 / 1)."""
    from pymilvus import CollectionSchema, DataType, FieldSchema

    fields = []
    if layout.version >= 3:
        fields.append(FieldSchema(FIELD_PK, DataType.INT64, is_primary=True))
        fields.append(FieldSchema(FIELD_ID, DataType.VARCHAR, max_length=ID_MAX_LENGTH))
    else:
        fields.append(
            FieldSchema(FIELD_ID, DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
        )
    text_options: dict[str, Any] = {}
    if layout.full_text is not None:
        text_options = {
            "enable_analyzer": True,
            "analyzer_params": dict(layout.full_text.analyzer),  # type: ignore[arg-type]
        }
    fields.append(
        FieldSchema(FIELD_TEXT, DataType.VARCHAR, max_length=layout.text_max_length, **text_options)
    )
    fields.append(FieldSchema(FIELD_METADATA, DataType.JSON))
    for f in layout.fields:
        fields.append(_column_schema(f, layout))
    fields.append(FieldSchema(FIELD_HEAD, DataType.FLOAT_VECTOR, dim=layout.search_dim))
    if layout.storage == STORAGE_ARRAY:
        fields.append(
            FieldSchema(FIELD_FULL, DataType.ARRAY, element_type=DataType.FLOAT,
                        max_capacity=layout.dim)
        )
    else:
        fields.append(
            FieldSchema(FIELD_FULL, DataType.VARCHAR, max_length=full_max_length(layout.dim))
        )
    functions = []
    if layout.full_text is not None:
        from pymilvus import Function, FunctionType

        fields.append(FieldSchema(FIELD_SPARSE, DataType.SPARSE_FLOAT_VECTOR))
        functions.append(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=[FIELD_TEXT],
                output_field_names=[FIELD_SPARSE],
            )
        )
    schema = CollectionSchema(fields, enable_dynamic_field=False)
    for fn in functions:
        schema.add_function(fn)
    return schema


def _column_schema(f: MetadataField, layout: Layout) -> Any:
    from pymilvus import DataType, FieldSchema

    types = {
        "str": DataType.VARCHAR,
        "int": DataType.INT64,
        "float": DataType.DOUBLE,
        "bool": DataType.BOOL,
    }
    options: dict[str, Any] = {}
    if f.nullable:
        options["nullable"] = True
    if layout.tenancy is not None and layout.tenancy.key == f.name and (
        layout.tenancy.mode == TENANCY_PARTITION_KEY
    ):
        options["is_partition_key"] = True
    if f.is_list:
        element = types[f.element]
        if element == DataType.VARCHAR:
            options["max_length"] = f.max_length
        return FieldSchema(
            f.name, DataType.ARRAY, element_type=element, max_capacity=f.max_capacity, **options
        )
    if f.kind == "str":
        options["max_length"] = f.max_length
    return FieldSchema(f.name, types[f.kind], **options)


def layout_properties(layout: Layout) -> dict[str, str]:
    """The ``matryoshka.*`` collection properties that describe ``layout``."""
    if layout.storage == STORAGE_ARRAY:
        return {}
    props = {PROPERTY_STORAGE: layout.storage, PROPERTY_DIM: str(layout.dim)}
    if layout.version >= 3:
        props[PROPERTY_LAYOUT] = str(layout.version)
        props[PROPERTY_FIELDS] = json.dumps([f.name for f in layout.fields])
        if layout.tenancy is not None:
            props[PROPERTY_TENANCY] = json.dumps(
                {
                    "key": layout.tenancy.key,
                    "mode": layout.tenancy.mode,
                    "partitions": layout.tenancy.partitions,
                }
            )
        if layout.full_text is not None:
            # A stored layout's analyzer is Milvus' params (new_layout resolved the name).
            analyzer = cast(Mapping[str, Any], layout.full_text.analyzer)
            props[PROPERTY_FULL_TEXT] = json.dumps(dict(analyzer))
    return props


def _field(desc: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for f in desc.get("fields", []):
        if f.get("name") == name:
            return f
    return None


def _expect(cond: object, collection: str, what: str) -> None:
    if not cond:
        raise SchemaError(
            f"collection {collection!r} exists but was not written by langchain-matryoshka: "
            f"{what}; pass another collection_name, or drop_old=True to replace it"
        )


def read_layout(desc: Mapping[str, Any], collection: str) -> Layout:
    """The layout of an existing collection from ``describe_collection``, or SchemaError."""
    from pymilvus import DataType

    properties = desc.get("properties") or {}
    version_text: Any = properties.get(PROPERTY_LAYOUT)
    version = int(version_text) if str(version_text or "").isdigit() else None
    if version is not None and version > LAYOUT_VERSION:
        raise SchemaError(
            f"collection {collection!r} has layout version {version}, written by a newer "
            f"langchain-matryoshka (this one reads up to {LAYOUT_VERSION}); upgrade the package"
        )
    pk = _field(desc, FIELD_PK if version else FIELD_ID)
    want_pk = DataType.INT64 if version else DataType.VARCHAR
    _expect(
        pk is not None and pk.get("is_primary") and pk.get("type") == want_pk,
        collection,
        f"no {want_pk.name} primary key named {FIELD_PK if version else FIELD_ID!r}",
    )
    for name, dtype in ((FIELD_ID, DataType.VARCHAR), (FIELD_TEXT, DataType.VARCHAR),
                        (FIELD_METADATA, DataType.JSON), (FIELD_HEAD, DataType.FLOAT_VECTOR)):
        f = _field(desc, name)
        _expect(f is not None and f.get("type") == dtype, collection,
                f"no {dtype.name} field {name!r}")
    text = _field(desc, FIELD_TEXT)
    head = _field(desc, FIELD_HEAD)
    assert text is not None and head is not None  # the loop above checked both
    full = _field(desc, FIELD_FULL)
    if full is not None and full.get("type") == DataType.VARCHAR:
        _expect(
            properties.get(PROPERTY_STORAGE) == STORAGE_FLOAT16
            and str(properties.get(PROPERTY_DIM, "")).isdigit(),
            collection,
            f"VARCHAR field {FIELD_FULL!r} without the properties {PROPERTY_STORAGE}="
            f"{STORAGE_FLOAT16!r} and {PROPERTY_DIM}",
        )
        storage = STORAGE_FLOAT16
        dim = int(properties[PROPERTY_DIM])
        _expect(
            int(full["params"].get("max_length", 0)) >= full_max_length(dim),
            collection,
            f"VARCHAR field {FIELD_FULL!r} too short for {dim} float16 values",
        )
    else:
        _expect(
            full is not None
            and full.get("type") == DataType.ARRAY
            and full.get("element_type") == DataType.FLOAT,
            collection,
            f"no VARCHAR or ARRAY<FLOAT> field {FIELD_FULL!r}",
        )
        assert full is not None  # checked just above
        storage = STORAGE_ARRAY
        dim = int(full["params"]["max_capacity"])
    search_dim = int(head["params"]["dim"])
    _expect(search_dim < dim, collection, f"head dim {search_dim} >= full dim {dim}")
    layout = Layout(
        dim=dim,
        search_dim=search_dim,
        text_max_length=int(text["params"].get("max_length", TEXT_MAX_LENGTH)),
        storage=storage,
        version=version or (2 if storage == STORAGE_FLOAT16 else 1),
    )
    if not version:
        return layout
    try:
        names = json.loads(properties.get(PROPERTY_FIELDS) or "[]")
        tenancy = json.loads(properties.get(PROPERTY_TENANCY) or "null")
        analyzer = json.loads(properties.get(PROPERTY_FULL_TEXT) or "null")
    except ValueError:
        _expect(False, collection, "unreadable matryoshka.* properties")
    fields = tuple(_read_column(desc, name, collection) for name in names)
    return replace(
        layout,
        fields=fields,
        tenancy=None if tenancy is None else Tenancy(**tenancy),
        full_text=None if analyzer is None else FullText(analyzer),
    )


def _read_column(desc: Mapping[str, Any], name: str, collection: str) -> MetadataField:
    from pymilvus import DataType

    f = _field(desc, name)
    _expect(f is not None, collection, f"declared metadata field {name!r} missing")
    assert f is not None  # checked just above
    kinds = {
        DataType.VARCHAR: "str",
        DataType.INT8: "int",
        DataType.INT16: "int",
        DataType.INT32: "int",
        DataType.INT64: "int",
        DataType.FLOAT: "float",
        DataType.DOUBLE: "float",
        DataType.BOOL: "bool",
    }
    params = f.get("params") or {}
    nullable = bool(f.get("nullable", False))
    if f.get("type") == DataType.ARRAY:
        element = kinds.get(f.get("element_type"))
        _expect(element is not None, collection, f"field {name!r} has an unknown element type")
        return MetadataField(
            name,
            f"list[{element}]",
            max_length=int(params.get("max_length", DEFAULT_STR_LENGTH)),
            max_capacity=int(params.get("max_capacity", DEFAULT_LIST_CAPACITY)),
            nullable=nullable,
        )
    kind = kinds.get(f.get("type"))
    _expect(kind is not None, collection, f"field {name!r} has an unsupported type")
    assert kind is not None  # checked just above
    return MetadataField(
        name,
        kind,
        max_length=int(params.get("max_length", DEFAULT_STR_LENGTH)),
        nullable=nullable,
    )


