"""The work on one read model: a batch, a rebuild by shadow swap, a retry of its dead letters.

Exactly once, per read model: every batch is one transaction that (1) locks the
read model's tracking row (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT … FOR
UPDATE`` on that one row, so other read models never wait), (2) re-reads its
position and, for a following runner, checks it still holds the lease, (3) folds
only later events, and (4) records the new position with eventsourcing's
tracking recorder (which refuses to move backwards), with the rows and the dead
letters of the batch, all through the view store's session
(:mod:`phaselog.projections.ports`). A crash rolls the batch back; any
other runner finds the position where the last committed batch left it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from phaselog.domain.errors import PhaselogError
from phaselog.projections.base import EventData, EventDecoder, Projection, ProjectionHalted
from phaselog.projections.batch import BatchRows, RetryIsolated, RowCache, fold_events, read_page
from phaselog.projections.gcpause import paused_gc
from phaselog.projections.ports import DeadLetter, LogReader, ViewSession, ViewStore
from phaselog.runtime import telemetry
from phaselog.runtime.ports import LogRecord

__all__ = ["Engine", "LeaseLost", "ProgressCallback", "Target"]

log = logging.getLogger("phaselog.projections")

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``: events replayed so far out of the log's current length."""
OnError = Literal["skip", "stop"]


class LeaseLost(PhaselogError):
    """Another runner took over this read model's lease; this runner leaves it alone."""


class _Isolate(Exception):
    """The bulk write of a batch failed on some row: redo the batch event by event."""


class _Halt(Exception):
    """``on_error="stop"`` met a failing event: roll the batch back, then record the halt."""

    def __init__(self, failure: DeadLetter) -> None:
        super().__init__(failure[3])
        self.failure = failure


@dataclass
class Target:
    """Where a batch writes: a live table (with its state row) or a rebuild's shadow table."""

    projection: Projection
    table: str
    cache: RowCache
    live: bool = True
    known: int = field(default=-1)
    """The last position this process saw committed (``-1``: read it from the database)."""


class Engine:
    """Batches, rebuilds and retries for a set of read models in one store."""

    def __init__(  # noqa: PLR0913 - the runner's settings
        self,
        reader: LogReader,
        views: ViewStore,
        *,
        on_error: OnError,
        batch_size: int,
        cache_rows: int,
        lease_seconds: float,
        pause_gc: bool = True,
    ) -> None:
        self.reader = reader
        self.views = views
        self.on_error: OnError = on_error
        self.batch_size = batch_size
        self.cache_rows = cache_rows
        self.lease_seconds = lease_seconds
        self.pause_gc = pause_gc
        self.decode = EventDecoder(reader.codec)
        """The JSON state of a stored event (upcast when its class is known)."""
        self._handled: dict[str, dict[str, bool]] = {}

    def read(
        self, after: int, limit: int | None = None, topics: Sequence[str] = (), until: int | None = None
    ) -> tuple[list[LogRecord], int]:
        """The next page of the log after ``after`` (see :func:`read_page`), the collector paused meanwhile.

        A page is thousands of new tuples at once: left on, the cyclic collector ran several
        times per page and walked what the folds still held, about 1.4 µs per event read.
        """
        with paused_gc(enabled=self.pause_gc):
            return read_page(self.reader, after, limit or self.batch_size, list(topics), until)

    def position(self, table: str) -> int:
        """The committed position of ``table``."""
        with self.views.translate_errors("reading read-model positions"), self.views.read() as session:
            return session.positions([table])[table]

    # -- one batch ------------------------------------------------------------------------------
    def batch(  # noqa: PLR0913 - the ways a runner, a catch-up and a rebuild run a batch
        self,
        target: Target,
        *,
        until: int | None = None,
        owner: str | None = None,
        lock_timeout: float | None = None,
        limit: int | None = None,
        page: tuple[list[LogRecord], int] | None = None,
    ) -> int:
        """Fold the next page of events into ``target``; return the positions it advanced (0: none).

        ``page`` is a page already read (events and the position they reach), shared by several targets.
        """
        p = target.projection
        after = target.known if target.known >= 0 else self.position(target.table)
        if until is not None and after >= until:
            return 0
        if page is None:
            topics = sorted(p.topics) if p.topics is not None else []
            page = self.read(after, limit, topics, until)
        events, end = page
        if end <= after:
            target.known = after
            return 0
        for isolate in (False, True):
            try:
                return self._commit_batch(target, events, (after, end), owner, lock_timeout, isolate=isolate)
            except RetryIsolated:
                target.cache.clear()
            except _Halt as halt:
                target.cache.clear()
                target.known = -1
                raise self._halt(target, halt.failure) from None
            except BaseException:
                target.cache.clear()
                target.known = -1
                raise
        msg = "unreachable: the isolated pass commits or raises"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def _commit_batch(  # noqa: PLR0913 - the parts of one batch
        self,
        target: Target,
        page: Sequence[LogRecord],
        span: tuple[int, int],
        owner: str | None,
        lock_timeout: float | None,
        *,
        isolate: bool,
    ) -> int:
        """Fold ``page`` (the events after ``span[0]`` up to ``span[1]``) in one transaction."""
        views, p = self.views, target.projection
        after, end = span
        with (
            telemetry.span("phaselog.projection.batch", projection=p.name, events=len(page), isolate=isolate),
            views.translate_errors(f"updating read model {p.name}"),
            views.write([target.table], lock_timeout=lock_timeout) as session,
        ):
            locked, state = session.position_and_state(target.table, p.name if target.live else None)
            generation = 0
            if target.live:
                generation = self._check_state(state, p, owner)
                if generation < 0:
                    return 0
            if locked >= end or locked < after:  # done elsewhere, or moved back (a forced rebuild swap)
                target.known = locked
                return 0
            target.cache.check((locked, generation))
            with paused_gc(enabled=self.pause_gc):
                rows, failures = self._fold(target, session, page, locked, isolate=isolate)
            if failures:
                session.record_dead_letters(target.table, failures)
                for position, _, topic, error in failures:
                    log.error("%s skipped event %d (%s): %s", p.name, position, topic, error)
                if target.live:
                    last = failures[-1]
                    session.set_state(p.name, last_error=f"position {last[0]}: {last[3]}")
            session.advance(target.table, end)
        target.cache.commit(rows.changes, (end, generation))
        telemetry.dead_lettered(p.name, len(failures))
        target.known = end
        return end - locked

    def _fold(
        self, target: Target, session: ViewSession, page: Sequence[LogRecord], after: int, *, isolate: bool
    ) -> tuple[BatchRows, list[DeadLetter]]:
        """Fold ``page``'s events past ``after`` into ``target``'s rows; write them unless isolated."""
        p = target.projection
        if target.cache.mark is None:  # a fresh cache: complete when the table is empty
            target.cache.complete = session.is_empty(target.table)
        events = self.decode.page(page, after, p.handles, self._handled.setdefault(p.name, {}))
        rows = BatchRows(self.views, session, p, target.table, target.cache)
        if not target.cache.complete:  # a complete cache answers every key without a query
            rows.prefetch(self._key(p, e) for _, e in events)
        failures = fold_events(p, rows, events, isolate=isolate)
        if failures and self.on_error == "stop":
            raise _Halt(failures[0])
        if not isolate:
            try:
                rows.flush()
            except Exception as exc:
                log.info("%s: bulk write failed (%s); retrying the batch event by event", p.name, exc)
                raise RetryIsolated from exc
        return rows, failures

    def _decoded(self, notification: LogRecord) -> EventData | BaseException:
        try:
            return self.decode(notification)
        except Exception as exc:  # an undecodable event is poison for the read models that fold it
            return exc

    @staticmethod
    def _key(p: Projection, event: EventData | BaseException) -> str | None:
        if isinstance(event, BaseException):
            return None
        try:
            return p.key_for(event)
        except Exception:  # the fold will meet (and report) the same problem
            return None

    def _check_state(self, state: dict[str, Any] | None, p: Projection, owner: str | None) -> int:
        """The live table's generation, or -1 when it is halted; raises :class:`LeaseLost`.

        The lease is only read here, never locked: the housekeeper renews it meanwhile
        without waiting for this batch. Exactly once does not rest on the lease but on
        the tracking-row lock this batch holds, so a runner whose lease is taken over
        during its batch cannot make the new owner fold anything twice.
        """
        if owner is not None and (state is None or state["owner"] != owner):
            raise LeaseLost(f"{p.name}: another runner holds the lease now")
        if state is None:
            return 0
        return -1 if state["halted"] is not None else int(state["generation"])

    def _halt(self, target: Target, failure: DeadLetter) -> ProjectionHalted:
        position, _, topic, error = failure
        msg = f"{target.projection.name} stopped before event {position} ({topic}): {error}"
        log.error("%s (on_error='stop'; fix the fold, then retry_errors(%r))", msg, target.projection.name)
        if target.live:
            with (
                self.views.translate_errors("recording a halted read model"),
                self.views.write([]) as session,
            ):
                session.set_state(target.projection.name, halted=position, last_error=msg)
        return ProjectionHalted(msg)
