"""The projection runner: catch up, follow live, rebuild by shadow swap, wait for a position.

Exactly once: every batch is one transaction that (1) takes the projection lock
(SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT ... FOR UPDATE`` on the tracking
rows, in name order), (2) re-reads each projection's tracked position, (3) folds
only events after it, and (4) records the new position with eventsourcing's
tracking recorder (``_insert_tracking``), which refuses to move backwards. A
crash anywhere rolls the whole batch back; a second runner, in this process or
another, finds the position already advanced and skips those events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import Notification

from phaselog.adapters.errors import translate_errors
from phaselog.domain.errors import ConcurrencyConflict, PhaselogError, ValidationFailed
from phaselog.projections.backend import Backend, open_backend
from phaselog.projections.base import (
    EventData,
    Projection,
    ProjectionTimeout,
    ReadModel,
    TableRows,
    event_data,
)

if TYPE_CHECKING:
    from phaselog.adapters.store import Store

__all__ = ["Progress", "Projections", "default_projections"]

log = logging.getLogger("phaselog.projections")

META_TABLE = "phaselog_view_meta"
Progress = Callable[[int, int], None]
"""``progress(done, total)``: events replayed so far out of the log's current length."""


def default_projections() -> list[Projection]:
    """The four read models of the SPEC."""
    from phaselog.projections.models import (  # noqa: PLC0415 - models import this module's neighbours
        PlanRuns,
        PluginPhases,
        RecoverableStates,
        TaskStatuses,
    )

    return [PluginPhases(), TaskStatuses(), PlanRuns(), RecoverableStates()]


class Projections:
    """The read models kept in a store's database, and the runner that keeps them current."""

    def __init__(
        self,
        store: Store,
        projections: Iterable[Projection] | None = None,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.2,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._projections = list(default_projections() if projections is None else projections)
        names = [p.name for p in self._projections]
        if len(set(names)) != len(names) or not all(names):
            raise ValidationFailed(f"projection names must be unique and non-empty: {names}")
        self.backend: Backend = open_backend(store)
        self.models = {p.name: ReadModel(self.backend, p) for p in self._projections}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = threading.Condition()
        self.last_error: str | None = None
        self._closed = False
        self._setup()

    # -- read models ---------------------------------------------------------------------
    @property
    def plugin_phases(self) -> ReadModel:
        """Plugin id -> phase, since, reason, retry attempts, state version."""
        return self.models["plugin_phases"]

    @property
    def task_statuses(self) -> ReadModel:
        """Task id -> controller, state, progress, last log, updated_at."""
        return self.models["task_statuses"]

    @property
    def plan_runs(self) -> ReadModel:
        """Plan id -> status, current step, errors."""
        return self.models["plan_runs"]

    @property
    def recoverable_states(self) -> ReadModel:
        """(kvs, key) -> value JSON, updated_at."""
        return self.models["recoverable_states"]

    def __getitem__(self, name: str) -> ReadModel:
        return self._model(name)

    def _model(self, name: str) -> ReadModel:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models)
            raise ValidationFailed(f"no projection {name!r}; known: {known}") from None

    # -- setup ------------------------------------------------------------------------------
    def _setup(self) -> None:
        for attempt in range(5):
            try:
                self._create_tables()
            except ConcurrencyConflict:  # another process created the same tables at this moment
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))
            else:
                return

    def _create_tables(self) -> None:
        b = self.backend
        stale: list[Projection] = []
        with translate_errors("creating read-model tables"), b.write([]) as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {b.table(META_TABLE)} (name TEXT PRIMARY KEY, fingerprint TEXT)"
            )
            cur.execute(b.q(f"SELECT name, fingerprint FROM {b.table(META_TABLE)}"), [])
            known = {str(r["name"]): str(r["fingerprint"]) for r in cur.fetchall()}
            for p in self._projections:
                if p.name in known and known[p.name] != p.fingerprint:
                    stale.append(p)
                    continue
                for sql in p.create_sql(p.table, b.table(p.table)):
                    cur.execute(sql)
                if p.name not in known:
                    self._set_meta(cur, p)
        for p in stale:
            log.warning("read model %s changed shape; rebuilding it from the event log", p.name)
            self.rebuild(p.name)

    def _set_meta(self, cur: Any, p: Projection) -> None:
        b = self.backend
        cur.execute(b.q(f"DELETE FROM {b.table(META_TABLE)} WHERE name = ?"), [p.name])
        cur.execute(b.q(f"INSERT INTO {b.table(META_TABLE)} VALUES (?, ?)"), [p.name, p.fingerprint])

    # -- folding ------------------------------------------------------------------------------
    def event_data(self, notification: Notification) -> EventData:
        """The JSON state of a stored event (upcast when its class is known)."""
        return event_data(self.store.app.mapper, notification)

    def _apply_page(
        self, cur: Any, page: Sequence[Notification], targets: dict[Projection, tuple[str, int]]
    ) -> None:
        """Fold ``page`` into each target ``(table, position)`` and advance its tracking, in ``cur``."""
        cache: dict[int, EventData] = {}
        for p, (table, position) in targets.items():
            todo = [n for n in page if n.id > position]
            if not todo:
                continue
            rows = TableRows(self.backend, cur, p, self.backend.table(table))
            for n in todo:
                if p.handles(n.topic):
                    event = cache.get(n.id)
                    if event is None:
                        event = cache[n.id] = self.event_data(n)
                    try:
                        p.apply(rows, event)
                    except Exception:
                        log.exception("%s could not fold event %d (%s); skipped", p.name, n.id, n.topic)
            rows.flush()
            self.backend.advance(cur, table, todo[-1].id)

    def _positions(self, names: Sequence[str]) -> dict[str, int]:
        with translate_errors("reading read-model positions"), self.backend.read() as cur:
            return self.backend.positions(cur, names)

    def catch_up(self, *, until: int | None = None) -> int:
        """Fold every event recorded so far (or up to ``until``); return the events folded."""
        done = 0
        live = [p.table for p in self._projections]
        while True:
            positions = self._positions(live)
            start = min(positions.values(), default=0)
            if until is not None and start >= until:
                return done
            page = self.store.notifications(start + 1, self.batch_size, stop=until)
            if not page:
                return done
            with translate_errors("updating read models"), self.backend.write(live) as cur:
                locked = self.backend.positions(cur, live)  # authoritative, under the lock
                self._apply_page(cur, page, {p: (p.table, locked[p.table]) for p in self._projections})
            done += len(page)
            with self._progress:
                self._progress.notify_all()

    # -- rebuild ----------------------------------------------------------------------------------
    def rebuild(self, name: str | None = None, progress: Progress | None = None) -> dict[str, int]:
        """Replay the whole log into shadow tables and swap each in atomically.

        Queries keep reading the old table until the swap; returns each rebuilt
        projection's row count.
        """
        chosen = self._projections if name is None else [self._model(name).projection]
        return {p.name: self._rebuild_one(p, progress) for p in chosen}

    def _rebuild_one(self, p: Projection, progress: Progress | None) -> int:
        b = self.backend
        with translate_errors(f"preparing rebuild of {p.name}"), b.write([p.shadow]) as cur:
            cur.execute(f"DROP TABLE IF EXISTS {b.table(p.shadow)}")
            for sql in p.create_sql(p.shadow, b.table(p.shadow)):
                cur.execute(sql)
            b.set_position(cur, p.shadow, 0)
        position, total = 0, self.store.max_position()
        topics = sorted(p.topics) if p.topics is not None else []
        if progress:
            progress(0, total)
        while position < total:  # replay up to the head seen at the start, only the topics folded
            with translate_errors(f"reading the log for {p.name}"):
                page = self.store.app.recorder.select_notifications(
                    position + 1, self.batch_size, stop=total, topics=topics
                )
            with translate_errors(f"rebuilding {p.name}"), b.write([p.shadow]) as cur:
                at = b.positions(cur, [p.shadow])[p.shadow]
                self._apply_page(cur, page, {p: (p.shadow, at)})
                position = page[-1].id if len(page) == self.batch_size else total
                if position > at and (not page or page[-1].id < position):
                    b.advance(cur, p.shadow, position)  # skipped events of other topics
            if progress:
                progress(position, total)
        with translate_errors(f"swapping in {p.name}"), b.write([p.table, p.shadow]) as cur:
            at = b.positions(cur, [p.shadow])[p.shadow]
            while page := self.store.notifications(at + 1, self.batch_size):  # events since the replay
                self._apply_page(cur, page, {p: (p.shadow, at)})
                at = page[-1].id
            cur.execute(f"DROP TABLE IF EXISTS {b.table(p.table)}")
            cur.execute(f"ALTER TABLE {b.table(p.shadow)} RENAME TO {p.table}")
            b.set_position(cur, p.table, at)
            b.set_position(cur, p.shadow, None)
            self._set_meta(cur, p)
        if progress:
            progress(max(at, total), max(at, total))
        with self._progress:
            self._progress.notify_all()
        return len(self.models[p.name].list())

    # -- waiting and following -----------------------------------------------------------------
    def position(self) -> int:
        """The position every read model has reached (the slowest one's)."""
        return min(self._positions([p.table for p in self._projections]).values(), default=0)

    def wait(self, position: int, timeout: float = 5.0) -> None:
        """Block until every read model has folded ``position`` (read-your-writes).

        Progress comes from the runner thread of this object, from a runner in
        another process, or, when neither runs, from this call catching up itself.
        Raises :class:`ProjectionTimeout` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            reached = self.position()
            if reached >= position:
                return
            if not self.running and not self._closed:
                self.catch_up(until=position)
                if self.position() >= position:
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"read models reached position {reached}, not {position}, within {timeout}s"
                raise ProjectionTimeout(msg)
            with self._progress:
                self._progress.wait(min(delay, remaining))
            delay = min(delay * 2, 0.2)

    @property
    def running(self) -> bool:
        """True while this object's live-following thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Follow new events in a background thread (LISTEN/NOTIFY on PostgreSQL, polling on SQLite)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="phaselog-projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (after its current batch)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _follow(self) -> None:
        backoff = self.poll_interval
        while not self._stop.is_set():
            try:
                self.catch_up()
                self.last_error = None
                backoff = self.poll_interval
            except PhaselogError as exc:
                self.last_error = str(exc)
                log.warning("projection runner: %s; retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.backend.wait_for_events(
                max(self.poll_interval, 1.0) if self.backend.kind == "postgresql" else self.poll_interval,
                self._stop,
            )

    def run_forever(self, *, until: threading.Event | None = None) -> None:
        """Catch up and follow in the calling thread until ``until`` (or :meth:`stop`) is set."""
        if until is not None:

            def relay() -> None:
                until.wait()
                self._stop.set()

            threading.Thread(target=relay, daemon=True).start()
        self._stop.clear()
        self._follow()

    def status(self) -> list[dict[str, Any]]:
        """Per read model: name, table, position, lag behind the log, rows, counts."""
        head = self.store.max_position()
        positions = self._positions([p.table for p in self._projections])
        return [
            {
                "name": p.name,
                "table": p.table,
                "position": positions[p.table],
                "head": head,
                "lag": max(0, head - positions[p.table]),
                "rows": sum(self.models[p.name].counts().values()),
                "counts": self.models[p.name].counts(),
                "running": self.running,
                "last_error": self.last_error,
            }
            for p in self._projections
        ]

    def close(self) -> None:
        """Stop following and release the backend; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        self.backend.close()
