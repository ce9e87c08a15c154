"""LlamaIndex MetadataFilters on a real Milvus Lite, every operator against a Python reference.

The reference is the semantics :func:`filters_to_expr` documents, evaluated with
three-valued (Kleene) logic as Milvus Lite evaluates expressions: a comparison on a key a
node lacks (or holds null) is unknown, and NOT of unknown stays unknown; CONTAINS / ANY /
ALL on a missing key are false; IS_EMPTY is "missing, null or the empty string". Each key
holds one type, so no case depends on how Milvus compares mismatched types.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from langchain_matryoshka._expressions import Expressions
from langchain_matryoshka._llama_nodes import SUPPORTED, filters_to_expr
from langchain_matryoshka.errors import InvalidInputError
from langchain_matryoshka.llama_index import MatryoshkaMilvusVectorStore

from .conftest import matryoshka_like

Op = FilterOperator
MISSING = object()
TITLES = ["intro to milvus", "Intro to python", "a guide_1", "a guideX1", "say \"hi\" \\ end"]
N = 40


def _metadata(i: int) -> dict:
    meta: dict = {"i": i, "colour": ["red", "green", "blue"][i % 3], "title": TITLES[i % 5]}
    if i % 4:
        meta["year"] = 2000 + i
    if i % 7 == 0:
        meta["year"] = None
    if i % 10 == 9:
        meta["colour"] = ""
    if i % 9:
        meta["tags"] = ["a", "b", "c"][: i % 4]  # [] when i % 4 == 0
    if i % 5 != 3:
        meta["score"] = i / 4.0
    return meta


METAS = [_metadata(i) for i in range(N)]


def _like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def leaf(meta: dict, f: MetadataFilter) -> bool | None:
    """True, False or None (unknown) for one filter."""
    have = meta.get(f.key, MISSING)
    absent = have is MISSING or have is None
    op, value = f.operator, f.value
    if op == Op.IS_EMPTY:
        return absent or have == ""
    if op in (Op.CONTAINS, Op.ANY, Op.ALL):
        if absent:
            return False
        wanted = [value] if op == Op.CONTAINS else value
        test = all if op in (Op.CONTAINS, Op.ALL) else any
        return test(v in have for v in wanted)
    if absent:
        return None
    if op == Op.TEXT_MATCH:
        return _like(value, have)
    return {
        Op.EQ: lambda: have == value,
        Op.NE: lambda: have != value,
        Op.GT: lambda: have > value,
        Op.GTE: lambda: have >= value,
        Op.LT: lambda: have < value,
        Op.LTE: lambda: have <= value,
        Op.IN: lambda: have in value,
        Op.NIN: lambda: have not in value,
    }[op]()


def evaluate(meta: dict, filters: MetadataFilters) -> bool | None:
    values = [
        evaluate(meta, f) if isinstance(f, MetadataFilters) else leaf(meta, f)
        for f in filters.filters
    ]
    any_true = any(v is True for v in values)
    any_unknown = any(v is None for v in values)
    if filters.condition == FilterCondition.AND:
        return False if any(v is False for v in values) else None if any_unknown else True
    either = True if any_true else None if any_unknown else False
    if filters.condition == FilterCondition.OR:
        return either
    return None if either is None else not either  # NOT: none of them holds


def f(key, op, value=None) -> MetadataFilter:
    return MetadataFilter(key=key, operator=op, value=value)


def group(*filters, condition="and") -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=FilterCondition(condition))


SINGLE = [
    f("year", Op.EQ, 2005),
    f("colour", Op.EQ, "red"),
    f("i", Op.EQ, 7),
    f("score", Op.EQ, 2.5),
    f("year", Op.NE, 2005),
    f("colour", Op.NE, "red"),
    f("year", Op.GT, 2020),
    f("score", Op.GT, 5.0),
    f("year", Op.GTE, 2020),
    f("year", Op.LT, 2010),
    f("score", Op.LTE, 3.0),
    f("year", Op.IN, [2001, 2002, 2003, 2005]),
    f("colour", Op.IN, ["red", "blue"]),
    f("year", Op.NIN, [2001, 2002, 2003, 2005]),
    f("colour", Op.NIN, ["red"]),
    f("tags", Op.CONTAINS, "b"),
    f("tags", Op.ANY, ["b", "c"]),
    f("tags", Op.ALL, ["a", "c"]),
    f("title", Op.TEXT_MATCH, "intro%"),
    f("title", Op.TEXT_MATCH, "%milvus"),
    f("title", Op.TEXT_MATCH, "%to%"),
    f("title", Op.TEXT_MATCH, "a guide_1"),  # _ is one character: matches "a guideX1" too
    f("title", Op.EQ, 'say "hi" \\ end'),  # quotes and backslashes are quoted safely
    f("year", Op.IS_EMPTY),
    f("colour", Op.IS_EMPTY),
    f("tags", Op.IS_EMPTY),  # an empty list is not "empty" (see filters_to_expr)
]
COMBINED = [
    group(f("year", Op.GT, 2010), f("colour", Op.EQ, "red")),
    group(f("year", Op.LT, 2005), f("colour", Op.EQ, "blue"), condition="or"),
    group(f("colour", Op.EQ, "red"), condition="not"),
    group(f("year", Op.EQ, 2005), condition="not"),  # unknown for nodes without a year
    group(f("tags", Op.CONTAINS, "a"), condition="not"),  # true for nodes without tags
    group(f("year", Op.IS_EMPTY), condition="not"),
    group(f("year", Op.IN, [2001, 2002, 2003, 2005]), condition="not"),  # unknown without
    group(f("year", Op.NIN, [2001, 2002, 2003, 2005]), condition="not"),  # a year, too
    group(f("year", Op.GT, 2030), f("tags", Op.ANY, ["c"]), condition="not"),
    group(
        group(f("year", Op.LT, 2005), f("year", Op.GT, 2030), condition="or"),
        group(f("colour", Op.IN, ["red"]), condition="not"),
    ),
    group(
        group(f("colour", Op.EQ, "red"), f("score", Op.LT, 4.0)),
        group(f("score", Op.GTE, 8.0), f("tags", Op.CONTAINS, "a")),
        condition="or",
    ),
    group(group(group(f("year", Op.IS_EMPTY), f("score", Op.IS_EMPTY), condition="or")),
          f("title", Op.TEXT_MATCH, "%python"), condition="or"),
]
CASES = [group(x) for x in SINGLE] + COMBINED


#: The same keys as typed columns (``metadata_fields``) instead of JSON paths.
DECLARED = {"year": "int", "colour": "str", "tags": "list[str]", "score": "float", "title": "str"}


@pytest.fixture(scope="module", params=["json", "declared"])
def fstore(request, tmp_path_factory):
    vectors = matryoshka_like(N, 16, seed=5)
    store = MatryoshkaMilvusVectorStore(
        connection_args={"uri": str(tmp_path_factory.mktemp("llf") / "f.db")}, search_dim=4,
        metadata_fields=DECLARED if request.param == "declared" else None,
    )
    store.add(
        [TextNode(id_=f"n{i}", text=f"t{i}", metadata=m, embedding=v.tolist())
         for i, (m, v) in enumerate(zip(METAS, vectors))]
    )
    yield store
    store.close()


def test_every_supported_operator_is_tested() -> None:
    used = {x.operator for x in SINGLE}
    assert used == set(SUPPORTED)
    assert {c.condition for c in COMBINED} == set(FilterCondition)


def _want(filters: MetadataFilters) -> set[str]:
    return {f"n{i}" for i, meta in enumerate(METAS) if evaluate(meta, filters) is True}


@pytest.mark.parametrize("filters", CASES, ids=lambda c: filters_to_expr(c, Expressions())[:70])
def test_filters_match_the_reference(fstore, filters) -> None:
    want = _want(filters)
    assert {n.node_id for n in fstore.get_nodes(filters=filters)} == want
    query = VectorStoreQuery(query_embedding=[1.0] * 16, similarity_top_k=N, filters=filters)
    assert set(fstore.query(query, candidates=N).ids) == want


def test_the_cases_are_not_trivial() -> None:
    sizes = [len(_want(c)) for c in CASES]
    assert all(0 < s < N for s in sizes), sizes
    # Three-valued logic shows: NOT(year == 2005) leaves out nodes without a year.
    not_2005 = _want(group(f("year", Op.EQ, 2005), condition="not"))
    assert len(not_2005) < N - 1


def test_delete_nodes_by_filters_uses_the_same_translation(tmp_path) -> None:
    store = MatryoshkaMilvusVectorStore(connection_args={"uri": str(tmp_path / "d.db")},
                                        search_dim=4)
    vectors = matryoshka_like(N, 16, seed=6)
    store.add([TextNode(id_=f"n{i}", text="t", metadata=m, embedding=v.tolist())
               for i, (m, v) in enumerate(zip(METAS, vectors))])
    condition = COMBINED[-2]
    store.delete_nodes(filters=condition)
    left = {n.node_id for n in store.get_nodes(filters=group(f("i", Op.GTE, 0)))}
    assert left == {f"n{i}" for i in range(N)} - _want(condition)
    store.close()


def test_declared_columns_are_used_by_name() -> None:
    ex = Expressions({"year": "int", "tags": "list[str]", "colour": "str"})
    assert filters_to_expr(group(f("year", Op.GT, 2020)), ex) == "(year > 2020)"
    assert filters_to_expr(group(f("year", Op.IS_EMPTY)), ex) == "(year is null)"
    assert filters_to_expr(group(f("colour", Op.IS_EMPTY)), ex) == (
        '(colour is null or colour == "")'
    )
    assert filters_to_expr(group(f("tags", Op.CONTAINS, "a")), ex) == '(array_contains(tags, "a"))'
    assert filters_to_expr(group(f("other", Op.EQ, 1), condition="not"), ex) == (
        'not ((metadata["other"] == 1))'
    )
    assert filters_to_expr(None, ex) == filters_to_expr(MetadataFilters(filters=[]), ex) == ""


@pytest.mark.parametrize(
    ("filters", "needle"),
    [
        (group(f("title", Op.TEXT_MATCH_INSENSITIVE, "intro%")), "case-sensitive"),
        (group(f("year", Op.IS_EMPTY, 3)), "takes no value"),
        (group(f("year", Op.GT, 1), MetadataFilters(filters=[])), "holds no filter"),
        (group(f("year", Op.IN, 2001)), "needs a non-empty list"),
        (group(f("year", Op.EQ, None)), "not a string, number or boolean"),
        (group(f("year", Op.GT, [1, 2])), "not a string, number or boolean"),
        (group(f("year", Op.IN, [])), "needs a non-empty list"),
    ],
)
def test_bad_filters_name_the_problem(filters, needle) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        filters_to_expr(filters, Expressions())


def test_every_other_operator_is_refused_with_the_supported_list() -> None:
    for op in set(FilterOperator) - set(SUPPORTED):
        with pytest.raises(InvalidInputError, match=f"{op.name} .*not supported.*supported: EQ"):
            filters_to_expr(group(f("k", op, "v")), Expressions())


def test_the_query_path_refuses_bad_filters_before_searching(fstore) -> None:
    query = VectorStoreQuery(query_embedding=list(np.ones(16)), similarity_top_k=3,
                             filters=group(f("t", Op.TEXT_MATCH_INSENSITIVE, "x")))
    with pytest.raises(InvalidInputError, match="TEXT_MATCH_INSENSITIVE"):
        fstore.query(query)
