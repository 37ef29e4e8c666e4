from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from phaselog.adapters import Store, open_store
from phaselog.domain.encoding import dump_json
from phaselog.domain.events import DomainEvent, Snapshot
from phaselog.domain.plugin import PluginAggregate, PluginPhase
from phaselog.domain.plugin_state import PluginStateManager, encode_b64
from phaselog.runtime.plugins import PluginStateMachine

from conftest import raw_execute

P = PluginPhase
TO_RUNNING = [P.INSTALLING, P.INSTALLED, P.VALIDATING, P.STARTING, P.RUNNING]
CYCLE = [P.DEGRADED, P.RECOVERING, P.VALIDATING, P.STARTING, P.RUNNING]
STREAM = "plugin:p"


class Cursor(BaseModel):
    """Plugin state used by these tests."""

    offset: int


def replayed(store: Store, stream_id: str = STREAM) -> PluginAggregate:
    """The aggregate folded from every event, never from a snapshot (the ground truth)."""
    aggregate: Any = None
    for event in store.stream(stream_id):
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, PluginAggregate)
    return aggregate


def snapshots(store: Store) -> list[Snapshot]:
    """The stored snapshots of the test plugin, oldest first."""
    assert store.app.snapshots is not None
    found: list[Any] = list(store.app.snapshots.get(STREAM))
    assert all(isinstance(s, Snapshot) for s in found)
    return found


def snapshot_table(store: Store) -> str:
    assert store.app.snapshots is not None
    recorder: Any = store.app.snapshots.recorder
    return str(recorder.events_table_name)


def fingerprint(agg: PluginAggregate) -> tuple[object, ...]:
    return (agg.id, agg.plugin_id, agg.version, agg.phase, agg.retry, agg.state, agg.state_version)


class EventReads:
    """Records every select_events call on a store's event recorder: (gt, rows returned)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int | None, int]] = []
        recorder = store.app.events.recorder
        original: Callable[..., Any] = recorder.select_events

        def select_events(originator_id: Any, **kwargs: Any) -> Any:
            rows = original(originator_id, **kwargs)
            self.calls.append((kwargs.get("gt"), len(rows)))
            return rows

        monkeypatch.setattr(recorder, "select_events", select_events)

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.calls)


def writer(i: int) -> Callable[[PluginStateManager], None]:
    def put(mgr: PluginStateManager) -> None:
        mgr.put(i % 256, Cursor(offset=i))

    return put


def busy_plugin(store: Store, cycles: int) -> PluginStateMachine:
    """A running plugin with retries and state writes interleaved: 6 + 8 * cycles events."""
    machine: PluginStateMachine = store.plugins.machine("p")
    for phase in TO_RUNNING:
        machine.transition_to(phase, "boot")
    for i in range(cycles):
        machine.retry.advance()
        for phase in CYCLE:
            machine.transition_to(phase, f"cycle {i}")
        machine.handle(writer(i))
        machine.retry.reset()
    return machine


def bulk_history(store: Store, total: int, batch: int = 500) -> PluginAggregate:
    """A plugin with ``total`` events, saved in batches (fast setup for long histories)."""
    store.plugins.machine("p", initial=P.RUNNING)
    agg = store.load(STREAM, PluginAggregate)
    i = 0
    while agg.version < total:
        for _ in range(min(batch, total - agg.version)):
            i += 1
            if i % 7 == 0:
                agg.write_state(orjson.dumps({"offset": i}), i % 256)
            else:
                agg.change_phase(P.DEGRADED if agg.phase is P.RUNNING else P.RUNNING, "flap", forced=True)
        store.save(agg)
    return agg


@pytest.fixture
def small_interval_store(store_url: str) -> Iterator[Store]:
    """A store of each kind that snapshots every 10 events."""
    with open_store(store_url, snapshot_interval=10) as opened:
        yield opened


def test_snapshots_are_taken_at_the_configured_interval(small_interval_store: Store) -> None:
    """With snapshot_interval=10 the plugin is snapshotted at versions 10, 20, 30, ..."""
    store = small_interval_store
    busy_plugin(store, 4)  # 38 events
    assert [s.originator_version for s in snapshots(store)] == [10, 20, 30]


def test_default_interval_is_100(store_url: str) -> None:
    """By default a plugin is snapshotted every 100 events."""
    with open_store(store_url) as store:
        assert store.snapshot_interval == 100
        busy_plugin(store, 13)  # 110 events
        assert [s.originator_version for s in snapshots(store)] == [100]


def test_snapshot_carries_phase_retry_and_versioned_state(small_interval_store: Store) -> None:
    """The snapshot state holds the phase, the retry counters and the base64 plugin state with its version."""
    store = small_interval_store
    machine: PluginStateMachine = store.plugins.machine("p")
    for phase in TO_RUNNING:
        machine.transition_to(phase, "boot")
    machine.retry.advance()
    machine.retry.advance()
    machine.handle(lambda mgr: mgr.put(42, Cursor(offset=7)))
    machine.transition_to(P.DEGRADED, "probe")  # version 10
    (snapshot,) = snapshots(store)
    state = snapshot.state
    assert state["class_version"] == 2
    assert state["phase"] == "Degraded"
    assert state["retry"]["attempts"] == 2
    assert state["retry"]["next_backoff_s"] == 4.0
    assert state["retry"]["last_attempt"] is not None
    assert state["state"] == {"value": {"offset": 7}, "version": 42}  # a model's state, as JSON


def test_loading_reads_only_the_snapshot_and_later_events(
    small_interval_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a snapshotted plugin fetches only events after the newest snapshot, and gets the true state."""
    store = small_interval_store
    busy_plugin(store, 6)  # 54 events: newest snapshot at 50
    reads = EventReads(store, monkeypatch)
    machine: PluginStateMachine = store.plugins.machine("p")
    assert reads.calls == [(50, 4)]
    assert fingerprint(store.load(STREAM, PluginAggregate)) == fingerprint(replayed(store))
    assert machine.version == 54
    assert machine.handle(lambda mgr: mgr.get(Cursor)) == (5, Cursor(offset=5))


def test_ten_thousand_event_history_loads_from_snapshot(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10,037-event plugin loads from the snapshot at 10,000 plus 37 events, equal to a full replay."""
    with open_store(durable_url) as store:
        agg = bulk_history(store, 10_000)
        for _ in range(37):
            agg.change_phase(P.DEGRADED if agg.phase is P.RUNNING else P.RUNNING, "tail", forced=True)
            store.save(agg)
    with open_store(durable_url) as store:
        reads = EventReads(store, monkeypatch)
        loaded = store.load(STREAM, PluginAggregate)
        assert reads.calls == [(10_000, 37)]
        assert loaded.version == 10_037
        monkeypatch.undo()
        assert fingerprint(loaded) == fingerprint(replayed(store))


def _newest_snapshot(url: str, store: Store) -> tuple[str, int, dict[str, Any]]:
    table = snapshot_table(store)
    rows = raw_execute(
        url,
        f"SELECT originator_version, state FROM {table} WHERE originator_id = %s "
        "ORDER BY originator_version DESC LIMIT 1".replace("%s", "?" if url.startswith("sqlite") else "%s"),
        (STREAM,),
    )
    version, raw = rows[0]
    assert isinstance(version, int)
    assert isinstance(raw, bytes | memoryview)
    return table, version, orjson.loads(bytes(raw))


def _overwrite_snapshot(url: str, table: str, version: int, column: str, value: object) -> None:
    mark = "?" if url.startswith("sqlite") else "%s"
    raw_execute(
        url,
        f"UPDATE {table} SET {column} = {mark} WHERE originator_id = {mark} AND originator_version = {mark}",
        (value, STREAM, version),
    )


def _corrupt_bytes(record: dict[str, Any]) -> tuple[str, object]:
    del record
    return "state", b"\x00\x01 not json"


def _corrupt_shape(record: dict[str, Any]) -> tuple[str, object]:
    del record["state"]["retry"]
    return "state", orjson.dumps(record)


def _corrupt_topic(record: dict[str, Any]) -> tuple[str, object]:
    del record
    return "topic", "phaselog.NoSuchSnapshot"


def _corrupt_aggregate_topic(record: dict[str, Any]) -> tuple[str, object]:
    record["topic"] = "phaselog.plugin.NoSuchAggregate"
    return "state", orjson.dumps(record)


def _corrupt_phase(record: dict[str, Any]) -> tuple[str, object]:
    record["state"]["phase"] = "Exploded"
    return "state", orjson.dumps(record)


@pytest.mark.parametrize(
    "corrupt",
    [_corrupt_bytes, _corrupt_shape, _corrupt_topic, _corrupt_aggregate_topic, _corrupt_phase],
    ids=["bytes", "shape", "topic", "aggregate-topic", "phase"],
)
def test_unreadable_snapshot_falls_back_to_full_replay_with_warning(
    durable_url: str,
    corrupt: Callable[[dict[str, Any]], tuple[str, object]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A corrupted newest snapshot is logged as a warning and skipped: all events replay, state is right."""
    with open_store(durable_url, snapshot_interval=10) as store:
        busy_plugin(store, 3)  # 30 events, snapshots at 10, 20, 30
        table, version, record = _newest_snapshot(durable_url, store)
        assert version == 30
        truth = fingerprint(store.load(STREAM, PluginAggregate))
    column, value = corrupt(record)
    _overwrite_snapshot(durable_url, table, version, column, value)
    with open_store(durable_url, snapshot_interval=10) as store:
        reads = EventReads(store, monkeypatch)
        with caplog.at_level(logging.WARNING, logger="phaselog.store"):
            loaded = store.load(STREAM, PluginAggregate)
        assert "unreadable snapshot of plugin:p" in caplog.text
        assert reads.calls == [(None, 30)]
        assert fingerprint(loaded) == truth
        machine: PluginStateMachine = store.plugins.machine("p")
        assert machine.handle(lambda mgr: mgr.get(Cursor)) == (2, Cursor(offset=2))


def test_version_one_snapshot_is_upcast(
    durable_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot stored in the v1 (flat) layout is upcast and used: no replay, no warning, same state."""
    with open_store(durable_url, snapshot_interval=10) as store:
        busy_plugin(store, 3)
        table, version, record = _newest_snapshot(durable_url, store)
        truth = fingerprint(store.load(STREAM, PluginAggregate))
    v2 = record["state"]
    record["state"] = {  # what a phaselog release with PluginAggregate.class_version 1 wrote
        "plugin_id": v2["plugin_id"],
        "phase": v2["phase"],
        "attempts": v2["retry"]["attempts"],
        "backoff_ms": int(v2["retry"]["next_backoff_s"] * 1000),
        "last_attempt": v2["retry"]["last_attempt"],
        "state_b64": encode_b64(dump_json(v2["state"]["value"])),
        "state_version": v2["state"]["version"],
    }
    _overwrite_snapshot(durable_url, table, version, "state", orjson.dumps(record))
    with open_store(durable_url, snapshot_interval=10) as store:
        reads = EventReads(store, monkeypatch)
        with caplog.at_level(logging.WARNING):
            loaded = store.load(STREAM, PluginAggregate)
        assert caplog.text == ""
        assert reads.calls == [(30, 0)]
        assert fingerprint(loaded) == truth
        assert loaded.retry.next_backoff == timedelta(seconds=1)


def test_snapshot_restores_cleared_state(small_interval_store: Store) -> None:
    """A snapshot taken after a state reset restores "no state, version 0", not the older state."""
    store = small_interval_store
    machine: PluginStateMachine = store.plugins.machine("p")
    machine.handle(lambda mgr: mgr.put(8, Cursor(offset=1)))
    machine.handle(lambda mgr: mgr.reset())
    for phase in [*TO_RUNNING, P.DEGRADED, P.RECOVERING, P.VALIDATING]:  # reaches version 11
        machine.transition_to(phase, "boot")
    assert [s.originator_version for s in snapshots(store)] == [10]
    loaded = store.load(STREAM, PluginAggregate)
    assert (loaded.state, loaded.state_version) == (None, 0)
    assert fingerprint(loaded) == fingerprint(replayed(store))


def test_events_are_all_plugin_events(small_interval_store: Store) -> None:
    """Snapshots are stored apart: the plugin's event stream holds only domain events, none a Snapshot."""
    store = small_interval_store
    busy_plugin(store, 2)
    events: list[DomainEvent] = store.stream(STREAM)
    assert len(events) == 22
    assert all(type(e).__module__ == "phaselog.domain.plugin" for e in events)
