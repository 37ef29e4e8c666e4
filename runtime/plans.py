"""Durable plans: steps with hooks, retries, pauses, time limits, cancellation and guaranteed cleanup.

Every attempt, hook outcome, pause, state write and cleanup of a run is an event in the stream
``plan:<plan_id>``, recorded before the plan moves on; ``resume()`` continues after a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from phaselog.domain import plan as ev
from phaselog.domain.errors import ConcurrencyConflict, InvalidTransition, NotFound, ValidationFailed
from phaselog.domain.events import DomainEvent, utcnow
from phaselog.domain.plan import (
    ErrorInfo,
    PlanCancelled,
    PlanError,
    PlanFailed,
    PlanItem,
    PlanRun,
    PlanTimeout,
    RunRecord,
    RunSummary,
    StepError,
    StepErrorInfo,
    plan_stream_id,
)
from phaselog.runtime.lifetimes import sync_store
from phaselog.runtime.plan_async import AsyncExecution
from phaselog.runtime.plan_lifetime import PlanLifetime
from phaselog.runtime.plan_records import PlanRecords
from phaselog.runtime.plan_state import HookResult, PlanContext, PlanState, Step, run_hook, to_seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from phaselog.runtime.ports import EventStore as Store
    from phaselog.runtime.ports import KeepsSyncStore

__all__ = ["Plan"]

log = logging.getLogger("phaselog.plans")

HOOKS: tuple[Literal["pre_exec", "exec", "post_exec"], ...] = ("pre_exec", "exec", "post_exec")


class Plan(PlanRecords, AsyncExecution, PlanLifetime):
    """A sequence of steps and pauses executed durably as runs of the stream ``plan:<plan_id>``.

    ``limit_duration`` bounds each ``execute()``/``resume()`` call; at the deadline the
    run's context is cancelled, the plan stops waiting for the hook under way and runs
    its cleanup phase, each cleanup hook bounded by ``cleanup_limit`` (default: the
    same as ``limit_duration``). ``grace`` is how long a cancelled or timed-out hook is
    given to return before the plan stops waiting for it. :attr:`position` is the
    newest global position the plan's commits (runs, state writes) reached.
    """

    def __init__(  # noqa: PLR0913 - the documented options plus two bounds
        self,
        store: Store | KeepsSyncStore,
        plan_id: str,
        *,
        continue_on_error: bool = False,
        limit_duration: timedelta | None = None,
        cleanup_limit: timedelta | None = None,
        grace: timedelta = timedelta(seconds=1),
    ) -> None:
        self._stream = plan_stream_id(plan_id)  # the stream-id rule: InvalidStreamId before anything else
        self._store, self._plan_id = sync_store(store, "Plan"), plan_id
        self.continue_on_error = continue_on_error
        self._limit = None if limit_duration is None else to_seconds(limit_duration, "limit_duration")
        cleanup = cleanup_limit if cleanup_limit is not None else limit_duration
        self._cleanup_limit = None if cleanup is None else to_seconds(cleanup, "cleanup_limit")
        self._grace = to_seconds(grace, "grace")
        self._items: list[Step | float] = []
        self._steps: dict[str, Step] = {}
        self._lock = threading.RLock()
        self._busy, self._agg = False, cast("PlanRun | None", None)
        self._live_errors: dict[str, BaseException] = {}
        self._live_cleanup_errors: dict[str, BaseException] = {}
        self._refresh()
        self.state = PlanState(self)
        self._start_lifetime(self._store)

    # -- building -------------------------------------------------------------------------
    @property
    def plan_id(self) -> str:
        """The plan's id."""
        return self._plan_id

    def add_step(self, step: Step) -> Plan:
        """Append a step; its name must be unique in this plan and its retries >= 0."""
        if not isinstance(step, Step):
            raise ValidationFailed(f"{step!r} does not implement the Step protocol")
        name = step.name
        if not isinstance(name, str) or not name:
            raise ValidationFailed(f"a step needs a non-empty string name, got {name!r}")
        if name in self._steps:
            raise ValidationFailed(f"plan {self._plan_id!r} already has a step named {name!r}")
        self._check_retries(step)
        self._steps[name] = step
        self._items.append(step)
        return self

    def add_pause(self, duration: float | timedelta) -> Plan:
        """Pause after the latest step added (seconds or a timedelta >= 0); ignored during cleanup."""
        self._items.append(to_seconds(duration, "a pause"))
        return self

    @staticmethod
    def _check_retries(step: Step) -> int:
        retries = step.retries()
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationFailed(f"step {step.name!r}: retries() must be an integer >= 0, got {retries!r}")
        return retries

    def _layout(self) -> list[PlanItem]:
        return [
            PlanItem(kind="pause", seconds=item)
            if isinstance(item, float)
            else PlanItem(kind="step", name=item.name)
            for item in self._items
        ]

    # -- reading ----------------------------------------------------------------------------
    @property
    def needs_resume(self) -> bool:
        """True when the latest recorded run did not finish (call :meth:`resume`)."""
        with self._lock:
            self._refresh()
            return self._agg is not None and self._agg.unfinished

    def current_run(self) -> RunRecord | None:
        """A copy of the latest run's record (None before the first run)."""
        with self._lock:
            self._refresh()
            current = None if self._agg is None else self._agg.current
            return None if current is None else current.model_copy(deep=True)

    def runs(self) -> list[RunSummary]:
        """The finished runs, oldest first."""
        with self._lock:
            self._refresh()
            return [] if self._agg is None else list(self._agg.history)

    # -- recording (the core is PlanRecords) ------------------------------------------------
    def state_lock(self) -> threading.RLock:
        """The lock guarding the plan's aggregate (this and the next two serve PlanState)."""
        return self._lock

    def state_values(self) -> dict[str, Any]:
        """The plan's current state values."""
        return {} if self._agg is None else self._agg.state

    def record_state(self, values: dict[str, Any], deleted: list[str]) -> None:
        """Record a state write; blind writes are retried after a concurrent append."""
        for attempt in range(3):
            run = self._run_no() if self._agg is not None and self._agg.unfinished else 0
            try:
                self._record((ev.StateWritten, {"run": run, "values": values, "deleted": deleted}))
            except ConcurrencyConflict:
                if attempt == 2:
                    raise
            else:
                return

    # -- executing ----------------------------------------------------------------------------
    def execute(self, ctx: PlanContext | None = None) -> None:
        """Run the plan as a new run; return on success, else raise PlanFailed/PlanCancelled/PlanTimeout.

        Raises :class:`InvalidTransition` when the latest run is unfinished (use :meth:`resume`).
        """
        self._guarded(self._start_run, ctx)

    def resume(self, ctx: PlanContext | None = None) -> None:
        """Continue the unfinished latest run (after a crash); same outcomes as :meth:`execute`.

        The first step not yet finished runs again (an interrupted attempt does not use up a
        retry); a cleanup that had started is not run again but recorded as abandoned.
        """
        self._guarded(self._resume_run, ctx)

    def _guarded(self, prepare: Callable[[], None], ctx: PlanContext | None) -> None:
        with self._lock:
            if self._busy:
                raise InvalidTransition(f"plan {self._plan_id!r} is already executing in this process")
            if self.closed:
                raise InvalidTransition(f"plan {self._plan_id!r} is closed")
            self._busy = True
        try:
            with self._lock:
                self._refresh()
                self._live_errors.clear()
                self._live_cleanup_errors.clear()
                prepare()
            self._drive(ctx)
        finally:
            self._busy = False

    def _start_run(self) -> None:
        if self._agg is not None and self._agg.unfinished:
            raise InvalidTransition(
                f"plan {self._plan_id!r}: run {self._agg.last_run} is unfinished; call resume()"
            )
        for step in self._steps.values():
            self._check_retries(step)
        self._record(
            (
                ev.RunStarted,
                {
                    "run": self._run_no() + 1,
                    "layout": self._layout(),
                    "continue_on_error": self.continue_on_error,
                    "limit_seconds": self._limit,
                },
            )
        )

    def _resume_run(self) -> None:
        agg = self._agg
        if agg is None or agg.current is None:
            raise NotFound(f"plan {self._plan_id!r} has no run to resume")
        rec = agg.current
        if rec.finished:
            raise InvalidTransition(f"plan {self._plan_id!r}: run {rec.run} already finished")
        recorded = [item.name for item in rec.layout if item.kind == "step"]
        if recorded != list(self._steps):
            raise ValidationFailed(
                f"plan {self._plan_id!r}: run {rec.run} has steps {recorded}, "
                f"this plan has {list(self._steps)}"
            )
        events: list[tuple[type[DomainEvent], dict[str, Any]]] = [(ev.RunResumed, {"run": rec.run})]
        if rec.active_step is not None:
            events.append(
                (
                    ev.AttemptInterrupted,
                    {"run": rec.run, "step": rec.active_step, "attempt": rec.attempts[rec.active_step]},
                )
            )
        events.extend(
            (ev.CleanupAbandoned, {"run": rec.run, "step": name})
            for name in rec.cleanup_started
            if name not in rec.cleanup_done
        )
        self._record(*events)

    def _current(self) -> RunRecord:
        assert self._agg is not None  # noqa: S101 - a run was recorded before driving
        assert self._agg.current is not None  # noqa: S101
        return self._agg.current

    def _drive(self, caller: PlanContext | None) -> None:
        deadline = None if self._limit is None else time.monotonic() + self._limit
        ctx = PlanContext(caller, deadline=deadline)
        self._run_started(ctx)
        try:
            if self._current().status == "running":
                outcome = self._run_items(ctx)
                rec = self._current()
                self._run_event(ev.CleanupPhaseStarted, outcome=outcome, order=list(reversed(rec.succeeded)))
            self._cleanup_phase()
            self._finish()
        finally:
            self._run_started(None)

    def _run_items(self, ctx: PlanContext) -> Literal["succeeded", "failed", "cancelled", "timed_out"]:
        rec = self._current()
        for index, item in enumerate(rec.layout):
            rec = self._current()
            if ctx.expired() or (rec.failed and not rec.continue_on_error):
                break
            if item.kind == "pause":
                if index not in rec.pauses_done:
                    self._pause(index, item.seconds or 0.0, ctx)
            elif item.name is not None and not rec.step_done(item.name):
                self._run_step(self._steps[item.name], ctx)
        rec = self._current()
        if ctx.reason == "timed_out":
            return "timed_out"
        if ctx.cancelled:
            return "cancelled"
        return "failed" if rec.errors else "succeeded"

    def _pause(self, index: int, seconds: float, ctx: PlanContext) -> None:
        started = self._current().pauses_started.get(index)
        if started is None:
            self._run_event(ev.PauseStarted, index=index, seconds=seconds)
            remaining = seconds
        else:  # resumed in the middle of a pause: wait only the rest
            remaining = seconds - (utcnow() - started).total_seconds()
        end = time.monotonic() + max(0.0, remaining)
        interrupted = False
        while (left := end - time.monotonic()) > 0:
            if ctx.deadline is not None:
                left = min(left, max(0.0, ctx.deadline - time.monotonic()))
            if ctx.wait(left) or ctx.expired():
                interrupted = True
                break
        self._run_event(ev.PauseFinished, index=index, interrupted=interrupted)

    def _run_step(self, step: Step, ctx: PlanContext) -> bool:
        name = step.name
        retries = self._check_retries(step)
        while not ctx.expired():
            attempt = self._current().attempts.get(name, 0) + 1
            self._run_event(ev.AttemptStarted, step=name, attempt=attempt)
            outcomes: list[tuple[type[DomainEvent], dict[str, Any]]] = []  # recorded with the result
            for hook in HOOKS:
                if hook != "pre_exec" and ctx.expired():
                    self._run_events(*outcomes)  # pre_exec at least succeeded: never empty
                    return False  # stopping: the attempt is left unfinished, the step not succeeded
                status, exc, reason = self._call_hook(getattr(step, hook), ctx, f"{name}.{hook}")
                about = {"step": name, "attempt": attempt, "hook": hook}
                if status == "abandoned":
                    self._run_events(*outcomes, (ev.HookAbandoned, {**about, "reason": reason}))
                    return False
                if exc is not None:
                    break
                outcomes.append((ev.HookSucceeded, about))
            if exc is None:
                succeeded = (ev.StepSucceeded, {"step": name, "attempts": attempt})
                self._run_events(*outcomes, succeeded, durable=False)  # made durable by the next commit
                return True
            log.info("plan %s step %s attempt %d failed: %r", self._plan_id, name, attempt, exc)
            failed = (ev.HookFailed, {**about, "error": ErrorInfo.of(exc)})
            if ctx.cancelled and isinstance(exc, PlanCancelled | PlanTimeout):
                self._run_events(*outcomes, failed)
                return False  # the hook noticed the cancellation: not a step error
            if ctx.cancelled or self._current().failures.get(name, 0) + 1 > retries:
                self._live_errors[name] = exc
                step_failed = (ev.StepFailed, {"step": name, "error": ErrorInfo.of(exc)})
                self._run_events(*outcomes, failed, step_failed)
                return False
            self._run_events(*outcomes, failed)
        return False

    def _call_hook(
        self, fn: Callable[[PlanContext, PlanState], object], ctx: PlanContext, what: str
    ) -> HookResult:
        result = run_hook(fn, ctx, self.state, grace=self._grace, name=f"plan:{self._plan_id}:{what}")
        if result[0] == "abandoned":
            log.warning(
                "plan %s: stopped waiting for %s (%s); it may still be running",
                self._plan_id,
                what,
                ctx.reason,
            )
        return result

    def _cleanup_phase(self) -> None:
        rec = self._current()
        for name in rec.cleanup_order:
            if name in self._current().cleanup_started or not getattr(self._steps[name], "has_cleanup", True):
                continue  # done, or abandoned after a crash (at most once), or nothing to clean up
            self._run_event(ev.CleanupStarted, step=name)
            deadline = None if self._cleanup_limit is None else time.monotonic() + self._cleanup_limit
            cctx = PlanContext(deadline=deadline)
            status, exc, _ = self._call_hook(self._steps[name].cleanup, cctx, f"{name}.cleanup")
            if status == "abandoned":
                limit = self._cleanup_limit
                exc = PlanTimeout(f"cleanup of step {name!r} exceeded its time limit of {limit}s")
            if exc is not None:
                log.warning("plan %s: cleanup of step %s failed: %r", self._plan_id, name, exc)
                self._live_cleanup_errors[name] = exc
            finished = {"step": name, "error": None if exc is None else ErrorInfo.of(exc)}
            self._run_events((ev.CleanupFinished, finished), durable=False)  # made durable by the next commit

    def _finish(self) -> None:
        rec = self._current()
        outcome = rec.outcome or "failed"
        status = "failed" if outcome == "succeeded" and rec.cleanup_errors else outcome
        self._run_event(ev.RunFinished, status=status, errors=rec.errors, cleanup_errors=rec.cleanup_errors)
        if status == "succeeded":
            return
        errors = self._errors(rec.errors, self._live_errors)
        cleanup_errors = self._errors(rec.cleanup_errors, self._live_cleanup_errors)
        where = f"plan {self._plan_id!r} run {rec.run}"
        error_cls: type[PlanError]
        if status == "cancelled":
            error_cls, message = PlanCancelled, f"{where} was cancelled"
        elif status == "timed_out":
            error_cls, message = PlanTimeout, f"{where} exceeded its duration limit of {self._limit}s"
        else:
            error_cls = PlanFailed
            parts = [f"{e.step}: {type(e.error).__name__}: {e.error}" for e in errors]
            parts += [f"cleanup of {e.step}: {type(e.error).__name__}: {e.error}" for e in cleanup_errors]
            message = f"{where} failed: " + "; ".join(parts)
        raise error_cls(message, errors, cleanup_errors, plan_id=self._plan_id, run=rec.run)

    @staticmethod
    def _errors(recorded: list[StepErrorInfo], live: dict[str, BaseException]) -> list[StepError]:
        return [StepError(e.step, live[e.step]) if e.step in live else e.as_step_error() for e in recorded]

    def __repr__(self) -> str:
        return f"Plan({self._plan_id!r}, steps={list(self._steps)})"
