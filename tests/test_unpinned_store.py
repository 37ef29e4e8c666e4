"""The PostgreSQL write path where a lost reply or a closed stream must not mislead the store.

The append is a sans-I/O protocol: these tests drive it step by step against the real
database, executing the steps phaselog would execute and throwing in the failures a
broken connection would cause, at the exact moment it would cause them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent
from sweep_helpers import DEAD_OWNER, finished_task, orphan

from phaselog.adapters import Store, open_store
from phaselog.adapters.postgres.steps import Pause, Query, persistence_error
from phaselog.aio import open_async_store
from phaselog.domain.task import TaskAggregate, TaskState

from support_events import open_counter

StatementFlow = Any  # the append protocol: a generator of Query and Pause steps


@pytest.fixture
def pg_store(make_url: Callable[[str], str]) -> Iterator[Store]:
    """An open, empty PostgreSQL store."""
    with open_store(make_url("postgresql")) as opened:
        yield opened


def _stored(store: Store, stream_id: str, label: str) -> list[StoredEvent]:
    counter = open_counter(stream_id, label)
    counter.add(7)
    return [store.app.mapper.to_stored_event(e) for e in counter.collect_events()]


def _execute(store: Store, flow: StatementFlow, step: Query | Pause) -> Query | Pause:
    """Do ``step`` for real, as the sync shell does, and hand its answer or its error to the protocol."""
    recorder: Any = store.app.recorder
    try:
        answer = recorder._do(step)  # the sync shell's one step
    except psycopg.Error as exc:
        next_step: Query | Pause = flow.throw(persistence_error(exc))
    except es.PersistenceError as exc:  # the datastore already mapped the driver's error
        next_step = flow.throw(exc)
    else:
        next_step = flow.send(answer)
    return next_step


def _run_to_end(store: Store, flow: StatementFlow, step: Query | Pause) -> tuple[list[Query | Pause], Any]:
    """Execute the protocol's steps from ``step`` on until it returns; give the steps and its result."""
    executed: list[Query | Pause] = []
    while True:
        executed.append(step)
        try:
            step = _execute(store, flow, step)
        except StopIteration as finished:
            return executed, finished.value


def _lose_the_reply(
    store: Store, stored: list[StoredEvent], *, commit_first: bool
) -> tuple[StatementFlow, Query]:
    """Start an append whose connection breaks before the reply (after committing, if asked).

    Returns the protocol and its retried statement, the next step to execute.
    """
    flow: StatementFlow = store.app.recorder.statements.append(stored, {})  # type: ignore[attr-defined]
    first = next(flow)
    assert isinstance(first, Query)
    if commit_first:
        store.app.recorder._do(first)  # type: ignore[attr-defined] # it commits
    pause = flow.throw(es.OperationalError("server closed the connection unexpectedly"))
    assert isinstance(pause, Pause)
    retried = flow.send(None)
    assert retried == first  # the same statement again
    return flow, retried


def test_a_retry_after_a_lost_reply_returns_the_positions_already_stored(pg_store: Store) -> None:
    """An append that committed before its connection broke returns the stored positions, not a conflict."""
    stored = _stored(pg_store, "counter:lost-reply", "mine")
    flow, step = _lose_the_reply(pg_store, stored, commit_first=True)
    executed, positions = _run_to_end(pg_store, flow, step)
    assert positions == [1, 2]
    assert len(executed) == 1 + len(stored)  # the refused retry, then one look per event
    log = pg_store.notifications(1, 10)
    assert [(n.id, n.originator_version, n.state) for n in log] == [
        (1, 1, stored[0].state),
        (2, 2, stored[1].state),
    ]  # stored once, never twice


def test_a_retry_that_finds_other_events_at_its_versions_is_a_conflict(pg_store: Store) -> None:
    """A retry meeting another writer's events at its versions raises IntegrityError, never takes them."""
    theirs = _stored(pg_store, "counter:contended", "theirs")
    ours = _stored(pg_store, "counter:contended", "ours")
    assert [e.topic for e in theirs] == [e.topic for e in ours]  # only the contents differ
    pg_store.app.recorder.insert_events(theirs)
    flow, step = _lose_the_reply(pg_store, ours, commit_first=False)
    with pytest.raises(es.IntegrityError):
        _run_to_end(pg_store, flow, step)
    log = pg_store.notifications(1, 10)
    assert [n.state for n in log] == [e.state for e in theirs]


def test_a_retry_that_finds_only_its_first_event_stored_is_a_conflict(pg_store: Store) -> None:
    """A retry finding its own first event but another second one is a conflict, not its own append."""
    ours = _stored(pg_store, "counter:half", "ours")
    theirs = _stored(pg_store, "counter:half", "theirs")
    pg_store.app.recorder.insert_events([ours[0]])
    pg_store.app.recorder.insert_events([theirs[1]])
    flow, step = _lose_the_reply(pg_store, ours, commit_first=False)
    with pytest.raises(es.IntegrityError):
        _run_to_end(pg_store, flow, step)


# -- closed streams saved through the async PostgreSQL store -----------------------------------
def test_a_closed_stream_saved_through_the_async_store_is_not_listed_as_open(
    make_url: Callable[[str], str],
) -> None:
    """Streams saved closed (or closed by a later save) through phaselog.aio leave stream_heads(open_only)."""
    url = make_url("postgresql")
    prefix = "task:svc:"

    async def main() -> tuple[list[str], dict[str, bool]]:
        async with open_async_store(url) as astore:
            # one append: a finished, delivered task (closed) beside an undelivered one (open)
            await astore.save(finished_task("svc", "done"), orphan("svc", "owed", TaskState.COMPLETED))
            await astore.save(orphan("svc", "later", TaskState.COMPLETED))
            later = await astore.load(f"{prefix}later", TaskAggregate)
            later.mark_delivered(1, DEAD_OWNER)  # the delivery closes the stream
            assert not later.stream_open
            await astore.save(later)
            listed = [h.stream_id for h in await astore.stream_heads(prefix, open_only=True)]
            flags = {h.stream_id: h.open for h in await astore.stream_heads(prefix)}
            return listed, flags

    listed, flags = asyncio.run(main())
    assert listed == [f"{prefix}owed"]
    assert flags == {f"{prefix}done": False, f"{prefix}later": False, f"{prefix}owed": True}
    with open_store(url) as store:  # the sync store reads the same index
        assert [h.stream_id for h in store.stream_heads(prefix, open_only=True)] == [f"{prefix}owed"]
