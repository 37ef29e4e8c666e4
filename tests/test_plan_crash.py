from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from phaselog.adapters import Store, open_store
from phaselog.domain.errors import InvalidTransition
from phaselog.domain.plan import (
    AttemptInterrupted,
    AttemptStarted,
    CleanupAbandoned,
    CleanupStarted,
    PauseFinished,
    PauseStarted,
    PlanFailed,
    RecordedError,
    RunResumed,
)
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan

pytestmark = pytest.mark.slow
WAIT = 60.0

CHILD = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path

    from phaselog.adapters import open_store
    from phaselog.runtime.plan_state import GenericStep
    from phaselog.runtime.plans import Plan

    url, folder, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

    def note(label):
        with open(folder / "calls.log", "a") as f:
            f.write(label + "\\n")
            f.flush()
            os.fsync(f.fileno())

    def noting(label):
        return lambda ctx, state: note(label)

    def hang(label, marker):
        def fn(ctx, state):
            note(label)
            if label == "b.exec":
                state["b_progress"] = "half"
            (folder / marker).touch()
            threading.Event().wait()  # until kill -9
        return fn

    def boom(ctx, state):
        note("c.exec")
        raise ValueError("c is broken")

    store = open_store(url)
    plan = Plan(store, "crashy")
    plan.add_step(GenericStep("a", exec=lambda ctx, st: (note("a.exec"), st.set("a", 1)),
                              cleanup=noting("a.cleanup")))
    if mode == "pause":
        plan.add_pause(1.0)
        plan.add_step(GenericStep("b", exec=noting("b.exec"), cleanup=noting("b.cleanup")))
    elif mode == "step":
        plan.add_step(GenericStep("b", exec=hang("b.exec", "in-b"), cleanup=noting("b.cleanup")))
        plan.add_step(GenericStep("c", exec=noting("c.exec"), cleanup=noting("c.cleanup")))
    else:
        plan.add_step(GenericStep("b", cleanup=hang("b.cleanup", "in-b-cleanup")))
        plan.add_step(GenericStep("c", exec=boom, cleanup=noting("c.cleanup")))
    plan.execute()
    """
)


def crash_child(url: str, folder: Path, mode: str, marker: str | Callable[[], bool]) -> None:
    """Run the child plan until it touches ``marker`` (or ``marker()`` is true), then kill -9 it."""
    reached = marker if callable(marker) else (folder / marker).exists
    script = folder / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), url, str(folder), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not reached():
            if proc.poll() is not None:
                _, err = proc.communicate(timeout=WAIT)
                pytest.fail(f"child exited early with {proc.returncode}: {err.decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"child never reached {marker}")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def calls(folder: Path) -> list[str]:
    return (folder / "calls.log").read_text().splitlines()


def events_of(store: Store, cls: type[Any]) -> list[Any]:
    return [e for e in store.stream("plan:crashy") if isinstance(e, cls)]


def test_resume_after_kill_mid_step_continues_from_the_unfinished_step(
    durable_url: str, tmp_path: Path
) -> None:
    """After kill -9 inside step b, resume() reruns b with the recorded state, skips a, cleans each once."""
    crash_child(durable_url, tmp_path, "step", "in-b")
    seen: list[dict[str, Any]] = []

    def note(label: str) -> Any:
        def fn(ctx: PlanContext, state: PlanState) -> None:
            with (tmp_path / "calls.log").open("a") as f:
                f.write(label + "\n")

        return fn

    def b_again(ctx: PlanContext, state: PlanState) -> None:
        seen.append(state.snapshot())
        note("b.exec.resumed")(ctx, state)

    with open_store(durable_url) as store:
        plan = Plan(store, "crashy")
        plan.add_step(GenericStep("a", exec=note("a.exec.again"), cleanup=note("a.cleanup")))
        plan.add_step(GenericStep("b", exec=b_again, cleanup=note("b.cleanup")))
        plan.add_step(GenericStep("c", exec=note("c.exec"), cleanup=note("c.cleanup")))
        assert plan.needs_resume
        with pytest.raises(InvalidTransition):
            plan.execute()
        plan.resume()
        assert calls(tmp_path) == [
            "a.exec",
            "b.exec",
            "b.exec.resumed",
            "c.exec",
            "c.cleanup",
            "b.cleanup",
            "a.cleanup",
        ]
        assert seen == [{"a": 1, "b_progress": "half"}]
        (interrupted,) = events_of(store, AttemptInterrupted)
        assert (interrupted.step, interrupted.attempt) == ("b", 1)
        assert len(events_of(store, RunResumed)) == 1
        assert [e.attempt for e in events_of(store, AttemptStarted) if e.step == "b"] == [1, 2]
        assert [r.status for r in plan.runs()] == ["succeeded"]
        assert not plan.needs_resume


def test_resume_after_kill_mid_cleanup_never_runs_a_cleanup_twice(durable_url: str, tmp_path: Path) -> None:
    """After kill -9 in b's cleanup, resume() records it abandoned, cleans a once and reports c's error."""
    crash_child(durable_url, tmp_path, "cleanup", "in-b-cleanup")

    def note(label: str) -> Any:
        def fn(ctx: PlanContext, state: PlanState) -> None:
            with (tmp_path / "calls.log").open("a") as f:
                f.write(label + "\n")

        return fn

    with open_store(durable_url) as store:
        plan = Plan(store, "crashy")
        plan.add_step(GenericStep("a", exec=note("a.exec.again"), cleanup=note("a.cleanup")))
        plan.add_step(GenericStep("b", exec=note("b.exec.again"), cleanup=note("b.cleanup.again")))
        plan.add_step(GenericStep("c", exec=note("c.exec.again"), cleanup=note("c.cleanup")))
        with pytest.raises(PlanFailed) as info:
            plan.resume()
        assert calls(tmp_path) == ["a.exec", "c.exec", "b.cleanup", "a.cleanup"]
        ((name, exc),) = info.value.errors
        assert name == "c"
        assert isinstance(exc, RecordedError)
        assert (exc.type_name, exc.message) == ("ValueError", "c is broken")
        assert [e.step for e in events_of(store, CleanupAbandoned)] == ["b"]
        assert [e.step for e in events_of(store, CleanupStarted)] == ["b", "a"]
        record = plan.current_run()
        assert record is not None
        assert (record.status, record.cleanup_abandoned) == ("failed", ["b"])
        with pytest.raises(InvalidTransition):
            plan.resume()


def test_a_resumed_plan_can_run_again_as_a_new_run(durable_url: str, tmp_path: Path) -> None:
    """Once the crashed run is resumed to its end, execute() starts run 2 from the first step."""
    crash_child(durable_url, tmp_path, "step", "in-b")
    with open_store(durable_url) as store:
        plan = Plan(store, "crashy")
        for name in ("a", "b", "c"):
            plan.add_step(GenericStep(name))
        plan.resume()
        ran: list[str] = []
        again = Plan(store, "crashy")
        for name in ("a", "b", "c"):
            again.add_step(GenericStep(name, exec=lambda _c, _s, n=name: ran.append(n)))  # type: ignore[misc]
        again.execute()
        assert ran == ["a", "b", "c"]
        assert [r.run for r in again.runs()] == [1, 2]


def test_resume_after_kill_mid_pause_finishes_the_pause_once(durable_url: str, tmp_path: Path) -> None:
    """After kill -9 during a pause, resume() finishes that same pause (no new PauseStarted) and goes on."""

    def paused() -> bool:
        with open_store(durable_url) as store:
            return store.exists("plan:crashy") and bool(events_of(store, PauseStarted))

    crash_child(durable_url, tmp_path, "pause", paused)
    ran: list[str] = []
    with open_store(durable_url) as store:
        plan = Plan(store, "crashy")
        plan.add_step(GenericStep("a", exec=lambda _c, _s: ran.append("a")))
        plan.add_pause(1.0)
        plan.add_step(GenericStep("b", exec=lambda _c, _s: ran.append("b")))
        plan.resume()
        assert ran == ["b"]
        assert len(events_of(store, PauseStarted)) == 1
        (finished,) = events_of(store, PauseFinished)
        assert not finished.interrupted
        assert calls(tmp_path) == ["a.exec"]
