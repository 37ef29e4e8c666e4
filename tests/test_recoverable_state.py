from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, Field

from phaselog.adapters import Store, open_store
from phaselog.domain.errors import PhaselogError, ValidationFailed
from phaselog.domain.state import (
    KeyedState,
    StateNotInitialized,
    StatePersisted,
    StateReset,
    StateValidationFailed,
)
from phaselog.runtime.recoverable import (
    Event,
    EventManager,
    EventPersistStateData,
    RecoverableState,
    SyncRecoverableState,
    get_default_store,
    set_default_store,
)

LOG = logging.getLogger("test.recoverable")


class Stats(BaseModel):
    """A crawler-style statistics model."""

    requests: int = 0
    failed: int = 0
    urls: list[str] = Field(default_factory=list)


def make_state(
    store: Store,
    key: str = "stats",
    enabled: bool | Literal["explicit_only"] = True,
    manager: EventManager | None = None,
    default: BaseModel | None = None,
    **kwargs: Any,
) -> RecoverableState[Any]:
    return RecoverableState(
        default_state=default if default is not None else Stats(),
        persist_state_key=key,
        persistence_enabled=enabled,
        logger=LOG,
        store=store,
        event_manager=manager or EventManager(timedelta(hours=1)),
        **kwargs,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached before the deadline")
        time.sleep(0.01)


def test_initialize_without_persisted_state_gives_a_deep_copy_of_the_default(store: Store) -> None:
    """Nothing persisted: initialize returns a deep copy of the default, which stays untouched."""
    default = Stats(urls=["a"])
    state = make_state(store, default=default)
    value = asyncio.run(state.initialize())
    value.urls.append("b")
    assert value is not default
    assert default.urls == ["a"]
    assert not store.exists(state.stream_id)


def test_persisted_value_is_recovered_by_a_new_object(store: Store) -> None:
    """A value persisted under a key is what a fresh RecoverableState on that key initializes to."""

    async def scenario() -> Stats:
        first = make_state(store)
        value = await first.initialize()
        value.requests, value.urls = 7, ["https://a.example"]
        await first.persist_state()
        second = make_state(store)
        recovered: Stats = await second.initialize()
        return recovered

    assert asyncio.run(scenario()) == Stats(requests=7, urls=["https://a.example"])


def test_unchanged_state_is_not_persisted_again(store: Store) -> None:
    """Persisting a value equal to the last persisted one records no event; a change records one."""

    async def scenario() -> None:
        state = make_state(store)
        value = await state.initialize()
        value.requests = 1
        for _ in range(3):
            await state.persist_state(EventPersistStateData(is_migrating=False))
        assert len(store.stream(state.stream_id)) == 1
        value.requests = 2
        await state.persist_state()
        await state.persist_state()

    asyncio.run(scenario())
    events = store.stream("state:default:stats")
    assert [type(e) for e in events] == [StatePersisted, StatePersisted]
    assert [e.value["requests"] for e in events if isinstance(e, StatePersisted)] == [1, 2]


def test_persisted_event_carries_whole_model_name_and_version(store: Store) -> None:
    """Each persist event holds the whole JSON model (by alias), the model name and its class_version."""

    class Aliased(BaseModel):
        total_count: int = Field(default=0, alias="totalCount")
        class_version: ClassVar[int] = 1

    async def scenario() -> None:
        state = make_state(store, default=Aliased())
        (await state.initialize()).total_count = 3
        await state.persist_state()

    asyncio.run(scenario())
    (event,) = store.stream("state:default:stats")
    assert isinstance(event, StatePersisted)
    assert (event.kvs, event.key, event.value) == ("default", "stats", {"totalCount": 3})
    assert event.type_name.endswith("Aliased")
    assert event.type_version == 1


def test_reset_is_recorded_and_restores_the_default(store: Store) -> None:
    """reset() goes back to the default, records a Reset event, and a reload gives the default."""

    async def scenario() -> tuple[Stats, bool, bool]:
        state = make_state(store)
        (await state.initialize()).requests = 5
        await state.persist_state()
        before = await state.has_persisted_state()
        await state.reset()
        assert state.current_value == Stats()
        await state.persist_state()  # equal to the value reset to: nothing new
        fresh = make_state(store)
        return await fresh.initialize(), before, await fresh.has_persisted_state()

    value, before, after = asyncio.run(scenario())
    assert (value, before, after) == (Stats(), True, False)
    assert [type(e) for e in store.stream("state:default:stats")] == [StatePersisted, StateReset]


def test_persistence_disabled_never_touches_the_store(store: Store) -> None:
    """persistence_enabled=False keeps the state in memory only: no load, no persist, no reset event."""

    async def scenario() -> None:
        seeded = make_state(store)
        (await seeded.initialize()).requests = 9
        await seeded.persist_state()
        state = make_state(store, enabled=False)
        value = await state.initialize()
        assert value == Stats()
        value.requests = 1
        await state.persist_state()
        await state.reset()
        await state.teardown()
        assert not await state.has_persisted_state()

    asyncio.run(scenario())
    assert len(store.stream("state:default:stats")) == 1


def test_explicit_only_persists_only_on_explicit_calls(store: Store) -> None:
    """'explicit_only' loads, ignores PERSIST_STATE events and teardown, and persists on persist_state()."""

    async def scenario() -> None:
        manager = EventManager(timedelta(milliseconds=10))
        async with manager:
            state = make_state(store, enabled="explicit_only", manager=manager)
            (await state.initialize()).requests = 1
            assert not manager.has_listener(event=Event.PERSIST_STATE, listener=state.persist_state)
            manager.emit(event=Event.PERSIST_STATE, event_data=EventPersistStateData(is_migrating=False))
            await asyncio.wait_for(manager.wait_for_all_listeners_to_complete(), 10)
            assert not store.exists(state.stream_id)  # the PERSIST_STATE above reached no listener of it
            await state.teardown()
        assert not store.exists(state.stream_id)
        again = make_state(store, enabled="explicit_only")
        (await again.initialize()).requests = 2
        await again.persist_state()

    asyncio.run(scenario())
    assert make_state(store).stream_id == "state:default:stats"
    assert asyncio.run(make_state(store, enabled="explicit_only").initialize()).requests == 2


def test_enabled_state_persists_on_event_manager_close(store: Store) -> None:
    """With persistence True the manager's final PERSIST_STATE on close records the last value."""

    async def scenario() -> None:
        async with EventManager(timedelta(hours=1)) as manager:
            state = make_state(store, manager=manager)
            (await state.initialize()).requests = 42

    asyncio.run(scenario())
    assert asyncio.run(make_state(store).initialize()).requests == 42


def test_enabled_state_persists_periodically_and_once_per_change(store: Store) -> None:
    """Periodic PERSIST_STATE records each change once; idle ticks record nothing."""
    ticks: list[EventPersistStateData] = []

    async def scenario() -> None:
        async with EventManager(timedelta(milliseconds=10)) as manager:
            manager.on(event=Event.PERSIST_STATE, listener=ticks.append)
            state = make_state(store, manager=manager)
            value = await state.initialize()
            value.requests = 1
            await _poll(lambda: len(store.stream(state.stream_id)) == 1)
            start = len(ticks)
            await _poll(lambda: len(ticks) >= start + 5)
            assert len(store.stream(state.stream_id)) == 1
            value.requests = 2
            await _poll(lambda: len(store.stream(state.stream_id)) == 2)
            await state.teardown()

    asyncio.run(scenario())
    assert len(store.stream("state:default:stats")) == 2
    assert all(t == EventPersistStateData(is_migrating=False) for t in ticks)


async def _poll(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached before the deadline")
        await asyncio.sleep(0.01)


def test_initializing_twice_registers_once(store: Store) -> None:
    """initialize() twice leaves one PERSIST_STATE registration; teardown removes it."""
    manager = EventManager(timedelta(hours=1))
    state = make_state(store, manager=manager)

    async def scenario() -> None:
        await state.initialize()
        await state.initialize()
        assert manager._listeners[Event.PERSIST_STATE] == {state.persist_state: 1}
        await state.teardown()
        assert not manager.has_listener(event=Event.PERSIST_STATE, listener=state.persist_state)

    asyncio.run(scenario())


def test_kvs_name_id_and_default_are_separate_streams(store: Store) -> None:
    """The same key in a named kvs, an id kvs and the default kvs are three independent values."""

    async def scenario() -> list[int]:
        states = [
            make_state(store, persist_state_kvs_name="crawler"),
            make_state(store, persist_state_kvs_id="abc123"),
            make_state(store),
        ]
        for n, state in enumerate(states, start=1):
            (await state.initialize()).requests = n
            await state.persist_state()
        reread = [
            make_state(store, persist_state_kvs_name="crawler"),
            make_state(store, persist_state_kvs_id="abc123"),
            make_state(store),
        ]
        return [(await s.initialize()).requests for s in reread]

    assert asyncio.run(scenario()) == [1, 2, 3]
    streams = store.stream_ids("state:")
    assert streams == ["state:crawler:stats", "state:default:stats", "state:id:abc123:stats"]


def test_kvs_name_and_id_together_are_rejected(store: Store) -> None:
    """Giving both a kvs name and a kvs id raises ValidationFailed, as the original refuses both."""
    with pytest.raises(ValidationFailed, match="not both"):
        make_state(store, persist_state_kvs_name="a", persist_state_kvs_id="b")


def test_invalid_stored_data_names_key_and_field_and_stays_unloaded(store: Store) -> None:
    """Stored data that no longer validates raises ValidationFailed naming key and field; stays unloaded."""

    class Old(BaseModel):
        requests: str = "many"

    async def scenario() -> None:
        old = make_state(store, key="crawl-1", default=Old())
        await old.initialize()
        await old.persist_state()
        state = make_state(store, key="crawl-1")
        with pytest.raises(ValidationFailed) as info:
            await state.initialize()
        assert isinstance(info.value, StateValidationFailed)
        assert "'crawl-1'" in str(info.value)
        assert "'requests'" in str(info.value)
        assert info.value.fields == ("requests",)
        assert not state.is_initialized
        with pytest.raises(StateNotInitialized):
            _ = state.current_value

    asyncio.run(scenario())


class StatsV1(BaseModel):
    """Version 1: a single counter."""

    count: int = 0


class StatsV2(BaseModel):
    """Version 2: the counter was renamed and split."""

    class_version: ClassVar[int] = 2
    succeeded: int = 0
    failed: int = 0

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> None:
        data["succeeded"] = data.pop("count")
        data["failed"] = 0


def test_upcaster_reads_data_of_an_older_model_version(store: Store) -> None:
    """A model with class_version 2 and upcast_v1_v2 reads a value persisted by version 1."""

    async def scenario() -> StatsV2:
        old = make_state(store, default=StatsV1())
        (await old.initialize()).count = 11
        await old.persist_state()
        new = make_state(store, default=StatsV2())
        value: StatsV2 = await new.initialize()
        value.failed = 1
        await new.persist_state()
        return value

    assert asyncio.run(scenario()) == StatsV2(succeeded=11, failed=1)
    last = store.stream("state:default:stats")[-1]
    assert isinstance(last, StatePersisted)
    assert last.type_version == 2


def test_newer_or_unupcastable_data_is_refused(store: Store) -> None:
    """Data written by a newer model version, or lacking an upcaster, raises ValidationFailed."""

    class NoHook(BaseModel):
        class_version: ClassVar[int] = 3
        succeeded: int = 0

    async def scenario() -> None:
        newer = make_state(store, default=StatsV2())
        await newer.initialize()
        await newer.persist_state()
        with pytest.raises(ValidationFailed, match="newer"):
            await make_state(store, default=StatsV1()).initialize()
        with pytest.raises(ValidationFailed, match="upcast_v2_v3"):
            await make_state(store, default=NoHook()).initialize()

    asyncio.run(scenario())


def test_use_before_initialize_raises(store: Store) -> None:
    """current_value, persist_state and (persistent) reset raise StateNotInitialized before initialize."""
    state = make_state(store)
    with pytest.raises(StateNotInitialized):
        _ = state.current_value
    with pytest.raises(StateNotInitialized):
        asyncio.run(state.persist_state())
    with pytest.raises(StateNotInitialized):
        asyncio.run(state.reset())
    assert issubclass(StateNotInitialized, PhaselogError)


def test_interleaved_writers_on_one_key_last_write_wins(store: Store) -> None:
    """Two objects writing one key retry on ConcurrencyConflict: both writes land, the last one wins."""

    async def scenario() -> None:
        a, b = make_state(store), make_state(store)
        va, vb = await a.initialize(), await b.initialize()
        for n in range(1, 4):
            va.requests = n * 10
            await a.persist_state()
            vb.requests = n * 10 + 1
            await b.persist_state()

    asyncio.run(scenario())
    events = store.stream("state:default:stats")
    assert [e.value["requests"] for e in events if isinstance(e, StatePersisted)] == [10, 11, 20, 21, 30, 31]
    assert asyncio.run(make_state(store).initialize()).requests == 31


def test_snapshots_do_not_change_the_recovered_value(durable_url: str) -> None:
    """With snapshots every 3 events a long-lived key still recovers its latest value."""
    with open_store(durable_url, snapshot_interval=3) as store:

        async def scenario() -> None:
            state = make_state(store)
            value = await state.initialize()
            for n in range(10):
                value.requests = n
                await state.persist_state()
            await state.reset()

        asyncio.run(scenario())
        assert store.app.snapshots is not None
        assert list(store.app.snapshots.get("state:default:stats"))
        agg = store.load("state:default:stats", KeyedState)
        assert (agg.persists, agg.resets, agg.has_value) == (10, 1, False)
    with open_store(durable_url) as store:
        assert asyncio.run(make_state(store).initialize()) == Stats()


def test_sync_facade_with_sync_event_manager(store: Store) -> None:
    """SyncRecoverableState and `with EventManager` work from plain sync code and persist on close."""
    manager = EventManager(timedelta(milliseconds=10))
    ticks: list[object] = []
    manager.on(event=Event.PERSIST_STATE, listener=lambda: ticks.append(1))
    state = SyncRecoverableState(
        default_state=Stats(),
        persist_state_key="sync",
        persistence_enabled=True,
        logger=LOG,
        store=store,
        event_manager=manager,
    )
    with manager:
        value = state.initialize()
        with state.lock:
            value.requests = 3
        wait_until(lambda: len(store.stream("state:default:sync")) == 1)
        wait_until(lambda: len(ticks) >= 3)
        value.requests = 4
    assert not manager.active
    assert len(store.stream("state:default:sync")) == 2
    again = SyncRecoverableState(
        default_state=Stats(),
        persist_state_key="sync",
        persistence_enabled="explicit_only",
        logger=LOG,
        store=store,
    )
    with again as recovered:
        assert recovered.requests == 4
        again.reset()
        again.persist_state()
    assert [type(e) for e in store.stream("state:default:sync")][-1] is StateReset


def test_sync_facade_teardown_with_persistence_persists_once_and_stops_listening(store: Store) -> None:
    """Sync teardown (persistence on) records the last value and unregisters; explicit_only does not."""
    manager = EventManager(timedelta(hours=1))
    state = SyncRecoverableState(
        default_state=Stats(),
        persist_state_key="sync-down",
        persistence_enabled=True,
        logger=LOG,
        store=store,
        event_manager=manager,
    )
    state.initialize().requests = 7
    assert manager.has_listener(event=Event.PERSIST_STATE, listener=state.persist_state)
    state.teardown()
    assert not manager.has_listener(event=Event.PERSIST_STATE, listener=state.persist_state)
    (persisted,) = store.stream("state:default:sync-down")
    assert isinstance(persisted, StatePersisted)
    fresh = SyncRecoverableState(
        default_state=Stats(),
        persist_state_key="sync-down",
        persistence_enabled="explicit_only",
        logger=LOG,
        store=store,
    )
    assert fresh.initialize().requests == 7
    fresh.current_value.requests = 8
    fresh.teardown()  # explicit_only: teardown does not persist
    assert len(store.stream("state:default:sync-down")) == 1
    state.teardown()  # nothing changed since the last persist: nothing more is recorded
    assert len(store.stream("state:default:sync-down")) == 1


def test_sync_facade_inside_a_running_loop_blocks_but_works(store: Store) -> None:
    """Called inside a running event loop the sync facade still loads and persists (blocking the loop)."""

    async def scenario() -> int:
        state = SyncRecoverableState(
            default_state=Stats(),
            persist_state_key="in-loop",
            persistence_enabled="explicit_only",
            logger=LOG,
            store=store,
        )
        state.initialize().requests = 5
        state.persist_state()
        return state.current_value.requests

    assert asyncio.run(scenario()) == 5
    assert len(store.stream("state:default:in-loop")) == 1


def test_failing_listener_does_not_stop_others_or_the_manager(caplog: pytest.LogCaptureFixture) -> None:
    """A listener that raises is logged; other sync and async listeners still receive the event."""
    got: list[str] = []

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    async def async_listener(data: EventPersistStateData) -> None:
        got.append(f"async:{data.is_migrating}")

    async def scenario() -> None:
        manager = EventManager(timedelta(hours=1))
        manager.on(event=Event.PERSIST_STATE, listener=broken)
        manager.on(event=Event.PERSIST_STATE, listener=async_listener)
        manager.on(event=Event.PERSIST_STATE, listener=lambda: got.append("sync"))
        async with manager:
            pass

    with caplog.at_level(logging.ERROR, logger="phaselog.state.events"):
        asyncio.run(scenario())
    assert sorted(got) == ["async:False", "sync"]
    assert "boom" in caplog.text


def test_event_manager_rejects_emit_when_inactive_and_bad_interval() -> None:
    """emit() outside an active manager and a non-positive interval are PhaselogErrors."""
    with pytest.raises(PhaselogError, match="not active"):
        EventManager().emit(event=Event.PERSIST_STATE, event_data=None)
    with pytest.raises(ValidationFailed):
        EventManager(timedelta(0))
    assert EventManager(2.5).persist_state_interval == timedelta(seconds=2.5)


@pytest.fixture
def default_store(store: Store) -> Iterator[Store]:
    set_default_store(store)
    yield store
    set_default_store(None)


def test_default_store_and_default_event_manager_are_used(default_store: Store) -> None:
    """Without store= and event_manager= the process defaults are used."""
    previous = EventManager.default()
    manager = EventManager(timedelta(hours=1))
    EventManager.set_default(manager)
    try:

        async def scenario() -> None:
            async with manager:
                state = RecoverableState(
                    default_state=Stats(), persist_state_key="dflt", persistence_enabled=True, logger=LOG
                )
                (await state.initialize()).requests = 8
                assert manager.has_listener(event=Event.PERSIST_STATE, listener=state.persist_state)

        asyncio.run(scenario())
    finally:
        EventManager.set_default(previous)
    assert get_default_store() is default_store
    assert len(default_store.stream("state:default:dflt")) == 1


def test_emit_from_another_thread_reaches_async_listeners() -> None:
    """emit() called from a non-loop thread is delivered to listeners in the manager's loop."""
    got: list[bool] = []

    async def listener(data: EventPersistStateData) -> None:
        got.append(data.is_migrating)

    async def scenario() -> None:
        async with EventManager(timedelta(hours=1)) as manager:
            manager.on(event=Event.PERSIST_STATE, listener=listener)
            await asyncio.to_thread(
                manager.emit, event=Event.PERSIST_STATE, event_data=EventPersistStateData(is_migrating=True)
            )
            await _poll(lambda: got == [True])

    asyncio.run(scenario())
    assert got == [True, False]  # the emitted one, then the one on close


def test_close_timeout_cancels_hanging_listeners_and_sync_with_rejects_active_loop() -> None:
    """A listener still running after close_timeout is cancelled; `with` on a loop-active manager fails."""
    cancelled: list[bool] = []

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def scenario() -> None:
        manager = EventManager(timedelta(hours=1), close_timeout=timedelta(milliseconds=20))
        manager.on(event=Event.PERSIST_STATE, listener=hang)
        async with manager:
            with pytest.raises(PhaselogError, match="async with"), manager:
                pass
        await _poll(lambda: cancelled == [True])
        assert not manager.active

    asyncio.run(scenario())
