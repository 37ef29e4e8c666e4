"""``phaselog demo`` section: a task controller running a small batch.

Four tasks with a per-run suffix (so repeated demos on one SQLite file add new
ones): two complete with progress, one fails, one is canceled. The table shows
each task's final state, progress, number of recorded events and last log line.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.table import Table

from phaselog.domain.task import TaskAggregate, TaskState, task_stream_id
from phaselog.runtime.tasks import TaskController

if TYPE_CHECKING:
    from rich.console import Console

    from phaselog.adapters.store import Store
    from phaselog.runtime.task_models import CancelContext
    from phaselog.runtime.task_runner import ActiveTask

__all__ = ["run_demo"]

CONTROLLER = "demo"


class DemoJob(BaseModel):
    """Metadata of a demo task."""

    steps: int
    fail: bool = False
    wait_for_cancel: bool = False


class DemoRunner:
    """Counts through ``steps``, reporting progress and a log line."""

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:  # noqa: ARG002 - protocol
        """Log the plan."""
        job = task.load_task_metadata(DemoJob)
        task.add_log_entry(logging.INFO, f"planning {job.steps if job else 0} steps")

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Do the steps; fail or wait for cancellation when asked to."""
        job = task.load_task_metadata(DemoJob) or DemoJob(steps=1)
        for step in range(1, job.steps + 1):
            ctx.raise_if_cancelled()
            task.set_progress(step, job.steps)
            if job.fail and step == job.steps // 2:
                msg = f"step {step} hit a bad record"
                raise RuntimeError(msg)
            if job.wait_for_cancel and step == job.steps // 2:
                ctx.wait(10)
                ctx.raise_if_cancelled()
        task.add_log_entry(logging.INFO, f"finished {job.steps} steps")

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Nothing to clean up."""


def run_demo(store: Store, console: Console) -> None:
    """Run four demo tasks to their end states and print them."""
    token = uuid.uuid4().hex[:6]
    jobs = {
        f"resize-{token}": DemoJob(steps=40),
        f"index-{token}": DemoJob(steps=25),
        f"import-{token}": DemoJob(steps=20, fail=True),
        f"export-{token}": DemoJob(steps=20, wait_for_cancel=True),
    }
    with TaskController(store, CONTROLLER, DemoRunner(), lease=timedelta(seconds=5)) as ctl:
        for task_id, job in jobs.items():
            ctl.launch_task(task_id, metadata=job)
        cancel_id = f"export-{token}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and ctl.task_status(cancel_id).state is not TaskState.RUNNING:
            time.sleep(0.02)
        ctl.cancel_task(cancel_id)
        while time.monotonic() < deadline and not all(
            store.load(task_stream_id(CONTROLLER, t), TaskAggregate).delivered for t in jobs
        ):
            time.sleep(0.02)
        table = Table(title=f"tasks of controller {CONTROLLER!r} (run {token})")
        for column in ("task", "state", "progress", "events", "last log"):
            table.add_column(column)
        for task_id in jobs:
            status = ctl.task_status(task_id)
            prog = f"{status.progress.current}/{status.progress.total}" if status.progress else "-"
            events = len(store.stream(task_stream_id(CONTROLLER, task_id)))
            last = status.logs[-1].msg if status.logs else ""
            table.add_row(task_id, status.state.name, prog, str(events), last)
    console.print(table)
