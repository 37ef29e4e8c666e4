"""A batch service on the task controller: progress, one cancel, one failure, then a restart.

Run: ``python examples/task_batch.py [STORE_URL]`` (default: a temporary SQLite file).

1. A controller launches five jobs. Each reports progress while it works;
   ``job-3`` fails half-way, ``job-4`` is canceled while it runs, and
   ``job-5`` is still running when the service "restarts" (``close()``).
2. A new controller on the same store resumes ``job-5`` where it was (its
   metadata and last progress are in the store) and finishes it. The
   finished jobs are left as they are.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from phaselog.adapters import open_store
from phaselog.domain.task import TaskState
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController


class Job(BaseModel):
    """What one task must do."""

    items: int
    fail_at: int | None = None


class BatchRunner:
    """Processes ``Job.items`` items, one every 20 ms, resuming from the recorded progress."""

    def __init__(self, hold: set[str] | None = None) -> None:
        self.hold = hold or set()  # tasks that wait for cancellation after some work
        self.holding = threading.Event()

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:  # noqa: ARG002 - protocol
        """Check the metadata before the task starts running."""
        job = task.load_task_metadata(Job)
        if job is None or job.items <= 0:
            msg = "a job needs a positive number of items"
            raise ValueError(msg)

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Work item by item; raise on the failing item; honour cancellation."""
        job = task.load_task_metadata(Job)
        assert job is not None
        progress = task.get_progress()
        start = progress.current if progress is not None else 0
        if start:
            task.add_log_entry(logging.INFO, f"resuming at item {start}")
        for item in range(start, job.items):
            if job.fail_at == item:
                msg = f"item {item} is corrupt"
                raise RuntimeError(msg)
            if task.task_id.split("@")[0] in self.hold and item == job.items // 2:
                self.holding.set()
                ctx.wait()  # stuck until canceled or the service stops
            ctx.raise_if_cancelled()
            time.sleep(0.02)
            task.set_progress(item + 1, job.items)
        task.add_log_entry(logging.INFO, f"processed {job.items} items")

    def on_task_completed(
        self,
        ctx: CancelContext,  # noqa: ARG002 - protocol
        task: ActiveTask,
        state: TaskState,
        *args: Any,
    ) -> None:
        """Report the end of a run."""
        print(f"  -> {task.task_id} ended {state.name}" + (f" ({args[0]})" if args else ""))


def show(ctl: TaskController, ids: list[str]) -> None:
    """Print one line per task."""
    for tid in ids:
        status = ctl.task_status(tid)
        prog = f"{status.progress.current}/{status.progress.total}" if status.progress else "-"
        last = status.logs[-1].msg if status.logs else ""
        print(f"  {tid:<22} {status.state.name:<10} {prog:>7}  {last}")


def wait_finished(ctl: TaskController, ids: list[str], timeout: float = 30) -> None:
    """Poll until every task in ``ids`` is finished and no longer running here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(ctl.task_status(t).state.is_finished for t in ids) and not set(ids) & set(ctl.active_tasks()):
            return
        time.sleep(0.05)
    msg = f"tasks did not finish in {timeout} s"
    raise TimeoutError(msg)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario on ``argv[1]`` or a temporary SQLite store."""
    args = sys.argv if argv is None else argv
    tmp = None
    if len(args) > 1:
        url = args[1]
    else:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(tmp.name) / 'tasks.db'}"
    run = uuid.uuid4().hex[:6]
    ids = [f"job-{n}@{run}" for n in range(1, 6)]
    jobs = [Job(items=10), Job(items=15), Job(items=20, fail_at=7), Job(items=20), Job(items=30)]
    delivered: list[TaskStatus] = []
    try:
        with open_store(url) as store:
            print(f"store: {store.url}")
            runner = BatchRunner(hold={"job-4", "job-5"})
            ctl = TaskController(store, "batch", runner, max_workers=5, lease=timedelta(seconds=2))
            for tid, job in zip(ids, jobs, strict=True):
                ctl.launch_task(tid, metadata=job, on_status=delivered.append)
            print("launched 5 jobs; waiting for job-4 to reach its middle, then canceling it")
            runner.holding.wait(10)
            ctl.cancel_task(ids[3])
            wait_finished(ctl, ids[:4])
            print("before the restart:")
            show(ctl, ids)
            print("service restarts (close): job-5 stays resumable")
            ctl.close()
            print(f"completion callbacks delivered so far: {len(delivered)}")
            with TaskController(store, "batch", BatchRunner(), lease=timedelta(seconds=2)) as again:
                wait_finished(again, ids)
                print("after the restart:")
                show(again, ids)
            states = [again.task_status(t).state for t in ids]
            assert states == [
                TaskState.COMPLETED,
                TaskState.COMPLETED,
                TaskState.FAILED,
                TaskState.CANCELED,
                TaskState.COMPLETED,
            ], states
    finally:
        if tmp is not None:
            tmp.cleanup()
    print("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
