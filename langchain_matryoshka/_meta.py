"""The settings collection beside a store's collection: part of the Milvus adapter.

``<name>_mrl_meta`` holds a JSON config row (funnel defaults, rotation, calibration),
matrices (the rotation basis) as one ARRAY<FLOAT> row per matrix row, and keyed rows such
as recorded queries, so a reopened store, another process or a server client sees
exactly what was written. :mod:`._milvus` re-exports :class:`MetaCollection`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._connection import as_connection, consistency_level_name, created_by_another, lite_writes
from ._consistency import Session
from ._expressions import ids_to_expr, quote
from ._indexes import index_new_collection, wait_until_indexed_by_creator
from ._layout import MAX_DIM
from .errors import SchemaError

META_SUFFIX = "_mrl_meta"
_META_KEY = "key"
_META_VALUE = "value"
_META_ROW = "row"
_META_DUMMY = "dummy"  # Milvus wants a vector field in every collection
_CONFIG_KEY = "config"


class MetaCollection:
    """Settings stored beside a store's collection: ``<name>_mrl_meta``.

    Holds a JSON config row (funnel defaults, rotation, calibration) and matrices
    (the rotation basis) as one ARRAY<FLOAT> row per matrix row, so a reopened store,
    another process or a server client sees exactly what was written.
    """

    def __init__(self, client: Any, name: str, *, lite: bool, consistency_level: str) -> None:
        self.connection = as_connection(client)
        self.client = self.connection.calls
        self.name = name + META_SUFFIX
        self.lite = lite
        self.consistency_level = consistency_level_name(consistency_level)
        self.session = Session(self.connection, self.consistency_level)

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.name))

    def drop(self) -> None:
        if self.exists():
            self.client.drop_collection(self.name)

    def _ensure(self) -> None:
        from pymilvus import DataType

        if self.exists():
            self.client.load_collection(self.name)
            return
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_META_KEY, DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field(_META_VALUE, DataType.JSON)
        schema.add_field(
            _META_ROW, DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=MAX_DIM
        )
        schema.add_field(_META_DUMMY, DataType.FLOAT_VECTOR, dim=2)
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name=_META_DUMMY, index_type="FLAT", metric_type="L2")
        try:
            self.client.create_collection(
                self.name, schema=schema, consistency_level=self.consistency_level
            )
        except Exception as exc:
            if not created_by_another(self.client, self.name, exc):
                raise
            wait_until_indexed_by_creator(self.client, self.name, _META_DUMMY)
        else:
            index_new_collection(self.client, self.name, index_params)
        self.client.load_collection(self.name)

    def _row(self, key: str, value: Any, row: Sequence[float] = ()) -> dict[str, Any]:
        return {_META_KEY: key, _META_VALUE: value, _META_ROW: list(row), _META_DUMMY: [0.0, 0.0]}

    def read_config(self) -> dict[str, Any]:
        """The stored config, or {} when nothing was stored."""
        if not self.exists():
            return {}
        self.client.load_collection(self.name)
        rows = self.client.get(
            self.name,
            ids=[_CONFIG_KEY],
            output_fields=[_META_VALUE],
            **self.session.read_kwargs(),
        )
        return dict(rows[0][_META_VALUE]) if rows else {}

    def write_config(self, config: Mapping[str, Any]) -> None:
        self._ensure()
        with lite_writes(self.lite, self.name, self.connection.uri), self.session.writing():
            self.client.upsert(self.name, [self._row(_CONFIG_KEY, dict(config))])
            if self.lite:
                self.client.flush(self.name)

    def write_matrix(self, key: str, matrix: np.ndarray) -> None:
        """Store a 2-D float matrix under ``key`` (one row per matrix row)."""
        self._ensure()
        rows = [self._row(f"{key}/{i:05d}", {"i": i}, r) for i, r in enumerate(matrix.tolist())]
        with lite_writes(self.lite, self.name, self.connection.uri), self.session.writing():
            for start in range(0, len(rows), 256):
                self.client.upsert(self.name, rows[start : start + 256])
            if self.lite:
                self.client.flush(self.name)

    def delete_matrix(self, key: str, n_rows: int) -> None:
        """Remove the matrix stored under ``key`` (missing rows are fine)."""
        ids = [f"{key}/{i:05d}" for i in range(n_rows)]
        with lite_writes(self.lite, self.name, self.connection.uri), self.session.writing():
            for start in range(0, n_rows, 256):
                self.client.delete(
                    self.name, filter=ids_to_expr(ids[start : start + 256], _META_KEY)
                )

    def read_matrix(self, key: str, n_rows: int) -> np.ndarray:
        """The matrix stored under ``key``; :class:`SchemaError` if rows are missing."""
        ids = [f"{key}/{i:05d}" for i in range(n_rows)]
        found: dict[str, list[float]] = {}
        for start in range(0, n_rows, 256):
            for r in self.client.get(
                self.name,
                ids=ids[start : start + 256],
                output_fields=[_META_ROW],
                **self.session.read_kwargs(),
            ):
                found[str(r[_META_KEY])] = r[_META_ROW]
        missing = [i for i in ids if i not in found]
        if missing:
            raise SchemaError(
                f"collection {self.name!r} lacks {len(missing)} rows of {key!r} "
                f"(first: {missing[0]!r}); rebuild the store with drop_old=True"
            )
        return np.asarray([found[i] for i in ids], dtype=np.float32)

    def append_rows(
        self, keys: Sequence[str], values: Sequence[Any], rows: Sequence[Sequence[float]]
    ) -> None:
        """Upsert keyed rows (a JSON value and a float row each), e.g. recorded queries."""
        if not keys:
            return
        self._ensure()
        data = [self._row(k, v, r) for k, v, r in zip(keys, values, rows)]
        with lite_writes(self.lite, self.name, self.connection.uri), self.session.writing():
            for start in range(0, len(data), 256):
                self.client.upsert(self.name, data[start : start + 256])
            if self.lite:
                self.client.flush(self.name)

    def read_prefix(self, prefix: str, *, with_rows: bool) -> list[dict[str, Any]]:
        """Rows whose key starts with ``prefix`` (at most 16,384): key, value (and row)."""
        if not self.exists():
            return []
        self.client.load_collection(self.name)
        fields = [_META_KEY, _META_VALUE] + ([_META_ROW] if with_rows else [])
        rows = self.client.query(
            self.name,
            filter=f"{_META_KEY} like {quote(prefix + '%')}",
            output_fields=fields,
            limit=16384,
            **self.session.read_kwargs(),
        )
        return [
            {"key": str(r[_META_KEY]), "value": r[_META_VALUE], "row": r.get(_META_ROW)}
            for r in rows
        ]

    def delete_keys(self, keys: Sequence[str]) -> None:
        with lite_writes(self.lite, self.name, self.connection.uri), self.session.writing():
            for start in range(0, len(keys), 256):
                self.client.delete(
                    self.name, filter=ids_to_expr(list(keys[start : start + 256]), _META_KEY)
                )
