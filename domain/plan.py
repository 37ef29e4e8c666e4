"""Durable plans: the events of a plan's runs and the ``PlanRun`` aggregate folding them.

One stream ``plan:<plan_id>`` holds every run of one plan. Each ``execute()`` is a
new *run* (numbered 1, 2, ...) and every run event carries its run number, so an
auditor can replay exactly which attempt, hook outcome, pause, state write,
cancellation, timeout and cleanup happened in which run. The plan's shared state
(``PlanState``) belongs to the plan, not to one run: writes accumulate across runs.

This module is pure: it knows nothing about threads, clocks or stores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from phaselog.domain.errors import PhaselogError
from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent

__all__ = [
    "AttemptInterrupted",
    "AttemptStarted",
    "CleanupAbandoned",
    "CleanupFinished",
    "CleanupPhaseStarted",
    "CleanupStarted",
    "ErrorInfo",
    "HookAbandoned",
    "HookFailed",
    "HookSucceeded",
    "PauseFinished",
    "PauseStarted",
    "PlanCancelled",
    "PlanCreated",
    "PlanError",
    "PlanFailed",
    "PlanItem",
    "PlanRun",
    "PlanTimeout",
    "RecordedError",
    "RunFinished",
    "RunRecord",
    "RunResumed",
    "RunStarted",
    "RunSummary",
    "StateDeleted",
    "StateWritten",
    "StepError",
    "StepFailed",
    "StepSucceeded",
    "plan_stream_id",
]

Hook = Literal["pre_exec", "exec", "post_exec"]
Outcome = Literal["succeeded", "failed", "cancelled", "timed_out"]
RunStatus = Literal["running", "cleaning", "succeeded", "failed", "cancelled", "timed_out"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


def plan_stream_id(plan_id: str) -> str:
    """The stream id of a plan: ``plan:<plan_id>``."""
    return f"plan:{plan_id}"


# -- errors ------------------------------------------------------------------------------------
class StepError(NamedTuple):
    """One step error: the step's name and the exception (unpacks as ``(name, exc)``)."""

    step: str
    error: BaseException


class RecordedError(PhaselogError):
    """An exception known only from the event log (it happened before a crash)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class PlanError(PhaselogError):
    """Common base of the three ways a plan run ends badly.

    ``errors`` lists every step error in order; ``cleanup_errors`` lists the
    cleanup hooks that raised (or overran their time limit); ``run`` is the run number.
    """

    def __init__(
        self,
        message: str,
        errors: list[StepError] | None = None,
        cleanup_errors: list[StepError] | None = None,
        *,
        plan_id: str = "",
        run: int = 0,
    ) -> None:
        super().__init__(message)
        self.errors: list[StepError] = list(errors or [])
        self.cleanup_errors: list[StepError] = list(cleanup_errors or [])
        self.plan_id = plan_id
        self.run = run


class PlanCancelled(PlanError):
    """The plan was cancelled (its cleanup phase has run)."""


class PlanTimeout(PlanError):
    """The plan exceeded its duration limit (its cleanup phase has run)."""


class PlanFailed(PlanError):
    """One or more steps (or cleanup hooks) failed; see ``errors`` / ``cleanup_errors``."""


# -- value objects -----------------------------------------------------------------------------
class ErrorInfo(BaseModel):
    """An exception as recorded: its type name and message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc``."""
        if isinstance(exc, RecordedError):
            return cls(type=exc.type_name, message=exc.message)
        return cls(type=type(exc).__name__, message=str(exc))


class StepErrorInfo(BaseModel):
    """A recorded step (or cleanup) error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: str
    error: ErrorInfo

    def as_step_error(self) -> StepError:
        """The error as a :class:`StepError` holding a :class:`RecordedError`."""
        return StepError(self.step, RecordedError(self.error.type, self.error.message))


class PlanItem(BaseModel):
    """One item of a plan's layout: a step (by name) or a pause (in seconds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["step", "pause"]
    name: str | None = None
    seconds: float | None = None


# -- events ------------------------------------------------------------------------------------
class PlanCreated(CreationEvent):
    """The plan's stream begins."""

    TOPIC: ClassVar[str] = "phaselog.plan.PlanCreated"

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        """Plans fold into :class:`PlanRun`."""
        return PlanRun

    def apply(self, aggregate: Any) -> None:
        """Initialise an empty plan."""
        aggregate.state = {}
        aggregate.history = []
        aggregate.current = None


class RunEvent(DomainEvent):
    """An event belonging to one run (0: outside any run)."""

    run: int

    def record(self, aggregate: Any) -> RunRecord:
        """The aggregate's record of this event's run."""
        current: RunRecord | None = aggregate.current
        if current is None or current.run != self.run:
            msg = f"{type(self).__name__} for run {self.run} but the current run is " + (
                "none" if current is None else str(current.run)
            )
            raise PhaselogError(msg)
        return current


class RunStarted(RunEvent):
    """A new run starts with this layout and these options."""

    TOPIC: ClassVar[str] = "phaselog.plan.RunStarted"

    layout: list[PlanItem]
    continue_on_error: bool
    limit_seconds: float | None

    def apply(self, aggregate: Any) -> None:
        """Open a new current run."""
        aggregate.current = RunRecord(
            run=self.run,
            layout=self.layout,
            continue_on_error=self.continue_on_error,
            limit_seconds=self.limit_seconds,
            started_at=self.timestamp,
        )


class RunResumed(RunEvent):
    """A process took over an unfinished run (after a crash)."""

    TOPIC: ClassVar[str] = "phaselog.plan.RunResumed"

    def apply(self, aggregate: Any) -> None:
        """Count the resume."""
        self.record(aggregate).resumes += 1


class AttemptStarted(RunEvent):
    """An attempt of a step begins (attempt numbers are unique per step and run)."""

    TOPIC: ClassVar[str] = "phaselog.plan.AttemptStarted"

    step: str
    attempt: int

    def apply(self, aggregate: Any) -> None:
        """Mark the step as active."""
        rec = self.record(aggregate)
        rec.attempts[self.step] = self.attempt
        rec.active_step = self.step


class HookSucceeded(RunEvent):
    """A pre_exec / exec / post_exec hook returned."""

    TOPIC: ClassVar[str] = "phaselog.plan.HookSucceeded"

    step: str
    attempt: int
    hook: Hook


class HookFailed(RunEvent):
    """A hook raised."""

    TOPIC: ClassVar[str] = "phaselog.plan.HookFailed"

    step: str
    attempt: int
    hook: Hook
    error: ErrorInfo

    def apply(self, aggregate: Any) -> None:
        """Count the failed attempt."""
        rec = self.record(aggregate)
        rec.failures[self.step] = rec.failures.get(self.step, 0) + 1


class HookAbandoned(RunEvent):
    """The plan stopped waiting for a hook (timeout or cancellation); it may still be running."""

    TOPIC: ClassVar[str] = "phaselog.plan.HookAbandoned"

    step: str
    attempt: int
    hook: Hook
    reason: Literal["cancelled", "timed_out"]


class AttemptInterrupted(RunEvent):
    """On resume: this attempt was under way when its process died (it does not use up a retry)."""

    TOPIC: ClassVar[str] = "phaselog.plan.AttemptInterrupted"

    step: str
    attempt: int

    def apply(self, aggregate: Any) -> None:
        """The step is no longer active."""
        self.record(aggregate).active_step = None


class StepSucceeded(RunEvent):
    """All three hooks of a step succeeded in one attempt."""

    TOPIC: ClassVar[str] = "phaselog.plan.StepSucceeded"

    step: str
    attempts: int

    def apply(self, aggregate: Any) -> None:
        """Remember the step for cleanup."""
        rec = self.record(aggregate)
        rec.succeeded.append(self.step)
        rec.active_step = None


class StepFailed(RunEvent):
    """A step failed for good (its retries are used up)."""

    TOPIC: ClassVar[str] = "phaselog.plan.StepFailed"

    step: str
    error: ErrorInfo

    def apply(self, aggregate: Any) -> None:
        """Collect the error."""
        rec = self.record(aggregate)
        rec.failed.append(self.step)
        rec.errors.append(StepErrorInfo(step=self.step, error=self.error))
        rec.active_step = None


class PauseStarted(RunEvent):
    """A pause (the layout item at ``index``) begins."""

    TOPIC: ClassVar[str] = "phaselog.plan.PauseStarted"

    index: int
    seconds: float

    def apply(self, aggregate: Any) -> None:
        """Remember when the pause began (a resumed run waits only the rest)."""
        self.record(aggregate).pauses_started.setdefault(self.index, self.timestamp)


class PauseFinished(RunEvent):
    """A pause ended; ``interrupted`` when cancellation or the time limit woke it."""

    TOPIC: ClassVar[str] = "phaselog.plan.PauseFinished"

    index: int
    interrupted: bool

    def apply(self, aggregate: Any) -> None:
        """The pause is done."""
        self.record(aggregate).pauses_done.append(self.index)


class StateWritten(RunEvent):
    """Values written to the plan's shared state (JSON values)."""

    TOPIC: ClassVar[str] = "phaselog.plan.StateWritten"

    values: dict[str, Any]

    def apply(self, aggregate: Any) -> None:
        """Update the state."""
        aggregate.state.update(self.values)


class StateDeleted(RunEvent):
    """Keys removed from the plan's shared state."""

    TOPIC: ClassVar[str] = "phaselog.plan.StateDeleted"

    keys: list[str]

    def apply(self, aggregate: Any) -> None:
        """Drop the keys."""
        for key in self.keys:
            aggregate.state.pop(key, None)


class CleanupPhaseStarted(RunEvent):
    """The run stops executing steps; these steps will be cleaned up, in this order."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupPhaseStarted"

    outcome: Outcome
    order: list[str]

    def apply(self, aggregate: Any) -> None:
        """Enter the cleanup phase."""
        rec = self.record(aggregate)
        rec.status = "cleaning"
        rec.outcome = self.outcome
        rec.cleanup_order = list(self.order)
        rec.active_step = None


class CleanupStarted(RunEvent):
    """A step's cleanup hook is about to be called (it will never be called again)."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupStarted"

    step: str

    def apply(self, aggregate: Any) -> None:
        """Mark the cleanup as started."""
        self.record(aggregate).cleanup_started.append(self.step)


class CleanupFinished(RunEvent):
    """A step's cleanup hook returned (``error`` when it raised or overran)."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupFinished"

    step: str
    error: ErrorInfo | None = None

    def apply(self, aggregate: Any) -> None:
        """Mark the cleanup as done."""
        rec = self.record(aggregate)
        rec.cleanup_done.append(self.step)
        if self.error is not None:
            rec.cleanup_errors.append(StepErrorInfo(step=self.step, error=self.error))


class CleanupAbandoned(RunEvent):
    """On resume: this cleanup started before a crash and is not run again (at most once)."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupAbandoned"

    step: str

    def apply(self, aggregate: Any) -> None:
        """Count the cleanup as done, without knowing its result."""
        rec = self.record(aggregate)
        rec.cleanup_done.append(self.step)
        rec.cleanup_abandoned.append(self.step)


class RunFinished(RunEvent):
    """The run ended with this status, after its cleanup phase."""

    TOPIC: ClassVar[str] = "phaselog.plan.RunFinished"

    status: Outcome
    errors: list[StepErrorInfo] = Field(default_factory=list)
    cleanup_errors: list[StepErrorInfo] = Field(default_factory=list)

    def apply(self, aggregate: Any) -> None:
        """Close the run and add it to the history."""
        rec = self.record(aggregate)
        rec.status = self.status
        rec.finished_at = self.timestamp
        aggregate.history.append(
            RunSummary(
                run=self.run, status=self.status, started_at=rec.started_at, finished_at=self.timestamp
            )
        )


# -- the aggregate -----------------------------------------------------------------------------
class RunSummary(BaseModel):
    """A finished run, as kept in the plan's history."""

    run: int
    status: Outcome
    started_at: datetime
    finished_at: datetime


class RunRecord(BaseModel):
    """Everything known about one run (the latest one is kept in full)."""

    run: int
    layout: list[PlanItem]
    continue_on_error: bool = False
    limit_seconds: float | None = None
    status: RunStatus = "running"
    started_at: datetime
    finished_at: datetime | None = None
    resumes: int = 0
    active_step: str | None = None
    attempts: dict[str, int] = Field(default_factory=dict)
    failures: dict[str, int] = Field(default_factory=dict)
    succeeded: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    errors: list[StepErrorInfo] = Field(default_factory=list)
    pauses_started: dict[int, datetime] = Field(default_factory=dict)
    pauses_done: list[int] = Field(default_factory=list)
    outcome: Outcome | None = None
    cleanup_order: list[str] = Field(default_factory=list)
    cleanup_started: list[str] = Field(default_factory=list)
    cleanup_done: list[str] = Field(default_factory=list)
    cleanup_abandoned: list[str] = Field(default_factory=list)
    cleanup_errors: list[StepErrorInfo] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True once the run's RunFinished is recorded."""
        return self.status in FINAL_STATUSES

    @property
    def step_names(self) -> list[str]:
        """The run's step names, in layout order."""
        return [item.name for item in self.layout if item.kind == "step" and item.name is not None]

    def step_done(self, step: str) -> bool:
        """True when the step succeeded or failed for good in this run."""
        return step in self.succeeded or step in self.failed


class PlanRun(Aggregate):
    """All runs of one plan plus the plan's shared state."""

    TOPIC: ClassVar[str] = "phaselog.plan.PlanRun"
    SNAPSHOTS: ClassVar[bool] = True

    state: dict[str, Any]
    history: list[RunSummary]
    current: RunRecord | None

    @property
    def plan_id(self) -> str:
        """The plan id (the stream id without ``plan:``)."""
        return self.id.removeprefix("plan:")

    @property
    def last_run(self) -> int:
        """Number of the latest run (0 before the first)."""
        return 0 if self.current is None else self.current.run

    @property
    def unfinished(self) -> bool:
        """True when the latest run has not recorded RunFinished (a crash, or still running)."""
        return self.current is not None and not self.current.finished

    def snapshot_state(self) -> dict[str, Any]:
        """JSON-able state for snapshots."""
        return {
            "state": self.state,
            "history": [h.model_dump(mode="json") for h in self.history],
            "current": None if self.current is None else self.current.model_dump(mode="json"),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`snapshot_state`."""
        self.state = dict(state["state"])
        self.history = [RunSummary.model_validate(h) for h in state["history"]]
        current = state["current"]
        self.current = None if current is None else RunRecord.model_validate(current)
