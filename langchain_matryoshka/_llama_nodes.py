"""LlamaIndex nodes and filters in the store's layout. No Milvus I/O.

Imported only by :mod:`langchain_matryoshka.llama_index` (it needs llama-index-core).

How a node is stored (the same row a LangChain ``Document`` uses)::

    id        node.node_id
    text      node.get_content(MetadataMode.NONE)    (the text LlamaIndex embedded)
    metadata  node.metadata, plus
              "ref_doc_id"     the node's source document id (when it has one): what
                               delete(ref_doc_id) and VectorStoreQuery.doc_ids match
              "_node_content"  the rest of the node as compact JSON: relationships,
                               excluded metadata keys, templates, character offsets
                               (not its text, metadata, id or embedding, which live in
                               their own fields; defaults left out)
              "_node_type"     the node's class ("TextNode", "IndexNode", ...)

Read back, a row with ``_node_content`` becomes the node that was written; a row
without it (a LangChain ``Document``) becomes ``TextNode(id_=id, text=text,
metadata=metadata)``. The row's top-level metadata is always the node's metadata, so an
edit made through LangChain shows in LlamaIndex. LangChain sees the node's metadata
with ``ref_doc_id``, ``_node_content`` and ``_node_type`` beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from ._expressions import Expressions
from .errors import InvalidInputError

#: Metadata keys this module writes beside a node's own metadata.
REF_DOC_ID = "ref_doc_id"
NODE_CONTENT = "_node_content"
NODE_TYPE = "_node_type"
#: Node fields that live in the row's own fields, not in ``_node_content``.
_OWN_FIELDS = {"id_", "text", "text_resource", "metadata", "embedding"}


# ---------------------------------------------------------------------------- nodes


def node_to_row(node: BaseNode) -> tuple[str, str, dict[str, Any], Any]:
    """``(id, text, metadata, embedding)`` of a node, as the store writes them."""
    if not isinstance(node, BaseNode):
        raise InvalidInputError(
            f"got {type(node).__name__} where a LlamaIndex node was expected; pass "
            "TextNode (or other BaseNode) objects"
        )
    if node.embedding is None:
        raise InvalidInputError(
            f"node {node.node_id!r} has no embedding; embed nodes before adding them "
            "(VectorStoreIndex and IngestionPipeline do, given an embed_model)"
        )
    metadata = dict(node.model_dump(mode="json", include={"metadata"})["metadata"])
    for key in (NODE_CONTENT, NODE_TYPE):  # ours: replaced by this node's own
        metadata.pop(key, None)
    ref_doc_id = node.ref_doc_id
    if ref_doc_id is not None:
        if metadata.get(REF_DOC_ID, ref_doc_id) != ref_doc_id:
            raise InvalidInputError(
                f"node {node.node_id!r} has metadata[{REF_DOC_ID!r}]="
                f"{metadata[REF_DOC_ID]!r} but its source document is {ref_doc_id!r}; "
                f"the store keeps the source document id under {REF_DOC_ID!r}, so rename "
                "that metadata key"
            )
        metadata[REF_DOC_ID] = ref_doc_id
    rest = node.model_dump(mode="json", exclude=_OWN_FIELDS, exclude_defaults=True)
    metadata[NODE_CONTENT] = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
    metadata[NODE_TYPE] = node.class_name()
    return node.node_id, node.get_content(metadata_mode=MetadataMode.NONE), metadata, node.embedding


def row_to_node(node_id: str, text: str, metadata: dict[str, Any] | None) -> BaseNode:
    """The node a row holds (see the module docstring)."""
    metadata = dict(metadata or {})
    content = metadata.get(NODE_CONTENT)
    fields = _load_content(content)
    if fields is None:  # a LangChain Document (or foreign node content): a TextNode
        return TextNode(id_=node_id, text=text, metadata=metadata)
    node_type = metadata.pop(NODE_TYPE, None)
    del metadata[NODE_CONTENT]
    fields["id_"] = node_id
    fields["metadata"] = {}
    node = metadata_dict_to_node(
        {NODE_CONTENT: json.dumps(fields), NODE_TYPE: node_type}, text=text
    )
    if metadata.get(REF_DOC_ID) is not None and metadata[REF_DOC_ID] == node.ref_doc_id:
        del metadata[REF_DOC_ID]
    node.metadata = metadata
    return node


def _load_content(content: Any) -> dict[str, Any] | None:
    if not isinstance(content, str):
        return None
    try:
        fields = json.loads(content)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


# ---------------------------------------------------------------------------- filters

#: LlamaIndex operators and the :meth:`Expressions.compare` operator each one is.
OPERATORS: dict[FilterOperator, str] = {
    FilterOperator.EQ: "eq",
    FilterOperator.NE: "ne",
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
    FilterOperator.IN: "in",
    FilterOperator.NIN: "nin",
    FilterOperator.CONTAINS: "contains",
    FilterOperator.ANY: "contains_any",
    FilterOperator.ALL: "contains_all",
    FilterOperator.TEXT_MATCH: "like",
}
#: Operators :func:`filters_to_expr` translates (IS_EMPTY is two comparisons).
SUPPORTED = (*OPERATORS, FilterOperator.IS_EMPTY)
_WHY_NOT = {
    FilterOperator.TEXT_MATCH_INSENSITIVE: (
        "Milvus' LIKE is case-sensitive and its expressions have no lower(); store a "
        "lower-cased copy of the field and use TEXT_MATCH on it"
    ),
}


def filters_to_expr(filters: MetadataFilters | None, expressions: Expressions) -> str:
    """One Milvus boolean expression for LlamaIndex ``MetadataFilters`` ("" for none).

    Operator by operator onto :meth:`Expressions.compare`, so quoting, declared
    columns and JSON paths are handled in one place:

    - EQ, NE, GT, GTE, LT, LTE, CONTAINS: the comparison of the same name; IN / NIN:
      one EQ / NE per value (OR-ed / AND-ed; on a declared list column: the list holds
      any / none of them); ANY / ALL: the key's list holds any / all of the values;
    - TEXT_MATCH: the value is a Milvus LIKE pattern matched against the whole string
      (``%`` any run of characters, ``_`` one character on Milvus Lite; a Milvus 2.3
      server accepts only prefix patterns such as ``"intro%"``);
    - IS_EMPTY: the key is missing or null, or holds the empty string (an empty list
      is not detected: Milvus expressions have no length test on JSON values);
    - AND / OR combine the filters; NOT is true when none of them holds (as in
      llama-index-core's own stores); nested ``MetadataFilters`` nest.

    Comparisons on a key a node lacks follow the engine's three-valued logic (see
    :mod:`._expressions`). TEXT_MATCH_INSENSITIVE and unknown operators are refused.
    """
    if filters is None:
        return ""
    if not isinstance(filters, MetadataFilters):
        raise InvalidInputError(
            f"filters={filters!r} is not a MetadataFilters; pass "
            "MetadataFilters(filters=[MetadataFilter(key=..., value=...)])"
        )
    parts = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            inner = filters_to_expr(item, expressions)
            if not inner:
                raise InvalidInputError(
                    "a nested MetadataFilters holds no filter; remove it or add a condition"
                )
            parts.append(f"({inner})")
        elif isinstance(item, MetadataFilter):
            parts.append(f"({_condition(item, expressions)})")
        else:
            raise InvalidInputError(
                f"filter {item!r} is not a MetadataFilter or MetadataFilters; pass "
                "MetadataFilter(key=..., value=..., operator=...)"
            )
    if not parts:
        return ""
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return " and ".join(parts)
    if condition == FilterCondition.OR:
        return " or ".join(parts)
    if condition == FilterCondition.NOT:
        return "not (" + " or ".join(parts) + ")"
    raise InvalidInputError(
        f"filter condition {condition!r} is not supported; pass and, or or not"
    )


def _condition(item: MetadataFilter, expressions: Expressions) -> str:
    op = item.operator
    if op == FilterOperator.IS_EMPTY:
        if item.value is not None:
            raise InvalidInputError(
                f"IS_EMPTY on key {item.key!r} takes no value, got {item.value!r}; "
                "pass value=None"
            )
        missing = expressions.compare(item.key, "not_exists")
        if expressions.kind(item.key) not in (None, "str"):
            return missing
        return f"{missing} or {expressions.compare(item.key, 'eq', '')}"
    kind = expressions.kind(item.key)
    if op in (FilterOperator.IN, FilterOperator.NIN) and not (kind or "").startswith("list["):
        # One EQ / NE per value, as for JSON keys: on a declared column Milvus' `in` is
        # false for a null and `not in` true (measured, Milvus Lite 3.2.2), where EQ and
        # NE are unknown; this keeps IN, NIN and their NOT the same on every key.
        values = item.value
        if not isinstance(values, list) or not values:
            raise InvalidInputError(
                f"operator {op.name} on key {item.key!r} needs a non-empty list of values, "
                f"got {values!r}; pass e.g. [{values!r}]"
            )
        eq, join = ("eq", " or ") if op == FilterOperator.IN else ("ne", " and ")
        return "(" + join.join(expressions.compare(item.key, eq, v) for v in values) + ")"
    if op in OPERATORS:
        return expressions.compare(item.key, OPERATORS[op], item.value)
    why = _WHY_NOT.get(op, "")
    raise InvalidInputError(
        f"filter operator {getattr(op, 'name', op)!s} (key {item.key!r}) is not supported "
        f"by this store{': ' + why if why else ''}; supported: "
        + ", ".join(o.name for o in SUPPORTED)
    )


def ids_in(ids: Sequence[str]) -> list[str]:
    """Checked string ids (LlamaIndex node / document ids)."""
    if isinstance(ids, str):
        raise InvalidInputError(f"ids={ids!r} is a single string; pass a list, e.g. [{ids!r}]")
    out = list(ids)
    for i in out:
        if not isinstance(i, str):
            raise InvalidInputError(f"id {i!r} is not a string; pass string ids")
    return out
