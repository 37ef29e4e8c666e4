"""Following live: one thread per read model, each working only while it holds that model's lease.

Several runners (threads here, or processes anywhere) may follow the same store.
A read model's lease (a row of ``phaselog_projection_state``: owner and expiry
by the database clock) is held by one runner at a time; a housekeeping thread
renews this runner's leases every third of ``lease_seconds``, and every batch
re-reads the lease inside its own transaction, so a runner that knows it lost
its lease commits nothing more (exactly once rests on the tracking-row lock a
batch holds, not on the lease). A runner killed with ``kill -9`` stops renewing;
its open batch rolls back with its connection, and another runner takes the
lease over once it expires. A clean stop releases the leases at once.

The housekeeping thread also calls ``store.seal()`` every ``seal_interval``
seconds while it holds the ``__seal__`` lease (one sealing runner per store),
on the same :class:`~phaselog.runtime.sealing.SealSchedule` as every writing
store: a failing seal is logged, never raised.
On PostgreSQL a listener thread LISTENs on the recorder's channel and wakes the
followers, and looks at the commit horizon every second, so a stall (an append
in flight for longer than ``stall_warning``) is logged once by a runner that
nobody queries; on SQLite they poll every ``poll_interval``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from phaselog.domain.errors import PhaselogError
from phaselog.domain.retry import Backoff
from phaselog.projections.base import ProjectionHalted
from phaselog.projections.chores import Chore
from phaselog.projections.engine import Engine, LeaseLost, Target
from phaselog.projections.errors import ProjectionBusy
from phaselog.projections.ports import ViewStore
from phaselog.runtime.sealing import SealSchedule

__all__ = ["HORIZON_LOOK_INTERVAL", "SEAL_LEASE", "Follower", "runner_id"]

log = logging.getLogger("phaselog.projections")
_FOLLOW_BACKOFF = Backoff(maximum=5.0)  # a failing read model retries after poll_interval, doubling up to 5 s

SEAL_LEASE = "__seal__"
HORIZON_LOOK_INTERVAL = 1.0  # seconds between a runner's looks at the appends in flight (PostgreSQL)


def runner_id() -> str:
    """A name for this runner that no other runner shares: host, process, random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Follower:
    """The threads of one following runner."""

    def __init__(  # noqa: PLR0913 - the runner's settings
        self,
        engine: Engine,
        targets: Sequence[Target],
        *,
        owner: str,
        poll_interval: float,
        seal_interval: float,
        lock_timeout: float,
        on_error: Callable[[str, str | None], None],
        on_progress: Callable[[], None],
        chores: Sequence[Chore] = (),
    ) -> None:
        self.engine = engine
        self.views: ViewStore = engine.views
        self.targets = list(targets)
        self.owner = owner
        self.poll_interval = poll_interval
        self.seal_interval = seal_interval
        self.lock_timeout = lock_timeout
        self._on_error = on_error
        self._on_progress = on_progress
        self.stop_event = threading.Event()
        self.held: set[str] = set()
        self._held_lock = threading.Lock()
        self._wake = threading.Condition()
        self._ticks = 0
        self._threads: list[threading.Thread] = []
        self.sealing = SealSchedule(seal_interval)
        self.seals = 0
        """Seals this runner made."""
        self.housekeeping_rounds = 0
        self._horizon_looked = 0.0
        self.chores = list(chores)
        """Work done now and then by one runner of the store (e.g. a retention policy)."""

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True while any follower thread runs."""
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        """Start one thread per read model, the housekeeper and (PostgreSQL) the listener."""
        self.stop_event.clear()
        jobs: list[tuple[str, Callable[[], None]]] = [
            (f"phaselog-projection-{t.projection.name}", lambda t=t: self._follow(t))  # type: ignore[misc]
            for t in self.targets
        ]
        jobs.append(("phaselog-projections-housekeeping", self._housekeep))
        jobs.append(("phaselog-projections-wake", self._listen))
        if self.chores:
            jobs.append(("phaselog-projections-chores", self._do_chores))
        self._threads = [threading.Thread(target=job, name=name, daemon=True) for name, job in jobs]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every thread after its current batch and release this runner's leases."""
        self.stop_event.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        try:
            with self.views.translate_errors("releasing leases"), self.views.write([]) as session:
                session.release_leases(self.owner)
        except PhaselogError as exc:
            log.warning("could not release projection leases (they expire by themselves): %s", exc)
        with self._held_lock:
            self.held.clear()

    def wake(self) -> None:
        """Wake every follower (new events may exist)."""
        with self._wake:
            self._ticks += 1
            self._wake.notify_all()

    def _sleep(self, since: int, timeout: float) -> None:
        with self._wake:
            if self._ticks == since and not self.stop_event.is_set():
                self._wake.wait(timeout)

    # -- leases ---------------------------------------------------------------------------------
    def _holds(self, name: str) -> bool:
        with self._held_lock:
            return name in self.held

    def _try_acquire(self, name: str) -> bool:
        with (
            self.views.translate_errors("taking a projection lease"),
            self.views.write([], lock_timeout=self.lock_timeout) as session,
        ):
            session.ensure_state([name])
            got = session.acquire_lease(name, self.owner, self.engine.lease_seconds)
        if got:
            with self._held_lock:
                self.held.add(name)
            log.info("runner %s took the lease on %s", self.owner, name)
        return got

    def _drop(self, name: str) -> None:
        with self._held_lock:
            self.held.discard(name)

    # -- threads --------------------------------------------------------------------------------
    def _follow(self, target: Target) -> None:
        name = target.projection.name
        backoff = self.poll_interval
        idle = max(self.poll_interval, 1.0) if self.engine.reader.kind == "postgresql" else self.poll_interval
        while not self.stop_event.is_set():
            ticks = self._ticks
            try:
                if not self._holds(name) and not self._try_acquire(name):
                    self._sleep(ticks, max(self.poll_interval, self.engine.lease_seconds / 4))
                    continue
                moved = self.engine.batch(target, owner=self.owner, lock_timeout=self.lock_timeout)
            except LeaseLost as exc:
                self._drop(name)
                log.info("%s", exc)
                continue
            except ProjectionBusy:
                self._sleep(ticks, self.poll_interval)
                continue
            except ProjectionHalted as exc:
                self._on_error(name, str(exc))
                self._sleep(ticks, max(idle, 1.0))
                continue
            except PhaselogError as exc:
                self._on_error(name, str(exc))
                log.warning("read model %s: %s; retrying in %.1fs", name, exc, backoff)
                self.stop_event.wait(backoff)
                backoff = _FOLLOW_BACKOFF.after(backoff)
                continue
            backoff = self.poll_interval
            if moved:
                self._on_error(name, None)
                self._on_progress()
            else:
                self._sleep(ticks, idle)

    def _housekeep(self) -> None:
        seal = self.engine.reader.seal
        every = max(0.05, self.engine.lease_seconds / 3)
        while not self.stop_event.wait(every):
            try:
                with self._held_lock:
                    names = sorted(self.held)
                if names:
                    with (
                        self.views.translate_errors("renewing projection leases"),
                        self.views.write([], lock_timeout=self.lock_timeout) as session,
                    ):
                        kept = session.renew_leases(names, self.owner, self.engine.lease_seconds)
                    with self._held_lock:
                        self.held &= kept | (self.held - set(names))
                if seal is not None and self.sealing.enabled:
                    self._maybe_seal(seal)
            except PhaselogError as exc:
                log.warning("projection housekeeping: %s", exc)
            self.housekeeping_rounds += 1

    def _maybe_seal(self, seal: Callable[[], Any]) -> None:
        if not self.sealing.due():
            return
        if not self._holds(SEAL_LEASE) and not self._try_acquire(SEAL_LEASE):
            return
        if self.sealing.last is None:
            self.sealing.start()  # first interval starts when the lease is taken
            return
        if self.sealing.attempt(seal):
            self.seals += 1

    def _do_chores(self) -> None:
        """Run each chore at its interval while holding its lease (renewed by the housekeeper)."""
        due = dict.fromkeys((c.name for c in self.chores), 0.0)
        while not self.stop_event.wait(min(1.0, self.poll_interval)):
            for chore in self.chores:
                lease = f"__chore:{chore.name}__"
                if time.monotonic() < due[chore.name]:
                    continue
                try:
                    if self._holds(lease) or self._try_acquire(lease):
                        due[chore.name] = time.monotonic() + chore.interval
                        chore.run()
                except PhaselogError as exc:
                    due[chore.name] = time.monotonic() + chore.interval
                    log.warning("projection chore %s: %s", chore.name, exc)

    def _listen(self) -> None:
        reader = self.engine.reader
        horizon = reader.horizon if reader.kind == "postgresql" else None
        while not self.stop_event.is_set():
            if reader.kind == "postgresql":
                reader.wait_for_events(1.0, self.stop_event)
            else:
                self.stop_event.wait(self.poll_interval)
            self.wake()
            if horizon is not None:
                self._look_at_horizon(horizon)

    def _look_at_horizon(self, horizon: Callable[[], Any]) -> None:
        """Look at the horizon now and then: the store logs one warning per stall it sees."""
        now = time.monotonic()
        if now - self._horizon_looked < HORIZON_LOOK_INTERVAL:
            return
        self._horizon_looked = now
        try:
            horizon()
        except PhaselogError as exc:
            log.debug("could not look at the commit horizon: %s", exc)
