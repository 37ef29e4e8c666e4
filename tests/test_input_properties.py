"""Property tests of the input policy (a typed error, nothing written) on memory, SQLite and PostgreSQL.

Random ids, reasons, log messages, metadata, plan state and pydantic states go
through plugins, tasks, plans and recoverable state. Each one either comes back
identical from the store, from the events alone, from a snapshot alone and from
``audit export``, or raises a typed error (``ValidationFailed``) with zero events
written. The read models are covered by ``test_input_read_models.py``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from input_strategies import (
    INPUT_POLICY,
    Rich,
    any_text,
    exported,
    from_events,
    id_candidates,
    id_is_valid,
    json_values,
    latest_snapshot,
    rich_states,
    same,
    scalar_text,
    text_is_valid,
    unique,
)
from task_helpers import ScriptedRunner, wait_for

from phaselog.adapters import Store, open_store
from phaselog.domain import PluginPhase, ValidationFailed, plan_stream_id, task_stream_id
from phaselog.domain.encoding import dump_json, load_json
from phaselog.domain.task import TaskAggregate
from phaselog.runtime import GenericStep, Plan, PlanContext, PlanState, RecoverableState, TaskController
from phaselog.runtime.task_models import CancelContext, TaskStatus, decode_metadata
from phaselog.runtime.task_runner import ActiveTask

NUL_TEXT = "a\x00b\x00"
LOG = logging.getLogger("tests.input_properties")


@pytest.fixture
def snap_store(store_url: str) -> Iterator[Store]:
    """A store of each kind that snapshots every save, so snapshots are read back too."""
    with open_store(store_url, snapshot_interval=1) as opened:
        yield opened


def _refused_and_nothing_written(store: Store, action: Any) -> None:
    before = store.max_position()
    with pytest.raises(ValidationFailed):
        action()
    assert store.max_position() == before


# -- the encoding alone -------------------------------------------------------------------------------
@settings(INPUT_POLICY, max_examples=300)
@given(value=json_values)
@example(value={"\x00": [math.nan, math.inf, -math.inf, -0.0, 2**300, "🦄\x00"]})
def test_the_encoding_round_trips_every_json_value(value: Any) -> None:
    """dump_json then load_json (from bytes and from text) gives every JSON value back identical."""
    encoded = dump_json(value)
    assert same(load_json(encoded), value)
    assert same(load_json(encoded.decode()), value)


@settings(INPUT_POLICY, max_examples=100)
@given(text=any_text)
def test_the_encoding_refuses_exactly_the_text_with_lone_surrogates(text: str) -> None:
    """Text encodes (as a value and as a key) iff it holds no lone surrogate; else ValidationFailed."""
    if text_is_valid(text):
        assert load_json(dump_json({text: text})) == {text: text}
        return
    with pytest.raises(ValidationFailed):
        dump_json(text)
    with pytest.raises(ValidationFailed):
        dump_json({text: 1})
    with pytest.raises(ValidationFailed):
        load_json(f'"{text}"')


# -- plugins ----------------------------------------------------------------------------------------
@INPUT_POLICY
@given(plugin_id=id_candidates)
@example(plugin_id="x" * 200)
@example(plugin_id="x" * 201)
@example(plugin_id="nul\x00")
@example(plugin_id=" ")
def test_plugin_ids_are_stored_exactly_or_refused(store: Store, plugin_id: str) -> None:
    """A plugin id following the rule is listed and exported as given; any other writes nothing."""
    if not (id_is_valid(plugin_id) and plugin_id.strip()):  # blank ids are refused for plugins
        _refused_and_nothing_written(store, lambda: store.plugins.machine(plugin_id))
        _refused_and_nothing_written(store, lambda: store.plugins.history(plugin_id))
        return
    start = store.max_position() + 1
    store.plugins.machine(plugin_id).force_phase(PluginPhase.INSTALLING, "ok")
    assert plugin_id in store.plugins.plugin_ids()
    assert store.plugins.machine(plugin_id).phase is PluginPhase.INSTALLING
    assert {line["stream_id"] for line in exported(store, start)} == {f"plugin:{plugin_id}"}


@INPUT_POLICY
@given(reason=any_text)
@example(reason=NUL_TEXT)
@example(reason="\ufdd0json:\x00")
@example(reason="lone \udfff")
def test_transition_reasons_round_trip_or_are_refused(snap_store: Store, reason: str) -> None:
    """A reason reads back identical (history, events, snapshot, export); a lone surrogate writes nothing."""
    store, plugin_id = snap_store, unique("reason")
    machine = store.plugins.machine(plugin_id)
    if not text_is_valid(reason):
        _refused_and_nothing_written(store, lambda: machine.transition_to(PluginPhase.INSTALLING, reason))
        assert machine.phase is PluginPhase.UNINSTALLED
        return
    start = store.max_position() + 1
    machine.transition_to(PluginPhase.INSTALLING, reason)
    assert [t.reason for t in store.plugins.history(plugin_id)] == [reason]
    assert [getattr(e, "reason", None) for e in store.stream(f"plugin:{plugin_id}")][-1] == reason
    assert latest_snapshot(store, f"plugin:{plugin_id}").phase is PluginPhase.INSTALLING
    assert [line["data"].get("reason") for line in exported(store, start)][-1] == reason


@INPUT_POLICY
@given(state=rich_states, version=st.integers(min_value=0, max_value=255))
def test_plugin_state_round_trips_through_events_snapshots_and_export(
    snap_store: Store, state: Rich, version: int
) -> None:
    """Plugin state put via handle() reads back identical: store, events alone, snapshot alone, export."""
    store, plugin_id = snap_store, unique("state")
    stream = f"plugin:{plugin_id}"
    start = store.max_position() + 1
    store.plugins.handle(plugin_id, lambda mgr: mgr.put(version, state))
    got_version, got = store.plugins.handle(plugin_id, lambda mgr: mgr.get(Rich))
    assert got_version == version
    assert same(got, state)
    aggregates: list[Any] = [from_events(store, stream), latest_snapshot(store, stream)]
    for aggregate in [*aggregates, store.plugins.get(plugin_id)]:
        assert aggregate.state_version == version
        assert same(Rich.model_validate_json(aggregate.state), state)
    (written,) = [line for line in exported(store, start) if line["topic"] == "phaselog.plugin.StateWritten"]
    assert written["data"].get("data") is None  # a model's state is recorded as JSON, not base64
    assert same(Rich.model_validate(written["data"]["value"]), state)


# -- tasks ------------------------------------------------------------------------------------------
class _Tasks:
    """A controller whose runner writes the scripted log messages, and a way to run one task."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.runner = ScriptedRunner()
        self.controller = TaskController(store, "props", self.runner, lease=timedelta(seconds=30))
        self.refused: dict[str, list[str]] = {}

    def run(self, task_id: str, *, metadata: object = None, messages: tuple[str, ...] = ()) -> TaskStatus:
        done = threading.Event()
        final: list[TaskStatus] = []
        refused = self.refused.setdefault(task_id, [])

        def write_logs(_ctx: CancelContext, task: ActiveTask) -> None:
            for message in messages:
                try:
                    task.add_log_entry(logging.INFO, message)
                except ValidationFailed:
                    refused.append(message)

        def finished(status: TaskStatus) -> None:
            final.append(status)
            done.set()

        self.runner.running[task_id] = write_logs
        self.controller.launch_task(task_id, metadata=metadata, on_status=finished)
        assert done.wait(30), f"task {task_id!r} did not finish"
        # The delivery is recorded after the callback: wait for it, so no write of this task
        # lands in the next example's event count.
        stream = task_stream_id("props", task_id)
        wait_for(lambda: self.store.load(stream, TaskAggregate).delivered, what=f"delivery of {task_id!r}")
        return final[0]


@pytest.fixture
def tasks(snap_store: Store) -> Iterator[_Tasks]:
    """A task controller on a snapshotting store of each kind."""
    helper = _Tasks(snap_store)
    with helper.controller:
        yield helper


@INPUT_POLICY
@given(task_id=id_candidates)
@example(task_id="semi;colon'quote\"")
@example(task_id="tab\tid")
def test_task_ids_are_stored_exactly_or_refused(snap_store: Store, tasks: _Tasks, task_id: str) -> None:
    """A task id following the rule runs and is listed as given; any other writes nothing."""
    controller = tasks.controller
    if not id_is_valid(task_id):
        _refused_and_nothing_written(snap_store, lambda: controller.launch_task(task_id))
        _refused_and_nothing_written(snap_store, lambda: controller.task_status(task_id))
        _refused_and_nothing_written(snap_store, lambda: controller.cancel_task(task_id))
        return
    start = snap_store.max_position() + 1
    status = tasks.run(task_id)
    assert status.state.name == "COMPLETED"
    assert task_id in controller.list_tasks()
    assert controller.task_status(task_id).state.name == "COMPLETED"
    assert {line["stream_id"] for line in exported(snap_store, start)} == {task_stream_id("props", task_id)}


task_metadata = st.one_of(st.dictionaries(scalar_text, json_values, max_size=4), rich_states)


@INPUT_POLICY
@given(metadata=task_metadata, messages=st.lists(any_text, max_size=4).map(tuple))
@example(metadata={"nul\x00": "v\x00"}, messages=(NUL_TEXT, "lone \ud800 surrogate", "🦄"))
def test_task_metadata_and_log_messages_round_trip(
    snap_store: Store, tasks: _Tasks, metadata: dict[str, Any] | Rich, messages: tuple[str, ...]
) -> None:
    """Metadata and log messages read back identical (status, events, snapshot, export); bad text refused."""
    task_id = unique("task")
    stream = task_stream_id("props", task_id)
    start = snap_store.max_position() + 1
    status = tasks.run(task_id, metadata=metadata, messages=messages)
    kept = [m for m in messages if text_is_valid(m)]
    assert tasks.refused[task_id] == [m for m in messages if not text_is_valid(m)]
    stored = tasks.controller.task_status(task_id)
    for got in (status, stored):
        assert [entry.msg for entry in got.logs] == kept
        if isinstance(metadata, Rich):
            assert same(decode_metadata(got.metadata, Rich), metadata)
        else:
            assert same(load_json(got.metadata), metadata)
    for aggregate in (from_events(snap_store, stream), latest_snapshot(snap_store, stream)):
        assert [msg for _, msg, _ in aggregate.logs] == kept
        assert aggregate.metadata == stored.metadata
    lines = [line for line in exported(snap_store, start) if line["stream_id"] == stream]
    assert [line["data"]["msg"] for line in lines if line["topic"] == "phaselog.task.TaskLogged"] == kept
    assert lines[0]["data"]["metadata"] == stored.metadata


# -- plans ------------------------------------------------------------------------------------------
def _plan_writing(store: Store, plan_id: str, values: dict[str, Any]) -> Plan:
    def write(_ctx: PlanContext, state: PlanState) -> None:
        state.update(values)

    return Plan(store, plan_id).add_step(GenericStep("write", exec=write))


@INPUT_POLICY
@given(plan_id=id_candidates)
@example(plan_id="🦄" * 200)
@example(plan_id="del\x7f")
def test_plan_ids_are_stored_exactly_or_refused(store: Store, plan_id: str) -> None:
    """A plan id following the rule runs and is exported as given; any other writes nothing."""
    if not id_is_valid(plan_id):
        _refused_and_nothing_written(store, lambda: Plan(store, plan_id))
        return
    start = store.max_position() + 1
    _plan_writing(store, plan_id, {"done": True}).execute()
    assert Plan(store, plan_id).state["done"] is True
    assert {line["stream_id"] for line in exported(store, start)} == {plan_stream_id(plan_id)}


@INPUT_POLICY
@given(values=st.dictionaries(scalar_text.filter(bool), json_values, min_size=1, max_size=4))
@example(values={"nul\x00key": ["\x00", float("nan"), float("-inf"), 2**100]})
def test_plan_step_state_round_trips(snap_store: Store, values: dict[str, Any]) -> None:
    """State written by a step reads back identical: a new Plan, events alone, snapshot alone, export."""
    plan_id = unique("plan")
    stream = plan_stream_id(plan_id)
    start = snap_store.max_position() + 1
    _plan_writing(snap_store, plan_id, values).execute()
    assert same(Plan(snap_store, plan_id).state.snapshot(), values)
    assert same(from_events(snap_store, stream).state, values)
    assert same(latest_snapshot(snap_store, stream).state, values)
    (written,) = [
        line for line in exported(snap_store, start) if line["topic"] == "phaselog.plan.StateWritten"
    ]
    assert same(written["data"]["values"], values)


def test_plan_state_with_a_lone_surrogate_is_refused_and_writes_nothing(store: Store) -> None:
    """PlanState.update with a lone surrogate raises ValidationFailed and records no StateWritten."""
    plan = Plan(store, unique("plan"))
    _refused_and_nothing_written(store, lambda: plan.state.update({"k": "lone \ud800"}))
    _refused_and_nothing_written(store, lambda: plan.state.update({"lone \udc00": 1}))


# -- recoverable state ------------------------------------------------------------------------------
def _recoverable(store: Store, key: str, kvs: str | None, default: Rich) -> RecoverableState[Rich]:
    return RecoverableState(
        default_state=default,
        persist_state_key=key,
        persistence_enabled=True,
        persist_state_kvs_name=kvs,
        logger=LOG,
        store=store,
    )


def _persist_then_recover(store: Store, key: str, kvs: str | None, state: Rich, default: Rich) -> Rich:
    async def persist() -> None:
        recoverable = _recoverable(store, key, kvs, default)
        current = await recoverable.initialize()
        for name in Rich.model_fields:
            setattr(current, name, getattr(state, name))
        await recoverable.persist_state()
        await recoverable.teardown()

    async def recover() -> Rich:
        recoverable = _recoverable(store, key, kvs, default)
        value = await recoverable.initialize()
        await recoverable.teardown()
        return value

    asyncio.run(persist())
    return asyncio.run(recover())


SMALL = Rich.model_validate(
    {
        "label": "",
        "number": 0.0,
        "big": 0,
        "when": "2026-01-01T00:00:00Z",
        "inner": {"x": 0.0, "tags": []},
        "items": [],
        "mapping": {},
        "extra": {},
    }
)


@INPUT_POLICY
@given(key=id_candidates, kvs=st.none() | id_candidates)
@example(key="k" * 200, kvs="id:x")
@example(key="new\nline", kvs=None)
def test_recoverable_state_keys_and_store_names_are_stored_exactly_or_refused(
    store: Store, key: str, kvs: str | None
) -> None:
    """A key and key-value store name following the rule persist and recover; any other writes nothing."""
    valid = id_is_valid(key) and (kvs is None or (id_is_valid(kvs) and not kvs.startswith("id:")))
    if not valid:
        _refused_and_nothing_written(store, lambda: _recoverable(store, key, kvs, SMALL))
        return
    state = SMALL.model_copy(update={"label": f"{key}|{kvs}"})
    assert same(_persist_then_recover(store, key, kvs, state, SMALL), state)


@INPUT_POLICY
@given(state=rich_states)
def test_recoverable_state_round_trips_through_events_snapshots_and_export(
    snap_store: Store, state: Rich
) -> None:
    """A recoverable state recovers identical, and so do its events alone, its snapshot and the export."""
    key = unique("key")
    start = snap_store.max_position() + 1
    assert same(_persist_then_recover(snap_store, key, None, state, SMALL), state)
    stream = f"state:default:{key}"
    for aggregate in (from_events(snap_store, stream), latest_snapshot(snap_store, stream)):
        assert same(Rich.model_validate(aggregate.value), state)
    (persisted,) = [
        line for line in exported(snap_store, start) if line["topic"] == "phaselog.state.Persisted"
    ]
    assert same(Rich.model_validate(persisted["data"]["value"]), state)
