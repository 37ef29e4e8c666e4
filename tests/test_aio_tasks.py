from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from phaselog.aio import AsyncTaskController, open_async_store
from phaselog.domain.errors import NotFound
from phaselog.domain.task import TaskState
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask

DEADLINE = 30.0


class AsyncRunner:
    """Async hooks (run on the loop) beside a plain one (run on a worker thread); records what it saw."""

    def __init__(self) -> None:
        self.loop_threads: set[int] = set()
        self.completed: list[tuple[str, TaskState]] = []
        self.cancelled: list[str] = []
        self.errors: list[str] = []
        self.running = asyncio.Event()

    async def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        ctx.raise_if_cancelled()
        self.loop_threads.add(threading.get_ident())
        task.add_log_entry(logging.INFO, "queued")

    async def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        self.loop_threads.add(threading.get_ident())
        if task.task_id.startswith("fail"):
            raise RuntimeError("runner bug")
        if task.task_id.startswith("forever"):
            self.running.set()
            try:
                await asyncio.Event().wait()  # only cancellation ends it
            except asyncio.CancelledError:
                self.cancelled.append(task.task_id)
                raise
        for i in range(3):
            await asyncio.sleep(0)
            ctx.raise_if_cancelled()
            task.set_progress(i + 1, 3)

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        assert ctx.cancelled == (state is TaskState.CANCELED)
        self.completed.append((task.task_id, state))
        self.errors.extend(str(e) for e in args)


def test_async_hooks_run_on_the_loop_and_their_outcomes_are_recorded(store_url: str) -> None:
    """Async hooks run on the event loop; tasks complete, fail and are listed as with TaskController."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            runner = AsyncRunner()
            async with AsyncTaskController(store, "batch", runner, max_workers=2) as tasks:
                done = {name: asyncio.Event() for name in ("ok", "fail-1")}
                finals: dict[str, TaskStatus] = {}

                def finished(name: str) -> Any:
                    async def on_status(status: TaskStatus) -> None:  # an async completion callback
                        finals[name] = status
                        done[name].set()

                    return on_status

                for name in done:
                    await tasks.launch_task(name, metadata={"n": 1}, on_status=finished(name))
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), DEADLINE)
                assert finals["ok"].state is TaskState.COMPLETED
                assert finals["fail-1"].state is TaskState.FAILED
                ok = await tasks.task_status("ok")
                assert ok.state is TaskState.COMPLETED
                assert (ok.progress.current, ok.progress.total) == (3, 3)  # type: ignore[union-attr]
                assert [e.msg for e in ok.logs] == ["queued"]
                assert await tasks.list_tasks() == ["fail-1", "ok"]
                with pytest.raises(NotFound):
                    await tasks.task_status("nobody")
            assert runner.loop_threads == {threading.get_ident()}
            assert sorted(runner.completed) == [("fail-1", TaskState.FAILED), ("ok", TaskState.COMPLETED)]
            assert runner.errors == ["runner bug"]

    asyncio.run(main())


def test_cancel_task_cancels_an_async_hook_and_records_canceled(store_url: str) -> None:
    """cancel_task reaches an async hook as asyncio cancellation; the task ends Canceled, the hook saw it."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            runner = AsyncRunner()
            async with AsyncTaskController(store, "batch", runner) as tasks:
                ended = asyncio.Event()

                async def on_state(state: TaskState) -> None:
                    ended.set()

                await tasks.launch_task("forever-1", on_state=on_state)
                await asyncio.wait_for(runner.running.wait(), DEADLINE)
                await tasks.cancel_task("forever-1")
                await asyncio.wait_for(ended.wait(), DEADLINE)
                assert (await tasks.task_status("forever-1")).state is TaskState.CANCELED
            assert runner.cancelled == ["forever-1"]
            assert runner.completed == [("forever-1", TaskState.CANCELED)]

    asyncio.run(main())


def test_closing_cancels_async_hooks_and_a_new_controller_resumes_the_task(durable_url: str) -> None:
    """Closing the controller cancels a running async hook, leaving the task resumable (as the sync one)."""

    async def main() -> None:
        async with open_async_store(durable_url) as store:
            first = AsyncRunner()
            async with AsyncTaskController(store, "batch", first) as tasks:
                await tasks.launch_task("forever-2")
                await asyncio.wait_for(first.running.wait(), DEADLINE)
            assert first.cancelled == ["forever-2"]
            assert first.completed == []
            second = AsyncRunner()
            resumed = await AsyncTaskController(store, "batch", second).open()
            try:
                await asyncio.wait_for(second.running.wait(), DEADLINE)  # resumed by the new controller
                assert (await resumed.task_status("forever-2")).state is TaskState.RUNNING
            finally:
                await resumed.close()
            assert second.cancelled == ["forever-2"]

    asyncio.run(main())
