"""One batch of one read model: read a page of the log, fold it in memory, write each changed row once.

:class:`BatchRows` is the :class:`Rows` view a fold sees during a batch: rows are
prefetched in one query (keys from :meth:`Projection.key_for`), read from a
bounded cache of committed rows kept across batches (which also knows which
keys a table started without), changed in memory, and written once each at the
end: rows new to the table by one bulk insert (COPY on PostgreSQL), the others
by one bulk upsert, all through the batch's
:class:`~phaselog.projections.ports.ViewSession`.

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

from typing_extensions import override

from phaselog.domain.errors import StoreUnavailable
from phaselog.projections.base import EventData, Projection, Rows, decode_row, encode_row
from phaselog.projections.ports import DeadLetter, LogReader, ViewSession, ViewStore
from phaselog.projections.readmodel import column_value
from phaselog.runtime.keyfilter import KeyFilter
from phaselog.runtime.ports import LogRecord

__all__ = ["BatchRows", "RetryIsolated", "RowCache", "describe", "fold_events", "read_page"]

_MISSING: Any = object()
_CHUNK = 500  # keys per prefetch query (SQLite allows 999 parameters)


class RowCache:
    """Committed rows of one table known as of ``mark`` (position, generation); bounded, oldest out.

    When the table was empty as the cache started (a fresh read model, a rebuild's
    shadow table), the cache is *complete*: every row of the table is either held
    here or was evicted, and evicted keys are remembered in a fixed-size Bloom
    filter. A key neither held nor (maybe) evicted is then known to be absent
    without asking the database, and a row known to be absent is inserted
    rather than upserted.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: dict[str, dict[str, Any] | None] = {}
        self.mark: tuple[int, int] | None = None
        self.complete = False
        self._evicted = KeyFilter(1 << 20)  # 128 KiB: ~2% false "maybe evicted" at 100,000 evicted keys

    def check(self, mark: tuple[int, int]) -> None:
        """Forget everything unless the table is still exactly as last seen."""
        if mark != self.mark:
            self.clear()

    def known_absent(self, key: str) -> bool:
        """True when the table certainly has no row ``key`` (only a complete cache knows)."""
        if not self.complete or key in self.rows:
            return False
        evicted = self._evicted
        return evicted.empty or key not in evicted

    def commit(self, changes: Mapping[str, dict[str, Any] | None], mark: tuple[int, int]) -> None:
        """Take a committed batch's rows and move to ``mark``."""
        rows = self.rows
        for key, row in changes.items():
            rows.pop(key, None)
            rows[key] = row
        if len(rows) > self.capacity:
            gone = list(rows)[: len(rows) - self.capacity]
            remember = self._evicted.add
            for key in gone:
                if rows.pop(key) is not None and self.complete:  # an absent row needs no remembering
                    remember(key)
        self.mark = mark

    def clear(self) -> None:
        """Forget everything (after a rollback or a write elsewhere)."""
        self.rows.clear()
        self.mark = None
        self._evicted.clear()
        self.complete = False


class BatchRows(Rows):
    """The rows of one table during one batch, inside the batch's write transaction."""

    def __init__(
        self, views: ViewStore, session: ViewSession, projection: Projection, table: str, cache: RowCache
    ) -> None:
        self.views = views
        self.session = session
        self._p = projection
        self._key = projection.key
        self._table = table
        self._spec = projection.table_spec(table)
        self._known = cache
        self._cache = cache.rows
        self.changes: dict[str, dict[str, Any] | None] = {}
        self._unwritten: set[str] = set()
        self._written: set[str] = set()
        self._journal: dict[str, Any] | None = None

    def prefetch(self, keys: Iterable[str | None]) -> None:
        """Load the rows of ``keys`` not yet known, in as few queries as possible."""
        cache, known = self._cache, self._known
        missing: set[str] = set()
        for key in keys:
            if key is not None and key not in cache:
                if known.known_absent(key):
                    cache[key] = None
                else:
                    missing.add(key)
        p = self._p
        ordered = sorted(missing)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            found_rows = self.session.fetch_rows(
                self._table, p.key, [column_value(p, p.key, key) for key in chunk]
            )
            decoded = (decode_row(p, row) for row in found_rows)
            found = {str(row[p.key]): row for row in decoded}
            for key in chunk:
                cache[key] = found.get(key)

    @override
    def get(self, key: str) -> dict[str, Any] | None:
        row = self.changes.get(key, _MISSING)
        if row is _MISSING:
            row = self._cache.get(key, _MISSING)
            if row is _MISSING:
                if self._known.known_absent(key):
                    self._cache[key] = row = None
                else:
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
        new[self._key] = key
        if self._journal is not None and key not in self._journal:
            self._journal[key] = self.changes.get(key, _MISSING)
        self.changes[key] = new
        self._unwritten.add(key)

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

    def _absent(self, key: str) -> bool:
        """True when the table had no row ``key`` before this batch and the batch wrote none yet."""
        if key in self._written:
            return False
        row = self._cache.get(key, _MISSING)
        return self._known.known_absent(key) if row is _MISSING else row is None

    def flush(self) -> None:
        """Write every row changed since the last flush: an insert, an upsert or a delete each."""
        if not self._unwritten:
            return
        p = self._p
        keys = sorted(self._unwritten)
        fresh: list[list[Any]] = []
        puts: list[list[Any]] = []
        gone: list[Any] = []
        for key in keys:
            row = self.changes[key]
            if row is not None:
                (fresh if self._absent(key) else puts).append(encode_row(p, row))
            elif not self._absent(key):
                gone.append(column_value(p, p.key, key))
        if fresh:
            self.session.insert_rows(self._spec, fresh)
        if puts:
            self.session.upsert_rows(self._spec, puts)
        if gone:
            self.session.delete_rows(self._table, p.key, gone)
        self._written.update(keys)
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
    events: Sequence[tuple[LogRecord, EventData | BaseException]],
    *,
    isolate: bool,
) -> list[DeadLetter]:
    """Fold decoded ``events`` into ``rows``; return the events that failed, as dead letters.

    The fast mode keeps no undo journal: its first failing event raises
    :class:`RetryIsolated`. The isolated mode journals each event (a failing fold is
    undone) and writes its rows under a savepoint. A :class:`StoreUnavailable` (the
    database itself failing) is raised in both, never dead-lettered.
    """
    if not isolate:
        _fold_fast(projection, rows, events)
        return []
    failures: list[DeadLetter] = []
    for notification, event in events:
        rows.begin_event()
        try:
            _fold_one(projection, rows, event)
        except StoreUnavailable:
            raise
        except Exception as exc:
            if not _dead_letters(rows.views, exc):
                raise
            rows.undo_event()
            failures.append(
                (notification.id, str(notification.originator_id), notification.topic, describe(exc))
            )
    rows.end_events()
    return failures


def _fold_fast(
    projection: Projection, rows: BatchRows, events: Sequence[tuple[LogRecord, EventData | BaseException]]
) -> None:
    """The fast pass: one loop, no journal; the first failing event raises :class:`RetryIsolated`."""
    apply = projection.apply
    try:
        for _, event in events:
            apply(rows, _decoded(event))
    except StoreUnavailable:
        raise
    except Exception as exc:
        if not _dead_letters(rows.views, exc):
            raise
        raise RetryIsolated from exc


def _decoded(event: EventData | BaseException) -> EventData:
    if isinstance(event, BaseException):
        raise event  # it could not be decoded
    return event


def _fold_one(projection: Projection, rows: BatchRows, event: EventData | BaseException) -> None:
    """Fold one event and write its rows under a savepoint (the isolated pass)."""
    projection.apply(rows, _decoded(event))
    with rows.session.savepoint():
        rows.flush()


def _dead_letters(views: ViewStore, exc: Exception) -> bool:
    """True when ``exc`` makes its event a dead letter: raised by the fold, or poison to the database."""
    verdict = views.poison(exc)
    return True if verdict is None else verdict


def read_page(
    store: LogReader, after: int, limit: int, topics: Sequence[str], stop: int | None
) -> tuple[list[LogRecord], int]:
    """The next events after ``after`` (only ``topics`` when given) and the position they reach.

    With a topic filter the reached position may lie past the last event returned,
    but only up to a head that the log confirms as settled: the recorder returns a
    row only when nothing below it can still commit, so once the head itself is
    readable no unseen position below it remains.
    """
    if not topics:
        page = store.records(after + 1, limit, stop=stop)
        return page, page[-1].id if page else after
    head = store.max_position()
    if stop is not None:
        head = min(head, stop)
    if head <= after:
        return [], after
    settled = bool(store.records(head, 1, stop=head))
    page = store.records(after + 1, limit, stop=head, topics=topics)
    if len(page) == limit:
        return page, page[-1].id
    if settled:
        return page, head
    return page, page[-1].id if page else after
