"""The errors of a plan run and the values its events record (pure model).

Split from :mod:`phaselog.domain.plan`, which re-exports every name here.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from phaselog.domain.errors import PhaselogError

__all__ = [
    "ErrorInfo",
    "PlanCancelled",
    "PlanError",
    "PlanFailed",
    "PlanItem",
    "PlanTimeout",
    "RecordedError",
    "StepError",
    "StepErrorInfo",
]


class StepError(NamedTuple):
    """One step error: the step's name and the exception (unpacks as ``(name, exc)``)."""

    step: str
    error: BaseException


class RecordedError(PhaselogError):
    """An exception known only from the event log (it happened before a crash)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message = type_name, message


class PlanError(PhaselogError):
    """A plan run ended badly: ``errors`` (steps, in order) and ``cleanup_errors`` say why."""

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
        self.plan_id, self.run = plan_id, run


class PlanCancelled(PlanError):
    """The plan was cancelled (its cleanup phase has run)."""


class PlanTimeout(PlanError):
    """The plan exceeded its duration limit (its cleanup phase has run)."""


class PlanFailed(PlanError):
    """One or more steps (or cleanup hooks) failed; see ``errors`` / ``cleanup_errors``."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorInfo(_Value):
    """An exception as recorded: its type name and message."""

    type: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc``."""
        if isinstance(exc, RecordedError):
            return cls(type=exc.type_name, message=exc.message)
        return cls(type=type(exc).__name__, message=str(exc))


class StepErrorInfo(_Value):
    """A recorded step (or cleanup) error."""

    step: str
    error: ErrorInfo

    def as_step_error(self) -> StepError:
        """The error as a :class:`StepError` holding a :class:`RecordedError`."""
        return StepError(self.step, RecordedError(self.error.type, self.error.message))


class PlanItem(_Value):
    """One item of a plan's layout: a step (by name) or a pause (in seconds)."""

    kind: Literal["step", "pause"]
    name: str | None = None
    seconds: float | None = None
