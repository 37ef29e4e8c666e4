"""Value types of the task controller: statuses, progress, logs, and the cancel context."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from phaselog.domain.encoding import dump_json, dump_model, load_json
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.task import TaskAggregate, TaskCanceled, TaskState

__all__ = [
    "CancelContext",
    "LogEntry",
    "Progress",
    "StateTransition",
    "TaskStatus",
    "decode_metadata",
    "encode_metadata",
    "status_of",
]

T = TypeVar("T")
CancelReason = Literal["cancel", "shutdown", "lost"]


class Progress(BaseModel):
    """How far a task got: ``current`` of ``total`` units."""

    model_config = ConfigDict(frozen=True)

    current: int
    total: int


class LogEntry(BaseModel):
    """One log line of a task; ``level`` is a :mod:`logging` level."""

    model_config = ConfigDict(frozen=True)

    msg: str
    level: int
    timestamp: datetime


class StateTransition(BaseModel):
    """The task entered ``state`` at ``timestamp``."""

    model_config = ConfigDict(frozen=True)

    state: TaskState
    timestamp: datetime


class TaskStatus(BaseModel):
    """Everything known about a task's current run (and, after Failed, earlier runs' logs)."""

    model_config = ConfigDict(frozen=True)

    state: TaskState
    progress: Progress | None = None
    metadata: str = ""
    logs: list[LogEntry] = []
    transitions: list[StateTransition] = []


def status_of(agg: TaskAggregate, progress: tuple[int, int] | None = None) -> TaskStatus:
    """Build the :class:`TaskStatus` of ``agg`` (``progress`` overrides the recorded one)."""
    prog = progress if progress is not None else agg.progress
    return TaskStatus(
        state=agg.state,
        progress=Progress(current=prog[0], total=prog[1]) if prog is not None else None,
        metadata=agg.metadata,
        logs=[LogEntry(msg=msg, level=lvl, timestamp=ts) for lvl, msg, ts in agg.logs],
        transitions=[StateTransition(state=st, timestamp=ts) for st, ts in agg.transitions],
    )


def encode_metadata(metadata: object) -> str:
    """Metadata as the JSON text stored with the task ("" for none).

    Accepts a pydantic model, a dict (JSON-able) or a JSON string; anything
    else raises :class:`ValidationFailed`.
    """
    if metadata is None:
        return ""
    if isinstance(metadata, BaseModel):
        return dump_model(metadata).decode()
    if isinstance(metadata, dict):
        try:
            return dump_json(metadata).decode()
        except ValidationFailed as exc:
            raise ValidationFailed(f"task metadata is not JSON-serialisable: {exc}") from exc
    if isinstance(metadata, str):
        try:
            load_json(metadata)
        except ValidationFailed as exc:
            raise ValidationFailed(f"task metadata is not valid JSON: {exc}") from exc
        return metadata
    raise ValidationFailed(
        f"task metadata must be a pydantic model, a dict or a JSON string, not {type(metadata).__name__}"
    )


def decode_metadata(metadata: str, model_type: type[T]) -> T | None:
    """Validate stored metadata as ``model_type`` (None when the task has no metadata)."""
    if not metadata:
        return None
    try:
        return TypeAdapter(model_type).validate_json(metadata)
    except ValidationError as exc:
        raise ValidationFailed(f"task metadata does not validate as {model_type!r}: {exc}") from exc


class CancelContext:
    """Cancellation signal handed to runner hooks.

    ``cancelled`` turns true when the task is canceled (``cancel_task``), when
    the controller closes, or when the run lost its claim; only the first
    reason marks the task Canceled, the others leave it resumable.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason: CancelReason | None = None
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested."""
        return self._event.is_set()

    @property
    def reason(self) -> CancelReason | None:
        """Why: ``"cancel"`` (the task is canceled), ``"shutdown"`` or ``"lost"`` (claim lost)."""
        return self._reason

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds passed; return ``cancelled``."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCanceled` when cancelled."""
        if self._event.is_set():
            raise TaskCanceled(f"task cancelled ({self._reason})")

    def cancel(self, reason: CancelReason = "cancel") -> bool:
        """Signal cancellation; the first reason sticks. Return True if this call cancelled."""
        with self._lock:
            if self._event.is_set():
                return False
            self._reason = reason
            self._event.set()
        return True

    def __repr__(self) -> str:
        return f"CancelContext(cancelled={self.cancelled}, reason={self._reason!r})"
