"""What the audit code needs of a store: the :class:`AuditedStore` protocol it owns.

Seals, verify, archives and timelines read a store through this protocol only,
so the store (:class:`phaselog.adapters.store.Store`, which answers it) calls
the audit code and the audit code never imports the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from phaselog.adapters.recorders import phaselog_recorder
from phaselog.domain.events import Aggregate

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventsourcing.persistence import Notification

    from phaselog.adapters.application import PhaselogApplication
    from phaselog.adapters.recorder_protocol import PhaselogRecorder
    from phaselog.domain.events import DomainEvent
    from phaselog.runtime.ports import LogRecord

__all__ = ["AuditedStore", "recorder_of"]

AggT = TypeVar("AggT", bound=Aggregate)


class AuditedStore(Protocol):
    """A store as the audit code uses it: its kind, its application and a few of its reads."""

    @property
    def kind(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"postgresql"``."""
        ...

    @property
    def url(self) -> str:
        """The store's URL without its password (for messages)."""
        ...

    @property
    def app(self) -> PhaselogApplication:
        """The eventsourcing application: its recorder, mapper, repository and snapshots."""
        ...

    def seal(self) -> object:
        """Seal everything committed so far (what it returns is not used here)."""
        ...

    def snapshot(self, aggregate: Aggregate) -> None:
        """Store a snapshot of ``aggregate`` as just saved (a failure is logged, never raised)."""
        ...

    def load(self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None) -> AggT:
        """Load an aggregate (``NotFound`` when the stream is missing or of another type)."""
        ...

    def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """All events of one stream, oldest first."""
        ...

    def iter_notifications(self, start: int = 1, batch: int = 1000) -> Iterator[Notification]:
        """Every stored event in global order from ``start``, read in batches."""
        ...

    def records(
        self,
        start: int = 1,
        limit: int = 1000,
        *,
        stop: int | None = None,
        topics: Sequence[str] = (),
        final: bool = True,
    ) -> list[LogRecord]:
        """Stored events in global order from ``start`` as lean rows (only ``topics`` when given)."""
        ...


def recorder_of(store: AuditedStore) -> PhaselogRecorder:
    """The store's recorder as phaselog's recorder protocol (every store phaselog opens has one)."""
    return phaselog_recorder(store.app.recorder)
