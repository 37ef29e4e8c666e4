"""One batch of one read model: read a page of the log, fold it in memory, write each changed row once.

:class:`BatchRows` is the :class:`Rows` view a fold sees during a batch: rows are
prefetched in one query (keys from :meth:`Projection.key_for`), read from a
bounded cache of committed rows kept across batches, changed in memory, and
written by one ``executemany`` upsert (pipelined by psycopg) at the end.

:func:`fold_events` folds a batch. A fold that raises is undone (its puts and
deletes roll back in memory) and reported as a failure; in *isolated* mode
each event's rows are also written under a savepoint, so a row the database
refuses (a constraint, a value the column cannot hold) fails only its event.
The runner tries the fast mode first and the isolated mode only for a batch
whose bulk write failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eventsourcing.persistence import Notification
from typing_extensions import override

from phaselog.domain.errors import StoreUnavailable
from phaselog.projections.backend import Backend
from phaselog.projections.base import EventData, Projection, Rows, decode_row, encode_row
from phaselog.projections.errors import db_errors, is_poison
from phaselog.projections.tables import DeadLetter

__all__ = ["BatchRows", "RetryIsolated", "RowCache", "describe", "fold_events", "read_page"]

_MISSING: Any = object()
_CHUNK = 500  # keys per prefetch query (SQLite allows 999 parameters)


class RowCache:
    """Committed rows of one table known as of ``mark`` (position, generation); bounded, oldest out."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: dict[str, dict[str, Any] | None] = {}
        self.mark: tuple[int, int] | None = None

    def check(self, mark: tuple[int, int]) -> None:
        """Forget everything unless the table is still exactly as last seen."""
        if mark != self.mark:
            self.rows.clear()
            self.mark = None

    def commit(self, changes: Mapping[str, dict[str, Any] | None], mark: tuple[int, int]) -> None:
        """Take a committed batch's rows and move to ``mark``."""
        rows = self.rows
        for key, row in changes.items():
            rows.pop(key, None)
            rows[key] = row
        if len(rows) > self.capacity:
            for key in list(rows)[: len(rows) - self.capacity]:
                del rows[key]
        self.mark = mark

    def clear(self) -> None:
        """Forget everything (after a rollback or a write elsewhere)."""
        self.rows.clear()
        self.mark = None


class BatchRows(Rows):
    """The rows of one table during one batch, inside the batch's write transaction."""

    def __init__(
        self, backend: Backend, cursor: Any, projection: Projection, table: str, cache: RowCache
    ) -> None:
        self._b = backend
        self._cur = cursor
        self._p = projection
        self._qualified = backend.table(table)
        self._cache = cache.rows
        self.changes: dict[str, dict[str, Any] | None] = {}
        self._unwritten: set[str] = set()
        self._journal: dict[str, Any] | None = None

    def prefetch(self, keys: Iterable[str | None]) -> None:
        """Load the rows of ``keys`` not yet known, in as few queries as possible."""
        missing = sorted({k for k in keys if k is not None and k not in self._cache})
        p = self._p
        for i in range(0, len(missing), _CHUNK):
            chunk = missing[i : i + _CHUNK]
            cond, params = self._b.in_list(p.key, chunk)
            self._cur.execute(self._b.q(f"SELECT * FROM {self._qualified} WHERE {cond}"), params)
            found = {str(row[p.key]): decode_row(p, row) for row in self._cur.fetchall()}
            for key in chunk:
                self._cache[key] = found.get(key)

    @override
    def get(self, key: str) -> dict[str, Any] | None:
        row = self.changes.get(key, _MISSING)
        if row is _MISSING:
            row = self._cache.get(key, _MISSING)
            if row is _MISSING:
                self.prefetch([key])
                row = self._cache[key]
        return None if row is None else dict(row)

    def _change(self, key: str, row: dict[str, Any] | None) -> None:
        if self._journal is not None and key not in self._journal:
            self._journal[key] = self.changes.get(key, _MISSING)
        self.changes[key] = row
        self._unwritten.add(key)

    @override
    def put(self, key: str, row: Mapping[str, Any]) -> None:
        new = dict(row)
        new[self._p.key] = key
        self._change(key, new)

    @override
    def delete(self, key: str) -> None:
        self._change(key, None)

    def begin_event(self) -> None:
        """Start journalling one event's changes (so :meth:`undo_event` can take them back)."""
        self._journal = {}

    def end_events(self) -> None:
        """Stop journalling."""
        self._journal = None

    def undo_event(self) -> None:
        """Take back the changes since :meth:`begin_event`."""
        for key, before in (self._journal or {}).items():
            if before is _MISSING:
                self.changes.pop(key, None)
                self._unwritten.discard(key)
            else:
                self.changes[key] = before
        self._journal = None

    def flush(self) -> None:
        """Write every row changed since the last flush: one upsert or delete each."""
        if not self._unwritten:
            return
        p = self._p
        keys = sorted(self._unwritten)
        puts = [encode_row(p, row) for k in keys if (row := self.changes[k]) is not None]
        gone = [[k] for k in keys if self.changes[k] is None]
        if puts:
            self._b.upsert(self._cur, self._qualified, p, puts)
        if gone:
            self._cur.executemany(self._b.q(f"DELETE FROM {self._qualified} WHERE {p.key} = ?"), gone)
        self._unwritten.clear()


def describe(exc: BaseException) -> str:
    """One line naming an error (its type and first line)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class RetryIsolated(Exception):
    """A fast batch met a failing event: redo the batch event by event (journalled, savepoints)."""


def fold_events(
    projection: Projection,
    rows: BatchRows,
    events: Sequence[tuple[Notification, EventData | BaseException]],
    *,
    isolate: bool,
) -> list[DeadLetter]:
    """Fold decoded ``events`` into ``rows``; return the events that failed, as dead letters.

    The fast mode keeps no undo journal: its first failing event raises
    :class:`RetryIsolated`. The isolated mode journals each event (a failing fold is
    undone) and writes its rows under a savepoint. A :class:`StoreUnavailable` (the
    database itself failing) is raised in both, never dead-lettered.
    """
    failures: list[DeadLetter] = []
    for notification, event in events:
        if isolate:
            rows.begin_event()
        try:
            _fold_one(projection, rows, event, isolate=isolate)
        except StoreUnavailable:
            raise
        except Exception as exc:
            if not is_poison(exc) and not _raised_by_fold(exc):
                raise
            if not isolate:
                raise RetryIsolated from exc
            rows.undo_event()
            failures.append(
                (notification.id, str(notification.originator_id), notification.topic, describe(exc))
            )
    rows.end_events()
    return failures


def _fold_one(
    projection: Projection, rows: BatchRows, event: EventData | BaseException, *, isolate: bool
) -> None:
    if isinstance(event, BaseException):
        raise event  # it could not be decoded
    projection.apply(rows, event)
    if isolate:
        cur = rows._cur  # noqa: SLF001 - the batch's own cursor
        cur.execute("SAVEPOINT phaselog_event")
        try:
            rows.flush()
        except BaseException:
            cur.execute("ROLLBACK TO SAVEPOINT phaselog_event")
            raise
        cur.execute("RELEASE SAVEPOINT phaselog_event")


def _raised_by_fold(exc: BaseException) -> bool:
    """True unless ``exc`` came from the driver (driver errors are classified by :func:`is_poison`)."""
    module = type(exc).__module__
    return not module.startswith(("psycopg", "sqlite3", "eventsourcing"))


def read_page(
    store: Any, after: int, limit: int, topics: Sequence[str], stop: int | None
) -> tuple[list[Notification], int]:
    """The next events after ``after`` (only ``topics`` when given) and the position they reach.

    With a topic filter the reached position may lie past the last event returned,
    but only up to a head that the log confirms as settled: the recorder returns a
    row only when nothing below it can still commit, so once the head itself is
    readable no unseen position below it remains.
    """
    if not topics:
        page = store.notifications(after + 1, limit, stop=stop)
        return page, page[-1].id if page else after
    head = store.max_position()
    if stop is not None:
        head = min(head, stop)
    if head <= after:
        return [], after
    settled = bool(store.notifications(head, 1, stop=head))
    with db_errors("reading the event log"):
        page = list(store.app.recorder.select_notifications(after + 1, limit, stop=head, topics=topics))
    if len(page) == limit:
        return page, page[-1].id
    if settled:
        return page, head
    return page, page[-1].id if page else after
