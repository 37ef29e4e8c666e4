"""Durable plans (pure model): the events of a plan's runs and the ``PlanRun`` aggregate.

The stream ``plan:<plan_id>`` holds every run of one plan; each ``execute()`` is a new
run and every run event carries its run number. The plan's shared state belongs to the
plan, not to one run: writes accumulate across runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from phaselog.domain.errors import ValidationFailed
from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent
from phaselog.domain.ids import check_id
from phaselog.domain.plan_errors import (
    ErrorInfo,
    PlanCancelled,
    PlanError,
    PlanFailed,
    PlanItem,
    PlanTimeout,
    RecordedError,
    StepError,
    StepErrorInfo,
)

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
    "StateWritten",
    "StepError",
    "StepErrorInfo",
    "StepFailed",
    "StepSucceeded",
    "plan_stream_id",
]

HookName = Literal["pre_exec", "exec", "post_exec"]
Outcome = Literal["succeeded", "failed", "cancelled", "timed_out"]
RunStatus = Literal["running", "cleaning", "succeeded", "failed", "cancelled", "timed_out"]


def plan_stream_id(plan_id: str) -> str:
    """The stream id of a plan: ``plan:<plan_id>`` (the id checked by the stream-id rule)."""
    return f"plan:{check_id(plan_id, 'plan id')}"


class PlanCreated(CreationEvent):
    """The plan's stream begins."""

    TOPIC: ClassVar[str] = "phaselog.plan.PlanCreated"

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        """Plans fold into :class:`PlanRun`."""
        return PlanRun

    def apply(self, aggregate: Any) -> None:
        """Initialise an empty plan."""
        aggregate.state, aggregate.history, aggregate.current = {}, [], None


class RunEvent(DomainEvent):
    """An event belonging to one run (``run`` 0: a state write outside any run)."""

    run: int

    def apply(self, aggregate: Any) -> None:
        """Let the plan fold this event."""
        aggregate.apply_run_event(self)


class StepEvent(RunEvent):
    """An event about one step."""

    step: str


class AttemptEvent(StepEvent):
    """An event about one attempt of a step."""

    attempt: int


class RunStarted(RunEvent):
    """A new run starts with this layout and these options."""

    TOPIC: ClassVar[str] = "phaselog.plan.RunStarted"
    layout: list[PlanItem]
    continue_on_error: bool
    limit_seconds: float | None


class RunResumed(RunEvent):
    """A process took over an unfinished run (after a crash)."""

    TOPIC: ClassVar[str] = "phaselog.plan.RunResumed"


class AttemptStarted(AttemptEvent):
    """An attempt of a step begins (attempt numbers are unique per step and run)."""

    TOPIC: ClassVar[str] = "phaselog.plan.AttemptStarted"


class HookSucceeded(AttemptEvent):
    """A pre_exec / exec / post_exec hook returned."""

    TOPIC: ClassVar[str] = "phaselog.plan.HookSucceeded"
    hook: HookName


class HookFailed(AttemptEvent):
    """A hook raised (the attempt failed)."""

    TOPIC: ClassVar[str] = "phaselog.plan.HookFailed"
    hook: HookName
    error: ErrorInfo


class HookAbandoned(AttemptEvent):
    """The plan stopped waiting for a hook (timeout or cancellation); it may still be running."""

    TOPIC: ClassVar[str] = "phaselog.plan.HookAbandoned"
    hook: HookName
    reason: Literal["cancelled", "timed_out"]


class AttemptInterrupted(AttemptEvent):
    """On resume: this attempt was under way when its process died (it does not use up a retry)."""

    TOPIC: ClassVar[str] = "phaselog.plan.AttemptInterrupted"


class StepSucceeded(StepEvent):
    """All three hooks of a step succeeded in one attempt."""

    TOPIC: ClassVar[str] = "phaselog.plan.StepSucceeded"
    attempts: int


class StepFailed(StepEvent):
    """A step failed for good (retries used up, or the plan was stopping)."""

    TOPIC: ClassVar[str] = "phaselog.plan.StepFailed"
    error: ErrorInfo


class PauseStarted(RunEvent):
    """A pause (the layout item at ``index``) begins."""

    TOPIC: ClassVar[str] = "phaselog.plan.PauseStarted"
    index: int
    seconds: float


class PauseFinished(RunEvent):
    """A pause ended; ``interrupted`` when cancellation or the time limit woke it."""

    TOPIC: ClassVar[str] = "phaselog.plan.PauseFinished"
    index: int
    interrupted: bool


class StateWritten(RunEvent):
    """Values written to (and keys deleted from) the plan's shared state."""

    TOPIC: ClassVar[str] = "phaselog.plan.StateWritten"
    values: dict[str, Any] = Field(default_factory=dict)
    deleted: list[str] = Field(default_factory=list)


class CleanupPhaseStarted(RunEvent):
    """The run stops executing steps (``outcome`` says why); these steps get cleaned up, in order."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupPhaseStarted"
    outcome: Outcome
    order: list[str]


class CleanupStarted(StepEvent):
    """A step's cleanup hook is about to be called (it will never be called again)."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupStarted"


class CleanupFinished(StepEvent):
    """A step's cleanup hook returned (``error`` when it raised or overran its limit)."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupFinished"
    error: ErrorInfo | None = None


class CleanupAbandoned(StepEvent):
    """On resume: this cleanup started before a crash and is not run again (at most once)."""

    TOPIC: ClassVar[str] = "phaselog.plan.CleanupAbandoned"


class RunFinished(RunEvent):
    """The run ended with this status, after its cleanup phase."""

    TOPIC: ClassVar[str] = "phaselog.plan.RunFinished"
    status: Outcome
    errors: list[StepErrorInfo] = Field(default_factory=list)
    cleanup_errors: list[StepErrorInfo] = Field(default_factory=list)


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
        return self.status not in {"running", "cleaning"}

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
    def last_run(self) -> int:
        """Number of the latest run (0 before the first)."""
        return 0 if self.current is None else self.current.run

    @property
    def unfinished(self) -> bool:
        """True when the latest run has not recorded RunFinished (a crash, or still running)."""
        return self.current is not None and not self.current.finished

    def apply_run_event(self, event: RunEvent) -> None:  # noqa: C901, PLR0912 - one flat dispatch
        """Fold one run event into the plan."""
        if isinstance(event, StateWritten):
            self.state.update(event.values)
            for key in event.deleted:
                self.state.pop(key, None)
            return
        if isinstance(event, RunStarted):
            fields = event.model_dump(include={"run", "layout", "continue_on_error", "limit_seconds"})
            self.current = RunRecord(started_at=event.timestamp, **fields)
            return
        rec = self.current
        if rec is None or rec.run != event.run:
            msg = f"{type(event).__name__} for run {event.run}, but the current run is {self.last_run}"
            raise ValidationFailed(msg)
        match event:  # HookSucceeded and HookAbandoned are for the audit only
            case RunResumed():
                rec.resumes += 1
            case AttemptStarted():
                rec.attempts[event.step] = event.attempt
                rec.active_step = event.step
            case HookFailed():
                rec.failures[event.step] = rec.failures.get(event.step, 0) + 1
            case AttemptInterrupted():
                rec.active_step = None
            case StepSucceeded():
                rec.succeeded.append(event.step)
                rec.active_step = None
            case StepFailed():
                rec.failed.append(event.step)
                rec.errors.append(StepErrorInfo(step=event.step, error=event.error))
                rec.active_step = None
            case PauseStarted():
                rec.pauses_started.setdefault(event.index, event.timestamp)
            case PauseFinished():
                rec.pauses_done.append(event.index)
            case CleanupPhaseStarted():
                rec.status, rec.outcome, rec.active_step = "cleaning", event.outcome, None
                rec.cleanup_order = list(event.order)
            case CleanupStarted():
                rec.cleanup_started.append(event.step)
            case CleanupFinished():
                rec.cleanup_done.append(event.step)
                if event.error is not None:
                    rec.cleanup_errors.append(StepErrorInfo(step=event.step, error=event.error))
            case CleanupAbandoned():
                rec.cleanup_done.append(event.step)
                rec.cleanup_abandoned.append(event.step)
            case RunFinished():
                rec.status, rec.finished_at = event.status, event.timestamp
                self.history.append(
                    RunSummary(
                        run=event.run,
                        status=event.status,
                        started_at=rec.started_at,
                        finished_at=event.timestamp,
                    )
                )

    def snapshot_state(self) -> dict[str, Any]:
        """JSON-able state for snapshots."""
        current = None if self.current is None else self.current.model_dump(mode="json")
        return {
            "state": self.state,
            "history": [h.model_dump(mode="json") for h in self.history],
            "current": current,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`snapshot_state`."""
        self.state = dict(state["state"])
        self.history = [RunSummary.model_validate(h) for h in state["history"]]
        self.current = None if state["current"] is None else RunRecord.model_validate(state["current"])
