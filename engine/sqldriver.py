"""SQLAlchemy Core statements compiled once, run on the database driver's own cursor.

The hot statements (the log writer's inserts, the approval query every decision makes) cost
two to four times their database work in SQLAlchemy's execution layer: cache-key lookup,
parameter processing, result wrapping, connection events. Their SQL still comes from
SQLAlchemy's compiler and the table definitions; only the execution skips the layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DriverStatement:
    """A Core statement compiled for one dialect: its SQL text and how to order parameters.

    The SQL comes from SQLAlchemy's compiler and the table definitions, never written by
    hand. Only for columns of plain strings, integers, booleans and bytes, which sqlite3 and
    psycopg bind and return as they are (no SQLAlchemy type processing is skipped).
    """

    sql: str
    order: tuple[str, ...] | None  # positional drivers (sqlite3: qmark): parameter names
    fixed: Mapping[str, Any]  # the statement's own literals (``id = 1`` binds ``id_1``)

    @classmethod
    def compile(cls, stmt: Any, dialect: Any) -> DriverStatement:
        compiled = stmt.compile(dialect=dialect)
        order = tuple(compiled.positiontup) if compiled.positional else None
        fixed = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if bind.value is not None and not bind.required
        }
        return cls(str(compiled), order, fixed)

    def params(self, values: Mapping[str, Any]) -> Any:
        if self.fixed:
            values = {**self.fixed, **values}
        return values if self.order is None else tuple(values[k] for k in self.order)

    def execute(self, cursor: Any, values: Mapping[str, Any] | None = None) -> Any:
        return cursor.execute(self.sql, self.params(values or {}))

    def executemany(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        cursor.executemany(self.sql, [self.params(r) for r in rows])

    def rows(self, cursor: Any, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Execute a query; its rows as dicts keyed by column name."""
        self.execute(cursor, values)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
