"""The eventsourcing application behind a :class:`~phaselog.adapters.store.Store`.

One notification log for every aggregate, the pydantic + orjson mapper, and a
repository that replays the full history when a snapshot cannot be read.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

import psycopg
from eventsourcing.application import Application, ProjectorFunction, Repository

from phaselog.adapters.codec import MAX_EVENT_BYTES, OrjsonTranscoder, PydanticMapper
from phaselog.adapters.urls import MAX_EVENT_BYTES_ENV
from phaselog.domain.errors import NotFound, PhaselogError
from phaselog.domain.events import Aggregate, Snapshot

__all__ = ["PhaselogApplication", "SnapshotFallbackRepository", "is_concurrent_ddl", "snapshot_due"]

log = logging.getLogger("phaselog.store")

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


def snapshot_due(aggregate: Aggregate, before: int, interval: int) -> bool:
    """True when saving moved ``aggregate`` (a class with ``SNAPSHOTS``) past a multiple of ``interval``."""
    crossed = aggregate.version // interval > before // interval
    return crossed and bool(getattr(aggregate, "SNAPSHOTS", False))


class SnapshotFallbackRepository(Repository[str]):
    """A repository that replays the full history when a snapshot cannot be read.

    A snapshot is an optimisation, never the truth: an unreadable snapshot
    (unknown topic, failed upcast, invalid state) is logged and skipped.
    """

    def _reconstruct_aggregate(
        self,
        aggregate_id: str,
        version: int | None,
        projector_func: ProjectorFunction[Any, Any],
    ) -> Any:
        restored: Any = None
        gt: int | None = None
        if self.snapshot_store is not None:
            try:
                found: list[Any] = list(
                    self.snapshot_store.get(aggregate_id, desc=True, limit=1, lte=version)
                )
                if found:
                    restored, gt = found[0].mutate(None), found[0].originator_version
            except PhaselogError as exc:
                log.warning("ignoring unreadable snapshot of %s, replaying all events: %s", aggregate_id, exc)
        events = self.event_store.get(aggregate_id, gt=gt, lte=version)
        aggregate = projector_func(restored, events)
        if aggregate is None:
            msg = f"no stream {aggregate_id!r}" + ("" if version is None else f" at version {version}")
            raise NotFound(msg)
        return aggregate


class PhaselogApplication(Application[str]):
    """The eventsourcing application behind a store: one notification log for everything."""

    name = "phaselog"
    snapshot_class = Snapshot

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
