"""Event-sourcing building blocks: pydantic domain events, aggregates, snapshots.

These classes satisfy eventsourcing's ``DomainEventProtocol``, ``CanMutateProtocol``
and ``CollectEventsProtocol`` structurally, so eventsourcing's ``Application``,
``Repository`` and ``EventStore`` persist them without this module importing any
infrastructure. Every concrete event, snapshot and aggregate class declares a
stable ``TOPIC`` (e.g. ``"phaselog.plugin.PhaseChanged"``) which is what gets
stored, so moving or renaming a class never breaks stored history.

Schema evolution follows eventsourcing's convention: bump ``class_version`` and
add ``upcast_vN_vM(state: dict)`` static methods (on the event class for events;
on the aggregate class for snapshot state).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from phaselog.domain.errors import UnknownEventType, ValidationFailed

__all__ = [
    "Aggregate",
    "DomainEvent",
    "Snapshot",
    "known_topics",
    "register_topic",
    "resolve_topic",
    "topic_of",
    "upcast",
    "utcnow",
]

_TOPICS: dict[str, type[Any]] = {}


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def register_topic(topic: str, cls: type[Any]) -> None:
    """Register ``cls`` under the stable ``topic``; re-registering the same class is a no-op."""
    existing = _TOPICS.get(topic)
    if existing is not None and existing is not cls:
        if existing.__qualname__ == cls.__qualname__ and existing.__module__ == cls.__module__:
            _TOPICS[topic] = cls  # a module re-import (e.g. a test reloading it)
            return
        msg = f"topic {topic!r} already registered for {existing!r}"
        raise ValueError(msg)
    _TOPICS[topic] = cls


def resolve_topic(topic: str) -> type[Any]:
    """Return the class registered for ``topic``, or raise :class:`UnknownEventType`."""
    try:
        return _TOPICS[topic]
    except KeyError:
        msg = f"unknown event type {topic!r}: no class is registered under this topic"
        raise UnknownEventType(msg) from None


def topic_of(cls: type[Any]) -> str:
    """Return the stable topic declared by ``cls`` itself (never an inherited one)."""
    topic = cls.__dict__.get("TOPIC")
    if not isinstance(topic, str) or not topic:
        msg = f"{cls.__qualname__} declares no stable TOPIC and cannot be stored"
        raise ValidationFailed(msg)
    return topic


def known_topics() -> dict[str, type[Any]]:
    """Return a copy of the topic registry (for audit tooling and tests)."""
    return dict(_TOPICS)


def upcast(cls: type[Any], state: dict[str, Any]) -> dict[str, Any]:
    """Apply ``cls.upcast_vN_vN+1`` hooks to ``state`` from its stored ``class_version``."""
    from_version = int(state.pop("class_version", 1))
    to_version = int(getattr(cls, "class_version", 1))
    if from_version > to_version:
        msg = (
            f"{cls.__qualname__} data was written by class version {from_version}, "
            f"newer than this code's version {to_version}"
        )
        raise ValidationFailed(msg)
    while from_version < to_version:
        hook = getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")
        hook(state)
        from_version += 1
    return state


class DomainEvent(BaseModel):
    """An immutable fact about one aggregate, at one version, at one time."""

    # ser_json_inf_nan: the encoding policy (phaselog.domain.encoding) keeps nan and the infinities.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    TOPIC: ClassVar[str] = ""
    class_version: ClassVar[int] = 1

    originator_id: str
    originator_version: int
    timestamp: datetime

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__dict__.get("TOPIC"):
            register_topic(cls.__dict__["TOPIC"], cls)

    def mutate(self, aggregate: Any) -> Any:
        """Check the event follows ``aggregate`` and apply it (eventsourcing's hook)."""
        if aggregate is None:
            msg = f"{type(self).__name__} cannot start the stream {self.originator_id!r}"
            raise ValidationFailed(msg)
        if aggregate.version + 1 != self.originator_version:
            msg = (
                f"event version {self.originator_version} does not follow "
                f"version {aggregate.version} of {self.originator_id!r}"
            )
            raise ValidationFailed(msg)
        self.apply(aggregate)
        aggregate._version = self.originator_version  # noqa: SLF001 - the aggregate's own mutator
        aggregate.modified_on = self.timestamp
        return aggregate

    def apply(self, aggregate: Any) -> None:
        """Evolve ``aggregate``; subclasses override."""


class CreationEvent(DomainEvent):
    """The first event of a stream: it constructs the aggregate."""

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is not None:
            msg = f"{type(self).__name__} cannot follow existing events of {self.originator_id!r}"
            raise ValidationFailed(msg)
        cls = self.aggregate_class()
        new = cls.__new__(cls)
        Aggregate.__init__(new, self.originator_id)
        new.created_on = self.timestamp
        return super().mutate(new)

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        """The aggregate this event creates (subclasses override)."""
        raise NotImplementedError


A = TypeVar("A", bound="Aggregate")


class Aggregate:
    """A consistency boundary whose state is a fold of its events.

    Subclasses declare a stable ``TOPIC``; their snapshot state is
    :meth:`snapshot_state` and :meth:`restore_state` (override both).
    """

    TOPIC: ClassVar[str] = ""
    class_version: ClassVar[int] = 1

    def __init__(self, aggregate_id: str) -> None:
        self._id = aggregate_id
        self._version = 0
        self._pending: list[DomainEvent] = []
        self.created_on: datetime | None = None
        self.modified_on: datetime | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("TOPIC"):
            register_topic(cls.__dict__["TOPIC"], cls)

    @property
    def id(self) -> str:
        """The stream id."""
        return self._id

    @property
    def stream_open(self) -> bool:
        """Whether this stream may still need work; the store indexes open streams (default: always)."""
        return True

    @property
    def version(self) -> int:
        """The version of the last event applied (0 before the first)."""
        return self._version

    def trigger(self, event_class: type[DomainEvent], **fields: Any) -> DomainEvent:
        """Build the next event, apply it, and queue it for saving."""
        event = event_class(
            originator_id=self._id,
            originator_version=self._version + 1,
            timestamp=utcnow(),
            **fields,
        )
        event.mutate(self)
        self._pending.append(event)
        return event

    @classmethod
    def start(cls, event_class: type[CreationEvent], aggregate_id: str, **fields: Any) -> Self:
        """Create a new aggregate with its creation event queued for saving."""
        event = event_class(originator_id=aggregate_id, originator_version=1, timestamp=utcnow(), **fields)
        agg: Self = event.mutate(None)
        agg._pending.append(event)
        return agg

    @property
    def pending_events(self) -> list[DomainEvent]:
        """Events triggered but not yet saved."""
        return list(self._pending)

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the pending events (eventsourcing's ``CollectEventsProtocol``)."""
        events, self._pending = self._pending, []
        return events

    def snapshot_state(self) -> dict[str, Any]:
        """JSON-able state for a snapshot; subclasses override."""
        return {}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`snapshot_state` output; subclasses override."""


class Snapshot(DomainEvent):
    """The state of one aggregate at one version, so loading skips earlier events."""

    TOPIC: ClassVar[str] = "phaselog.Snapshot"

    topic: str
    state: dict[str, Any]

    @classmethod
    def take(cls, aggregate: Aggregate) -> Self:
        """Capture ``aggregate`` (eventsourcing's ``SnapshotProtocol.take``)."""
        state = aggregate.snapshot_state()
        if type(aggregate).class_version > 1:
            state["class_version"] = type(aggregate).class_version
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=utcnow(),
            topic=topic_of(type(aggregate)),
            state=state,
        )

    def mutate(self, aggregate: Any) -> Any:  # noqa: ARG002 - a snapshot starts from nothing
        """Rebuild the aggregate from this snapshot (eventsourcing's mutator hook)."""
        cls: type[Aggregate] = resolve_topic(self.topic)
        state = upcast(cls, dict(self.state))
        new = cls.__new__(cls)
        Aggregate.__init__(new, self.originator_id)
        new.restore_state(state)
        new._version = self.originator_version  # noqa: SLF001
        new.modified_on = self.timestamp
        return new
