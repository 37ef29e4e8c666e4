"""What a store starts ends with it: controllers, plans and runners are closed with their store."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Any

import pytest

from phaselog.adapters import Store, open_store
from phaselog.domain.errors import InvalidTransition, StoreClosed, StoreUnavailable
from phaselog.domain.plan import PlanCancelled
from phaselog.domain.task import ControllerClosed, TaskState
from phaselog.projections.runner import Projections
from phaselog.runtime import GenericStep, Plan, TaskController
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask

DEADLINE = 20.0

# A user's service with a bug inside the store's block: a controller whose task runs until
# cancelled, the read models following, a plan running in a thread, then an exception.
SERVICE_WITH_A_TYPO = textwrap.dedent(
    """
    import sys, threading, time
    from phaselog.adapters import open_store
    from phaselog.projections.runner import Projections
    from phaselog.runtime import GenericStep, Plan, TaskController

    class Runner:
        def on_task_pending(self, ctx, task):
            pass
        def on_task_running(self, ctx, task):
            while True:
                ctx.raise_if_cancelled()
                time.sleep(0.02)
        def on_task_completed(self, ctx, task, state, *args):
            pass

    def forever(ctx, state):
        while not ctx.cancelled:
            time.sleep(0.02)

    with open_store(sys.argv[1]) as store:
        controller = TaskController(store, "billing", Runner())
        controller.launch_task("t1")
        views = Projections(store)
        views.start()
        plan = Plan(store, "deploy").add_step(GenericStep("wait", exec=forever))
        threading.Thread(target=lambda: plan.execute(), daemon=True).start()
        time.sleep(0.5)
        raise ValueError("a typo in user code")
    """
)


class Forever:
    """A task runner whose running hook returns only when its run is cancelled."""

    def __init__(self) -> None:
        self.running = threading.Event()

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to prepare."""

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:  # noqa: ARG002 - the protocol's
        self.running.set()
        while True:
            ctx.raise_if_cancelled()
            time.sleep(0.01)

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Nothing to deliver."""


def test_an_exception_inside_the_store_block_ends_the_process_with_its_traceback(durable_url: str) -> None:
    """A user's exception ends the process promptly, with its traceback, and nothing logs on forever."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SERVICE_WITH_A_TYPO, durable_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert "ValueError: a typo in user code" in done.stderr
    assert "retry" not in done.stderr  # no write loop retrying against the closed store
    assert "the store is closed" not in done.stderr


def test_closing_the_store_closes_its_controller_and_releases_its_claims(durable_url: str) -> None:
    """A controller tied to a store is closed with it: its run is stopped and stays resumable."""
    runner = Forever()
    with open_store(durable_url) as store:
        controller = TaskController(store, "billing", runner)
        controller.launch_task("t1")
        assert runner.running.wait(DEADLINE)
    with pytest.raises(ControllerClosed):
        controller.launch_task("t2")
    with open_store(durable_url) as store, TaskController(store, "billing", Forever()) as again:
        assert again.active_tasks() == ["t1"]  # its claim was released: adopted at once
        assert again.task_status("t1").state is TaskState.RUNNING


def test_closing_the_store_cancels_a_running_plan_after_its_cleanup(store: Store) -> None:
    """A plan running in a thread is cancelled by the store's close, which waits for its cleanup."""
    started, cleaned = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def forever(ctx: Any, state: Any) -> None:
        started.set()
        while not ctx.cancelled:
            time.sleep(0.01)

    plan = Plan(store, "deploy").add_step(GenericStep("provision", cleanup=lambda *_: cleaned.set()))
    plan.add_step(GenericStep("wait", exec=forever))

    def run() -> None:
        try:
            plan.execute()
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(DEADLINE)
    store.close()
    assert cleaned.is_set()  # close returned after the cleanup ran
    thread.join(DEADLINE)
    assert [type(e) for e in outcome] == [PlanCancelled]
    with pytest.raises(InvalidTransition, match="closed"):
        plan.execute()


def test_a_plan_is_a_context_manager_that_a_store_does_not_keep_alive(store: Store) -> None:
    """``with Plan(...)`` closes the plan; a plan its user dropped is not kept alive by the store."""
    with Plan(store, "p1").add_step(GenericStep("a", exec=lambda *_: None)) as plan:
        plan.execute()
    with pytest.raises(InvalidTransition, match="closed"):
        plan.execute()
    dropped = weakref.ref(Plan(store, "p2"))
    gc.collect()
    assert dropped() is None


def test_closing_the_store_stops_a_following_runner(store: Store) -> None:
    """A projections runner following in threads is stopped and closed with its store."""
    views = Projections(store)
    views.start()
    assert views.running
    store.close()
    assert not views.running


def test_projections_is_a_context_manager(store: Store) -> None:
    """``with Projections(store) as views:`` stops and closes the runner at the block's end."""
    with Projections(store) as views:
        views.start()
        assert views.running
    assert not views.running


def test_a_closed_store_refuses_work_with_a_final_error(store: Store) -> None:
    """Every call on a closed store raises StoreClosed (a StoreUnavailable that retries stop on)."""
    store.close()
    with pytest.raises(StoreClosed):
        store.stream_ids()
    with pytest.raises(StoreUnavailable):
        store.plugins.machine("billing")
