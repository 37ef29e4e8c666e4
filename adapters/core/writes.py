"""Saving and snapshotting, decided once for both shells (see :mod:`phaselog.adapters.core`).

A save checks the store is writable, opens the ``phaselog.append`` span (and
counts ``phaselog.events.appended`` once it committed, :func:`phaselog.runtime.telemetry.appending`),
encodes the pending events (the event size policy raises before any I/O),
asks for one atomic :class:`~.steps.Append`, snapshots what crossed the
snapshot interval, and tells the store's sealing the position it committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification, Recording, StoredEvent

from phaselog.adapters.codec import SnapshotRefused
from phaselog.adapters.core.policy import StoreCore, snapshot_due
from phaselog.adapters.core.steps import Append, CoreStep, PutSnapshot
from phaselog.adapters.errors import translate_errors
from phaselog.domain.errors import PhaselogError
from phaselog.domain.events import Aggregate, Snapshot
from phaselog.runtime import telemetry
from phaselog.runtime.ports import Saved
from phaselog.runtime.sansio import Steps

__all__ = ["recordings", "save", "snapshot"]

log = logging.getLogger("phaselog.store")


def save(core: StoreCore, aggregates: Sequence[Aggregate]) -> Steps[CoreStep, Saved[Recording[str]]]:
    """Append the pending events of ``aggregates`` atomically; return their recordings and position.

    ``ConcurrencyConflict`` (nothing recorded) when another writer appended to
    one of the streams from the same version first.
    """
    core.check_writable("saving events")
    before = [(agg, agg.version - len(agg.pending_events)) for agg in aggregates]
    with telemetry.appending(aggregates), translate_errors("saving events"):
        # the stream index's open flags, written in the append's own transaction
        opens = {agg.id: agg.stream_open for agg in aggregates}
        events = [event for agg in aggregates for event in agg.collect_events()]
        stored = [core.mapper.to_stored_event(event) for event in events]
        positions = yield from Append(stored, opens)
    saved = Saved(recordings(events, stored, positions or ()), max(positions or (), default=0))
    for agg, version in before:
        if snapshot_due(agg, version, core.snapshot_interval):
            yield from snapshot(core, agg)
    core.committed(saved.position)
    return saved


def recordings(
    events: Sequence[Any], stored: Sequence[StoredEvent], positions: Sequence[int]
) -> list[Recording[str]]:
    """What a save returns: each event with its notification (nothing when no position came back)."""
    if not positions:
        return []
    return [
        Recording(
            domain_event=event,
            notification=Notification(
                id=position,
                originator_id=record.originator_id,
                originator_version=record.originator_version,
                topic=record.topic,
                state=record.state,
            ),
        )
        for event, record, position in zip(events, stored, positions, strict=True)
    ]


def snapshot(core: StoreCore, aggregate: Aggregate) -> Steps[CoreStep, None]:
    """Store a snapshot of ``aggregate`` as just saved (none with pending events, or read-only).

    A failure is logged, never raised: the events are durable and a snapshot is only an optimisation.
    """
    if aggregate.pending_events or not core.snapshots or core.read_only:
        return
    try:
        with translate_errors(f"snapshotting {aggregate.id!r}"):
            stored = core.mapper.to_stored_event(Snapshot.take(aggregate))
            yield from PutSnapshot(stored)
    except SnapshotRefused as exc:  # a stream holding personal data is never snapshotted
        log.debug("%s", exc)
    except PhaselogError as exc:
        log.warning("snapshot of %s at version %d not stored: %s", aggregate.id, aggregate.version, exc)
