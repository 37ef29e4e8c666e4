# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""The plugin lifecycle model: phases, the transition table, retry policy, events, aggregate.

Everything that happens to a plugin is an immutable event of one snapshotted
:class:`PluginAggregate` (stream ``plugin:<plugin_id>``). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field

from phaselog.domain.errors import ValidationFailed
from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent
from phaselog.domain.ids import InvalidStreamId, check_id
from phaselog.domain.plugin_state import MAX_STATE_VERSION, state_bytes, state_fields

__all__ = [
    "FORCE_PREFIX",
    "PhaseChanged",
    "PhaseForced",
    "PluginAggregate",
    "PluginCreated",
    "PluginPhase",
    "PluginStateCleared",
    "PluginStateWritten",
    "RetryAdvanced",
    "RetryPolicy",
    "RetryReset",
    "RetryStatus",
    "Transition",
    "UnknownPhase",
    "is_valid_transition",
    "parse_phase",
    "plugin_stream_id",
]

FORCE_PREFIX = "force: "


class UnknownPhase(ValidationFailed):
    """A phase name that is not one of :class:`PluginPhase`."""


class PluginPhase(StrEnum):
    """The lifecycle phase of a plugin."""

    UNINSTALLED = "Uninstalled"
    INSTALLING = "Installing"
    INSTALLED = "Installed"
    BUILDING = "Building"
    BUILD_FAILED = "BuildFailed"
    VALIDATING = "Validating"
    STARTING = "Starting"
    RUNNING = "Running"
    DEGRADED = "Degraded"
    RECOVERING = "Recovering"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    UNINSTALLING = "Uninstalling"

    @property
    def is_active(self) -> bool:
        """True when the plugin process should be running (Running, Degraded)."""
        return self in _ACTIVE

    @property
    def is_terminal(self) -> bool:
        """True for resting phases (Running, Stopped, Failed, BuildFailed, Uninstalled)."""
        return self in _TERMINAL


_ACTIVE = frozenset({PluginPhase.RUNNING, PluginPhase.DEGRADED})
_TERMINAL = frozenset(
    {
        PluginPhase.RUNNING,
        PluginPhase.STOPPED,
        PluginPhase.FAILED,
        PluginPhase.BUILD_FAILED,
        PluginPhase.UNINSTALLED,
    }
)

P = PluginPhase
_ALLOWED: dict[PluginPhase, frozenset[PluginPhase]] = {
    P.UNINSTALLED: frozenset({P.INSTALLING}),
    P.INSTALLING: frozenset({P.INSTALLED, P.FAILED}),
    P.INSTALLED: frozenset({P.BUILDING, P.VALIDATING, P.UNINSTALLING, P.STOPPED}),
    P.BUILDING: frozenset({P.VALIDATING, P.BUILD_FAILED, P.FAILED}),
    P.BUILD_FAILED: frozenset({P.BUILDING, P.FAILED, P.UNINSTALLING}),
    P.VALIDATING: frozenset({P.STARTING, P.FAILED, P.INSTALLED}),
    P.STARTING: frozenset({P.RUNNING, P.FAILED, P.DEGRADED}),
    P.RUNNING: frozenset({P.STOPPING, P.DEGRADED, P.FAILED, P.RECOVERING, P.VALIDATING}),
    P.DEGRADED: frozenset({P.RECOVERING, P.STOPPING, P.FAILED}),
    P.RECOVERING: frozenset({P.VALIDATING, P.FAILED}),
    P.STOPPING: frozenset({P.STOPPED, P.FAILED}),
    P.STOPPED: frozenset({P.VALIDATING, P.STARTING, P.UNINSTALLING, P.INSTALLED}),
    P.FAILED: frozenset({P.VALIDATING, P.BUILDING, P.UNINSTALLING, P.INSTALLED}),
    P.UNINSTALLING: frozenset({P.UNINSTALLED, P.FAILED}),
}
del P


def parse_phase(value: PluginPhase | str) -> PluginPhase:
    """Return the phase named by ``value`` (its value, e.g. ``"BuildFailed"``, or member name).

    Raises :class:`UnknownPhase` (a :class:`ValidationFailed`) for anything else.
    """
    if isinstance(value, PluginPhase):
        return value
    if isinstance(value, str):
        try:
            return PluginPhase(value)
        except ValueError:
            member = PluginPhase.__members__.get(value)
            if member is not None:
                return member
    msg = f"unknown plugin phase {value!r}; expected one of {[p.value for p in PluginPhase]}"
    raise UnknownPhase(msg)


def is_valid_transition(from_: PluginPhase | str, to: PluginPhase | str) -> bool:
    """Tell whether the lifecycle table allows moving ``from_`` → ``to`` (never to itself)."""
    return parse_phase(to) in _ALLOWED[parse_phase(from_)]


def plugin_stream_id(plugin_id: str) -> str:
    """Return the stream id of a plugin (``plugin:<plugin_id>``); the id must follow the stream-id rule."""
    if isinstance(plugin_id, str) and not plugin_id.strip():
        msg = f"plugin id must not be blank, got {plugin_id!r}"
        raise InvalidStreamId(msg)
    return f"plugin:{check_id(plugin_id, 'plugin id')}"


class Transition(BaseModel):
    """One recorded phase change of a plugin (serialized with ``"from"``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    from_: PluginPhase = Field(alias="from")
    to: PluginPhase
    reason: str
    timestamp: datetime


class RetryStatus(BaseModel):
    """The crash-recovery retry counters of a plugin at one moment."""

    model_config = ConfigDict(frozen=True)

    attempts: int = Field(default=0, ge=0)
    next_backoff: timedelta = timedelta(seconds=1)
    last_attempt: datetime | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential-backoff limits: backoff doubles from ``initial_backoff`` up to ``max_backoff``."""

    max_attempts: int = 5
    initial_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        """Reject a negative attempt limit, non-positive backoffs and a cap below the start."""
        limit: object = self.max_attempts
        backoffs: tuple[object, object] = (self.initial_backoff, self.max_backoff)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            msg = f"max_attempts must be a non-negative integer, got {limit!r}"
        elif not all(isinstance(b, timedelta) for b in backoffs):
            msg = "initial_backoff and max_backoff must be timedeltas"
        elif self.initial_backoff <= timedelta(0):
            msg = f"initial_backoff must be positive, got {self.initial_backoff}"
        elif self.max_backoff < self.initial_backoff:
            msg = f"max_backoff {self.max_backoff} is below initial_backoff {self.initial_backoff}"
        else:
            return
        raise ValidationFailed(msg)

    def initial(self) -> RetryStatus:
        """Return the status after a reset: 0 attempts, the initial backoff, no last attempt."""
        return RetryStatus(attempts=0, next_backoff=self.initial_backoff, last_attempt=None)

    def advanced(self, status: RetryStatus, now: datetime) -> RetryStatus:
        """Return the status after one more attempt at ``now``: backoff doubles, capped."""
        return RetryStatus(
            attempts=status.attempts + 1,
            next_backoff=min(status.next_backoff * 2, self.max_backoff),
            last_attempt=now,
        )

    def can_retry(self, status: RetryStatus) -> bool:
        """Tell whether fewer than ``max_attempts`` attempts were made."""
        return status.attempts < self.max_attempts


# -- events ----------------------------------------------------------------------------------------
class PluginCreated(CreationEvent):
    """A plugin's stream starts, in its initial phase with fresh retry counters."""

    TOPIC: ClassVar[str] = "phaselog.plugin.PluginCreated"

    plugin_id: str
    phase: PluginPhase
    next_backoff: timedelta

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        """Plugins are :class:`PluginAggregate` streams."""
        return PluginAggregate

    def apply(self, aggregate: Any) -> None:
        """Initialise every attribute of the plugin."""
        aggregate.plugin_id = self.plugin_id
        aggregate.phase = self.phase
        aggregate.retry = RetryStatus(next_backoff=self.next_backoff)
        aggregate.state = None
        aggregate.state_version = 0


class PhaseChanged(DomainEvent):
    """A validated transition from one phase to another."""

    TOPIC: ClassVar[str] = "phaselog.plugin.PhaseChanged"

    from_phase: PluginPhase
    to_phase: PluginPhase
    reason: str

    def apply(self, aggregate: Any) -> None:
        """Move the plugin to ``to_phase``."""
        aggregate.phase = self.to_phase

    def transition(self) -> Transition:
        """Return this change as a :class:`Transition`."""
        return Transition(
            from_=self.from_phase, to=self.to_phase, reason=self.reason, timestamp=self.timestamp
        )


class PhaseForced(PhaseChanged):
    """A phase set without validation (reconciliation); its reason starts with ``"force: "``."""

    TOPIC: ClassVar[str] = "phaselog.plugin.PhaseForced"


class RetryAdvanced(DomainEvent):
    """One more recovery attempt: the resulting retry counters."""

    TOPIC: ClassVar[str] = "phaselog.plugin.RetryAdvanced"

    attempts: int = Field(ge=1)
    next_backoff: timedelta
    last_attempt: datetime

    def apply(self, aggregate: Any) -> None:
        """Store the new counters."""
        aggregate.retry = RetryStatus(
            attempts=self.attempts, next_backoff=self.next_backoff, last_attempt=self.last_attempt
        )


class RetryReset(DomainEvent):
    """Retry counters cleared after a successful recovery."""

    TOPIC: ClassVar[str] = "phaselog.plugin.RetryReset"

    next_backoff: timedelta

    def apply(self, aggregate: Any) -> None:
        """Back to 0 attempts and the initial backoff."""
        aggregate.retry = RetryStatus(next_backoff=self.next_backoff)


class PluginStateWritten(DomainEvent):
    """New versioned plugin state: a JSON object ``value`` (a model's JSON), or base64 ``data``."""

    TOPIC: ClassVar[str] = "phaselog.plugin.StateWritten"

    data: str | None = None
    value: dict[str, Any] | None = None
    state_version: int = Field(ge=0, le=MAX_STATE_VERSION)

    def apply(self, aggregate: Any) -> None:
        """Replace the plugin's state."""
        aggregate.state = state_bytes(self.data, self.value)
        aggregate.state_version = self.state_version


class PluginStateCleared(DomainEvent):
    """The plugin's state was written as empty (a reset): no bytes, version 0."""

    TOPIC: ClassVar[str] = "phaselog.plugin.StateCleared"

    def apply(self, aggregate: Any) -> None:
        """Drop the plugin's state."""
        aggregate.state = None
        aggregate.state_version = 0


# -- the aggregate ----------------------------------------------------------------------------------
class PluginAggregate(Aggregate):
    """One plugin: its phase, retry counters and versioned state (a fold of its events).

    Snapshot state, ``class_version`` 2::

        {"plugin_id": str, "phase": "Running",
         "retry": {"attempts": int, "next_backoff_s": float, "last_attempt": iso | None},
         "state": {"data": base64, "version": int} | None}

    Version 1 snapshots were flat (``attempts``, ``backoff_ms``, ``last_attempt``,
    ``state_b64``, ``state_version``) and are upcast by :meth:`upcast_v1_v2`.
    """

    TOPIC: ClassVar[str] = "phaselog.plugin.Plugin"
    SNAPSHOTS: ClassVar[bool] = True
    class_version: ClassVar[int] = 2

    plugin_id: str
    phase: PluginPhase
    retry: RetryStatus
    state: bytes | None
    state_version: int

    def change_phase(self, to: PluginPhase, reason: str, *, forced: bool = False) -> PhaseChanged:
        """Record a transition (validated unless ``forced``); raises ``InvalidTransition`` via caller."""
        event_class = PhaseForced if forced else PhaseChanged
        event = self.trigger(event_class, from_phase=self.phase, to_phase=to, reason=reason)
        return cast("PhaseChanged", event)

    def write_state(self, data: bytes | None, state_version: int) -> None:
        """Record new plugin state; ``None`` records the state written as empty."""
        if data is None:
            self.trigger(PluginStateCleared)
        else:
            self.trigger(PluginStateWritten, **state_fields(data), state_version=state_version)

    def snapshot_state(self) -> dict[str, Any]:
        """Return phase, retry counters and versioned plugin state, JSON-able."""
        last = self.retry.last_attempt
        return {
            "plugin_id": self.plugin_id,
            "phase": self.phase.value,
            "retry": {
                "attempts": self.retry.attempts,
                "next_backoff_s": self.retry.next_backoff.total_seconds(),
                "last_attempt": None if last is None else last.isoformat(),
            },
            "state": None
            if self.state is None
            else {**state_fields(self.state), "version": self.state_version},
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`snapshot_state` output; malformed input raises ``ValidationFailed``."""
        try:
            self.plugin_id = str(state["plugin_id"])
            self.phase = parse_phase(state["phase"])
            retry = state["retry"]
            self.retry = RetryStatus(
                attempts=retry["attempts"],
                next_backoff=timedelta(seconds=float(retry["next_backoff_s"])),
                last_attempt=retry["last_attempt"],
            )
            stored = state["state"]
            if stored is None:
                self.state, self.state_version = None, 0
            else:
                self.state = state_bytes(stored.get("data"), stored.get("value"))
                self.state_version = int(stored["version"])
        except ValidationFailed:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"malformed plugin snapshot: {type(exc).__name__}: {exc}"
            raise ValidationFailed(msg) from exc
        if not 0 <= self.state_version <= MAX_STATE_VERSION:
            msg = f"malformed plugin snapshot: state version {self.state_version} outside 0-255"
            raise ValidationFailed(msg)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Nest v1's flat retry and state fields (backoff in ms) into v2's groups."""
        try:
            backoff_ms = state.pop("backoff_ms")
            state["retry"] = {
                "attempts": state.pop("attempts"),
                "next_backoff_s": float(backoff_ms) / 1000,
                "last_attempt": state.pop("last_attempt"),
            }
            data = state.pop("state_b64")
            version = state.pop("state_version")
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"malformed v1 plugin snapshot: {type(exc).__name__}: {exc}"
            raise ValidationFailed(msg) from exc
        state["state"] = None if data is None else {"data": data, "version": version}
