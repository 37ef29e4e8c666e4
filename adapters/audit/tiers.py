"""Archived tiers read through: history detached from the database, read back from its archive files.

Give a store the location of its archives (``?archive_dir=DIR`` in its URL, or
``store.use_archives(DirectoryLocation(dir))``; any object with ``names()``,
``open(name)`` and ``describe(name)`` plugs object storage in, as an fsspec
filesystem does). Then reads that reach below the first position still in the
database — a stream's history (``load`` of any version, as-of, timeline), the
global log (replay, export, read-model rebuilds) and ``audit verify`` — take the
archived positions from the files, transparently. Each file is checked against the
digest the store recorded when it was archived before any of it is used; a missing
file is :class:`ArchiveMissing` and a changed one an ``IntegrityViolation``, both
naming the file: history is never silently missing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from eventsourcing.persistence import StoredEvent

from phaselog.adapters.audit.archive import records
from phaselog.adapters.audit.archive_file import Archive, read_archive
from phaselog.adapters.audit.reading import Reader, snapshot_reader
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.schema import ARCHIVES_TABLE, TAILS_TABLE
from phaselog.domain.errors import IntegrityViolation, NotFound
from phaselog.runtime.ports import LogRecord

__all__ = ["ArchiveLocation", "ArchiveMissing", "ArchiveTier", "DirectoryLocation", "archive_name"]

_LIVE_START_SECONDS = 30.0


class ArchiveMissing(NotFound):
    """An archive the store recorded is not where its location says: its history cannot be read."""


class ArchiveLocation(Protocol):
    """Where archive files are kept (a directory; object storage through an fsspec-like object)."""

    def names(self) -> list[str]:
        """The archive files there."""
        ...

    def open(self, name: str) -> IO[bytes]:
        """The file ``name``, for reading (``FileNotFoundError`` when absent)."""
        ...

    def describe(self, name: str) -> str:
        """Where ``name`` is, for messages."""
        ...


class DirectoryLocation:
    """Archive files in one directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def names(self) -> list[str]:
        """The ``*.gz`` files of the directory."""
        return sorted(p.name for p in self.path.glob("*.gz")) if self.path.is_dir() else []

    def open(self, name: str) -> IO[bytes]:
        """The file ``name`` of the directory."""
        return (self.path / name).open("rb")

    def describe(self, name: str) -> str:
        """Its path."""
        return str(self.path / name)


def archive_name(start: int, before: int) -> str:
    """The name the retention policy (and ``audit archive`` into a directory) gives an archive."""
    return f"phaselog-{start:012d}-{before - 1:012d}.jsonl.gz"


class ArchiveTier:
    """The archives of one store, read through where the database no longer holds their positions."""

    def __init__(self, store: Any, location: ArchiveLocation, *, cached: int = 2) -> None:
        self.store = store
        self.location = location
        self._cached = cached
        self._archives: OrderedDict[int, Archive] = OrderedDict()
        self._live: tuple[float, int] = (0.0, 0)
        self._lock = threading.Lock()

    # -- what the store recorded ---------------------------------------------------------------
    def _recorded(self, read: Reader | None = None) -> list[tuple[int, int, int, str]]:
        """``(id, start, before, file_digest)`` of each recorded archive, oldest first (through ``read``)."""
        if read is None:
            with snapshot_reader(self.store) as own:
                return self._recorded(own)
        done = {r.id: r for r in records(read)}
        digests = dict(read(f"SELECT id, file_digest FROM {read.table(ARCHIVES_TABLE)}"))
        return [(i, r.start, r.before, str(digests.get(i) or "")) for i, r in sorted(done.items())]

    def live_start(self) -> int:
        """The first position the database still holds (re-read every 30 seconds)."""
        at, start = self._live
        if time.monotonic() - at > _LIVE_START_SECONDS:
            with translate_errors("reading the event log"):
                first = self.store.app.recorder.select_notifications(start=1, limit=1)
            start = int(first[0].id) if first else int(self.store.max_position()) + 1
            self._live = (time.monotonic(), start)
        return start

    def paths(self) -> list[str]:
        """Every recorded archive's file, oldest first (what ``audit verify`` reads with the store)."""
        return [self.location.describe(self._name(start, before)) for _, start, before, _ in self._recorded()]

    def _name(self, start: int, before: int) -> str:
        wanted = archive_name(start, before)
        names = self.location.names()
        if wanted in names:
            return wanted
        for name in names:  # an archive made under another name: found by its header
            try:
                with self.location.open(name) as handle:
                    head = read_archive(name, handle.read())
            except (OSError, NotFound, ValueError):
                continue
            if (head.start, head.before) == (start, before):
                return name
        msg = f"the archive of positions {start}-{before - 1} is missing: {self.location.describe(wanted)}"
        raise ArchiveMissing(msg)

    def archive(self, archive_id: int, start: int, before: int, digest: str) -> Archive:
        """The contents of one recorded archive, its file checked against the recorded digest first."""
        with self._lock:
            found = self._archives.get(archive_id)
            if found is not None:
                self._archives.move_to_end(archive_id)
                return found
        name = self._name(start, before)
        where = self.location.describe(name)
        try:
            with self.location.open(name) as handle:
                data = handle.read()
        except OSError as exc:
            raise ArchiveMissing(f"cannot read the archive {where}: {exc}") from exc
        if digest and hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityViolation(
                f"the archive {where} does not match the digest recorded for it: changed"
            )
        found = read_archive(where, data)
        with self._lock:
            self._archives[archive_id] = found
            while len(self._archives) > self._cached:
                self._archives.popitem(last=False)
        return found

    # -- reads ------------------------------------------------------------------------------------
    def stream_events(self, stream_id: str, gt: int | None, lte: int | None) -> list[StoredEvent]:
        """The archived events of ``stream_id`` after version ``gt`` up to ``lte``, by version."""
        return [event for _, event in self.stream_positions(stream_id, gt, lte)]

    def stream_positions(
        self, stream_id: str, gt: int | None, lte: int | None
    ) -> list[tuple[int, StoredEvent]]:
        """Like :meth:`stream_events`, each event with its global position."""
        with snapshot_reader(self.store) as read:
            tails = list(
                read(
                    f"SELECT archive_id, version FROM {read.table(TAILS_TABLE)} "
                    f"WHERE stream_id = {read.param} ORDER BY archive_id",
                    (stream_id,),
                )
            )
            recorded = self._recorded(read) if tails else []
        if not tails:
            return []
        held: dict[int, tuple[int, int]] = {}
        previous = 0
        for archive_id, version in tails:
            if int(version) > previous:
                held[int(archive_id)] = (previous, int(version))  # it holds versions previous+1..version
            previous = int(version)
        low, high = gt or 0, lte if lte is not None else 1 << 62
        out: list[tuple[int, StoredEvent]] = []
        for archive_id, start, before, digest in recorded:
            span = held.get(archive_id)
            if span is None or span[1] <= low or span[0] >= high:
                continue
            contents = self.archive(archive_id, start, before, digest)
            out += [
                (position, StoredEvent(sid, version, topic, state))
                for position, sid, version, topic, state in contents.events
                if sid == stream_id and low < version <= high
            ]
        return sorted(out, key=lambda pair: pair[1].originator_version)

    def log_records(
        self, start: int, limit: int, stop: int | None, topics: Sequence[str] = ()
    ) -> list[LogRecord]:
        """The archived events from position ``start`` below the database's first (at most ``limit``)."""
        end = self.live_start() - 1 if stop is None else min(stop, self.live_start() - 1)
        wanted = set(topics)
        out: list[LogRecord] = []
        for archive_id, first, before, digest in self._recorded():
            if before <= start or first > end or len(out) >= limit:
                continue
            contents = self.archive(archive_id, first, before, digest)
            out += [
                LogRecord(position, sid, version, topic, state)
                for position, sid, version, topic, state in contents.events
                if start <= position <= end and (not wanted or topic in wanted)
            ]
        return sorted(out)[:limit]
