"""The task controller: launch, cancel and resume tasks whose every change is an event.

See ``docs/tasks.md`` for the guide. In short: a controller instance has a
unique owner token; it claims each run it executes with a lease recorded in the
task's stream, renews it every ``lease / 3``, and a housekeeping thread flushes
coalesced progress, renews leases and adopts tasks of its name whose lease
expired (their controller died).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

from phaselog.domain.errors import (
    ConcurrencyConflict,
    NotFound,
    PhaselogError,
    StoreUnavailable,
    ValidationFailed,
)
from phaselog.domain.events import utcnow
from phaselog.domain.ids import InvalidStreamId, check_id
from phaselog.domain.task import (
    ControllerClosed,
    StaleRun,
    TaskAggregate,
    TaskAlreadyRunning,
    TaskClaimHeld,
    TaskState,
    task_stream_id,
)
from phaselog.runtime.lifetimes import sync_store, tie
from phaselog.runtime.positions import Positioned
from phaselog.runtime.task_models import TaskStatus, encode_metadata, status_of
from phaselog.runtime.task_runner import ActiveTask, TaskRunner, deliver_completion, drive_run
from phaselog.runtime.task_sweep import SweepMemo

if TYPE_CHECKING:
    from collections.abc import Callable

    from phaselog.runtime.ports import EventStore as Store
    from phaselog.runtime.ports import KeepsSyncStore

__all__ = ["TaskController"]

log = logging.getLogger("phaselog.tasks")

DEFAULT_LEASE = timedelta(seconds=10)
DEFAULT_PROGRESS_INTERVAL = timedelta(milliseconds=200)
_RESUME_ATTEMPTS = 3


class TaskController(Positioned):
    """Runs the tasks of one controller ``name`` on a store, resuming them after a restart.

    ``lease`` is how long a claim lasts without renewal (a dead controller's
    tasks are taken over after it); ``progress_interval`` bounds how often
    progress is written; ``sweep_interval`` (default ``lease / 2``) is how
    often expired claims of this controller's tasks are looked for.
    :attr:`position` is the newest global position committed by this
    controller's launches, cancellations and adoptions (a run's own writes
    are on its :class:`ActiveTask`'s ``position``).
    """

    def __init__(  # noqa: PLR0913 - the public signature plus keyword-only tuning
        self,
        store: Store | KeepsSyncStore,
        name: str,
        runner: TaskRunner,
        *,
        max_workers: int = 16,
        lease: timedelta = DEFAULT_LEASE,
        progress_interval: timedelta = DEFAULT_PROGRESS_INTERVAL,
        sweep_interval: timedelta | None = None,
    ) -> None:
        check_id(name, "task controller name")
        if ":" in name:
            raise InvalidStreamId(f"task controller name must contain no ':', got {name!r}")
        if max_workers < 1:
            raise ValidationFailed(f"max_workers must be at least 1, got {max_workers}")
        if lease <= timedelta(0) or progress_interval < timedelta(0):
            raise ValidationFailed("lease must be positive and progress_interval not negative")
        self.store = sync_store(store, "TaskController")
        self.name = name
        self.runner = runner
        self.lease = lease
        self.progress_interval = progress_interval
        self.sweep_interval = sweep_interval if sweep_interval is not None else lease / 2
        self.owner = f"{name}/{uuid.uuid4().hex}"
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[str, ActiveTask] = {}
        self._futures: dict[str, Future[None]] = {}
        self.max_workers = max_workers
        self._sweep_soon = threading.Event()
        self._at_capacity = False
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"task-{name}")
        self._memo = SweepMemo()
        # How often the runs here are tended (leases renewed, progress flushed), also mid-sweep.
        self._tick = max(0.01, min(self.progress_interval.total_seconds(), lease.total_seconds() / 3) / 2)
        self._last_tend = self._last_flush = time.monotonic()
        self._resume(attempts=_RESUME_ATTEMPTS)
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name=f"task-{name}-housekeeping", daemon=True
        )
        self._housekeeper.start()
        self._untie = tie(self.store, self.close)  # closing the store closes this controller first

    # -- public API ---------------------------------------------------------------------------
    def launch_task(
        self,
        task_id: str,
        *,
        metadata: object = None,
        on_status: Callable[[TaskStatus], Any] | None = None,
        on_state: Callable[[TaskState], Any] | None = None,
    ) -> None:
        """Record a new run of ``task_id`` (Pending, claimed by this controller) and start it.

        ``metadata`` is a pydantic model, a dict or a JSON string (None for none:
        a relaunch takes the new launch's metadata, as the original controller
        does). ``on_status``/``on_state`` receive the final status/state once.
        Raises :class:`ValidationFailed` for bad input and
        :class:`TaskAlreadyRunning` when the id's run is still active; nothing
        is written then.
        """
        self._check_open()
        self._check_id(task_id)
        md = encode_metadata(metadata)
        sid = task_stream_id(self.name, task_id)
        with self._lock:
            if task_id in self._active:
                msg = f"task {task_id!r} of controller {self.name!r} is already running here"
                raise TaskAlreadyRunning(msg)
        for _ in range(5):
            now = utcnow()
            try:
                agg = self.store.load(sid, TaskAggregate)
            except NotFound:
                agg = TaskAggregate.launch(self.name, task_id, md, self.owner, now + self.lease)
            else:
                agg.relaunch(md, self.owner, now + self.lease)
            try:
                self._committed(self.store.save(agg))
                break
            except ConcurrencyConflict:
                continue  # a concurrent launch, cancel or delivery: look again
        else:
            raise ConcurrencyConflict(f"task {task_id!r}: launch kept conflicting with other writers")
        self._start(agg, on_status=on_status, on_state=on_state)

    def cancel_task(self, task_id: str) -> None:
        """Best-effort cancellation: recorded durably, signalled to whoever runs the task.

        No effect on finished tasks; :class:`NotFound` for an unknown id.
        """
        sid = task_stream_id(self.name, task_id)
        with self._lock:
            local = self._active.get(task_id)
        for _ in range(5):
            agg = self.store.load(sid, TaskAggregate)
            if not agg.request_cancel():
                break
            try:
                self._committed(self.store.save(agg))
                break
            except ConcurrencyConflict:
                continue
        if local is not None and local.state.is_active:
            local.ctx.cancel("cancel")
        elif agg.state.is_active and not self._closing.is_set():
            self._adopt(sid, force=True)  # an orphan: run it here, it will see the request and end Canceled

    def list_tasks(self) -> list[str]:
        """Ids of every task this controller name has ever launched, sorted."""
        prefix = f"task:{self.name}:"
        return [sid.removeprefix(prefix) for sid in self.store.stream_ids(prefix)]

    def task_status(self, task_id: str) -> TaskStatus:
        """Return the task's status from the store (with unflushed progress when it runs here)."""
        sid = task_stream_id(self.name, task_id)
        try:
            agg = self.store.load(sid, TaskAggregate)
        except NotFound:
            raise NotFound(f"no task {task_id!r} in controller {self.name!r}") from None
        with self._lock:
            local = self._active.get(task_id)
        if local is not None and local.run == agg.run:
            return status_of(agg, (p.current, p.total) if (p := local.get_progress()) else None)
        return status_of(agg)

    def active_tasks(self) -> list[str]:
        """Ids of the runs this controller instance currently owns."""
        with self._lock:
            return sorted(self._active)

    def close(self, timeout: float = 5.0) -> None:
        """Stop: cancel running contexts (tasks stay resumable), release claims, end threads.

        Waits at most ``timeout`` seconds for runner hooks to return.
        """
        if self._closing.is_set():
            return
        self._closing.set()
        self._untie()
        with self._lock:
            tasks = list(self._active.values())
            futures = list(self._futures.values())
        for task in tasks:
            task.detach("shutdown")
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        for fut in futures:
            try:
                fut.exception(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: S112 - a timeout or cancelled future; the claim is released below
                continue
        self._housekeeper.join(max(0.0, deadline - time.monotonic()))
        for task in tasks:
            task.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closing.is_set():
            raise ControllerClosed(f"task controller {self.name!r} is closed")

    @staticmethod
    def _check_id(task_id: object) -> None:
        check_id(task_id, "task id")

    def _start(
        self,
        agg: TaskAggregate,
        *,
        on_status: Callable[[TaskStatus], Any] | None = None,
        on_state: Callable[[TaskState], Any] | None = None,
    ) -> None:
        task = ActiveTask(
            self.store,
            agg,
            owner=self.owner,
            lease=self.lease,
            closing=self._closing,
            on_status=on_status,
            on_state=on_state,
        )
        with self._lock:
            self._active[agg.task_id] = task
            try:
                self._futures[agg.task_id] = self._pool.submit(self._execute, task)
            except RuntimeError:  # the pool shut down: the controller is closing
                del self._active[agg.task_id]
                task.release()

    def _execute(self, task: ActiveTask) -> None:
        try:
            ended, error = drive_run(self.runner, task)
            if ended:
                with self._lock:
                    if self._active.get(task.task_id) is task:
                        del self._active[task.task_id]  # a completion callback may relaunch the id
                deliver_completion(self.runner, task, error)
        except StaleRun as exc:
            log.info("task %s: run %d stopped here: %s", task.task_id, task.run, exc)
        except StoreUnavailable as exc:
            log.warning("task %s: run %d abandoned while closing: %s", task.task_id, task.run, exc)
        except Exception:
            log.exception("task %s: controller error", task.task_id)
        finally:
            self._forget(task)

    def _forget(self, task: ActiveTask) -> None:
        with self._lock:
            if self._active.get(task.task_id) is task:
                del self._active[task.task_id]
            fut = self._futures.get(task.task_id)
            if fut is not None and fut.done():
                del self._futures[task.task_id]
        if self._at_capacity:
            self._sweep_soon.set()  # a worker is free and the last sweep left orphans behind

    # -- resuming and housekeeping ----------------------------------------------------------
    def _resume(self, *, attempts: int) -> None:
        """Adopt every open task of this name whose claim is free or expired (see ``docs/tasks.md``).

        Only the streams the store's index lists as open are candidates, and of
        those only the ones :class:`SweepMemo` cannot rule out are loaded. Leases
        of the runs already here are renewed between adoptions, so a long sweep
        never lets them lapse.
        """
        delay = 0.2
        for attempt in range(attempts):
            try:
                heads = self.store.stream_heads(f"task:{self.name}:", open_only=True)
                break
            except PhaselogError as exc:
                if attempt == attempts - 1:
                    log.error("controller %s: cannot list tasks (will retry later): %s", self.name, exc)  # noqa: TRY400 - no traceback needed
                    return
                if self._closing.wait(delay):
                    return
                delay *= 2
        self._at_capacity = False
        for sid in self._memo.candidates(heads, utcnow()):
            if self._closing.is_set():
                return
            with self._lock:
                if len(self._active) >= self.max_workers:
                    self._at_capacity = True  # adopt the rest when a worker frees up
                    return
            try:
                self._adopt(sid, memo=self._memo)
            except Exception as exc:
                log.warning("controller %s: cannot resume %s now (will retry later): %s", self.name, sid, exc)
            if time.monotonic() - self._last_tend >= self._tick:
                self._tend()

    def _adopt(self, sid: str, *, force: bool = False, memo: SweepMemo | None = None) -> None:
        """Claim and start ``sid`` if it is open, its claim is free and a worker is idle."""
        task_id = sid.removeprefix(f"task:{self.name}:")
        with self._lock:
            if task_id in self._active or (not force and len(self._active) >= self.max_workers):
                return
        agg = self.store.load(sid, TaskAggregate)
        now = utcnow()
        if not agg.stream_open:
            if memo is not None:
                memo.closed(sid, agg.version)
            return
        if not agg.claim_is_free(now):
            if memo is not None and agg.lease_expires is not None:
                memo.claimed(sid, agg.version, agg.lease_expires)
            return
        try:
            agg.claim(self.owner, now + self.lease, now)
            self._committed(self.store.save(agg))
        except (ConcurrencyConflict, TaskClaimHeld):
            return  # another controller got it first
        log.info("controller %s: resuming task %s (%s, run %d)", self.name, task_id, agg.state.name, agg.run)
        self._start(agg)

    def _tend(self) -> None:
        """Renew the due leases of the runs here, and flush their progress when it is time."""
        now = time.monotonic()
        flush = now - self._last_flush >= self.progress_interval.total_seconds()
        with self._lock:
            tasks = list(self._active.values())
        for task in tasks:
            try:
                if flush:
                    task.flush_progress()
                task.renew_if_due()
            except StaleRun as exc:
                log.warning("task %s: lost its claim: %s", task.task_id, exc)
            except PhaselogError as exc:
                log.warning("task %s: housekeeping write failed: %s", task.task_id, exc)
        if flush:
            self._last_flush = now
        self._last_tend = time.monotonic()

    def _housekeeping(self) -> None:
        last_sweep = time.monotonic()
        while not self._closing.wait(self._tick):
            self._tend()
            now = time.monotonic()
            if self._sweep_soon.is_set() or now - last_sweep >= self.sweep_interval.total_seconds():
                self._sweep_soon.clear()
                last_sweep = now
                try:
                    self._resume(attempts=1)
                except Exception:
                    log.exception("controller %s: sweep failed", self.name)
