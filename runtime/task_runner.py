"""One run of one task: the :class:`ActiveTask` handle and the :class:`TaskRunner` protocol.

Every write of a run goes through :meth:`ActiveTask._write`, which checks the
run number and claim owner against the aggregate, appends with optimistic
concurrency (reloading on conflict) and retries while the store is
unavailable. Progress is only buffered in memory by :meth:`ActiveTask.set_progress`
and written by :meth:`ActiveTask.flush_progress` (called by the controller at
most every ``progress_interval``) or together with the next durable write.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from phaselog.domain.errors import (
    ConcurrencyConflict,
    NotFound,
    StoreClosed,
    StoreUnavailable,
    ValidationFailed,
)
from phaselog.domain.events import utcnow
from phaselog.domain.retry import Backoff
from phaselog.domain.task import StaleRun, TaskAggregate, TaskCanceled, TaskState
from phaselog.runtime.positions import Positioned
from phaselog.runtime.retry import retry
from phaselog.runtime.task_models import CancelContext, Progress, TaskStatus, decode_metadata, status_of
from phaselog.runtime.telemetry import span

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from phaselog.runtime.ports import EventStore as Store

__all__ = ["ActiveTask", "TaskRunner", "deliver_completion", "drive_run"]

log = logging.getLogger("phaselog.tasks")
_INT64 = 2**63  # integers the read models store (BIGINT on PostgreSQL, INTEGER on SQLite)
T = TypeVar("T")

_MAX_BACKOFF = 1.0
_WRITE_BACKOFF = Backoff(first=0.05, maximum=_MAX_BACKOFF)  # waits between writes while the store is down
_RELEASE_RETRIES = Backoff(first=0.0, maximum=0.0, attempts=3)  # a release retries at once, after a reload
_RELEASE_ERRORS = (ConcurrencyConflict, StoreUnavailable)


class TaskRunner(Protocol):
    """What a controller calls for each task; see ``docs/tasks.md`` for the state rules."""

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Prepare the task; returning moves it to Running."""

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Do the work; returning moves it to Completed."""

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Handle the end of a run (``args`` holds the exception when it Failed)."""


class ActiveTask(Positioned):
    """The handle of a task run that this controller instance currently owns.

    :attr:`position` is the newest global position this run's writes committed
    (state changes, log entries, progress, its claim), for ``projections.wait_for``.
    """

    def __init__(  # noqa: PLR0913 - all keyword-only wiring from the controller
        self,
        store: Store,
        agg: TaskAggregate,
        *,
        owner: str,
        lease: timedelta,
        closing: threading.Event,
        on_status: Callable[[TaskStatus], Any] | None = None,
        on_state: Callable[[TaskState], Any] | None = None,
    ) -> None:
        self._store = store
        self._agg = agg
        self._owner = owner
        self._lease = lease
        self._closing = closing
        self.run = agg.run
        self.on_status = on_status
        self.on_state = on_state
        self.ctx = CancelContext()
        self._write_lock = threading.RLock()
        self._progress_lock = threading.Lock()
        self._progress = agg.progress
        self._progress_seq = 0
        self._flushed_seq = 0
        self._renewed_at = time.monotonic()
        self.detached = False
        self.progress_writes = 0
        if agg.cancel_requested and agg.state.is_active:
            self.ctx.cancel("cancel")

    # -- the public handle (ActiveTask) --------------------------------------------------------
    @property
    def task_id(self) -> str:
        """The task's id within its controller."""
        return self._agg.task_id

    @property
    def state(self) -> TaskState:
        """The run's state as last recorded."""
        return self._agg.state

    def load_task_metadata(self, model_type: type[T]) -> T | None:
        """Decode the task's JSON metadata as ``model_type`` (None when it has none)."""
        return decode_metadata(self._agg.metadata, model_type)

    def set_progress(self, current: int, total: int) -> None:
        """Remember the latest progress; it is written at most every ``progress_interval``.

        Never waits for the store: the value is flushed by the controller in
        the background and always before any state change or final status.
        """
        if not (0 <= current < _INT64 and 0 <= total < _INT64):  # what every store's read models hold
            raise ValidationFailed(f"progress must be in 0..2**63-1, got {current}/{total}")
        with self._progress_lock:
            self._progress = (int(current), int(total))
            self._progress_seq += 1

    def get_progress(self) -> Progress | None:
        """Return the latest progress (including updates not yet written)."""
        with self._progress_lock:
            prog = self._progress
        return Progress(current=prog[0], total=prog[1]) if prog is not None else None

    def add_log_entry(self, level: int, msg: str) -> None:
        """Append a log entry; returns once it is durable (retrying while the store is down).

        Raises :class:`TaskCanceled` when this run no longer owns the task
        (the controller closed or another controller took it over).
        """
        if not -_INT64 <= int(level) < _INT64:
            raise ValidationFailed(f"log level must fit in 64 bits, got {level}")
        try:
            self._write(lambda agg: agg.log(self.run, self._owner, int(level), str(msg)))
        except StaleRun as exc:
            raise TaskCanceled(str(exc)) from exc

    def status(self) -> TaskStatus:
        """Return the run's status, with the latest in-memory progress."""
        with self._progress_lock:
            prog = self._progress
        return status_of(self._agg, prog)

    # -- used by the controller -------------------------------------------------------------
    def change_state(self, state: TaskState, *, error: str | None = None) -> None:
        """Flush progress, optionally log ``error``, and record ``state`` durably."""

        def mutate(agg: TaskAggregate) -> None:
            if error is not None:
                agg.log(self.run, self._owner, logging.ERROR, error)
            agg.change_state(self.run, self._owner, state)

        self._write(mutate)

    def mark_delivered(self) -> None:
        """Record that the run's completion was delivered (best effort on a stale run)."""
        self._write(lambda agg: agg.mark_delivered(self.run, self._owner))

    def flush_progress(self, *, persistent: bool = False) -> bool:
        """Write buffered progress if any; True when something was written."""
        with self._progress_lock:
            dirty = self._progress_seq != self._flushed_seq
        if not dirty:
            return False
        self._write(lambda _agg: None, persistent=persistent)
        return True

    def renew_if_due(self) -> None:
        """Renew the lease when a third of it passed (also notices remote cancel requests)."""
        if time.monotonic() - self._renewed_at < self._lease.total_seconds() / 3:
            return
        now = utcnow()
        self._write(lambda agg: agg.claim(self._owner, now + self._lease, now), persistent=False)
        self._renewed_at = time.monotonic()

    def release(self) -> None:
        """Give up the claim so another controller can resume the run at once (best effort)."""

        def attempt() -> None:
            self._agg.release(self.run, self._owner)
            self._committed(self._store.save(self._agg))

        with self._write_lock:
            try:  # after a conflict or an outage: reload and try again (not when the run was replaced)
                retry(attempt, policy=_RELEASE_RETRIES, retry_on=_RELEASE_ERRORS, when=self._retry_release)
            except StaleRun:
                return
            except _RELEASE_ERRORS as exc:
                log.warning("task %s: claim not released (%s); it lapses", self.task_id, exc)

    def _retry_release(self, exc: BaseException) -> bool:
        return not isinstance(exc, StaleRun) and self._reload()

    def detach(self, reason: str) -> None:
        """Stop writing for this run and cancel its context (``"shutdown"`` or ``"lost"``)."""
        self.detached = True
        self.ctx.cancel("lost" if reason == "lost" else "shutdown")

    # -- the write path ---------------------------------------------------------------------
    def _reload(self) -> bool:
        try:
            self._agg = self._store.load(self._agg.id, TaskAggregate)
        except (StoreUnavailable, NotFound) as exc:
            log.debug("task %s: reload failed: %s", self.task_id, exc)
            return False
        return True

    def _write(self, mutate: Callable[[TaskAggregate], None], *, persistent: bool = True) -> None:
        """Apply ``mutate`` plus buffered progress to the current run and save it.

        Reloads and retries on :class:`ConcurrencyConflict`; on
        :class:`StoreUnavailable` retries with backoff until the controller
        closes (``persistent``) or raises at once (housekeeping writes).
        Raises :class:`StaleRun` (and detaches) when the run lost the task.
        """
        delay = 0.05
        with self._write_lock:
            fresh = True
            while True:
                if self.detached:
                    raise StaleRun(f"task {self.task_id!r}: run {self.run} is detached from this controller")
                if not fresh and not self._reload():
                    self._backoff(delay, persistent)
                    delay = _WRITE_BACKOFF.after(delay)
                    continue
                fresh = False
                agg = self._agg
                try:
                    agg.check_run(self.run, self._owner)
                except StaleRun:
                    self.detach("lost")
                    raise
                with self._progress_lock:
                    seq, prog = self._progress_seq, self._progress
                try:
                    if seq != self._flushed_seq and prog is not None:
                        agg.set_progress(self.run, self._owner, *prog)
                        self.progress_writes += 1
                    mutate(agg)
                    self._committed(self._store.save(agg))
                except ConcurrencyConflict:
                    continue
                except StoreUnavailable as exc:
                    self._backoff(delay, persistent, exc)
                    delay = _WRITE_BACKOFF.after(delay)
                    continue
                except Exception:
                    self._reload()  # drop the half-applied events
                    raise
                self._flushed_seq = seq
                if agg.cancel_requested and agg.state.is_active:
                    self.ctx.cancel("cancel")
                return

    def _backoff(self, delay: float, persistent: bool, error: StoreUnavailable | None = None) -> None:
        """Wait ``delay`` before the next attempt, or raise: not persistent, closing, or the store closed."""
        if isinstance(error, StoreClosed):
            raise error  # final: a closed store does not come back
        if error is not None:
            log.warning("task %s: store unavailable, retrying: %s", self.task_id, error)
        if not persistent or self._closing.wait(delay):
            raise StoreUnavailable(f"task {self.task_id!r}: store unavailable")


def _call(task: ActiveTask, hook: Callable[..., Any]) -> tuple[TaskState | None, BaseException | None]:
    """Run a hook; return (end state, or None to go on; the error it raised)."""
    try:
        with span("phaselog.task.hook", task_id=task.task_id, hook=getattr(hook, "__name__", "hook")):
            hook(task.ctx, task)
    except TaskCanceled as exc:
        return TaskState.CANCELED, exc
    except Exception as exc:
        return TaskState.FAILED, exc
    return None, None


def drive_run(runner: TaskRunner, task: ActiveTask) -> tuple[bool, BaseException | None]:
    """Run the hooks of ``task`` from its recorded state and record its end state.

    Return ``(ended, error)``: ``ended`` is False when the run was detached
    (controller closed or claim lost), in which case nothing was written and
    the task stays resumable. Raises :class:`StaleRun` when a write found the
    run superseded.
    """
    final: TaskState | None = None
    error: BaseException | None = None
    if task.state.is_active and task.ctx.cancelled:
        final = TaskState.CANCELED
    if final is None and task.state is TaskState.PENDING:
        final, error = _call(task, runner.on_task_pending)
        if final is None and task.ctx.reason == "cancel":
            final = TaskState.CANCELED
        if final is None and not task.detached:
            task.change_state(TaskState.RUNNING)
    if final is None and task.state is TaskState.RUNNING:
        final, error = _call(task, runner.on_task_running)
        final = final or TaskState.COMPLETED
    if task.detached:
        return False, None
    if final is not None:
        text = f"{type(error).__name__}: {error}" if final is TaskState.FAILED else None
        task.change_state(final, error=text)
    return True, error


def deliver_completion(runner: TaskRunner, task: ActiveTask, error: BaseException | None) -> None:
    """Call ``on_task_completed`` and the launch callbacks once, then record the delivery."""
    state = task.state
    status = task.status()
    try:
        args = (error,) if state is TaskState.FAILED and error is not None else ()
        with span("phaselog.task.hook", task_id=task.task_id, hook="on_task_completed"):
            runner.on_task_completed(task.ctx, task, state, *args)
    except Exception:
        log.exception("task %s: on_task_completed raised", task.task_id)
    callbacks: list[Callable[[], Any]] = []
    if task.on_status is not None:
        callbacks.append(partial(task.on_status, status))
    if task.on_state is not None:
        callbacks.append(partial(task.on_state, state))
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("task %s: completion callback raised", task.task_id)
    try:
        task.mark_delivered()
    except StaleRun:
        log.debug("task %s: run %d superseded before its delivery was recorded", task.task_id, task.run)
