"""``AsyncTaskController``: the task controller for asyncio code, with runner hooks that may be async.

One core: every task decision (claims and leases, the states recorded, resume
after a restart, cancellation, delivery) is the sync
:class:`~phaselog.runtime.TaskController`'s, run on the async store's sync store.
This shell adapts the runner: a plain hook runs on one of the controller's
worker threads as before; an ``async def`` hook runs on the event loop while
the worker thread waits for it. Cancellation reaches an async hook both ways:
through the same :class:`~phaselog.runtime.CancelContext` (``ctx.cancelled``,
``ctx.raise_if_cancelled()``) and as asyncio task cancellation — when the
context is cancelled (``cancel_task``, ``close``, a lost claim) the hook's task
is cancelled, and a hook that ends by ``CancelledError`` counts as one that
raised ``TaskCanceled``. Completion callbacks may be ``async def`` too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Self

from phaselog.domain.task import ControllerClosed
from phaselog.domain.task_state import TaskCanceled, TaskState
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import DEFAULT_LEASE, DEFAULT_PROGRESS_INTERVAL, TaskController

if TYPE_CHECKING:
    from phaselog.aio.store import AsyncStore

__all__ = ["AsyncTaskController", "AsyncTaskRunner"]

# How often a worker thread waiting for an async hook looks at the hook's cancel context.
CANCEL_POLL = 0.05
AsyncTaskRunner = Any  # a TaskRunner whose hooks may be ``async def``


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _OnLoop:
    """The TaskRunner the sync controller drives: async hooks are sent to the loop and awaited."""

    def __init__(self, runner: AsyncTaskRunner, loop: asyncio.AbstractEventLoop) -> None:
        self._runner = runner
        self._loop = loop

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        self._call(self._runner.on_task_pending, ctx, task)

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        self._call(self._runner.on_task_running, ctx, task)

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        self._call(self._runner.on_task_completed, ctx, task, state, *args)

    def _call(self, hook: Callable[..., Any], ctx: CancelContext, *args: Any) -> None:
        result = hook(ctx, *args)  # a plain hook runs (and ends) here, on the worker thread
        if inspect.isawaitable(result):
            wait_on_loop(self._loop, result, ctx)


def wait_on_loop(
    loop: asyncio.AbstractEventLoop, awaitable: Awaitable[Any], ctx: CancelContext | None
) -> Any:
    """Run ``awaitable`` on ``loop`` from a worker thread and wait; cancel it when ``ctx`` is cancelled."""
    future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop)
    while True:
        try:
            return future.result(timeout=CANCEL_POLL)
        except concurrent.futures.TimeoutError:
            if ctx is not None and ctx.cancelled:
                future.cancel()  # CancelledError inside the hook at its next await
        except concurrent.futures.CancelledError:
            reason = ctx.reason if ctx is not None and ctx.reason else "its asyncio task was cancelled"
            raise TaskCanceled(f"task cancelled ({reason})") from None


def _callback(
    loop: asyncio.AbstractEventLoop, fn: Callable[[Any], Any] | None
) -> Callable[[Any], Any] | None:
    """A completion callback the controller may call from a thread (awaited on the loop if async)."""
    if fn is None:
        return None

    def call(value: Any) -> Any:
        result = fn(value)
        return wait_on_loop(loop, result, None) if inspect.isawaitable(result) else result

    return call


class AsyncTaskController:
    """Runs the tasks of controller ``name`` on an async store: ``async with AsyncTaskController(...)``.

    The arguments and the task semantics are :class:`~phaselog.runtime.TaskController`'s;
    the methods are coroutines (their store I/O runs on a thread, as the sync
    controller's own threads do). :attr:`position` is the sync controller's:
    the newest global position its launches, cancellations and adoptions committed.
    """

    def __init__(  # noqa: PLR0913 - the sync controller's signature
        self,
        store: AsyncStore,
        name: str,
        runner: AsyncTaskRunner,
        *,
        max_workers: int = 16,
        lease: timedelta = DEFAULT_LEASE,
        progress_interval: timedelta = DEFAULT_PROGRESS_INTERVAL,
        sweep_interval: timedelta | None = None,
    ) -> None:
        self._store = store
        self.name = name
        self._runner = runner
        self._options: dict[str, Any] = {
            "max_workers": max_workers,
            "lease": lease,
            "progress_interval": progress_interval,
            "sweep_interval": sweep_interval,
        }
        self._controller: TaskController | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> Self:
        """Start the controller (resuming this name's unfinished tasks); ``async with`` calls it."""
        if self._controller is None:
            self._loop = asyncio.get_running_loop()
            runner = _OnLoop(self._runner, self._loop)
            self._controller = await asyncio.to_thread(
                partial(TaskController, self._store.sync, self.name, runner, **self._options)
            )
        return self

    @property
    def sync(self) -> TaskController:
        """The sync controller this one drives (started by :meth:`open`)."""
        if self._controller is None:
            msg = "the controller is not open: use `async with AsyncTaskController(...)`"
            raise ControllerClosed(msg)
        return self._controller

    @property
    def position(self) -> int:
        """The newest global position this controller's commands committed (0 before any, or unopened)."""
        return 0 if self._controller is None else self._controller.position

    async def launch_task(
        self,
        task_id: str,
        *,
        metadata: object = None,
        on_status: Callable[[TaskStatus], Any] | None = None,
        on_state: Callable[[TaskState], Any] | None = None,
    ) -> None:
        """Record a new run of ``task_id`` and start it (callbacks may be ``async def``)."""
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(
            partial(
                self.sync.launch_task,
                task_id,
                metadata=metadata,
                on_status=_callback(loop, on_status),
                on_state=_callback(loop, on_state),
            )
        )

    async def cancel_task(self, task_id: str) -> None:
        """Record a cancel request and signal the run (an async hook's task is cancelled)."""
        await asyncio.to_thread(self.sync.cancel_task, task_id)

    async def task_status(self, task_id: str) -> TaskStatus:
        """The task's status (``NotFound`` for an unknown id)."""
        return await asyncio.to_thread(self.sync.task_status, task_id)

    async def list_tasks(self) -> list[str]:
        """Ids of every task this controller name has launched, sorted."""
        return await asyncio.to_thread(self.sync.list_tasks)

    def active_tasks(self) -> list[str]:
        """Ids of the runs this controller instance currently owns."""
        return self.sync.active_tasks()

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - the sync controller's signature
        """Stop: cancel running hooks (tasks stay resumable), release claims."""
        if self._controller is not None:
            await asyncio.to_thread(self._controller.close, timeout)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
