"""A structured-query translator for ``SelfQueryRetriever`` over a :class:`MatryoshkaMilvus`.

LangChain's self-querying retriever has an LLM write a structured query (a search
text and a filter such as ``and(eq("genre", "scifi"), gt("year", 2000))``); a
translator turns the filter into the vector store's search keywords. This one writes
the store's own metadata layout through the store's
:class:`~langchain_matryoshka._expressions.Expressions` (JSON paths
``metadata["genre"]``, or a declared column by its name), never a bare field name, and
returns ``{"expr": ...}``, which every search of the store accepts::

    from langchain_classic.retrievers.self_query.base import SelfQueryRetriever

    retriever = SelfQueryRetriever.from_llm(
        llm, store, "Brief summary of a movie", metadata_field_info,
        structured_query_translator=store.structured_query_translator(),
    )

Comparators (all of LangChain's): ``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``,
``in``, ``nin``; ``contain`` (a list-valued key holds the value: ``json_contains``);
``like`` (a string pattern; a value without ``%`` matches as a substring,
``%value%``). Operators: ``and``, ``or``, ``not``. Date values (``{"type": "date",
"date": "2024-05-01"}``) compare as ISO strings: store dates as ``"YYYY-MM-DD"``. A
condition Milvus cannot express (ordering booleans, ``like`` on a number, a value that
is neither a string, number, boolean nor date) raises :class:`InvalidInputError`
naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.structured_query import (
    Comparator,
    Comparison,
    Operation,
    Operator,
    StructuredQuery,
    Visitor,
)

from .errors import InvalidInputError

if TYPE_CHECKING:
    from ._expressions import Expressions
    from .vectorstore import MatryoshkaMilvus

#: LangChain's comparators and the :meth:`Expressions.compare` operator each becomes.
COMPARATORS: dict[Comparator, str] = {
    Comparator.EQ: "eq",
    Comparator.NE: "ne",
    Comparator.GT: "gt",
    Comparator.GTE: "gte",
    Comparator.LT: "lt",
    Comparator.LTE: "lte",
    Comparator.IN: "in",
    Comparator.NIN: "nin",
    Comparator.CONTAIN: "contains",
    Comparator.LIKE: "like",
}


class MatryoshkaTranslator(Visitor):
    """Translate LangChain's structured queries into a store's ``expr`` keyword."""

    allowed_comparators = tuple(COMPARATORS)
    """Every comparator of LangChain's structured query language."""
    allowed_operators = (Operator.AND, Operator.OR, Operator.NOT)
    """``and``, ``or`` and ``not``."""

    def __init__(self, store: MatryoshkaMilvus) -> None:
        self.store = store

    @property
    def expressions(self) -> Expressions:
        """The store's expression builder (knows its declared metadata columns)."""
        return self.store._engine.expressions

    # ------------------------------------------------------------------ Visitor

    def visit_operation(self, operation: Operation) -> str:
        self._validate_func(operation.operator)
        parts = [argument.accept(self) for argument in operation.arguments]
        if not parts:
            raise InvalidInputError(
                f"structured query operator {operation.operator.value!r} has no arguments; "
                "give it at least one comparison"
            )
        if operation.operator == Operator.NOT:
            if len(parts) != 1:
                raise InvalidInputError(
                    f"'not' takes one argument, got {len(parts)}; write not(and(...)) or "
                    "not(or(...)) to negate several"
                )
            return f"not ({parts[0]})"
        if len(parts) == 1:
            return parts[0]
        joiner = " and " if operation.operator == Operator.AND else " or "
        return "(" + joiner.join(f"({part})" for part in parts) + ")"

    def visit_comparison(self, comparison: Comparison) -> str:
        self._validate_func(comparison.comparator)
        op = COMPARATORS.get(comparison.comparator)
        if op is None:  # pragma: no cover - every comparator LangChain has is mapped
            raise InvalidInputError(
                f"comparator {comparison.comparator!r} cannot be expressed in Milvus; use "
                + ", ".join(c.value for c in COMPARATORS)
            )
        value = _value(comparison.value, comparison)
        if op == "like" and isinstance(value, str) and "%" not in value:
            value = f"%{value}%"
        if op in ("in", "nin") and not isinstance(value, (list, tuple)):
            value = [value]
        return self.expressions.compare(comparison.attribute, op, value)

    def visit_structured_query(self, structured_query: StructuredQuery) -> tuple[str, dict]:
        if structured_query.filter is None:
            return structured_query.query, {}
        return structured_query.query, {"expr": structured_query.filter.accept(self)}


def _value(value: Any, comparison: Comparison) -> Any:
    """A structured query value as a Milvus literal value (dates as ISO strings)."""
    if isinstance(value, dict) and value.get("type") in ("date", "datetime"):
        return str(value.get(value["type"]))
    if isinstance(value, (list, tuple)):
        return [_value(v, comparison) for v in value]
    if value is None or not isinstance(value, (str, int, float, bool)):
        raise InvalidInputError(
            f"structured query {comparison.comparator.value}({comparison.attribute!r}, "
            f"{value!r}) compares with a value Milvus cannot hold; use a string, number, "
            "boolean or date"
        )
    return value
