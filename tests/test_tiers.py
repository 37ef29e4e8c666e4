"""Archived tiers read through: history detached from PostgreSQL read back from its files, checked first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import IO, ClassVar

import pytest

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.archive import archive
from phaselog.adapters.audit.history import as_of, export_jsonl, timeline
from phaselog.adapters.audit.integrity import verify
from phaselog.adapters.audit.tiers import ArchiveMissing, archive_name
from phaselog.aio import open_async_store
from phaselog.domain.errors import IntegrityViolation, NotFound
from phaselog.projections import Projections
from phaselog.projections.base import EventData, Projection, Rows

from support_events import Counter, open_counter

Detached = tuple[str, Path, dict[str, list[int]]]
"""A detached store's URL, the folder of its archive, and each stream's versions before the detach."""


def _fill(store: Store, count: int) -> None:
    for n in range(count):
        sid = f"c-{n % 7}"
        counter = store.load(sid, Counter) if store.exists(sid) else open_counter(sid)
        counter.add(n)
        store.save(counter)


@pytest.fixture
def detached(make_url: Callable[[str], str], tmp_path: Path) -> tuple[str, Path, dict[str, list[int]]]:
    """A partitioned store of 250 events whose first 200 are archived and detached; each stream's versions."""
    url = make_url("postgresql") + "&partition_size=100"
    with open_store(url) as store:
        _fill(store, 250)
        versions = {sid: [e.originator_version for e in store.stream(sid)] for sid in store.stream_ids("c-")}
        archive(store, 201, tmp_path / archive_name(1, 201), detach=True)
    return url, tmp_path, versions


def test_without_its_archives_a_store_lacks_the_detached_history(
    detached: Detached,
) -> None:
    """Without an archive location the detached events are gone from reads (the reason for read-through)."""
    url, _, versions = detached
    with open_store(url) as store:
        assert len(store.stream("c-0")) < len(versions["c-0"])
        with pytest.raises(NotFound):
            store.load("c-0", Counter, version=1)


def test_reads_reach_through_to_the_archives(detached: Detached) -> None:
    """With ?archive_dir= every read sees the whole history: streams, old versions, as-of, timeline, log."""
    url, folder, versions = detached
    with open_store(f"{url}&archive_dir={folder}") as store:
        assert {sid: [e.originator_version for e in store.stream(sid)] for sid in versions} == versions
        assert store.load("c-0", Counter, version=1).total == 0
        assert as_of(store, "c-3", version=2).version == 2
        events = timeline(store, "c-1")
        assert [e.version for e in events] == versions["c-1"]
        assert all(e.position > 0 for e in events)
        assert [n.id for n in store.notifications(1, 300)] == list(range(1, store.max_position() + 1))
        assert [r.id for r in store.records(150, 100)] == list(range(150, 250))
        out = BytesIO()
        assert export_jsonl(store, out) == store.max_position()
        assert verify(store).ok  # the archived positions checked from their file, found by the store


class _Counts(Projection):
    """Events per counter stream."""

    name: ClassVar[str] = "tier_counts"
    key: ClassVar[str] = "stream"
    columns: ClassVar[dict[str, str]] = {"stream": "text", "events": "int"}

    def apply(self, rows: Rows, event: EventData) -> None:
        if event.stream_id.startswith("c-"):
            row = rows.get(event.stream_id) or {"stream": event.stream_id, "events": 0}
            rows.put(event.stream_id, {**row, "events": int(row["events"]) + 1})


def test_a_read_model_folds_the_archived_history(detached: Detached) -> None:
    """A read model caught up from position 1 folds the archived events too: one count per event."""
    url, folder, versions = detached
    with open_store(f"{url}&archive_dir={folder}") as store, Projections(store, [_Counts()]) as views:
        views.catch_up()
        assert {r["stream"]: r["events"] for r in views["tier_counts"].list()} == {
            sid: len(v) for sid, v in versions.items()
        }


def test_a_missing_or_changed_archive_is_a_typed_error_naming_the_file(
    detached: Detached, tmp_path: Path
) -> None:
    """Read-through skips no history: a missing file is ArchiveMissing, a changed one IntegrityViolation."""
    url, folder, _ = detached
    path = folder / archive_name(1, 201)
    data = path.read_bytes()
    path.rename(folder / "elsewhere.bin")
    with open_store(f"{url}&archive_dir={folder}") as store, pytest.raises(ArchiveMissing, match=path.name):
        store.stream("c-0")
    path.write_bytes(data[:-8] + b"\x00" * 8)
    with (
        open_store(f"{url}&archive_dir={folder}") as store,
        pytest.raises(IntegrityViolation, match=path.name),
    ):
        store.stream("c-0")


class _Bucket:
    """An object-storage stand-in: archive files as bytes under names (what an fsspec location answers)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def names(self) -> list[str]:
        return sorted(self.files)

    def open(self, name: str) -> IO[bytes]:
        return BytesIO(self.files[name])

    def describe(self, name: str) -> str:
        return f"bucket://archives/{name}"


def test_any_location_with_names_and_open_plugs_in(detached: Detached) -> None:
    """A location that is not a directory (object storage) serves the read-through the same way."""
    url, folder, versions = detached
    bucket = _Bucket({p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".gz"})
    with open_store(url) as store:
        store.use_archives(bucket)
        assert len(store.stream("c-2")) == len(versions["c-2"])


def test_an_async_store_reads_through_too(detached: Detached) -> None:
    """``await store.stream(...)`` on an async store sees the archived history as the sync store does."""
    url, folder, versions = detached

    async def main() -> int:
        async with open_async_store(f"{url}&archive_dir={folder}") as store:
            return len(await store.stream("c-4"))

    assert asyncio.run(main()) == len(versions["c-4"])
