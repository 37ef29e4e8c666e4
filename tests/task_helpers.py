"""Shared helpers of the task controller tests: a scriptable runner and polling."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from phaselog.domain.task import TaskState
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask

Hook = Callable[[CancelContext, ActiveTask], None]


# How long a wait may take before the test fails (tools/mutation.sh shortens it: in-memory store only).
WAIT_LIMIT = float(os.environ.get("PHASELOG_TEST_WAIT", "15"))


def wait_for(predicate: Callable[[], object], timeout: float | None = None, what: str = "condition") -> None:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds (default ``WAIT_LIMIT``)."""
    deadline = time.monotonic() + (WAIT_LIMIT if timeout is None else timeout)
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    msg = f"timed out waiting for {what}"
    raise AssertionError(msg)


class ScriptedRunner:
    """A runner whose hooks are chosen per task id; it records every call."""

    def __init__(
        self, pending: dict[str, Hook] | None = None, running: dict[str, Hook] | None = None
    ) -> None:
        self.pending = pending or {}
        self.running = running or {}
        self.calls: list[tuple[str, str]] = []
        self.completed: list[tuple[str, TaskState, tuple[Any, ...]]] = []
        self.started = threading.Event()
        self._lock = threading.Lock()

    def _record(self, hook: str, task: ActiveTask) -> None:
        with self._lock:
            self.calls.append((hook, task.task_id))

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Record the call and run the scripted pending hook, if any."""
        self._record("pending", task)
        hook = self.pending.get(task.task_id)
        if hook is not None:
            hook(ctx, task)

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Record the call and run the scripted running hook, if any."""
        self._record("running", task)
        self.started.set()
        hook = self.running.get(task.task_id)
        if hook is not None:
            hook(ctx, task)

    def on_task_completed(
        self,
        ctx: CancelContext,  # noqa: ARG002 - protocol
        task: ActiveTask,
        state: TaskState,
        *args: Any,
    ) -> None:
        """Record the end state and extra arguments."""
        with self._lock:
            self.completed.append((task.task_id, state, args))

    def hooks_of(self, task_id: str) -> list[str]:
        """Names of the hooks called for ``task_id``, in order."""
        with self._lock:
            return [hook for hook, tid in self.calls if tid == task_id]

    def completions_of(self, task_id: str) -> list[TaskState]:
        """End states delivered for ``task_id``."""
        with self._lock:
            return [state for tid, state, _ in self.completed if tid == task_id]


def block_until_cancelled(ctx: CancelContext, task: ActiveTask) -> None:
    """A hook that waits for cancellation, then raises TaskCanceled."""
    while not ctx.wait(0.05):
        pass
    ctx.raise_if_cancelled()
