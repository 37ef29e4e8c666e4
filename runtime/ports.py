"""The port the runtime services need from an event store.

``phaselog.runtime`` owns this protocol and depends on nothing else of a store;
``phaselog.adapters.Store`` (and any test double of the same shape) implements it.
Keeping the port here lets the services be typed, tested and reused without
importing the adapters layer. The runtime never looks a store up: stores are
passed in, and the default store of a recoverable state is wired by the
composition root (:func:`phaselog.runtime.recoverable.set_default_store_factory`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar, runtime_checkable

from phaselog.domain.events import Aggregate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from phaselog.domain.events import DomainEvent

__all__ = [
    "ClosesTied",
    "EventStore",
    "KeepsSyncStore",
    "LogRecord",
    "Saved",
    "StreamHead",
    "committed_position",
]

AggT = TypeVar("AggT", bound=Aggregate)
T = TypeVar("T")


class Saved(list[T]):
    """What a store's ``save`` returns: its recordings, and ``position``, the newest one it committed.

    ``position`` is what read-your-writes waits for: ``projections.wait_for(saved.position)``
    returns once the read models have applied this save (0 when nothing was pending).
    """

    def __init__(self, recordings: Iterable[T] = (), position: int = 0) -> None:
        super().__init__(recordings)
        self.position = position


def committed_position(saved: object, before: int = 0) -> int:
    """The position a ``save`` committed (``before`` when it committed nothing, or says nothing)."""
    position = getattr(saved, "position", 0)
    return position if isinstance(position, int) and position > before else before


class LogRecord(NamedTuple):
    """One stored event as the log reader returns it: a plain row, cheaper than a ``Notification``.

    Its field names are those of eventsourcing's ``Notification``, so code that reads
    ``id``, ``originator_id``, ``originator_version``, ``topic`` and ``state`` takes either.
    """

    id: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


class StreamHead(NamedTuple):
    """The newest event of one stream, as the store's stream index records it.

    ``open`` is what the stream's aggregate said (its ``stream_open`` property)
    when it was last saved: an index of the streams that may still need work,
    kept in the append's own transaction.
    """

    stream_id: str
    version: int
    position: int
    open: bool


class EventStore(Protocol):
    """What the runtime services call on a store: append, load and read streams."""

    @property
    def kind(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"postgresql"``."""
        ...

    def save(self, *aggregates: Aggregate) -> Sequence[object]:
        """Append the pending events of ``aggregates`` atomically (``ConcurrencyConflict`` on a race)."""
        ...

    def load(self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None) -> AggT:
        """Load an aggregate (``NotFound`` when the stream is missing or of another type)."""
        ...

    def exists(self, aggregate_id: str) -> bool:
        """True when the stream has at least one event."""
        ...

    def stream_ids(self, prefix: str = "") -> list[str]:
        """Ids of all streams starting with ``prefix``, sorted."""
        ...

    def stream_heads(self, prefix: str = "", *, open_only: bool = False) -> list[StreamHead]:
        """The head of every stream whose id starts with ``prefix`` (only open ones if asked), by id."""
        ...

    def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """All events of one stream, oldest first."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


@runtime_checkable
class ClosesTied(Protocol):
    """A store that closes the services tied to it before it closes itself (:mod:`.lifetimes`)."""

    def on_close(self, close: Callable[[], object]) -> Callable[[], None]:
        """Call ``close`` when the store closes (a bound method is held weakly); return the untie."""
        ...


class KeepsSyncStore(Protocol):
    """An async store: it keeps a sync store open on the same database (``AsyncStore.sync``)."""

    @property
    def sync(self) -> EventStore:
        """The sync store on the same database (open while the async store is)."""
        ...
