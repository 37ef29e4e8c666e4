"""The task model: one aggregate per task stream, every change an event.

A task lives in the stream ``task:<controller>:<task_id>``. Each launch starts a
new *run* (numbered from 1). A run is executed by exactly one controller
instance at a time: the *claim* (owner token plus lease expiry) is recorded as
an event with optimistic concurrency, so two controllers claiming from the same
version cannot both succeed. Every write a run makes names its run number and
owner, and :meth:`TaskAggregate.check_run` rejects it (:class:`StaleRun`) once a
newer run or another owner has taken the task, so a stale run can never
overwrite a newer one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from phaselog.domain.errors import InvalidTransition
from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent
from phaselog.domain.ids import check_id
from phaselog.domain.task_state import (
    _ALLOWED,
    RELAUNCH_RESETS,
    ControllerClosed,
    StaleRun,
    TaskAlreadyRunning,
    TaskCanceled,
    TaskClaimHeld,
    TaskState,
)

__all__ = [
    "ControllerClosed",
    "StaleRun",
    "TaskAggregate",
    "TaskAlreadyRunning",
    "TaskCancelRequested",
    "TaskCanceled",
    "TaskClaimHeld",
    "TaskClaimed",
    "TaskCompletionDelivered",
    "TaskLaunched",
    "TaskLogged",
    "TaskProgressed",
    "TaskRelaunched",
    "TaskReleased",
    "TaskState",
    "TaskStateChanged",
    "task_stream_id",
]

INFO = 20  # logging.INFO, without importing logging into the pure model


def task_stream_id(controller: str, task_id: str) -> str:
    """Return the stream id of ``task_id`` in ``controller`` (both follow the stream-id rule)."""
    return f"task:{check_id(controller, 'task controller name')}:{check_id(task_id, 'task id')}"


# -- events ---------------------------------------------------------------------------------
def _begin_run(
    agg: TaskAggregate, run: int, metadata: str, at: datetime, *, keep_progress: bool = False
) -> None:
    """Start run ``run`` Pending and unclaimed (logs and transitions are the caller's choice)."""
    agg.run = run
    agg.metadata = metadata
    agg.state = TaskState.PENDING
    if not keep_progress:
        agg.progress = None
    agg.transitions.append((TaskState.PENDING, at))
    agg.owner = None
    agg.lease_expires = None
    agg.cancel_requested = False
    agg.delivered = False


class TaskLaunched(CreationEvent):
    """The first launch of a task id: run 1 starts Pending."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskLaunched"

    controller: str
    task_id: str
    metadata: str

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:  # noqa: D102 - see CreationEvent
        return TaskAggregate

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        agg: TaskAggregate = aggregate
        agg.controller = self.controller
        agg.task_id = self.task_id
        agg.logs = []
        agg.transitions = []
        _begin_run(agg, 1, self.metadata, self.timestamp)


class TaskRelaunched(DomainEvent):
    """A new run of a finished task, reset by :data:`RELAUNCH_RESETS` for the state it ended in.

    ``keep_history`` keeps logs and transitions (after Failed); ``keep_progress``
    keeps the progress (after Canceled, so a runner can resume from it). Events
    recorded before ``keep_progress`` existed read as False, which is what they did.
    """

    TOPIC: ClassVar[str] = "phaselog.task.TaskRelaunched"

    run: int
    metadata: str
    keep_history: bool
    keep_progress: bool = False

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        agg: TaskAggregate = aggregate
        if not self.keep_history:
            agg.logs = []
            agg.transitions = []
        _begin_run(agg, self.run, self.metadata, self.timestamp, keep_progress=self.keep_progress)


class TaskClaimed(DomainEvent):
    """``owner`` runs (or renews its lease on) the current run until ``expires_at``."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskClaimed"

    run: int
    owner: str
    expires_at: datetime

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        aggregate.owner = self.owner
        aggregate.lease_expires = self.expires_at


class TaskReleased(DomainEvent):
    """``owner`` gave up its claim (controller closed); the run stays resumable."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskReleased"

    run: int
    owner: str

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        aggregate.owner = None
        aggregate.lease_expires = None


class TaskStateChanged(DomainEvent):
    """The current run moved to ``state``."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskStateChanged"

    run: int
    state: TaskState

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        aggregate.state = self.state
        aggregate.transitions.append((self.state, self.timestamp))


class TaskProgressed(DomainEvent):
    """The latest progress of the current run (coalesced by the controller)."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskProgressed"

    run: int
    current: int
    total: int

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        aggregate.progress = (self.current, self.total)


class TaskLogged(DomainEvent):
    """A log entry of the task (``level`` is a :mod:`logging` level)."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskLogged"

    run: int
    level: int
    msg: str

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        aggregate.logs.append((self.level, self.msg, self.timestamp))


class TaskCancelRequested(DomainEvent):
    """Someone asked for the current run to be canceled (best effort)."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskCancelRequested"

    run: int

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        aggregate.cancel_requested = True


class TaskCompletionDelivered(DomainEvent):
    """The run's completion hooks and callbacks ran; the claim ends here."""

    TOPIC: ClassVar[str] = "phaselog.task.TaskCompletionDelivered"

    run: int

    def apply(self, aggregate: Any) -> None:  # noqa: D102 - documented by the class
        aggregate.delivered = True
        aggregate.owner = None
        aggregate.lease_expires = None


# -- the aggregate ----------------------------------------------------------------------------
class TaskAggregate(Aggregate):
    """One task: state, metadata, progress, logs, transitions, run number and claim."""

    TOPIC: ClassVar[str] = "phaselog.task.Task"
    SNAPSHOTS: ClassVar[bool] = True

    controller: str
    task_id: str
    metadata: str
    run: int
    state: TaskState
    progress: tuple[int, int] | None
    logs: list[tuple[int, str, datetime]]
    transitions: list[tuple[TaskState, datetime]]
    owner: str | None
    lease_expires: datetime | None
    cancel_requested: bool
    delivered: bool

    # -- commands ---------------------------------------------------------------------------
    @classmethod
    def launch(
        cls, controller: str, task_id: str, metadata: str, owner: str, expires_at: datetime
    ) -> TaskAggregate:
        """Start run 1 of a new task, claimed by ``owner``."""
        agg = cls.start(
            TaskLaunched,
            task_stream_id(controller, task_id),
            controller=controller,
            task_id=task_id,
            metadata=metadata,
        )
        agg.trigger(TaskClaimed, run=agg.run, owner=owner, expires_at=expires_at)
        return agg

    def relaunch(self, metadata: str, owner: str, expires_at: datetime) -> None:
        """Start the next run of a finished task, claimed by ``owner``, with the new launch's ``metadata``.

        What the new run keeps follows the original controller's reset table
        (:data:`RELAUNCH_RESETS`): after Failed the logs (plus a "restarting task"
        entry) and transitions; after Canceled the progress; after Completed nothing.
        """
        if not self.state.is_finished:
            raise TaskAlreadyRunning(
                f"task {self.task_id!r} of controller {self.controller!r} is "
                f"{self.state.name.title()} (run {self.run}); it cannot be launched again until it finishes"
            )
        reset = RELAUNCH_RESETS[self.state]
        keep = reset.logs == "keep+append"
        self.trigger(
            TaskRelaunched,
            run=self.run + 1,
            metadata=metadata,
            keep_history=keep,
            keep_progress=reset.progress == "keep",
        )
        if keep:
            self.trigger(TaskLogged, run=self.run, level=INFO, msg="restarting task")
        self.trigger(TaskClaimed, run=self.run, owner=owner, expires_at=expires_at)

    def claim_is_free(self, now: datetime) -> bool:
        """Return True when nobody holds an unexpired claim at ``now``."""
        return self.owner is None or self.lease_expires is None or self.lease_expires <= now

    @property
    def needs_work(self) -> bool:
        """True while the current run is active or its completion was not yet delivered."""
        return self.state.is_active or not self.delivered

    @property
    def stream_open(self) -> bool:
        """True exactly while some controller may still have to do something for this task.

        That is :attr:`needs_work`, the very predicate a sweep acts on: a Pending
        or Running run (claimed, orphaned or with a cancel request, which only an
        active run can carry) or a finished run whose completion is not delivered
        yet. The store indexes open streams, so a sweep reads only these; the
        delivery closes the stream and a relaunch (a new run, undelivered)
        re-opens it.
        """
        return self.needs_work

    def claim(self, owner: str, expires_at: datetime, now: datetime) -> None:
        """Take (or renew) the claim on the current run; :class:`TaskClaimHeld` if another holds it."""
        if self.owner != owner and not self.claim_is_free(now):
            raise TaskClaimHeld(
                f"task {self.task_id!r} run {self.run} is claimed by {self.owner} until {self.lease_expires}"
            )
        self.trigger(TaskClaimed, run=self.run, owner=owner, expires_at=expires_at)

    def check_run(self, run: int, owner: str) -> None:
        """Raise :class:`StaleRun` unless ``run``/``owner`` are the current run and claim holder."""
        if self.run != run or self.owner != owner:
            raise StaleRun(
                f"task {self.task_id!r}: run {run} of {owner} is stale "
                f"(current run {self.run}, owner {self.owner})"
            )

    def release(self, run: int, owner: str) -> None:
        """Give up the claim of ``owner`` on ``run``."""
        self.check_run(run, owner)
        self.trigger(TaskReleased, run=run, owner=owner)

    def set_progress(self, run: int, owner: str, current: int, total: int) -> None:
        """Record the latest progress of the run."""
        self.check_run(run, owner)
        if self.progress != (current, total):
            self.trigger(TaskProgressed, run=run, current=current, total=total)

    def log(self, run: int, owner: str, level: int, msg: str) -> None:
        """Record a log entry of the run."""
        self.check_run(run, owner)
        self.trigger(TaskLogged, run=run, level=level, msg=msg)

    def change_state(self, run: int, owner: str, state: TaskState) -> None:
        """Move the run to ``state`` (Pending→Running/end state, Running→end state)."""
        self.check_run(run, owner)
        if state not in _ALLOWED.get(self.state, frozenset()):
            raise InvalidTransition(
                f"task {self.task_id!r}: cannot go from {self.state.name.title()} to {state.name.title()}"
            )
        self.trigger(TaskStateChanged, run=run, state=state)

    def request_cancel(self) -> bool:
        """Record a cancellation request for an active run; False when there is nothing to cancel."""
        if not self.state.is_active or self.cancel_requested:
            return False
        self.trigger(TaskCancelRequested, run=self.run)
        return True

    def mark_delivered(self, run: int, owner: str) -> None:
        """Record that the run's completion was delivered (ends the claim)."""
        self.check_run(run, owner)
        if not self.delivered:
            self.trigger(TaskCompletionDelivered, run=run)

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot_state(self) -> dict[str, Any]:  # noqa: D102 - see Aggregate
        return {
            "controller": self.controller,
            "task_id": self.task_id,
            "metadata": self.metadata,
            "run": self.run,
            "state": int(self.state),
            "progress": list(self.progress) if self.progress is not None else None,
            "logs": [[lvl, msg, ts.isoformat()] for lvl, msg, ts in self.logs],
            "transitions": [[int(st), ts.isoformat()] for st, ts in self.transitions],
            "owner": self.owner,
            "lease_expires": self.lease_expires.isoformat() if self.lease_expires else None,
            "cancel_requested": self.cancel_requested,
            "delivered": self.delivered,
        }

    def restore_state(self, state: dict[str, Any]) -> None:  # noqa: D102 - see Aggregate
        self.controller = state["controller"]
        self.task_id = state["task_id"]
        self.metadata = state["metadata"]
        self.run = int(state["run"])
        self.state = TaskState(state["state"])
        progress = state["progress"]
        self.progress = (int(progress[0]), int(progress[1])) if progress is not None else None
        self.logs = [(int(lvl), str(msg), datetime.fromisoformat(ts)) for lvl, msg, ts in state["logs"]]
        self.transitions = [(TaskState(st), datetime.fromisoformat(ts)) for st, ts in state["transitions"]]
        self.owner = state["owner"]
        expires = state["lease_expires"]
        self.lease_expires = datetime.fromisoformat(expires) if expires else None
        self.cancel_requested = bool(state["cancel_requested"])
        self.delivered = bool(state["delivered"])
