"""MAX_EVENT_BYTES (a store option): a larger event or snapshot is refused before any I/O."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel
from task_helpers import ScriptedRunner

import phaselog.adapters
from phaselog.adapters import MAX_EVENT_BYTES, Store, open_store
from phaselog.adapters.codec import OrjsonTranscoder, PydanticMapper
from phaselog.domain import PluginPhase, ValidationFailed
from phaselog.domain.errors import PayloadTooLarge
from phaselog.runtime import Plan, RecoverableState, TaskController
from phaselog.runtime.task_models import TaskStatus

from support_events import Added, Opened

FIVE_MIB = 5 * 1024 * 1024


class Blob(BaseModel):
    """A state as large as the caller makes it."""

    text: str = ""


def _event(label: str) -> Opened:
    return Opened(originator_id="c", originator_version=1, timestamp=datetime.now(UTC), label=label)


def test_the_default_limit_is_4_mib_and_public() -> None:
    """MAX_EVENT_BYTES is 4 MiB, exported from phaselog.adapters, and the mapper's default."""
    assert MAX_EVENT_BYTES == 4 * 1024 * 1024
    assert "MAX_EVENT_BYTES" in phaselog.adapters.__all__
    assert PydanticMapper(transcoder=OrjsonTranscoder()).max_event_bytes == MAX_EVENT_BYTES


def test_an_event_larger_than_the_limit_names_its_size_and_the_limit() -> None:
    """to_stored_event raises PayloadTooLarge (a ValidationFailed) with the size and the limit."""
    mapper = PydanticMapper(transcoder=OrjsonTranscoder(), max_event_bytes=1000)
    with pytest.raises(PayloadTooLarge) as caught:
        mapper.to_stored_event(_event("x" * 2000))
    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.limit == 1000
    assert caught.value.size > 2000
    assert str(caught.value.size) in str(caught.value)
    assert "1000" in str(caught.value)


def test_an_event_of_exactly_the_limit_is_accepted() -> None:
    """The limit is inclusive: an encoded state of exactly max_event_bytes is stored, one more byte is not."""
    size = len(PydanticMapper(transcoder=OrjsonTranscoder()).to_stored_event(_event("y" * 500)).state)
    assert PydanticMapper(transcoder=OrjsonTranscoder(), max_event_bytes=size).to_stored_event(
        _event("y" * 500)
    )
    with pytest.raises(PayloadTooLarge):
        PydanticMapper(transcoder=OrjsonTranscoder(), max_event_bytes=size - 1).to_stored_event(
            _event("y" * 500)
        )


def test_the_limit_counts_encoded_bytes_not_characters() -> None:
    """An astral character is four UTF-8 bytes: 300 of them exceed a 1000-byte limit."""
    mapper = PydanticMapper(transcoder=OrjsonTranscoder(), max_event_bytes=1000)
    with pytest.raises(PayloadTooLarge):
        mapper.to_stored_event(_event("🦄" * 300))


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "4MiB"])
def test_a_limit_that_is_not_a_positive_integer_is_refused(bad: object) -> None:
    """max_event_bytes must be a positive int; anything else raises ValidationFailed."""
    with pytest.raises(ValidationFailed, match="max_event_bytes"):
        PydanticMapper(transcoder=OrjsonTranscoder(), max_event_bytes=bad)  # type: ignore[arg-type]


def _refused_and_nothing_written(store: Store, action: object) -> None:
    before = store.max_position()
    with pytest.raises(PayloadTooLarge):
        action()  # type: ignore[operator]
    assert store.max_position() == before


def test_a_5_mib_plugin_state_is_refused_and_the_old_state_kept(store: Store) -> None:
    """A 5 MiB plugin state raises PayloadTooLarge on every store, writes nothing and keeps the old state."""
    store.plugins.handle("big", lambda mgr: mgr.put(1, Blob(text="small")))
    _refused_and_nothing_written(
        store, lambda: store.plugins.handle("big", lambda mgr: mgr.put(2, Blob(text="x" * FIVE_MIB)))
    )
    assert store.plugins.handle("big", lambda mgr: mgr.get(Blob)) == (1, Blob(text="small"))
    machine = store.plugins.machine("big")
    _refused_and_nothing_written(store, lambda: machine.transition_to(PluginPhase.INSTALLING, "r" * FIVE_MIB))
    assert machine.phase is PluginPhase.UNINSTALLED
    machine.transition_to(PluginPhase.INSTALLING, "fits")  # the machine is still usable
    assert [t.reason for t in machine.history()] == ["fits"]


def test_a_5_mib_recoverable_state_is_refused_and_writes_nothing(store: Store) -> None:
    """persist_state of a 5 MiB model raises PayloadTooLarge; nothing is written, a smaller value still is."""

    async def run() -> None:
        state = RecoverableState(
            default_state=Blob(),
            persist_state_key="big",
            persistence_enabled="explicit_only",
            logger=logging.getLogger("tests.event_size"),
            store=store,
        )
        current = await state.initialize()
        current.text = "x" * FIVE_MIB
        before = store.max_position()
        with pytest.raises(PayloadTooLarge):
            await state.persist_state()
        assert store.max_position() == before
        current.text = "fits"
        await state.persist_state()
        await state.teardown()

    asyncio.run(run())
    assert store.stream("state:default:big")[-1].value == {"text": "fits"}  # type: ignore[attr-defined]


def test_a_5_mib_plan_state_is_refused_and_writes_nothing(store: Store) -> None:
    """PlanState.update with a 5 MiB value raises PayloadTooLarge and records nothing."""
    plan = Plan(store, "big")
    _refused_and_nothing_written(store, lambda: plan.state.update({"blob": "x" * FIVE_MIB}))
    plan.state["small"] = 1
    assert Plan(store, "big").state.snapshot() == {"small": 1}


def test_5_mib_task_metadata_is_refused_at_launch_and_writes_nothing(store: Store) -> None:
    """launch_task with 5 MiB of metadata raises PayloadTooLarge; the task does not exist."""
    done = threading.Event()
    with TaskController(store, "ctl", ScriptedRunner(), lease=timedelta(seconds=30)) as ctl:
        _refused_and_nothing_written(store, lambda: ctl.launch_task("t", metadata={"blob": "x" * FIVE_MIB}))
        assert ctl.list_tasks() == []

        def finished(_status: TaskStatus) -> None:
            done.set()

        ctl.launch_task("t", metadata={"blob": "fits"}, on_status=finished)
        assert done.wait(30)


def test_a_snapshot_over_the_limit_is_skipped_and_the_stream_still_loads(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Small events whose snapshot exceeds the limit are stored; the snapshot is skipped with a warning."""
    with open_store(store_url, snapshot_interval=4) as store:
        store.app.mapper.max_event_bytes = 3000  # the lead wires the URL option
        plan = Plan(store, "grows")
        with caplog.at_level(logging.WARNING, logger="phaselog"):
            for index in range(4):
                plan.state[f"k{index}"] = "x" * 1000
        assert store.app.snapshots is not None
        assert list(store.app.snapshots.get("plan:grows")) == []
        assert any("snapshot" in record.getMessage() for record in caplog.records)
        assert Plan(store, "grows").state.snapshot() == {f"k{i}": "x" * 1000 for i in range(4)}


def test_a_counter_event_under_the_limit_round_trips() -> None:
    """Below the limit the mapper is unchanged: encode and decode give the event back."""
    mapper = PydanticMapper(transcoder=OrjsonTranscoder(), max_event_bytes=10_000)
    event = Added(originator_id="c", originator_version=2, timestamp=datetime.now(UTC), amount=3)
    assert mapper.to_domain_event(mapper.to_stored_event(event)) == event
