"""Group commit: concurrent appends share one transaction, and each keeps its own outcome."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest
from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.history import verify
from phaselog.adapters.core.gather import Command, Gathering
from phaselog.adapters.gathering import ThreadGathering
from phaselog.adapters.postgres.notifier import MIN_INTERVAL
from phaselog.adapters.postgres.steps import Pause, Query
from phaselog.aio import open_async_store
from phaselog.aio.gathering import AsyncGathering
from phaselog.domain.errors import ConcurrencyConflict

from support_events import Counter, open_counter


def _event(stream: str, version: int = 1, size: int = 10) -> StoredEvent:
    return StoredEvent(stream, version, "tests.Topic", b"x" * size)


# -- the decisions, without I/O -------------------------------------------------------------------
def test_a_lone_append_leads_at_once() -> None:
    """An append arriving with no commit in flight leads its own batch: no waiting for company."""
    gathering = Gathering()
    command = gathering.arrive(Command.of([_event("a")], {}))
    assert command.leads
    assert gathering.take() == [command]


def test_appends_arriving_during_a_commit_queue_and_the_first_leads_the_next_batch() -> None:
    """While a batch is written later appends wait; settling it hands the lead to the first of them."""
    gathering = Gathering()
    first = gathering.arrive(Command.of([_event("a")], {}))
    batch = gathering.take()
    waiting = [gathering.arrive(Command.of([_event(f"s{n}")], {})) for n in range(3)]
    assert not any(command.leads for command in waiting)
    leader = gathering.settle(batch, [[1]])
    assert first.result() == [1]
    assert leader is waiting[0]
    assert leader.leads
    assert gathering.take() == waiting
    assert gathering.settle(waiting, [[2], [3], es.IntegrityError("stale")]) is None
    assert not gathering.writing
    assert waiting[1].result() == [3]
    with pytest.raises(es.IntegrityError, match="stale"):
        waiting[2].result()


def test_a_batch_is_bounded_by_its_count_and_its_bytes() -> None:
    """A batch takes queued appends up to max_commands and max_bytes of state, at least one."""
    gathering = Gathering(max_commands=3, max_bytes=100)
    gathering.in_flight = 1  # a commit in flight: everything queues
    commands = [gathering.arrive(Command.of([_event(f"s{n}", size=40)], {})) for n in range(5)]
    assert gathering.take() == commands[:2]  # 80 bytes; a third would make 120
    assert gathering.take() == commands[2:4]
    big = Gathering(max_commands=3, max_bytes=10)
    big.in_flight = 1
    huge = big.arrive(Command.of([_event("h", size=1000)], {}))
    assert big.take() == [huge]  # larger than the bound alone: still written, alone
    many = Gathering(max_commands=3)
    many.in_flight = 1
    queued = [many.arrive(Command.of([_event(f"m{n}")], {})) for n in range(5)]
    assert many.take() == queued[:3]


def test_an_abandoned_append_is_taken_back_only_while_it_still_queues() -> None:
    """A caller giving up removes its queued append; one already in a batch in flight stays written."""
    gathering = Gathering()
    gathering.in_flight = 1
    kept, dropped = (gathering.arrive(Command.of([_event(s)], {})) for s in "ab")
    assert gathering.abandon(dropped)
    batch = gathering.take()
    assert batch == [kept]
    assert not gathering.abandon(kept)
    assert gathering.take() == []
    assert not gathering.writing


def test_a_failed_batch_fails_each_waiting_thread_with_its_own_error() -> None:
    """When a batch's write raises, the leader gets the error and every other caller its own copy."""
    release = threading.Event()
    calls: list[int] = []

    def write(batch: list[Command]) -> list[Any]:
        calls.append(len(batch))
        if len(calls) == 1:
            release.wait(5)
            return [[1]]
        raise es.OperationalError("server closed the connection")

    gathering = ThreadGathering(write)
    errors: list[BaseException] = []

    def append(stream: str) -> None:
        try:
            gathering.append([_event(stream)], {})
        except es.OperationalError as exc:
            errors.append(exc)

    first = threading.Thread(target=append, args=("first",))
    first.start()
    _wait_for(lambda: calls == [1])
    others = [threading.Thread(target=append, args=(f"s{n}",)) for n in range(3)]
    for thread in others:
        thread.start()
    _wait_for(lambda: len(gathering._gathering.queue) == 3)
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert calls == [1, 3]
    assert len(errors) == 3
    assert len({id(exc) for exc in errors}) == 3  # one exception object per caller, never shared
    assert all("server closed the connection" in str(exc) for exc in errors)


def test_an_interrupted_wait_withdraws_its_append_and_the_next_append_leads() -> None:
    """Ctrl-C while an append queues takes it back (never written) and leaves nobody stuck behind it."""
    release = threading.Event()
    written: list[list[str]] = []

    def write(batch: list[Command]) -> list[Any]:
        written.append([str(c.events[0].originator_id) for c in batch])
        if len(written) == 1:
            release.wait(10)
        return [[n] for n, _ in enumerate(batch, 1)]

    gathering = ThreadGathering(write)
    leader = threading.Thread(target=gathering.append, args=([_event("first")], {}))
    leader.start()
    _wait_for(lambda: len(written) == 1)

    def interrupt() -> None:
        _wait_for(lambda: len(gathering._gathering.queue) == 1)
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C, delivered to the waiting main thread

    threading.Thread(target=interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        gathering.append([_event("withdrawn")], {})
    release.set()
    leader.join(10)
    results: list[Sequence[int]] = []
    following = threading.Thread(
        target=lambda: results.append(gathering.append([_event("next")], {})), daemon=True
    )
    following.start()
    following.join(10)
    assert results == [[1]]  # a lone append leads at once: nobody is stuck behind the withdrawn one
    assert written == [["first"], ["next"]]


def test_a_drain_cancelled_mid_batch_cancels_the_queued_appends_and_the_next_append_leads() -> None:
    """Cancelling the drain while it writes cancels its callers and the queued ones; later appends go on."""

    async def main() -> None:
        writing, release = asyncio.Event(), asyncio.Event()

        async def write(batch: list[Command]) -> list[Any]:
            writing.set()
            await release.wait()
            return [[n] for n, _ in enumerate(batch, 1)]

        gathering = AsyncGathering(write)
        first = asyncio.create_task(gathering.append([_event("first")], {}))
        await writing.wait()  # the drain is writing the first batch
        queued = asyncio.create_task(gathering.append([_event("queued")], {}))
        await asyncio.sleep(0)  # the second append queues behind it
        assert len(gathering._gathering.queue) == 1
        (drain,) = gathering._drains
        drain.cancel()
        for caller in (first, queued):
            with pytest.raises(asyncio.CancelledError):
                await caller
        assert not gathering._gathering.writing  # nothing in flight: the next append leads
        release.set()
        assert await asyncio.wait_for(gathering.append([_event("later")], {}), 5) == [1]

    asyncio.run(main())


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- real stores ------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def durable(request: pytest.FixtureRequest, make_url: Callable[[str], str]) -> Iterator[Store]:
    """An open, empty SQLite or PostgreSQL store."""
    with open_store(make_url(request.param)) as opened:
        yield opened


def _hold_first_batch(store: Store, queued: int) -> tuple[ThreadGathering, threading.Event]:
    """Make the store's first batch wait until ``queued`` appends queue behind it (or the event is set).

    The store writes on one lane here, so that everything queues behind the held batch
    (a second lane would take the queue meanwhile: see test_group_commit_lanes.py).
    """
    gathering: ThreadGathering = store.app.recorder.gathering  # type: ignore[attr-defined]
    gathering._gathering.lanes = 1
    real = gathering._write
    held = threading.Event()

    def write(batch: list[Command]) -> list[Any]:
        if not held.is_set():
            held.set()
            _wait_for(lambda: len(gathering._gathering.queue) >= queued)
        return real(batch)

    gathering._write = write
    return gathering, held


def test_appends_queued_behind_a_commit_are_written_together_and_a_stale_one_fails_alone(
    durable: Store,
) -> None:
    """Six appends queued during a commit share one batch; the one stale append fails, the rest commit."""
    stale = open_counter("counter:contended", "mine")
    durable.save(stale)
    fresh = durable.load("counter:contended", Counter)
    stale.add(1)  # both from version 1: the first saved wins
    fresh.add(2)
    gathering, _held = _hold_first_batch(durable, queued=6)
    before = gathering.batches
    outcomes: dict[str, BaseException | int] = {}

    def save(name: str, aggregate: Counter) -> None:
        try:
            outcomes[name] = durable.save(aggregate).position
        except ConcurrencyConflict as exc:
            outcomes[name] = exc

    leader = threading.Thread(target=save, args=("leader", open_counter("counter:leader")))
    leader.start()
    _wait_for(lambda: gathering._gathering.writing)
    others = [threading.Thread(target=save, args=(f"c{n}", open_counter(f"counter:c{n}"))) for n in range(4)]
    others += [
        threading.Thread(target=save, args=("fresh", fresh)),
        threading.Thread(target=save, args=("stale", stale)),
    ]
    for thread in others:
        thread.start()
        time.sleep(0.01)  # fresh queues before stale
    for thread in [leader, *others]:
        thread.join(30)
    assert gathering.batches - before == 2  # the leader alone, then the six together
    assert isinstance(outcomes.pop("stale"), ConcurrencyConflict)
    assert all(isinstance(position, int) and position > 0 for position in outcomes.values())
    assert durable.load("counter:contended", Counter).version == 2
    assert durable.load("counter:contended", Counter).total == 2
    assert sorted(durable.stream_ids("counter:")) == sorted(
        ["counter:contended", "counter:leader", *(f"counter:c{n}" for n in range(4))]
    )
    assert not verify(durable).problems


def test_a_new_stream_only_a_stale_append_wrote_to_is_not_listed(durable: Store) -> None:
    """A command creating one stream and failing on another leaves neither its new stream nor its events."""
    old = open_counter("counter:old")
    durable.save(old)
    moved = durable.load("counter:old", Counter)
    moved.add(1)
    durable.save(moved)
    old.add(5)  # stale: the stream moved on
    new = open_counter("counter:new")
    with pytest.raises(ConcurrencyConflict):
        durable.save(new, old)
    assert durable.stream_ids("counter:") == ["counter:old"]
    assert not durable.exists("counter:new")
    durable.save(open_counter("counter:new"))  # the stream can still be created
    assert durable.stream_ids("counter:") == ["counter:new", "counter:old"]


def test_a_bad_append_in_a_batch_fails_alone(make_url: Callable[[str], str]) -> None:
    """An append the database refuses (a NUL in a text field) fails alone; its batch's others commit."""
    with open_store(make_url("postgresql")) as store:
        gathering, _held = _hold_first_batch(store, queued=3)
        recorder: Any = store.app.recorder
        results: dict[str, Any] = {}

        def append(name: str, events: list[StoredEvent]) -> None:
            try:
                results[name] = recorder.insert_events(events)
            except es.PersistenceError as exc:
                results[name] = exc

        leader = threading.Thread(target=append, args=("leader", [_event("s:leader")]))
        leader.start()
        _wait_for(lambda: gathering._gathering.writing)
        names = {"good1": [_event("s:good1")], "bad": [_event("s:bad\x00")], "good2": [_event("s:good2")]}
        threads = [threading.Thread(target=append, args=item) for item in names.items()]
        for thread in threads:
            thread.start()
        for thread in [leader, *threads]:
            thread.join(30)
        assert isinstance(results.pop("bad"), es.PersistenceError)
        assert all(isinstance(value, list) for value in results.values())
        assert sorted(h.stream_id for h in store.stream_heads("s:")) == ["s:good1", "s:good2", "s:leader"]
        with pytest.raises(es.DataError):  # alone, the same append is refused as before
            store.app.recorder.insert_events([_event("s:bad\x00")])


def test_a_lost_reply_retries_the_batch_and_each_command_keeps_its_own_outcome(
    make_url: Callable[[str], str],
) -> None:
    """After a lost reply that had committed, a retried batch returns each command's stored positions."""
    with open_store(make_url("postgresql")) as store:
        recorder: Any = store.app.recorder
        commands = [Command.of([_event("s:a"), _event("s:a", 2)], {}), Command.of([_event("s:b")], {})]
        flow = recorder.statements.append_batch(commands)
        first = next(flow)
        assert isinstance(first, Query)
        recorder._do(first)  # it commits; the reply is lost
        assert isinstance(flow.throw(es.OperationalError("server closed the connection")), Pause)
        step = flow.send(None)
        assert step == first
        while True:
            try:
                step = flow.send(recorder._do(step))
            except StopIteration as done:
                outcomes = done.value
                break
        assert outcomes == [[1, 2], [3]]
        assert [n.id for n in store.notifications(1, 10)] == [1, 2, 3]  # stored once, never twice


def test_concurrent_async_appends_share_a_commit_and_a_stale_one_fails_alone(
    make_url: Callable[[str], str],
) -> None:
    """Tasks of one event loop saving at once are gathered into fewer batches; a stale save fails alone."""
    url = make_url("postgresql")

    async def main() -> None:
        async with open_async_store(url) as store:
            first = open_counter("counter:shared")
            await store.save(first)
            a = await store.load("counter:shared", Counter)
            b = await store.load("counter:shared", Counter)
            a.add(1)
            b.add(2)
            counters = [open_counter(f"counter:t{n}") for n in range(12)]
            results = await asyncio.gather(
                *(store.save(c) for c in counters), store.save(a), store.save(b), return_exceptions=True
            )
            conflicts = [r for r in results if isinstance(r, ConcurrencyConflict)]
            assert len(conflicts) == 1
            assert isinstance(results[-1], ConcurrencyConflict)  # b queued after a
            gathering = store._gathering  # type: ignore[attr-defined]
            assert gathering.commands == 15
            assert gathering.batches < 14  # gathered: fewer commits than appends
            assert len(await store.stream("counter:shared")) == 2

    asyncio.run(main())


def test_followers_are_woken_after_each_commit_not_from_inside_it(make_url: Callable[[str], str]) -> None:
    """The append function sends no NOTIFY; the store's notifier wakes a listener after every save."""
    url = make_url("postgresql")
    with open_store(url) as store:
        recorder: Any = store.app.recorder
        with psycopg.connect(url.partition("?")[0], autocommit=True) as conn:
            body = conn.execute(
                "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.proname = %s",
                (f"{recorder.events_table_name}_append_batch",),
            ).fetchone()
            assert body is not None
            code = "\n".join(line.partition("--")[0] for line in str(body[0]).splitlines())
            assert "notify" not in code.lower()
            conn.execute(f'LISTEN "{recorder.channel_name}"')
            latencies: list[float] = []
            for n in range(20):
                started = time.monotonic()
                store.save(open_counter(f"counter:n{n}"))
                woken = list(conn.notifies(timeout=5, stop_after=1))
                assert woken, f"no notification after save {n}"
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)
                list(conn.notifies(timeout=0.05))  # drain coalesced leftovers
        latencies.sort()
        assert latencies[int(len(latencies) * 0.99) - 1] < 2.0


def test_a_burst_of_commits_shares_notifications_and_the_last_one_is_always_notified(
    make_url: Callable[[str], str],
) -> None:
    """A store sends at most one NOTIFY per interval however fast it commits, and one after the last."""
    url = make_url("postgresql")
    with open_store(url) as store:
        recorder: Any = store.app.recorder
        with psycopg.connect(url.partition("?")[0], autocommit=True) as conn:
            conn.execute(f'LISTEN "{recorder.channel_name}"')
            started = time.monotonic()
            for n in range(100):
                store.save(open_counter(f"counter:burst{n}"))
            elapsed = time.monotonic() - started
            woken = list(conn.notifies(timeout=5, stop_after=1))  # the last commit is followed by one
            assert woken, "no notification after the last commit"
            time.sleep(3 * MIN_INTERVAL)
            sent = recorder.notifier.sent
        assert 1 <= sent <= elapsed / MIN_INTERVAL + 2, (sent, elapsed)
        assert sent < 100  # shared: fewer notifications than commits


def _save_from_threads(url: str, writers: int, saves: int) -> dict[int, float]:
    """``writers`` threads of one store each save ``saves`` new counters; when each position was acked."""
    acked: dict[int, float] = {}
    lock = threading.Lock()
    with open_store(url) as store:

        def write(writer: int) -> None:
            for n in range(saves):
                position = store.save(open_counter(f"counter:w{writer}-{n}")).position
                with lock:
                    acked[position] = time.monotonic()

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return acked


def test_a_follower_woken_only_by_notifications_sees_every_grouped_commit_in_order(
    make_url: Callable[[str], str],
) -> None:
    """A subscriber that polls only every 30 s sees each grouped commit promptly, in order, none skipped."""
    url = make_url("postgresql")
    writers, saves = 8, 10
    seen: list[int] = []
    arrived: dict[int, float] = {}

    async def main() -> dict[int, float]:
        async with open_async_store(url) as store:

            async def follow() -> None:
                async for position, _ in store.subscribe(1, poll_interval=30.0):
                    seen.append(position)
                    arrived[position] = time.monotonic()
                    if len(seen) == writers * saves:
                        return

            follower = asyncio.create_task(follow())
            await asyncio.sleep(0.2)  # the follower listens before the first commit
            acked = await asyncio.to_thread(_save_from_threads, url, writers, saves)
            await asyncio.wait_for(follower, 20.0)
            return acked

    acked = asyncio.run(main())
    assert seen == sorted(acked)
    lags = sorted(max(0.0, arrived[p] - acked[p]) for p in seen)
    p50, p99 = lags[len(lags) // 2], lags[int(len(lags) * 0.99) - 1]
    assert p50 < 0.5
    assert p99 < 2.0
