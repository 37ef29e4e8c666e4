"""The I/O a store core protocol asks of its shell: one class per step, typed by its answer.

Each is a :class:`~phaselog.runtime.sansio.Request`: ``positions = yield from
Append(...)`` types ``positions``. The sync shell answers them on eventsourcing's
recorders, the async PostgreSQL shell with :mod:`phaselog.adapters.postgres.statements`
on async connections; both throw the driver's failure back, as eventsourcing's errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eventsourcing.persistence import StoredEvent

from phaselog.runtime.ports import StreamHead
from phaselog.runtime.sansio import Request

__all__ = ["Append", "CoreStep", "PutSnapshot", "ReadArchived", "ReadEvents", "ReadHeads", "ReadSnapshot"]


@dataclass(frozen=True, slots=True)
class Append(Request[Sequence[int] | None]):
    """Append ``events`` atomically, the stream index's ``opens`` flags with them; answer their positions."""

    events: Sequence[StoredEvent]
    opens: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class ReadEvents(Request[Sequence[StoredEvent]]):
    """The events of ``stream_id`` by version: after ``gt``, up to ``lte``, at most ``limit``."""

    stream_id: str
    gt: int | None = None
    lte: int | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class ReadArchived(Request[Sequence[StoredEvent]]):
    """The archived events of ``stream_id`` after ``gt`` up to ``lte`` that the database no longer holds.

    Asked only where a stream's live events leave a gap; a store without archives answers none.
    """

    stream_id: str
    gt: int | None = None
    lte: int | None = None


@dataclass(frozen=True, slots=True)
class ReadSnapshot(Request[StoredEvent | None]):
    """The newest snapshot of ``stream_id`` at or below version ``lte`` (None: there is none)."""

    stream_id: str
    lte: int | None = None


@dataclass(frozen=True, slots=True)
class PutSnapshot(Request[None]):
    """Store one snapshot row."""

    snapshot: StoredEvent


@dataclass(frozen=True, slots=True)
class ReadHeads(Request[list[StreamHead]]):
    """The heads of the streams starting with ``prefix`` (only open ones if asked), by stream id."""

    prefix: str
    open_only: bool = False
    after: str | None = None
    limit: int | None = None


CoreStep = Append | ReadEvents | ReadArchived | ReadSnapshot | PutSnapshot | ReadHeads
"""Every step a store core protocol may ask."""
