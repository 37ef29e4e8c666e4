"""Group commit's lanes: a second batch is written beside the one in flight once enough appends queue."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
import pytest
from psycopg import sql
from test_group_commit import _event, _wait_for

from phaselog.adapters import open_store
from phaselog.adapters.audit.history import verify
from phaselog.adapters.core.gather import Command, Gathering
from phaselog.adapters.gathering import ThreadGathering
from phaselog.adapters.postgres.schema import HEADS_TABLE
from phaselog.aio import open_async_store
from phaselog.aio.gathering import AsyncGathering
from phaselog.domain.errors import ConcurrencyConflict, StoreUnavailable

from support_events import Counter, open_counter


def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


def _arrive(gathering: Gathering, name: str) -> Command:
    return gathering.arrive(Command.of([_event(name)], {}))


def _second_lane_opened() -> tuple[Gathering, Command, Command, Command]:
    """Two lanes opening at two queued: ``first`` in flight, ``a`` waiting, ``b`` leading the second lane."""
    gathering = Gathering(lanes=2, lane_at=2)
    first = _arrive(gathering, "first")
    gathering.take(first)
    a, b = _arrive(gathering, "a"), _arrive(gathering, "b")
    assert not a.leads
    assert b.leads
    return gathering, first, a, b


# -- the decisions, without I/O -------------------------------------------------------------------
def test_a_second_lane_opens_once_enough_appends_queue_behind_the_batch_in_flight() -> None:
    """With two lanes, the lane_at-th queued append leads a batch of the queue while the first is written."""
    gathering = Gathering(lanes=2, lane_at=3)
    first = _arrive(gathering, "first")
    assert gathering.take(first) == [first]
    a, b = _arrive(gathering, "a"), _arrive(gathering, "b")
    assert not a.leads
    assert not b.leads  # two waiting: fewer than lane_at, they wait for the batch in flight
    c = _arrive(gathering, "c")
    assert c.leads
    assert gathering.in_flight == 2
    assert gathering.take(c) == [c, a, b]  # its leader first, then the queue in order
    d = _arrive(gathering, "d")
    assert not d.leads  # both lanes busy
    assert gathering.settle([first], [[1]]) is None  # one lane still busy, and only one waits
    assert gathering.settle([c, a, b], [[2], [3], [4]]) is d  # nothing in flight: the next in line leads
    assert gathering.in_flight == 1


def test_one_lane_never_opens_another_however_long_the_queue() -> None:
    """A gathering of one lane (SQLite's) has at most one batch in flight: later appends only queue."""
    gathering = Gathering(lane_at=1)
    first = _arrive(gathering, "first")
    waiting = [_arrive(gathering, f"w{n}") for n in range(10)]
    assert first.leads
    assert not any(command.leads for command in waiting)
    assert gathering.in_flight == 1


def test_a_batch_leaves_the_commands_that_lead_batches_of_their_own() -> None:
    """A leader's batch never takes a command that leads another lane: each leader writes its own."""
    gathering, first, a, b = _second_lane_opened()
    assert gathering.settle([first], [[1]]) is a  # a lane came free before b took its batch
    assert gathering.take(b) == [b]
    assert gathering.take(a) == [a]
    assert gathering.in_flight == 2


def test_a_leader_that_gives_up_frees_its_lane() -> None:
    """An abandoned leader gives its lane back; the queue then waits for a lane as the rule says."""
    gathering, first, a, b = _second_lane_opened()
    assert gathering.abandon(b)
    assert gathering.in_flight == 1
    assert gathering.next_leader() is None  # one waits behind the batch in flight: no second lane
    assert gathering.settle([first], [[1]]) is a


def test_lanes_are_at_least_one() -> None:
    """A gathering without a lane is refused at once."""
    with pytest.raises(ValueError, match="at least one lane"):
        Gathering(lanes=0)


# -- the shells -----------------------------------------------------------------------------------
def test_threads_write_two_batches_side_by_side_and_each_keeps_its_outcome() -> None:
    """Two batches are in flight at once (both writes wait for each other), and every thread gets its own."""
    both = threading.Barrier(2, timeout=5)  # each of the two writes returns only once the other is in flight
    positions = iter(range(1, 100))
    lock = threading.Lock()

    def write(batch: list[Command]) -> list[Any]:
        both.wait()
        with lock:
            return [[next(positions)] for _ in batch]

    gathering = ThreadGathering(write, lanes=2, lane_at=2)
    results: dict[str, Any] = {}

    def append(name: str) -> None:
        results[name] = list(gathering.append([_event(name)], {}))

    threads = [threading.Thread(target=append, args=(name,)) for name in ("first", "a", "b")]
    threads[0].start()
    _wait_for(lambda: both.n_waiting == 1)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(p for found in results.values() for p in found) == [1, 2, 3]
    assert gathering.batches == 2


def test_tasks_write_two_batches_side_by_side_and_each_keeps_its_outcome() -> None:
    """The async shell drains two lanes at once: two batches in flight, each task answered its own."""

    async def main() -> None:
        in_flight, most = 0, 0
        both = asyncio.Event()

        async def write(batch: list[Command]) -> list[Any]:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 2:
                both.set()
            await asyncio.wait_for(both.wait(), 5)
            in_flight -= 1
            return [[n] for n, _ in enumerate(batch, 1)]

        gathering = AsyncGathering(write, lanes=2, lane_at=2)
        first = asyncio.create_task(gathering.append([_event("first")], {}))
        await asyncio.sleep(0.01)  # the first batch is in flight
        later = [asyncio.create_task(gathering.append([_event(n)], {})) for n in "ab"]
        assert [list(r) for r in await asyncio.gather(first, *later)] == [[1], [1], [2]]
        assert most == 2
        assert gathering.batches == 2
        await gathering.close()

    asyncio.run(main())


# -- real stores ------------------------------------------------------------------------------------
def test_postgresql_stores_write_on_two_lanes_and_sqlite_on_one(make_url: Callable[[str], str]) -> None:
    """PostgreSQL writes two batches side by side, SQLite one at a time; a pool too small for two, one."""
    with open_store(make_url("postgresql")) as pg, open_store(make_url("sqlite")) as lite:
        assert pg.app.recorder.gathering._gathering.lanes == 2  # type: ignore[attr-defined]
        assert lite.app.recorder.gathering._gathering.lanes == 1  # type: ignore[attr-defined]
    with open_store(make_url("postgresql") + "&pool_min=1&pool_max=4") as small:
        assert small.app.recorder.gathering._gathering.lanes == 1  # type: ignore[attr-defined]

    async def main() -> None:
        async with open_async_store(make_url("postgresql")) as store:
            assert store._gathering._gathering.lanes == 2  # type: ignore[attr-defined]

    asyncio.run(main())


def test_the_one_idle_append_session_goes_to_one_lane_and_the_other_takes_a_pooled_one(
    make_url: Callable[[str], str],
) -> None:
    """Two lanes asking at once for one idle append session: one gets it, the other None (then the pool's)."""
    with open_store(make_url("postgresql")) as store:
        store.save(open_counter("counter:warm"))  # its lane gave its session back
        recorder: Any = store.app.recorder
        assert len(recorder._appenders) == 1
        first, second = recorder._idle_appender(), recorder._idle_appender()
        assert first is not None
        assert second is None
        recorder._appenders.append(first)
        store.save(open_counter("counter:after"))
        assert len(recorder._appenders) == 1  # still one session for one lane in use


def test_a_batch_waiting_on_a_stream_lock_holds_up_neither_the_next_lane_nor_the_horizon(
    make_url: Callable[[str], str], pg_dsn: str
) -> None:
    """A batch waiting on a stream lock: a second lane commits meanwhile, readers stop below the first."""
    with open_store(make_url("postgresql")) as store:
        held = open_counter("counter:held")
        store.save(held)
        held.add(1)
        schema = store.app.recorder.datastore.schema  # type: ignore[attr-defined]
        gathering: ThreadGathering = store.app.recorder.gathering  # type: ignore[attr-defined]
        with psycopg.connect(pg_dsn) as locker:
            locker.execute(
                sql.SQL("SELECT 1 FROM {}.{} WHERE stream_id = %s FOR UPDATE").format(
                    sql.Identifier(schema), sql.Identifier(HEADS_TABLE)
                ),
                ("counter:held",),
            )
            blocked = threading.Thread(target=store.save, args=(held,))
            blocked.start()
            _wait_for(lambda: gathering._gathering.in_flight == 1 and not gathering._gathering.queue)
            others = [
                threading.Thread(target=store.save, args=(open_counter(f"counter:o{n}"),)) for n in range(4)
            ]
            for thread in others:
                thread.start()
            for thread in others:
                thread.join(10)
                assert not thread.is_alive()  # committed on the second lane, the first still waiting
            assert blocked.is_alive()
            visible = {n.originator_id for n in store.notifications(1, 100)}
            assert visible == {"counter:held"}  # the four sit above the held batch's positions
            assert store.horizon().position == 1
            locker.rollback()
        blocked.join(10)
        assert not blocked.is_alive()
        assert len(store.notifications(1, 100)) == 6
        assert len(store.stream("counter:held")) == 2
        assert store.load("counter:held", Counter).version == 2
        assert verify(store).ok


class _LaneWatch:
    """Wraps a store's batch writer to count the most batches it had in flight at once."""

    def __init__(self, gathering: ThreadGathering) -> None:
        self._real, self._lock = gathering._write, threading.Lock()
        self.in_flight = self.most = 0
        gathering._write = self.write

    def write(self, batch: list[Command]) -> list[Any]:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return self._real(batch)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_a_follower_never_skips_while_two_lanes_commit_out_of_position_order(
    make_url: Callable[[str], str],
) -> None:
    """Ten writers on two lanes, racing on shared streams: a follower reads every event once, in order."""
    with open_store(make_url("postgresql")) as store:
        store.save(open_counter("counter:first"))  # the first append makes the partitions
        watch = _LaneWatch(store.app.recorder.gathering)  # type: ignore[attr-defined]
        done, errors, seen = threading.Event(), list[BaseException](), list[int]()

        def follow() -> None:
            cursor = 0
            while not done.is_set() or cursor < store.horizon().position:
                page = store.records(cursor + 1, 50)
                seen.extend(r.id for r in page)
                cursor = page[-1].id if page else cursor

        def writer(n: int) -> None:
            try:
                for i in range(30):
                    if (
                        i % 5 == 0
                    ):  # every writer creates the same stream: one wins, the others conflict alone
                        with contextlib.suppress(ConcurrencyConflict):
                            store.save(open_counter(f"counter:shared-{i}"))
                    store.save(open_counter(f"counter:w{n}-{i}"))
            except BaseException as exc:
                errors.append(exc)

        follower = threading.Thread(target=follow)
        writers = [threading.Thread(target=writer, args=(n,)) for n in range(10)]
        follower.start()
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(60)
        done.set()
        follower.join(60)
        assert errors == []
        final = [r.id for r in store.records(1, 10_000)]
        assert seen == final
        assert len(final) == 1 + 10 * 30 + 6  # each shared stream written once
        assert watch.most == 2
        assert verify(store).ok


def test_killed_sessions_under_two_lanes_lose_nothing_acknowledged_and_store_nothing_twice(
    make_url: Callable[[str], str], pg_dsn: str
) -> None:
    """Server sessions killed while two lanes write: every acknowledged save is stored, each once."""
    with open_store(make_url("postgresql")) as store:
        store.save(open_counter("counter:first"))
        watch = _LaneWatch(store.app.recorder.gathering)  # type: ignore[attr-defined]
        acknowledged: list[str] = []
        failed: list[BaseException] = []
        stop = threading.Event()

        def writer(n: int) -> None:
            i = 0
            while not stop.is_set() or i < 20:
                name = f"counter:w{n}-{i}"
                try:
                    store.save(open_counter(name))
                    acknowledged.append(name)
                except StoreUnavailable as exc:  # out of retries while the sessions were being killed
                    failed.append(exc)
                i += 1

        writers = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(10)]
        for thread in writers:
            thread.start()
        killed = 0
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                for _ in range(3):
                    _wait_for(lambda: watch.most == 2, 30)  # both lanes writing
                    rows = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend'"
                    ).fetchall()
                    killed += sum(1 for (done,) in rows if done)
                    resumed = len(acknowledged) + 20
                    _wait_for(partial(_at_least, acknowledged, resumed), 30)  # the writers recover
                    watch.most = watch.in_flight
        finally:
            stop.set()
            for thread in writers:
                thread.join(60)
        assert killed >= 3
        stored = [r.originator_id for r in store.records(1, 100_000)]
        assert len(stored) == len(set(stored))  # one event per stream: none stored twice
        assert set(acknowledged) <= set(stored)
        assert len(acknowledged) >= 10 * 20 - len(failed)
        assert verify(store).ok
