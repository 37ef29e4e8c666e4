"""Property tests of the input policy through the read models (typed errors, nothing written).

Text of every kind (NUL, astral characters, the escape marker), ids at the
limits and non-finite floats read back identical from ``store.projections`` on
every store, both by key and as a filter value.
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
    MAX_ID,
    Rich,
    id_is_valid,
    rich_states,
    same,
    scalar_text,
    unique,
)
from task_helpers import ScriptedRunner, wait_for

from phaselog.adapters import Store, open_store
from phaselog.domain import PluginPhase, task_stream_id
from phaselog.domain.task import TaskAggregate
from phaselog.runtime import (
    GenericStep,
    Plan,
    PlanContext,
    PlanFailed,
    PlanState,
    RecoverableState,
    TaskController,
)
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask

NUL_TEXT = "nul\x00 and \x00\x00 again"
# Each example waits for the read models to catch up, so fewer examples than the other property tests.
READ_MODEL_EXAMPLES = settings(INPUT_POLICY, max_examples=25)


@pytest.fixture
def rm_store(store_url: str) -> Iterator[Store]:
    """A store of each kind whose read models are caught up by ``wait``."""
    with open_store(store_url) as opened:
        yield opened


def _caught_up(store: Store) -> None:
    store.projections.wait(store.max_position(), timeout=30)


valid_ids = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=MAX_ID).filter(
    lambda s: id_is_valid(s) and bool(s.strip())
)


@READ_MODEL_EXAMPLES
@given(plugin_id=valid_ids, reason=scalar_text)
@example(plugin_id="p", reason=NUL_TEXT)
@example(plugin_id="🦄" * MAX_ID, reason="\ufdd0json:\x00")
@example(plugin_id="q'uote\";--", reason="\ufdd0json:plain")
def test_plugin_ids_and_reasons_read_back_identical_from_the_read_model(
    rm_store: Store, plugin_id: str, reason: str
) -> None:
    """plugin_phases gives the id and reason back as written, by key and as a filter."""
    rm_store.plugins.machine(plugin_id).force_phase(PluginPhase.INSTALLING, reason)
    _caught_up(rm_store)
    row = rm_store.projections.plugin_phases.get(plugin_id)
    assert row is not None
    assert (row["plugin_id"], row["reason"]) == (plugin_id, "force: " + reason)
    listed = rm_store.projections.plugin_phases.list(reason="force: " + reason)
    assert plugin_id in [r["plugin_id"] for r in listed]


@READ_MODEL_EXAMPLES
@given(values=st.dictionaries(scalar_text.filter(bool), scalar_text, min_size=1, max_size=3))
@example(values={"k": NUL_TEXT})
def test_plan_errors_read_back_identical_from_the_read_model(rm_store: Store, values: dict[str, str]) -> None:
    """A step failing with a NUL-holding message shows that message in plan_runs unchanged."""
    message = "|".join(values.values())
    plan_id = unique("plan")

    def fail(_ctx: PlanContext, _state: PlanState) -> None:
        raise RuntimeError(message)

    with pytest.raises(PlanFailed):
        Plan(rm_store, plan_id).add_step(GenericStep("step\x00name", exec=fail)).execute()
    _caught_up(rm_store)
    row = rm_store.projections.plan_runs.get(plan_id)
    assert row is not None
    assert [(e["step"], e["message"]) for e in row["errors"]] == [("step\x00name", message)]


@READ_MODEL_EXAMPLES
@given(task_id=valid_ids, message=scalar_text)
@example(task_id="t" * MAX_ID, message=NUL_TEXT)
def test_task_ids_and_log_messages_read_back_identical_from_the_read_model(
    rm_store: Store, task_id: str, message: str
) -> None:
    """task_statuses gives the task id and its last log message back as written."""
    done = threading.Event()

    def log_once(_ctx: CancelContext, task: ActiveTask) -> None:
        task.add_log_entry(logging.WARNING, message)

    def finished(_status: TaskStatus) -> None:
        done.set()

    runner = ScriptedRunner(running={task_id: log_once})
    with TaskController(rm_store, "rm", runner, lease=timedelta(seconds=30)) as controller:
        controller.launch_task(task_id, on_status=finished)
        assert done.wait(30)
        stream = task_stream_id("rm", task_id)
        wait_for(lambda: rm_store.load(stream, TaskAggregate).delivered, what="the delivery")
    _caught_up(rm_store)
    row = rm_store.projections.task_statuses.get(f"rm:{task_id}")
    assert row is not None
    assert (row["task_id"], row["last_log"], row["last_log_level"]) == (task_id, message, logging.WARNING)


@READ_MODEL_EXAMPLES
@given(plan_id=valid_ids)
@example(plan_id="plan;'\\🦄")
def test_plan_ids_read_back_identical_from_the_read_model(rm_store: Store, plan_id: str) -> None:
    """plan_runs lists the plan under the id it was given."""
    Plan(rm_store, plan_id).add_step(GenericStep("s")).execute()
    _caught_up(rm_store)
    row = rm_store.projections.plan_runs.get(plan_id)
    assert row is not None
    assert (row["plan_id"], row["status"]) == (plan_id, "succeeded")


def _persist(store: Store, key: str, state: Rich) -> None:
    async def run() -> None:
        recoverable = RecoverableState(
            default_state=state,
            persist_state_key=key,
            persistence_enabled="explicit_only",
            logger=logging.getLogger("tests.read_models"),
            store=store,
        )
        current = await recoverable.initialize()  # the key may hold an earlier example's value
        for name in Rich.model_fields:
            setattr(current, name, getattr(state, name))
        await recoverable.persist_state()
        await recoverable.teardown()

    asyncio.run(run())


@READ_MODEL_EXAMPLES
@given(key=valid_ids, state=rich_states)
def test_recoverable_state_values_read_back_identical_from_the_read_model(
    rm_store: Store, key: str, state: Rich
) -> None:
    """recoverable_states holds the persisted value exactly: nan, infinities, big ints, NUL text."""
    _persist(rm_store, key, state)
    _caught_up(rm_store)
    row = rm_store.projections.recoverable_states.get(f"default:{key}")
    assert row is not None
    assert row["key"] == key
    assert same(Rich.model_validate(row["value"]), state)


def test_a_nul_holding_state_label_and_non_finite_floats_read_back_from_the_read_model(
    rm_store: Store,
) -> None:
    """Regression: a state with NUL text and nan/inf reads back identical from recoverable_states."""
    state = Rich.model_validate(
        {
            "label": NUL_TEXT,
            "number": math.nan,
            "big": 2**100,
            "when": "2026-01-01T00:00:00Z",
            "inner": {"x": -math.inf, "tags": ["\x00"]},
            "items": [],
            "mapping": {"\x00": math.inf},
            "extra": {"n": [math.nan, None]},
        }
    )
    _persist(rm_store, "nul-state", state)
    _caught_up(rm_store)
    row = rm_store.projections.recoverable_states.get("default:nul-state")
    assert row is not None
    got: Any = Rich.model_validate(row["value"])
    assert same(got, state)
