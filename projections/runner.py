"""The read models of a store and the runner that keeps them current.

Each read model is isolated: its own tracked position, its own transaction per
batch, its own lock, its own follower thread and lease (see
:mod:`phaselog.projections.engine` and :mod:`phaselog.projections.follow`). An
event a fold or a row write cannot handle is dead-lettered (``on_error="skip"``)
or stops only that read model (``on_error="stop"``); the others never wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Self

from phaselog.domain.errors import ConcurrencyConflict, StoreUnavailable, ValidationFailed
from phaselog.domain.retry import Backoff
from phaselog.projections import tables
from phaselog.projections.base import (
    EventData,
    Projection,
)
from phaselog.projections.batch import RowCache
from phaselog.projections.catchup import CatchUp
from phaselog.projections.chores import Chore
from phaselog.projections.engine import Engine, OnError, ProgressCallback, Target
from phaselog.projections.follow import Follower, runner_id
from phaselog.projections.ports import LogReader, ViewPorts, ViewStore, open_view_ports
from phaselog.projections.readmodel import ReadModel
from phaselog.projections.rebuild import rebuild, retry_dead_letters, set_meta
from phaselog.projections.status import status_rows
from phaselog.projections.waiting import Waiting
from phaselog.runtime.lifetimes import sync_store, tie
from phaselog.runtime.retry import retry
from phaselog.runtime.sealing import check_seal_interval

__all__ = ["ProgressCallback", "Projections", "default_projections"]

log = logging.getLogger("phaselog.projections")

VIEW_META_TABLE = tables.VIEW_META_TABLE
_SETUP_RETRIES = Backoff(first=0.1, attempts=5)


def default_projections() -> list[Projection]:
    """The four built-in read models: plugin phases, task status, plan progress, recoverable state."""
    from phaselog.projections.models import (  # noqa: PLC0415 - models import this module's neighbours
        PlanRuns,
        PluginPhases,
        RecoverableStates,
        TaskStatuses,
    )

    return [PluginPhases(), TaskStatuses(), PlanRuns(), RecoverableStates()]


class Projections(Waiting):
    """The read models kept in a store's database, and the runner that keeps them current."""

    def __init__(  # noqa: PLR0913 - every knob an operator may turn
        self,
        store: Any,
        projections: Iterable[Projection] | None = None,
        *,
        on_error: OnError = "skip",
        batch_size: int = 5000,
        poll_interval: float = 0.2,
        lease_seconds: float = 10.0,
        seal_interval: float | None = None,
        cache_rows: int = 20_000,
        busy_timeout: float = 2.0,
        pause_gc: bool = True,
        ports: ViewPorts | None = None,
        chores: Sequence[Chore] = (),
    ) -> None:
        """The read models of ``store``, kept in the view store of ``ports``.

        ``ports`` (a log reader and a view store) defaults to what the adapters
        layer composes for ``store``: its ``view_ports()`` (:class:`~phaselog.projections.ports.ViewSource`).
        ``chores`` are done now and then by one following runner of the store (a retention policy).
        """
        if on_error not in {"skip", "stop"}:
            raise ValidationFailed(f"on_error must be 'skip' or 'stop', not {on_error!r}")
        if batch_size < 1 or lease_seconds <= 0:
            raise ValidationFailed("batch_size must be at least 1 and lease_seconds positive")
        store = sync_store(store, "Projections") if ports is None else store
        self.store = store
        self.reader: LogReader
        self.views: ViewStore
        self.reader, self.views = open_view_ports(store) if ports is None else ports
        self.poll_interval = poll_interval
        self.seal_interval = check_seal_interval(
            self.reader.seal_interval if seal_interval is None else seal_interval
        )  # one sealing policy: by default the store's own interval
        self.busy_timeout = busy_timeout
        self.chores = list(chores)
        self._projections = list(default_projections() if projections is None else projections)
        names = [p.name for p in self._projections]
        if len(set(names)) != len(names) or not all(names):
            raise ValidationFailed(f"projection names must be unique and non-empty: {names}")
        self.engine = Engine(
            self.reader,
            self.views,
            on_error=on_error,
            batch_size=batch_size,
            cache_rows=cache_rows,
            lease_seconds=lease_seconds,
            pause_gc=pause_gc,
        )
        self.models = {p.name: ReadModel(self.views, p) for p in self._projections}
        self._targets = {p.name: Target(p, p.table, RowCache(cache_rows)) for p in self._projections}
        self.runner_id = runner_id()
        self._follower: Follower | None = None
        self._progress = threading.Condition()
        self._errors: dict[str, str] = {}
        self._closed = False
        if not self.reader.read_only:  # a read-only store only reads what exists
            self._setup()
        self._untie = tie(store, self.close)  # closing the store stops and closes this runner first

    @property
    def on_error(self) -> OnError:
        """``"skip"`` (dead-letter a failing event) or ``"stop"`` (halt that read model)."""
        return self.engine.on_error

    @property
    def batch_size(self) -> int:
        """Events read per batch."""
        return self.engine.batch_size

    @property
    def last_error(self) -> str | None:
        """The newest error any read model of this runner met (see :meth:`status` per model)."""
        return next(reversed(self._errors.values()), None)

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

    def _chosen(self, name: str | None) -> list[Projection]:
        return list(self._projections) if name is None else [self._model(name).projection]

    # -- setup ------------------------------------------------------------------------------
    def _setup(self) -> None:
        # Retried when another process creates the same tables at the same moment.
        retry(self._create_tables, policy=_SETUP_RETRIES, retry_on=(ConcurrencyConflict, StoreUnavailable))

    def _create_tables(self) -> None:
        views = self.views
        stale: list[Projection] = []
        with views.translate_errors("creating read-model tables"), views.write([]) as session:
            session.create_bookkeeping()
            session.ensure_state([p.name for p in self._projections])
            known = session.fingerprints()
            for p in self._projections:
                if p.name in known and known[p.name] != p.fingerprint:
                    stale.append(p)
                    continue
                if not session.table_exists(p.table):  # DDL on a table in use would wait for its runner
                    session.create_table(p.table_spec(p.table))
                if p.name not in known:
                    set_meta(session, p)
        for p in stale:
            log.warning("read model %s changed shape; rebuilding it from the event log", p.name)
            self.rebuild(p.name)

    # -- folding ------------------------------------------------------------------------------
    def event_data(self, notification: Any) -> EventData:
        """The JSON state of a stored event (upcast when its class is known)."""
        return self.engine.decode(notification)

    def _note(self, name: str, error: str | None) -> None:
        if error is None:
            self._errors.pop(name, None)
        else:
            self._errors.pop(name, None)
            self._errors[name] = error

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def catch_up(self, *, until: int | None = None) -> int:
        """Fold every event recorded so far (or up to ``until``) into every read model.

        Each page of the log is read once and folded into each read model in that
        model's own transaction (see :mod:`phaselog.projections.catchup`). A read
        model that fails (database error) or is busy in another runner is left
        behind while the others go on; the first database error is raised at the
        end. Returns the positions folded by the read model that moved furthest.
        """
        return self._catch_up(list(self._targets.values()), until=until)

    def _catch_up(self, targets: list[Target], *, until: int | None) -> int:
        run = CatchUp(self.engine, targets, self._note, self._notify)
        return run.run(until=until, lock_timeout=self.busy_timeout)

    # -- rebuild ----------------------------------------------------------------------------------
    def rebuild(self, name: str | None = None, progress: ProgressCallback | None = None) -> dict[str, int]:
        """Replay the whole log into shadow tables and swap each in atomically.

        Queries keep reading the old table until the swap; returns each rebuilt
        projection's row count. Clears a halt and replaces the dead letters.
        """
        counts = {}
        for p in self._chosen(name):
            rebuild(self.engine, p, progress)
            self._targets[p.name].cache.clear()
            self._targets[p.name].known = -1
            self._note(p.name, None)
            counts[p.name] = sum(self.models[p.name].counts().values())
            self._notify()
        return counts

    # -- dead letters -----------------------------------------------------------------------------
    def errors(self, name: str | None = None) -> list[dict[str, Any]]:
        """Dead-lettered events: projection, position, stream, topic, error, at (oldest first)."""
        chosen = {p.table: p.name for p in self._chosen(name)}
        with self.views.translate_errors("reading dead letters"), self.views.read() as session:
            letters = session.dead_letters(list(chosen))
        return [
            {"projection": chosen[d.pop("tbl")], **d}
            for d in sorted(letters, key=lambda d: (d["position"], d["tbl"]))
        ]

    def retry_errors(self, name: str | None = None) -> int:
        """Re-fold dead-lettered events (and resume halted read models); return how many now succeeded."""
        done = 0
        for p in self._chosen(name):
            done += retry_dead_letters(self.engine, p)
            self._targets[p.name].cache.clear()
            self._targets[p.name].known = -1
            self._note(p.name, None)
        if self._follower is not None:
            self._follower.wake()
        return done

    # -- following (waiting: projections.waiting) ------------------------------------------------
    @property
    def running(self) -> bool:
        """True while this object's follower threads run."""
        return self._follower is not None and self._follower.alive

    def start(self) -> None:
        """Follow new events in background threads (LISTEN/NOTIFY on PostgreSQL, polling on SQLite)."""
        if self.running:
            return
        self._follower = Follower(
            self.engine,
            list(self._targets.values()),
            owner=self.runner_id,
            poll_interval=self.poll_interval,
            seal_interval=self.seal_interval,
            lock_timeout=self.busy_timeout,
            on_error=self._note,
            on_progress=self._notify,
            chores=self.chores,
        )
        self._follower.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background threads (after their current batch) and release the leases."""
        if self._follower is not None:
            self._follower.stop(timeout)
            self._follower = None

    def run_forever(self, *, until: threading.Event | None = None) -> None:
        """Catch up and follow in background threads until ``until`` (or :meth:`stop`) is set."""
        self.start()
        follower = self._follower
        assert follower is not None  # noqa: S101 - just started
        while not follower.stop_event.is_set():
            if until is not None and until.wait(0.2):
                break
            if until is None:
                follower.stop_event.wait(0.2)
        self.stop()

    def status(self) -> list[dict[str, Any]]:
        """Per read model: position, lag (events, seconds), rows, counts, errors, halt, lease owner."""
        return status_rows(self.engine, self.models, self._errors, running=self.running)

    def close(self) -> None:
        """Stop following and release the log reader and the view store; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._untie()
        self.stop()
        self.reader.close()
        self.views.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
