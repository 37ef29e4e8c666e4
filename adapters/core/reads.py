"""Loading and reading streams, decided once for both shells (see :mod:`phaselog.adapters.core`).

A load reads the newest snapshot at or below the version asked, then the later
events. A snapshot is an optimisation, never the truth: one that cannot be
decoded or rebuilt (unknown topic, failed upcast, invalid state) is logged and
skipped, and the whole stream is replayed; a failing database is not skipped
(it fails the load, as ``StoreUnavailable``).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar, cast

from eventsourcing.persistence import Mapper, StoredEvent

from phaselog.adapters.core.policy import StoreCore
from phaselog.adapters.core.steps import CoreStep, ReadArchived, ReadEvents, ReadHeads, ReadSnapshot
from phaselog.adapters.errors import translate_errors
from phaselog.domain.errors import NotFound, PhaselogError, ValidationFailed
from phaselog.domain.events import Aggregate, DomainEvent
from phaselog.runtime import telemetry
from phaselog.runtime.ports import StreamHead
from phaselog.runtime.sansio import Steps

__all__ = ["exists", "load", "read_stream", "restore", "stream", "stream_heads"]

log = logging.getLogger("phaselog.store")
AggT = TypeVar("AggT", bound=Aggregate)


def load(
    core: StoreCore, aggregate_id: str, aggregate_type: type[AggT], version: int | None = None
) -> Steps[CoreStep, AggT]:
    """The aggregate of ``aggregate_id``, in a ``phaselog.load`` span (``NotFound``: none or another type)."""
    with (
        telemetry.span("phaselog.load", stream_id=aggregate_id),
        translate_errors(f"loading {aggregate_id!r}"),
    ):
        aggregate = yield from restore(core.mapper, aggregate_id, version, snapshots=core.snapshots)
    if not isinstance(aggregate, aggregate_type):
        msg = f"stream {aggregate_id!r} holds a {type(aggregate).__name__}, not a {aggregate_type.__name__}"
        raise NotFound(msg)
    return aggregate


def restore(
    mapper: Mapper[str], aggregate_id: str, version: int | None, *, snapshots: bool = True
) -> Steps[CoreStep, Any]:
    """The aggregate rebuilt from its newest readable snapshot and the later events (``NotFound``: none)."""
    restored: Any = None
    gt: int | None = None
    found = (yield from ReadSnapshot(aggregate_id, version)) if snapshots else None
    if found is not None:
        try:
            snap: Any = mapper.to_domain_event(found)
            restored, gt = snap.mutate(None), snap.originator_version
        except PhaselogError as exc:
            log.warning("ignoring unreadable snapshot of %s, replaying all events: %s", aggregate_id, exc)
            restored = None
    for record in (yield from read_stream(aggregate_id, gt, version)):
        event: Any = mapper.to_domain_event(record)
        restored = event.mutate(restored)
    if restored is None:
        msg = f"no stream {aggregate_id!r}" + ("" if version is None else f" at version {version}")
        raise NotFound(msg)
    return restored


def read_stream(aggregate_id: str, gt: int | None, lte: int | None) -> Steps[CoreStep, list[StoredEvent]]:
    """The stored events of one stream after ``gt`` up to ``lte``: live ones, and archived ones before them.

    The archives are asked only when the live events do not start right after ``gt``
    (history detached from the database); a store without archives answers none.
    """
    found = list((yield from ReadEvents(aggregate_id, gt=gt, lte=lte)))
    expected = (gt or 0) + 1
    first = found[0].originator_version if found else None
    if first is None or first > expected:
        upto = lte if first is None else first - 1
        if upto is None or upto >= expected:
            found = [*(yield from ReadArchived(aggregate_id, gt, upto)), *found]
    return found


def exists(aggregate_id: str) -> Steps[CoreStep, bool]:
    """True when the stream has at least one event (live, or archived and detached)."""
    with translate_errors(f"looking up {aggregate_id!r}"):
        if (yield from ReadEvents(aggregate_id, limit=1)):
            return True
        return bool((yield from ReadArchived(aggregate_id, None, 1)))


def stream(
    core: StoreCore, aggregate_id: str, gt: int | None = None, lte: int | None = None
) -> Steps[CoreStep, list[DomainEvent]]:
    """All events of one stream (after ``gt``, up to ``lte``), oldest first."""
    with translate_errors(f"reading {aggregate_id!r}"):
        records = yield from read_stream(aggregate_id, gt, lte)
        return [cast("DomainEvent", core.mapper.to_domain_event(r)) for r in records]


def stream_heads(
    prefix: str = "", *, open_only: bool = False, after: str | None = None, limit: int | None = None
) -> Steps[CoreStep, list[StreamHead]]:
    """The head (version, position, open flag) of every stream starting with ``prefix``, by id.

    ``after`` and ``limit`` page through them (the ids after ``after``, at most ``limit``).
    """
    if limit is not None and limit < 1:
        raise ValidationFailed(f"a page holds at least one stream, not {limit}")
    with translate_errors(f"listing stream heads {prefix!r}"):
        return (yield from ReadHeads(prefix, open_only, after, limit))
