from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from task_helpers import ScriptedRunner, wait_for

from phaselog.adapters import Store, open_store
from phaselog.domain.events import utcnow
from phaselog.domain.task import TaskAggregate, TaskState
from phaselog.runtime.task_models import CancelContext, Progress
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

from conftest import raw_execute

pytestmark = pytest.mark.slow

CRASHING_SERVICE = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from phaselog.adapters import open_store
    from phaselog.runtime.tasks import TaskController

    class Runner:
        def on_task_pending(self, ctx, task):
            if task.task_id.startswith("pend"):
                ctx.wait(None)
        def on_task_running(self, ctx, task):
            if task.task_id == "fail":
                raise RuntimeError("boom")
            if task.task_id.startswith("run"):
                task.set_progress(3, 10)
                task.add_log_entry(20, "working")
                ctx.wait(None)
        def on_task_completed(self, ctx, task, state, *args):
            pass

    store = open_store(sys.argv[1])
    ctl = TaskController(store, "svc", Runner(), lease=timedelta(seconds=1),
                         progress_interval=timedelta(milliseconds=20))
    for tid, n in [("done", 0), ("fail", 1), ("pend-1", 2), ("run-1", 3)]:
        ctl.launch_task(tid, metadata={"n": n})
    time.sleep(600)
    """
)

POOL_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from datetime import timedelta
    from phaselog.adapters import open_store
    from phaselog.domain.errors import StoreUnavailable
    from phaselog.domain.task import TaskAggregate
    from phaselog.runtime.tasks import TaskController

    url, workdir, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class Runner:
        def on_task_pending(self, ctx, task):
            pass
        def on_task_running(self, ctx, task):
            lock = os.path.join(workdir, task.task_id + ".lock")
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                open(os.path.join(workdir, "OVERLAP"), "a").write(task.task_id + "\\n")
                return
            with open(os.path.join(workdir, "runs.log"), "a") as runs:
                runs.write(f"{task.task_id} {os.getpid()}\\n")
            ctx.wait(0.05)
            os.close(fd)
            os.unlink(lock)
        def on_task_completed(self, ctx, task, state, *args):
            pass

    for attempt in range(5):  # open_store on PostgreSQL can hit "deadlock detected" while
        try:                   # another process runs the same CREATE ... IF NOT EXISTS (foundation issue)
            store = open_store(url)
            break
        except StoreUnavailable:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    ctl = TaskController(store, "pool", Runner(), max_workers=4, lease=timedelta(seconds=2),
                         sweep_interval=timedelta(milliseconds=100))
    deadline = time.monotonic() + 60
    ids = [f"task:pool:t{i:02d}" for i in range(count)]
    while time.monotonic() < deadline:
        if all(store.load(i, TaskAggregate).delivered for i in ids):
            break
        time.sleep(0.05)
    ctl.close()
    store.close()
    """
)


def _spawn(tmp_path: Path, name: str, source: str, *args: str) -> subprocess.Popen[bytes]:
    script = tmp_path / name
    script.write_text(source)
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.DEVNULL)


def _agg(store: Store, task_id: str, name: str = "svc") -> TaskAggregate:
    return store.load(f"task:{name}:{task_id}", TaskAggregate)


def test_kill_9_then_a_new_controller_resumes_exactly_the_unfinished_tasks(
    durable_url: str, tmp_path: Path
) -> None:
    """After kill -9, Pending/Running tasks resume with metadata and progress; finished ones are untouched."""
    proc = _spawn(tmp_path, "service.py", CRASHING_SERVICE, durable_url)
    try:
        with open_store(durable_url) as store:

            def crashed_state_reached() -> bool:
                if len(store.stream_ids("task:svc:")) < 4:
                    return False
                done, fail = _agg(store, "done"), _agg(store, "fail")
                run, pend = _agg(store, "run-1"), _agg(store, "pend-1")
                return (
                    done.delivered
                    and fail.delivered
                    and run.progress == (3, 10)
                    and run.state is TaskState.RUNNING
                    and pend.state is TaskState.PENDING
                )

            wait_for(crashed_state_reached, timeout=30, what="the service to reach its crash point")
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
            finished_before = {tid: len(store.stream(f"task:svc:{tid}")) for tid in ("done", "fail")}
            seen: dict[str, tuple[object, Progress | None]] = {}

            def record(ctx: CancelContext, task: ActiveTask) -> None:
                seen[task.task_id] = (task.load_task_metadata(dict), task.get_progress())

            runner = ScriptedRunner(pending={"pend-1": record}, running={"run-1": record})
            with TaskController(
                store, "svc", runner, lease=timedelta(seconds=1), sweep_interval=timedelta(milliseconds=100)
            ) as ctl:
                wait_for(
                    lambda: _agg(store, "run-1").delivered and _agg(store, "pend-1").delivered,
                    timeout=30,
                    what="resumed tasks to finish",
                )
                assert ctl.task_status("run-1").state is TaskState.COMPLETED
                assert ctl.task_status("pend-1").state is TaskState.COMPLETED
                assert [entry.msg for entry in ctl.task_status("run-1").logs] == ["working"]
            assert runner.hooks_of("run-1") == ["running"]
            assert runner.hooks_of("pend-1") == ["pending", "running"]
            assert runner.hooks_of("done") == runner.hooks_of("fail") == []
            run_md, run_progress = seen["run-1"]
            assert run_md == {"n": 3}
            assert run_progress == Progress(current=3, total=10)
            assert seen["pend-1"] == ({"n": 2}, None)
            assert {tid: len(store.stream(f"task:svc:{tid}")) for tid in ("done", "fail")} == finished_before
            assert _agg(store, "fail").state is TaskState.FAILED
            assert sorted(tid for tid, _state, _args in runner.completed) == ["pend-1", "run-1"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_two_controller_processes_never_run_the_same_task_at_once(durable_url: str, tmp_path: Path) -> None:
    """Two processes racing for the same tasks each run a task exactly once, never concurrently."""
    count = 24
    expired = utcnow() - timedelta(seconds=1)
    with open_store(durable_url) as store:
        for i in range(count):
            store.save(TaskAggregate.launch("pool", f"t{i:02d}", "", "seed-owner", expired))
        procs = [
            _spawn(tmp_path, f"worker{n}.py", POOL_WORKER, durable_url, str(tmp_path), str(count))
            for n in range(2)
        ]
        try:
            for proc in procs:
                assert proc.wait(timeout=90) == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
        assert not (tmp_path / "OVERLAP").exists()
        runs = (tmp_path / "runs.log").read_text().split()
        task_ids = runs[::2]
        assert sorted(task_ids) == [f"t{i:02d}" for i in range(count)]
        for i in range(count):
            agg = store.load(f"task:pool:t{i:02d}", TaskAggregate)
            assert agg.state is TaskState.COMPLETED
            assert agg.delivered


def test_a_live_controller_takes_over_when_the_claim_holder_stops_renewing(durable_store: Store) -> None:
    """A task claimed by a controller that stops renewing is resumed by another after the lease."""
    lease = timedelta(milliseconds=600)
    durable_store.save(TaskAggregate.launch("svc", "orphan", '{"k": 1}', "gone-owner", utcnow() + lease))
    runner = ScriptedRunner()
    with TaskController(durable_store, "svc", runner, lease=lease) as ctl:
        assert _agg(durable_store, "orphan").owner == "gone-owner"
        wait_for(lambda: _agg(durable_store, "orphan").delivered, timeout=20, what="takeover")
        assert ctl.task_status("orphan").state is TaskState.COMPLETED
    assert runner.hooks_of("orphan") == ["pending", "running"]


def test_construction_does_not_block_on_storage_errors_and_resumes_later(
    durable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the event and stream-index tables unreadable the controller starts; once back, tasks resume."""
    with open_store(durable_url) as store:
        store.save(TaskAggregate.launch("svc", "later", "", "gone", utcnow() - timedelta(seconds=1)))
        # A sweep lists open tasks from the stream index (phaselog_streams), then loads their events.
        events = "stored_events" if durable_url.startswith("sqlite") else "phaselog_events"
        tables = [events, "phaselog_streams"]
        for table in tables:
            raw_execute(durable_url, f"ALTER TABLE {table} RENAME TO {table}_away")
        runner = ScriptedRunner()
        try:
            ctl = TaskController(
                store, "svc", runner, lease=timedelta(seconds=1), sweep_interval=timedelta(milliseconds=100)
            )
            assert ctl.active_tasks() == []
            assert "cannot list tasks" in caplog.text
        finally:
            for table in tables:
                raw_execute(durable_url, f"ALTER TABLE {table}_away RENAME TO {table}")
        with ctl:
            wait_for(lambda: _agg(store, "later").delivered, timeout=20, what="resume after recovery")
        assert runner.hooks_of("later") == ["pending", "running"]
