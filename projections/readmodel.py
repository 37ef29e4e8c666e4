"""A read model as a service reads it: one row by key, filtered lists, keyset pages, counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phaselog.domain.encoding import dump_json
from phaselog.domain.errors import ValidationFailed
from phaselog.projections.base import Projection, decode_row, load_text, store_text
from phaselog.projections.ports import ViewStore

__all__ = ["ReadModel", "column_value"]


class ReadModel:
    """Queries over one projection's live table: ``get``, ``list``, ``counts``."""

    def __init__(self, views: ViewStore, projection: Projection) -> None:
        self._views = views
        self.projection = projection

    @property
    def name(self) -> str:
        """The projection's short name."""
        return self.projection.name

    def _select(
        self,
        where: Mapping[str, Any],
        order_by: str | None = None,
        after: Any = None,
        limit: int | None = None,
    ) -> list[Mapping[str, Any]]:
        with self._views.translate_errors(f"querying {self.projection.table}"), self._views.read() as views:
            return views.select_rows(
                self.projection.table, where, order_by=order_by, after=after, limit=limit
            )

    def get(self, key: str) -> dict[str, Any] | None:
        """The row for ``key``, or ``None`` when the read model has none."""
        p = self.projection
        rows = self._select({p.key: column_value(p, p.key, key)})
        if not rows and p.alt_key is not None:
            rows = self._select({p.alt_key: column_value(p, p.alt_key, key)})
            if len(rows) > 1:
                keys = ", ".join(str(decode_row(p, r)[p.key]) for r in rows)
                msg = f"{p.alt_key} {key!r} is ambiguous in {p.name}: use one of {keys}"
                raise ValidationFailed(msg)
        return decode_row(p, rows[0]) if rows else None

    def page(self, *, after: str | None = None, limit: int = 50, **filters: Any) -> list[dict[str, Any]]:
        """At most ``limit`` rows whose columns equal ``filters``, by key, from the first key after ``after``.

        A keyset page: pass the last key of one page as ``after`` to get the next (as fast at
        the millionth row as at the first; rows written between pages are not skipped).
        """
        if limit < 1:
            raise ValidationFailed(f"a page holds at least one row, not {limit}")
        p = self.projection
        start = None if after is None else column_value(p, p.key, after)
        rows = self._select(self._where(filters), p.key, start, limit)
        return [decode_row(p, row) for row in rows]

    def list(self, **filters: Any) -> list[dict[str, Any]]:
        """Rows whose columns equal ``filters`` (enums may be passed), ordered by key."""
        return [
            decode_row(self.projection, row)
            for row in self._select(self._where(filters), self.projection.key)
        ]

    def _where(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        p = self.projection
        unknown = sorted(set(filters) - set(p.columns))
        if unknown:
            msg = f"{p.name} has no column {', '.join(unknown)}; columns: {', '.join(p.columns)}"
            raise ValidationFailed(msg)
        return {k: column_value(p, k, v) for k, v in filters.items()}

    def counts(self) -> dict[str, int]:
        """Number of rows per value of the projection's ``count_by`` column."""
        p = self.projection
        if p.count_by is None:
            return {"total": len(self.list())}
        with self._views.translate_errors(f"querying {p.table}"), self._views.read() as views:
            found = views.count_by(p.table, p.count_by)
        text = p.columns[p.count_by] == "text"
        return {str(load_text(v) if text and isinstance(v, str) else v): n for v, n in found}

    def all(self) -> dict[str, dict[str, Any]]:
        """Every row keyed by its key (for comparisons with :meth:`Projection.fold`)."""
        return {str(row[self.projection.key]): row for row in self.list()}


def column_value(projection: Projection, column: str, value: Any) -> Any:
    """``value`` as column ``column`` stores it (escaped text, encoded JSON): a query parameter."""
    kind = projection.columns[column]
    raw = getattr(value, "value", value)  # enums filter by their stored value
    if kind == "json":
        return dump_json(raw).decode()
    if kind == "int":
        return int(raw)
    if kind == "bool":
        return bool(raw)
    return store_text(str(raw))
