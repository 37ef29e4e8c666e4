"""The steps a runtime protocol asks of an event store, one class per call, each with its answer's type.

The sans-I/O cores of the runtime (:mod:`phaselog.runtime.plugin_core`) yield these
on the port :class:`~phaselog.runtime.ports.EventStore`; the sync shell makes the
call (:func:`on_store`), the async shell awaits it on an async store. A step is a
:class:`~phaselog.runtime.sansio.Request`: ``aggregate = yield from Load(...)``
types ``aggregate`` as the loaded class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from phaselog.domain.events import Aggregate, DomainEvent
from phaselog.runtime.sansio import Request

if TYPE_CHECKING:
    from phaselog.runtime.ports import EventStore

__all__ = ["Exists", "Load", "Save", "StoreStep", "Stream", "on_store"]

AggT = TypeVar("AggT", bound=Aggregate)


@dataclass(frozen=True, slots=True)
class Load(Request[AggT]):
    """Load the aggregate of ``stream_id`` as ``aggregate_type`` (``NotFound`` otherwise)."""

    stream_id: str
    aggregate_type: type[AggT]
    version: int | None = None


@dataclass(frozen=True, slots=True)
class Save(Request[Sequence[object]]):
    """Append the pending events of ``aggregates`` atomically; answer what the store's save returns."""

    aggregates: tuple[Aggregate, ...]


@dataclass(frozen=True, slots=True)
class Exists(Request[bool]):
    """Tell whether ``stream_id`` has at least one event."""

    stream_id: str


@dataclass(frozen=True, slots=True)
class Stream(Request[list[DomainEvent]]):
    """All events of ``stream_id``, oldest first."""

    stream_id: str


StoreStep = Load[Any] | Save | Exists | Stream
"""Every step a runtime protocol may ask of a store."""


def on_store(store: EventStore, step: StoreStep) -> object:
    """Make ``step``'s call on a sync store (the sync shell's dispatch)."""
    match step:
        case Load():
            return store.load(step.stream_id, step.aggregate_type, version=step.version)
        case Save():
            return store.save(*step.aggregates)
        case Exists():
            return store.exists(step.stream_id)
        case Stream():
            return store.stream(step.stream_id)
