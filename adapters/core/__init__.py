"""The store core: what a store decides, once, for the sync and the async shells (no I/O here).

Opening (:mod:`.opening`), saving with its telemetry, event size policy,
writable check and snapshot policy (:mod:`.writes`), loading with the snapshot
fallback, stream reads and stream heads (:mod:`.reads`) are protocols (see
:mod:`phaselog.runtime.sansio`) yielding the typed steps of :mod:`.steps`. The
sync :class:`~phaselog.adapters.Store` answers them on its eventsourcing
recorders (:func:`phaselog.adapters.application.on_recorders`), the async
PostgreSQL store on psycopg's async connections.
"""

from phaselog.adapters.core.policy import StoreCore, snapshot_due
from phaselog.adapters.core.reads import exists, load, restore, stream, stream_heads
from phaselog.adapters.core.steps import (
    Append,
    CoreStep,
    PutSnapshot,
    ReadArchived,
    ReadEvents,
    ReadHeads,
    ReadSnapshot,
)
from phaselog.adapters.core.writes import save, snapshot

__all__ = [
    "Append",
    "CoreStep",
    "PutSnapshot",
    "ReadArchived",
    "ReadEvents",
    "ReadHeads",
    "ReadSnapshot",
    "StoreCore",
    "exists",
    "load",
    "restore",
    "save",
    "snapshot",
    "snapshot_due",
    "stream",
    "stream_heads",
]
