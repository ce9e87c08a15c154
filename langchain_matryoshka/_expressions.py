"""Milvus boolean expressions built safely from user values. Pure strings, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .errors import InvalidInputError

FIELD_ID = "id"
FIELD_METADATA = "metadata"


def quote(value: str) -> str:
    """A Milvus string literal that matches ``value`` exactly, whatever it holds.

    Backslash, double quote, newline, carriage return and tab are escaped (the escapes
    the expression grammar knows); every other character, control characters and
    unicode included, stands for itself inside the quotes, so a value can never end
    the literal early.
    """
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _literal(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return repr(float(value))
    raise InvalidInputError(
        f"filter value {value!r} for key {key!r} is not a string, number or boolean; "
        "pass scalar values (a list means any of them), or use expr= for other conditions"
    )


def filter_to_expr(filter: Mapping[str, Any] | None) -> str:  # noqa: A002
    """Turn ``{"source": "a", "year": [2023, 2024]}`` into a safe Milvus expression.

    Every key tests ``metadata[key]``; a scalar value means equality, a list, tuple or
    set means any of its values. All conditions must hold.
    """
    if filter is None:
        return ""
    if not isinstance(filter, Mapping):
        raise InvalidInputError(
            f"filter={filter!r} is not a dict; pass metadata equalities such as "
            "filter={'source': 'a.txt'}, or a Milvus expression as expr="
        )
    parts = []
    for key, value in filter.items():
        if not isinstance(key, str):
            raise InvalidInputError(
                f"filter key {key!r} is not a string; metadata keys are strings"
            )
        field = f"{FIELD_METADATA}[{quote(key)}]"
        if isinstance(value, (list, tuple, set, frozenset)):
            values = list(value)
            if not values:
                raise InvalidInputError(
                    f"filter value for key {key!r} is an empty list, which matches nothing; "
                    "pass at least one value"
                )
            parts.append("(" + " or ".join(f"{field} == {_literal(key, v)}" for v in values) + ")")
        else:
            parts.append(f"{field} == {_literal(key, value)}")
    return " and ".join(parts)


def ids_to_expr(ids: Iterable[str], field: str = FIELD_ID) -> str:
    """``id in [...]`` with every id quoted safely (pymilvus' ``ids=`` does not escape)."""
    return f"{field} in [{', '.join(quote(str(i)) for i in ids)}]"


def combine_exprs(*exprs: str | None) -> str:
    """AND together the non-empty expressions."""
    present = [e.strip() for e in exprs if e and e.strip()]
    if len(present) <= 1:
        return present[0] if present else ""
    return " and ".join(f"({e})" for e in present)
