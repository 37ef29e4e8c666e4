"""Archives: sealed segments of the history, verifiable alone and as the live store's prefix."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.archive import archive
from phaselog.adapters.audit.integrity import verify, verify_archive
from phaselog.domain import PluginPhase
from phaselog.domain.errors import ValidationFailed

from conftest import raw_execute
from support_events import Counter, open_counter


def _fill(store: Store, prefix: str, count: int) -> None:
    for n in range(count):
        sid = f"{prefix}-{n % 7}"
        counter = store.load(sid, Counter) if store.exists(sid) else open_counter(sid)
        counter.add(n)
        store.save(counter)


def test_an_archive_verifies_alone_and_as_the_prefix_of_the_store(durable_url: str, tmp_path: Path) -> None:
    """The archive file verifies by itself; the store verifies with it and, by its recorded tails, without."""
    with open_store(durable_url) as store:
        _fill(store, "c", 40)
        store.plugins.machine("p").transition_to(PluginPhase.INSTALLING, "before the archive")
        before = store.max_position() - 10
        report = archive(store, before, tmp_path / "a1.jsonl.gz")
        assert (report.start, report.before) == (1, before)
        assert report.events == before - 1
        assert report.snapshotted >= 7  # every archived stream can load without its old events
        assert verify_archive(tmp_path / "a1.jsonl.gz").ok
        _fill(store, "c", 20)
        store.plugins.machine("p").transition_to(PluginPhase.INSTALLED, "after the archive")
        assert verify(store).ok
        assert verify(store, archives=[tmp_path / "a1.jsonl.gz"]).ok
        second = archive(store, store.max_position(), tmp_path / "a2.jsonl.gz")
        assert second.start == before
        both = verify(store, archives=[tmp_path / "a1.jsonl.gz", tmp_path / "a2.jsonl.gz"])
        assert both.ok, both.problems
        assert verify(store, archives=[tmp_path / "a2.jsonl.gz"]).ok
        with pytest.raises(ValidationFailed, match="newest"):
            verify(store, archives=[tmp_path / "a1.jsonl.gz"])


def test_a_tampered_archive_is_caught(durable_url: str, tmp_path: Path) -> None:
    """Changing an event inside an archive file shows in verify_archive and in the store's verify."""
    with open_store(durable_url) as store:
        _fill(store, "c", 20)
        path = tmp_path / "a.jsonl.gz"
        archive(store, 15, path)
        lines = gzip.decompress(path.read_bytes()).splitlines()
        line = orjson.loads(lines[3])
        line["event"][3] = "tests.counter.Renamed"  # the topic of the event at position 3
        lines[3] = orjson.dumps(line)
        path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
        assert [p.kind for p in verify_archive(path).problems] == ["changed"]
        assert [p.kind for p in verify(store, archives=[path]).problems] == ["changed"]


def test_detaching_archived_partitions_keeps_the_store_whole(
    make_url: Callable[[str], str], tmp_path: Path
) -> None:
    """After archiving and detaching whole partitions, aggregates still load and the store verifies."""
    base = make_url("postgresql")
    with open_store(base + "&partition_size=100") as store:
        _fill(store, "c", 250)
        totals = {f"c-{n}": store.load(f"c-{n}", Counter).total for n in range(7)}
        path = tmp_path / "old.jsonl.gz"
        report = archive(store, 201, path, detach=True)
        assert sorted(report.detached) == sorted(
            [f"phaselog_events_p{k}" for k in (0, 1)] + [f"phaselog_audit_chain_p{k}" for k in (0, 1)]
        )
        assert int(str(raw_execute(base, "SELECT min(notification_id) FROM phaselog_events")[0][0])) >= 200
        assert {f"c-{n}": store.load(f"c-{n}", Counter).total for n in range(7)} == totals
        _fill(store, "c", 10)
        assert verify(store).ok
        assert verify(store, archives=[path]).ok


def test_archiving_refuses_what_it_cannot_do(make_url: Callable[[str], str], tmp_path: Path) -> None:
    """Positions not yet committed, a memory store and detaching on SQLite are refused, writing nothing."""
    with open_store(make_url("sqlite")) as store:
        _fill(store, "c", 5)
        with pytest.raises(ValidationFailed, match="between"):
            archive(store, store.max_position() + 5, tmp_path / "x.gz")
        with pytest.raises(ValidationFailed, match="PostgreSQL"):
            archive(store, 3, tmp_path / "y.gz", detach=True)
        assert not (tmp_path / "x.gz").exists()
        assert not (tmp_path / "y.gz").exists()
    with open_store("memory://") as memory, pytest.raises(ValidationFailed):
        archive(memory, 2, tmp_path / "m.gz")
