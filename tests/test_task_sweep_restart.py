"""A sweep after kill -9 finds the open tasks (a finished but undelivered one too) among many finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sweep_helpers import CountingStore, save_finished
from task_helpers import ScriptedRunner, wait_for

from phaselog.adapters import Store, open_store
from phaselog.domain.task import TaskAggregate, TaskState
from phaselog.runtime.tasks import TaskController

pytestmark = pytest.mark.slow

# Completes "undelivered" and then hangs in on_task_completed, so it dies Completed but undelivered;
# "running" dies Running; "delivered" finishes normally.
SERVICE = textwrap.dedent(
    """
    import sys, threading, time
    from datetime import timedelta
    from phaselog.adapters import open_store
    from phaselog.runtime.tasks import TaskController

    class Runner:
        def on_task_pending(self, ctx, task):
            pass
        def on_task_running(self, ctx, task):
            if task.task_id == "running":
                ctx.wait(None)
        def on_task_completed(self, ctx, task, state, *args):
            if task.task_id == "undelivered":
                threading.Event().wait()

    store = open_store(sys.argv[1])
    ctl = TaskController(store, "svc", Runner(), lease=timedelta(seconds=1))
    for tid in ("delivered", "undelivered", "running"):
        ctl.launch_task(tid)
    time.sleep(600)
    """
)


def _agg(store: Store, task_id: str) -> TaskAggregate:
    return store.load(f"task:svc:{task_id}", TaskAggregate)


def test_after_kill_9_a_sweep_loads_only_open_tasks_and_delivers_the_undelivered_one(
    durable_url: str, tmp_path: Path
) -> None:
    """After kill -9 the Completed-undelivered and the Running task are found; no finished one is loaded."""
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    with open_store(durable_url) as store:
        finished = {f"task:svc:{tid}" for tid in save_finished(store, "svc", 500)}
        proc = subprocess.Popen([sys.executable, str(script), durable_url], stdout=subprocess.DEVNULL)
        try:

            def crash_point() -> bool:
                if not all(store.exists(f"task:svc:{t}") for t in ("delivered", "undelivered", "running")):
                    return False
                undelivered, running = _agg(store, "undelivered"), _agg(store, "running")
                return (
                    _agg(store, "delivered").delivered
                    and running.state is TaskState.RUNNING
                    and undelivered.state is TaskState.COMPLETED
                    and not undelivered.delivered
                )

            wait_for(crash_point, timeout=60, what="the service to reach its crash point")
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        finished.add("task:svc:delivered")
        counting = CountingStore(store)
        runner = ScriptedRunner()
        with TaskController(
            counting, "svc", runner, lease=timedelta(seconds=1), sweep_interval=timedelta(milliseconds=100)
        ):
            wait_for(
                lambda: _agg(store, "undelivered").delivered and _agg(store, "running").delivered,
                timeout=30,
                what="the open tasks to be resumed and delivered",
            )
        assert counting.loaded() & finished == set()
        assert {"task:svc:undelivered", "task:svc:running"} <= counting.loaded()
        assert runner.hooks_of("undelivered") == []  # its work was done: only the delivery was owed
        assert runner.completions_of("undelivered") == [TaskState.COMPLETED]
        assert runner.hooks_of("running") == ["running"]
        assert runner.completions_of("running") == [TaskState.COMPLETED]
        assert runner.hooks_of("delivered") == []
        assert _agg(store, "undelivered").run == 1
