"""The expression builder: every operator on a real Milvus Lite, against a Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_matryoshka import MatryoshkaMilvus
from langchain_matryoshka._expressions import OPERATORS, Expressions
from langchain_matryoshka.errors import InvalidInputError

from .conftest import TableEmbeddings, matryoshka_like

MISSING = object()


def _metadata(i: int) -> dict:
    meta: dict = {"n": i, "colour": ["red", "green", "blue"][i % 3]}
    if i % 7:
        meta["tags"] = ["a", "b"][: i % 3]
    if i % 4:
        meta["year"] = 2000 + i
    if i % 5 == 0:
        meta["flag"] = i % 2 == 0
    return meta


METAS = [_metadata(i) for i in range(30)]


def reference(meta: dict, key: str, op: str, value) -> bool:
    """What a condition means (see the module docstring of _expressions)."""
    have = meta.get(key, MISSING)
    if op == "exists":
        return have is not MISSING
    if op == "not_exists":
        return have is MISSING
    if have is MISSING:
        return False  # three-valued: a missing key fails every comparison and its negation
    if isinstance(have, list) and op in ("eq", "ne", "in", "nin"):  # a declared list column
        hit = any(v in have for v in (value if op in ("in", "nin") else [value]))
        return hit if op in ("eq", "in") else not hit
    if op == "eq":
        return have == value
    if op == "ne":
        return have != value
    if op == "gt":
        return have > value
    if op == "gte":
        return have >= value
    if op == "lt":
        return have < value
    if op == "lte":
        return have <= value
    if op == "in":
        return have in value
    if op == "nin":
        return have not in value
    if op == "contains":
        return value in have
    if op == "contains_any":
        return any(v in have for v in value)
    if op == "contains_all":
        return all(v in have for v in value)
    if op == "like":  # only prefix patterns are used below
        return isinstance(have, str) and have.startswith(value.rstrip("%"))
    raise AssertionError(op)


CASES = [
    ("year", "eq", 2005),
    ("year", "ne", 2005),
    ("year", "gt", 2010),
    ("year", "gte", 2010),
    ("year", "lt", 2010),
    ("year", "lte", 2010),
    ("year", "in", [2001, 2002, 2003]),
    ("year", "nin", [2001, 2002, 2003]),
    ("colour", "eq", "red"),
    ("colour", "in", ["red", "blue"]),
    ("colour", "like", "gr%"),
    ("tags", "contains", "a"),
    ("tags", "contains_any", ["a", "b"]),
    ("tags", "contains_all", ["a", "b"]),
    ("colour", "nin", ["red"]),
    ("colour", "ne", "red"),
    ("flag", "eq", True),
    ("flag", "exists", None),
    ("flag", "not_exists", None),
    ("year", "exists", None),
]
#: On a declared list column eq / ne / in / nin mean contains / not contains (a JSON
#: list compared with a scalar is simply unequal).
LIST_CASES = [
    ("tags", "eq", "a"),
    ("tags", "ne", "a"),
    ("tags", "in", ["a", "b"]),
    ("tags", "nin", ["a", "b"]),
]


#: The same keys declared as typed columns (``flag`` and ``year`` are missing in some
#: documents: nulls).
DECLARED = {"n": int, "colour": str, "tags": list[str], "year": int, "flag": bool}


def _make_store(tmp_path_factory, **options) -> MatryoshkaMilvus:
    vectors = matryoshka_like(len(METAS), 16, seed=3)
    texts = [f"t{i}" for i in range(len(METAS))]
    store = MatryoshkaMilvus(
        TableEmbeddings(dict(zip(texts, vectors))),
        connection_args={"uri": str(tmp_path_factory.mktemp("expr") / "e.db")},
        search_dim=4,
        **options,
    )
    store.add_texts(texts, METAS, ids=[str(i) for i in range(len(METAS))])
    return store


@pytest.fixture(scope="module")
def json_store(tmp_path_factory):
    store = _make_store(tmp_path_factory)
    yield store
    store.close()


@pytest.fixture(scope="module")
def typed_store(tmp_path_factory):
    store = _make_store(tmp_path_factory, metadata_fields=DECLARED)
    yield store
    store.close()


def _matching(store: MatryoshkaMilvus, expr: str) -> set[int]:
    rows = store.client.query(store.collection_name, filter=expr, output_fields=["id"])
    return {int(r["id"]) for r in rows}


def test_every_operator_is_covered() -> None:
    assert {op for _, op, _ in CASES} == set(OPERATORS)


@pytest.mark.parametrize(("key", "op", "value"), CASES)
def test_json_conditions_match_the_reference(json_store, key, op, value) -> None:
    expr = Expressions().compare(key, op, value)
    want = {i for i, meta in enumerate(METAS) if reference(meta, key, op, value)}
    assert _matching(json_store, expr) == want, expr


@pytest.mark.parametrize(("key", "op", "value"), CASES + LIST_CASES)
def test_conditions_on_declared_columns_match_the_reference(typed_store, key, op, value) -> None:
    expr = typed_store._engine.expressions.compare(key, op, value)
    assert "metadata[" not in expr  # every key here is a column
    want = {i for i, meta in enumerate(METAS) if reference(meta, key, op, value)}
    assert _matching(typed_store, expr) == want, expr


def test_declared_columns_are_referenced_by_name_and_paths_rewritten() -> None:
    ex = Expressions({"year": "int", "tags": "list[str]", "source": "str"})
    assert ex.compare("year", "gte", 2020) == "year >= 2020"
    assert ex.compare("year", "in", [1, 2]) == "year in [1, 2]"
    assert ex.compare("tags", "eq", "x") == 'array_contains(tags, "x")'
    assert ex.filter({"tags": ["x", "y"]}) == 'array_contains_any(tags, ["x", "y"])'
    assert ex.compare("other", "eq", 1) == 'metadata["other"] == 1'
    assert ex.compare("year", "not_exists") == "year is null"
    assert ex.rewrite('metadata["year"] >= 2020 and metadata[\'source\'] == "a"') == (
        'year >= 2020 and source == "a"'
    )
    assert ex.rewrite('metadata["other"] == 1') == 'metadata["other"] == 1'


@pytest.mark.parametrize(
    ("columns", "key", "op", "value", "needle"),
    [
        ({"year": "int"}, "year", "eq", "2020", "declared int"),
        ({"year": "int"}, "year", "eq", True, "declared int"),
        ({"name": "str"}, "name", "gt", 3, "declared str"),
        ({"name": "str"}, "name", "contains", "x", "list-valued"),
        ({}, "k", "in", "abc", "needs a list"),
        ({}, "k", "in", [], "empty list"),
        ({}, "k", "between", 1, "not supported"),
        ({}, "k", "gt", True, "cannot order booleans"),
        ({}, "k", "eq", float("nan"), "not a string, number"),
        ({"tags": "list[str]"}, "tags", "gt", "a", "does not apply"),
        ({"n": "int"}, "n", "like", "a%", "needs a string key"),
    ],
)
def test_bad_conditions_name_the_value_and_the_fix(columns, key, op, value, needle) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        Expressions(columns).compare(key, op, value)


def test_numpy_values_are_literals() -> None:
    ex = Expressions({"n": "int", "x": "float"})
    assert ex.compare("n", "eq", np.int64(3)) == "n == 3"
    assert ex.compare("x", "lt", np.float32(0.5)) == "x < 0.5"
