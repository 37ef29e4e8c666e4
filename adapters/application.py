"""The eventsourcing application behind a :class:`~phaselog.adapters.store.Store`, and the sync shell.

One notification log for every aggregate, the pydantic + orjson mapper, and a
repository that loads by the store core's rules (:func:`phaselog.adapters.core.restore`:
the full history is replayed when a snapshot cannot be read). :func:`on_recorders`
answers the store core's steps on the application's recorders.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

import psycopg
from eventsourcing.application import Application, ProjectorFunction, Repository
from eventsourcing.persistence import AggregateRecorder

from phaselog.adapters.codec import MAX_EVENT_BYTES, OrjsonTranscoder, PydanticMapper
from phaselog.adapters.core import (
    Append,
    CoreStep,
    PutSnapshot,
    ReadArchived,
    ReadEvents,
    ReadHeads,
    ReadSnapshot,
    restore,
    snapshot_due,
)
from phaselog.adapters.urls import MAX_EVENT_BYTES_ENV
from phaselog.domain.events import Snapshot
from phaselog.runtime.sansio import drive

__all__ = [
    "PhaselogApplication",
    "SnapshotFallbackRepository",
    "is_concurrent_ddl",
    "on_recorders",
    "snapshot_due",
]

# Errors PostgreSQL raises when two processes create the same tables at the same moment.
_CONCURRENT_DDL = (
    psycopg.errors.UniqueViolation,
    psycopg.errors.DuplicateObject,
    psycopg.errors.DuplicateTable,
    psycopg.errors.DuplicateFunction,
    psycopg.errors.DeadlockDetected,
)


def is_concurrent_ddl(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) is a clash of two processes creating tables.

    On PostgreSQL that is a duplicate or a deadlock; on SQLite, a new database
    file that another process holds locked while switching it to WAL mode.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _CONCURRENT_DDL):
            return True
        if isinstance(seen, sqlite3.OperationalError) and "locked" in str(seen):
            return True
        seen = seen.__cause__
    return False


def on_recorders(  # noqa: PLR0911 - one answer per kind of core step
    events: Any, snapshots: AggregateRecorder | None, step: CoreStep, archives: Any = None
) -> object:
    """Answer one store core step on eventsourcing's recorders (the sync shell's I/O).

    ``events`` is the application recorder (every phaselog recorder keeps the
    stream index), ``snapshots`` the snapshot recorder (None: the store keeps none),
    ``archives`` the store's archived tier (None: it reads no archive).
    """
    match step:
        case Append():
            return events.insert_events(step.events, stream_open=step.opens)
        case ReadEvents():
            return events.select_events(step.stream_id, gt=step.gt, lte=step.lte, limit=step.limit)
        case ReadArchived():
            return [] if archives is None else archives.stream_events(step.stream_id, step.gt, step.lte)
        case ReadSnapshot():
            if snapshots is None:
                return None
            found = snapshots.select_events(step.stream_id, desc=True, limit=1, lte=step.lte)
            return found[0] if found else None
        case PutSnapshot():
            if snapshots is not None:
                snapshots.insert_events([step.snapshot])
            return None
        case ReadHeads():
            return events.select_stream_heads(
                step.prefix, open_only=step.open_only, after=step.after, limit=step.limit
            )


class SnapshotFallbackRepository(Repository[str]):
    """A repository that loads by the store core's rules: a snapshot that cannot be read is skipped.

    A snapshot is an optimisation, never the truth: an unreadable snapshot
    (unknown topic, failed upcast, invalid state) is logged and the full history replayed.
    """

    def _reconstruct_aggregate(
        self,
        aggregate_id: str,
        version: int | None,
        projector_func: ProjectorFunction[Any, Any],  # noqa: ARG002 - the core rebuilds by each event's mutate
    ) -> Any:
        snapshots = self.snapshot_store.recorder if self.snapshot_store is not None else None
        recorder = self.event_store.recorder
        protocol = restore(self.event_store.mapper, aggregate_id, version, snapshots=snapshots is not None)
        return drive(protocol, lambda step: on_recorders(recorder, snapshots, step))


class PhaselogApplication(Application[str]):
    """The eventsourcing application behind a store: one notification log for everything."""

    name = "phaselog"
    snapshot_class = Snapshot
    mapper: PydanticMapper

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env={**env, "IS_SNAPSHOTTING_ENABLED": "y"})

    def construct_mapper(self) -> PydanticMapper:
        """The pydantic + orjson mapper (eventsourcing's extension point)."""
        return PydanticMapper(
            transcoder=OrjsonTranscoder(),
            cipher=self.factory.cipher(),
            compressor=self.factory.compressor(),
            max_event_bytes=int(self.env.get(MAX_EVENT_BYTES_ENV) or MAX_EVENT_BYTES),
        )

    def construct_repository(self) -> SnapshotFallbackRepository:
        """A repository that survives unreadable snapshots."""
        return SnapshotFallbackRepository(event_store=self.events, snapshot_store=self.snapshots)
