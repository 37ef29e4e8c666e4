from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from phaselog.adapters import Store, open_store
from phaselog.domain.errors import ConcurrencyConflict, NotFound, PhaselogError

from conftest import raw_execute
from support_events import Counter, open_counter


def test_save_and_load_round_trip(store: Store) -> None:
    """Saved events come back as the same aggregate state and version."""
    counter = open_counter("counter:a", label="apples")
    counter.add(3)
    counter.add(4)
    store.save(counter)
    loaded = store.load("counter:a", Counter)
    assert (loaded.label, loaded.total, loaded.version) == ("apples", 7, 3)


def test_one_global_order_across_streams(store: Store) -> None:
    """Events of different streams share one gap-free global order in commit order."""
    a, b = open_counter("counter:a"), open_counter("counter:b")
    store.save(a)
    store.save(b)
    a.add(1)
    store.save(a)
    notes = store.notifications()
    assert [(n.id, n.originator_id, n.originator_version) for n in notes] == [
        (1, "counter:a", 1),
        (2, "counter:b", 1),
        (3, "counter:a", 2),
    ]
    assert store.max_position() == 3


def test_stale_writer_gets_conflict_and_records_nothing(store: Store) -> None:
    """Two writers from the same version: the second gets ConcurrencyConflict and writes nothing."""
    store.save(open_counter("counter:a"))
    first, second = store.load("counter:a", Counter), store.load("counter:a", Counter)
    first.add(1)
    store.save(first)
    second.add(100)
    second.add(200)
    with pytest.raises(ConcurrencyConflict, match="another writer"):
        store.save(second)
    assert store.load("counter:a", Counter).total == 1
    assert store.max_position() == 2


def test_missing_stream_is_not_found(store: Store) -> None:
    """Loading a stream that has no events raises NotFound, a PhaselogError."""
    with pytest.raises(NotFound):
        store.load("counter:nope", Counter)
    assert issubclass(NotFound, PhaselogError)
    assert not store.exists("counter:nope")


def test_stream_ids_by_prefix(store: Store) -> None:
    """stream_ids lists exactly the streams whose id starts with the prefix."""
    for sid in ("task:x:1", "task:x:2", "task:y:1", "plugin:p"):
        store.save(open_counter(sid))
    assert store.stream_ids("task:x:") == ["task:x:1", "task:x:2"]
    assert store.stream_ids() == ["plugin:p", "task:x:1", "task:x:2", "task:y:1"]


def test_historic_version_loads(store: Store) -> None:
    """load(version=N) rebuilds the aggregate as it was at version N."""
    counter = open_counter("counter:h")
    for amount in (1, 2, 3):
        counter.add(amount)
    store.save(counter)
    assert store.load("counter:h", Counter, version=3).total == 3


def test_reopen_keeps_events(durable_url: str) -> None:
    """Opening the same durable store twice is safe and sees earlier events."""
    with open_store(durable_url) as first:
        first.save(open_counter("counter:r"))
    with open_store(durable_url) as second, open_store(durable_url) as third:
        assert second.load("counter:r", Counter).version == 1
        assert third.max_position() == 1


@pytest.mark.parametrize("statement", ["UPDATE {t} SET state = state", "DELETE FROM {t}"])
def test_event_table_is_append_only(durable_url: str, statement: str) -> None:
    """The database itself rejects UPDATE and DELETE of stored events."""
    with open_store(durable_url) as store:
        store.save(open_counter("counter:a"))
        table = "stored_events" if store.kind == "sqlite" else "phaselog_events"
    with pytest.raises(Exception, match="append-only"):
        raw_execute(durable_url, statement.format(t=table))
    with open_store(durable_url) as store:
        assert store.load("counter:a", Counter).version == 1


def test_two_processes_share_one_store(durable_url: str) -> None:
    """Two processes appending to one store both land, in one global order."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from support_events import open_counter
        from phaselog.adapters import open_store
        with open_store({durable_url!r}) as store:
            for i in range(20):
                store.save(open_counter(f"counter:{{sys.argv[1]}}:{{i}}"))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("p", "q")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with open_store(durable_url) as store:
        positions = [n.id for n in store.notifications(limit=100)]
        assert len(positions) == 40
        assert positions == sorted(positions)
        assert len(store.stream_ids("counter:p:")) == 20
