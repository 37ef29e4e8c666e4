from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from phaselog.adapters import Store
from phaselog.adapters.demo.tasks import CONTROLLER, run_demo
from phaselog.domain.task import TaskAggregate, TaskState, task_stream_id

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_batch_example_runs_cancel_failure_and_restart(durable_url: str) -> None:
    """examples/task_batch.py finishes its scenario on SQLite and PostgreSQL."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "task_batch.py"), durable_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "after the restart:" in result.stdout
    assert "job-5" in result.stdout
    assert result.stdout.rstrip().endswith("done")


def test_the_demo_shows_every_end_state_and_can_run_twice(durable_store: Store) -> None:
    """The demo hook prints a table of completed, failed and canceled tasks, also on a second run."""
    for run in (1, 2):
        out = io.StringIO()
        run_demo(durable_store, Console(file=out, width=120))
        text = out.getvalue()
        for state in ("COMPLETED", "FAILED", "CANCELED"):
            assert state in text
        ids = durable_store.stream_ids(f"task:{CONTROLLER}:")
        assert len(ids) == 4 * run
    states = sorted(durable_store.load(sid, TaskAggregate).state for sid in ids)
    assert states.count(TaskState.COMPLETED) == 4
    assert states.count(TaskState.FAILED) == 2
    assert states.count(TaskState.CANCELED) == 2
    assert all(durable_store.load(sid, TaskAggregate).delivered for sid in ids)
    assert task_stream_id(CONTROLLER, "x") == f"task:{CONTROLLER}:x"
