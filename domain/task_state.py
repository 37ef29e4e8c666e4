"""Task states, the task errors, and what a relaunch keeps of the previous run.

Split from :mod:`phaselog.domain.task` so the rules read on their own; the task
module re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from phaselog.domain.errors import ConcurrencyConflict, InvalidTransition, PhaselogError

__all__ = [
    "RELAUNCH_RESETS",
    "ControllerClosed",
    "RelaunchReset",
    "StaleRun",
    "TaskAlreadyRunning",
    "TaskCanceled",
    "TaskClaimHeld",
    "TaskState",
]


class TaskCanceled(PhaselogError):
    """Raised inside a task runner to cancel the task (the controller maps it to Canceled)."""


class TaskAlreadyRunning(InvalidTransition):
    """A launch of a task id whose current run is still Pending or Running."""


class TaskClaimHeld(ConcurrencyConflict):
    """Another controller holds an unexpired claim (lease) on the task."""


class StaleRun(ConcurrencyConflict):
    """A write by a run that is no longer the task's current run or owner."""


class ControllerClosed(PhaselogError):
    """The task controller was closed; it launches and runs nothing more."""


class TaskState(IntEnum):
    """The state of a task's current run."""

    UNKNOWN = 0
    PENDING = 1
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4
    CANCELED = 6

    @property
    def is_finished(self) -> bool:
        """True for the end states Completed, Failed and Canceled."""
        return self in {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED}

    @property
    def is_active(self) -> bool:
        """True for Pending and Running (the run still has work to do)."""
        return self in {TaskState.PENDING, TaskState.RUNNING}

    def __str__(self) -> str:
        """The state's name (``COMPLETED``): what a person reads; ``int(state)`` is the stored value."""
        return self.name

    def __format__(self, spec: str) -> str:
        """Formatted as its name (``f"{state}"``), unless a numeric format is asked (``f"{state:d}"``)."""
        return format(self.name, spec) if not spec or spec[-1] not in "bcdoxXn" else format(int(self), spec)


_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.RUNNING, TaskState.FAILED, TaskState.CANCELED}),
    TaskState.RUNNING: frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED}),
}


@dataclass(frozen=True)
class RelaunchReset:
    """What a new run keeps of the previous one. Metadata is always the new launch's ("" when none)."""

    progress: Literal["keep", "clear"]
    logs: Literal["keep+append", "clear"]
    transitions: Literal["keep", "clear"]


RELAUNCH_RESETS: dict[TaskState, RelaunchReset] = {
    # The original controller's reset table for a relaunch of a finished task. (Its "Running: keep
    # everything" row is a resume there; phaselog rejects relaunching an active run instead.)
    TaskState.FAILED: RelaunchReset(progress="clear", logs="keep+append", transitions="keep"),
    TaskState.CANCELED: RelaunchReset(progress="keep", logs="clear", transitions="clear"),
    TaskState.COMPLETED: RelaunchReset(progress="clear", logs="clear", transitions="clear"),
}
