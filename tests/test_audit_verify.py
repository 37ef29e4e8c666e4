"""verify detects events changed, removed or inserted behind phaselog's back, by position."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from projections_support import open_account

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.history import verify
from phaselog.adapters.recorders import CHAIN_TABLE

from conftest import raw_execute


@pytest.fixture
def seeded(durable_url: str) -> Iterator[tuple[str, Store]]:
    with open_store(durable_url) as store:
        open_account(store, "acct:a", deposits=(1, 2))
        open_account(store, "acct:b", deposits=(3, 4))
        open_account(store, "acct:c", deposits=(5,))
        yield durable_url, store


def _events(url: str) -> str:
    """Eventsourcing names the events table ``stored_events`` on SQLite, ``<app>_events`` on PostgreSQL."""
    return "stored_events" if url.startswith("sqlite") else "phaselog_events"


def _sql(url: str, sql: str) -> str:
    sql = sql.replace("EVENTS", _events(url))
    return sql.replace("%s", "?") if url.startswith("sqlite") else sql


def _position(url: str, stream: str, version: int) -> int:
    column = "rowid" if url.startswith("sqlite") else "notification_id"
    sql = f"SELECT {column} FROM EVENTS WHERE originator_id = %s AND originator_version = %s"
    rows = raw_execute(url, _sql(url, sql), (stream, version))
    return int(str(rows[0][0]))


def _unguarded(url: str, sql: str, params: tuple[object, ...] = ()) -> None:
    """Run SQL with the append-only triggers out of the way, as an attacker with DB access would."""
    if url.startswith("sqlite"):
        raw_execute(url, "DROP TRIGGER IF EXISTS stored_events_no_update")
        raw_execute(url, "DROP TRIGGER IF EXISTS stored_events_no_delete")
        raw_execute(url, _sql(url, sql), params)
    else:
        raw_execute(url, "ALTER TABLE phaselog_events DISABLE TRIGGER USER")
        raw_execute(url, _sql(url, sql), params)
        raw_execute(url, "ALTER TABLE phaselog_events ENABLE TRIGGER USER")


def test_untouched_history_verifies(seeded: tuple[str, Store]) -> None:
    """A store written only through phaselog verifies, every event checked."""
    _, store = seeded
    report = verify(store)
    assert report.ok
    assert report.checked == store.max_position() == 8
    assert report.head_position == 8
    assert len(report.head_digest) == 64


def test_changed_event_is_named(seeded: tuple[str, Store]) -> None:
    """Editing one stored event's state is reported as changed at exactly its position."""
    url, store = seeded
    position = _position(url, "acct:b", 2)
    sql = "SELECT state FROM EVENTS WHERE originator_id = %s AND originator_version = %s"
    state = orjson.loads(raw_execute(url, _sql(url, sql), ("acct:b", 2))[0][0])  # type: ignore[arg-type]
    state["amount"] = 1_000_000
    _unguarded(
        url,
        "UPDATE EVENTS SET state = %s WHERE originator_id = %s AND originator_version = %s",
        (orjson.dumps(state), "acct:b", 2),
    )
    report = verify(store)
    assert not report.ok
    assert [(p.position, p.kind, p.stream_id, p.version) for p in report.problems] == [
        (position, "changed", "acct:b", 2)
    ]


def test_changed_topic_is_named(seeded: tuple[str, Store]) -> None:
    """Changing only an event's topic breaks the chain at that position."""
    url, store = seeded
    position = _position(url, "acct:a", 3)
    _unguarded(
        url,
        "UPDATE EVENTS SET topic = %s WHERE originator_id = %s AND originator_version = %s",
        ("tests.proj.Other", "acct:a", 3),
    )
    assert [(p.position, p.kind) for p in verify(store).problems] == [(position, "changed")]


def test_removed_event_is_named(seeded: tuple[str, Store]) -> None:
    """Deleting a stored event is reported as removed at its former position."""
    url, store = seeded
    position = _position(url, "acct:a", 2)
    _unguarded(url, "DELETE FROM EVENTS WHERE originator_id = %s AND originator_version = %s", ("acct:a", 2))
    report = verify(store)
    assert [(p.position, p.kind, p.stream_id, p.version) for p in report.problems] == [
        (position, "removed", "acct:a", 2)
    ]


def test_removed_last_event_is_named(seeded: tuple[str, Store]) -> None:
    """Deleting the newest event is reported too (the chain still records it)."""
    url, store = seeded
    _unguarded(url, "DELETE FROM EVENTS WHERE originator_id = %s AND originator_version = %s", ("acct:c", 2))
    assert [(p.position, p.kind) for p in verify(store).problems] == [(8, "removed")]


def test_inserted_event_is_named(seeded: tuple[str, Store]) -> None:
    """An event inserted with plain SQL is reported as inserted at its position."""
    url, store = seeded
    state = orjson.dumps({"amount": 50, "timestamp": "2026-01-01T00:00:00Z"})
    _unguarded(
        url,
        "INSERT INTO EVENTS (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)",
        ("acct:c", 3, "tests.proj.Deposited", state),
    )
    position = _position(url, "acct:c", 3)
    report = verify(store)
    assert [(p.position, p.kind, p.stream_id, p.version) for p in report.problems] == [
        (position, "inserted", "acct:c", 3)
    ]


def test_events_appended_after_tampering_still_chain(seeded: tuple[str, Store]) -> None:
    """After one tampered event, later phaselog writes verify and only the tampered position is named."""
    url, store = seeded
    position = _position(url, "acct:a", 1)
    _unguarded(
        url,
        "UPDATE EVENTS SET topic = %s WHERE originator_id = %s AND originator_version = %s",
        ("tests.proj.Other", "acct:a", 1),
    )
    open_account(store, "acct:d", deposits=(7,))
    report = verify(store)
    assert report.checked == 10
    assert [p.position for p in report.problems] == [position]


def test_chain_rows_are_append_only(seeded: tuple[str, Store]) -> None:
    """The chain table itself rejects UPDATE and DELETE like the events table."""
    url, _ = seeded
    with pytest.raises(Exception, match="append-only"):
        raw_execute(url, f"DELETE FROM {CHAIN_TABLE}")


def test_memory_store_has_no_chain() -> None:
    """Verify on the memory store says it is unsupported rather than claiming success."""
    with open_store("memory://") as store:
        open_account(store, "acct:a")
        report = verify(store)
    assert not report.supported
    assert not report.ok
