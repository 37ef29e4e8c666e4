from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from phaselog.adapters import Store, open_store
from phaselog.domain.errors import InvalidTransition, NotFound, ValidationFailed
from phaselog.domain.plan import (
    AttemptStarted,
    CleanupFinished,
    PlanCreated,
    PlanFailed,
    PlanItem,
    PlanRun,
    RecordedError,
    RunFinished,
    RunStarted,
    StateWritten,
    StepError,
)
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan

Hook = Callable[[PlanContext, PlanState], object]


class Journal:
    """Records which hook of which step ran, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def hook(self, label: str, fail: Callable[[int], bool] | None = None) -> Hook:
        count = [0]

        def fn(ctx: PlanContext, state: PlanState) -> None:
            count[0] += 1
            self.calls.append(label)
            if fail is not None and fail(count[0]):
                raise ValueError(f"{label} failed on call {count[0]}")

        return fn

    def step(
        self,
        name: str,
        *,
        fail_exec: Callable[[int], bool] | None = None,
        fail_pre: Callable[[int], bool] | None = None,
        fail_post: Callable[[int], bool] | None = None,
    ) -> GenericStep:
        return GenericStep(
            name,
            pre_exec=self.hook(f"{name}.pre", fail_pre),
            exec=self.hook(f"{name}.exec", fail_exec),
            post_exec=self.hook(f"{name}.post", fail_post),
            cleanup=self.hook(f"{name}.cleanup"),
        )


def always(_: int) -> bool:
    return True


def events_of(store: Store, plan_id: str, cls: type[Any]) -> list[Any]:
    return [e for e in store.stream(f"plan:{plan_id}") if isinstance(e, cls)]


def test_success_runs_hooks_in_order_and_cleans_up_backwards(store: Store) -> None:
    """A successful plan runs pre/exec/post per step in order, then every cleanup backwards, and returns."""
    j = Journal()
    plan = Plan(store, "ok").add_step(j.step("a")).add_step(j.step("b"))
    plan.execute()
    assert j.calls == ["a.pre", "a.exec", "a.post", "b.pre", "b.exec", "b.post", "b.cleanup", "a.cleanup"]
    (finished,) = events_of(store, "ok", RunFinished)
    assert (finished.run, finished.status, finished.errors) == (1, "succeeded", [])


def test_retries_stop_at_the_first_successful_attempt(store: Store) -> None:
    """A step failing twice with 5 retries runs exactly three attempts, then the plan goes on."""
    j = Journal()
    flaky = j.step("flaky", fail_exec=lambda n: n <= 2).with_retries(5)
    Plan(store, "retry").add_step(flaky).add_step(j.step("after")).execute()
    assert j.calls.count("flaky.exec") == 3
    assert j.calls.count("flaky.pre") == 3
    assert j.calls.count("flaky.post") == 1
    assert [e.attempt for e in events_of(store, "retry", AttemptStarted) if e.step == "flaky"] == [1, 2, 3]
    assert j.calls[-2:] == ["after.cleanup", "flaky.cleanup"]


def test_exhausted_retries_fail_the_plan_with_the_original_exception(store: Store) -> None:
    """retries=2 means three attempts; PlanFailed.errors holds the step name and the raised exception."""
    j = Journal()
    bad = j.step("bad", fail_exec=always).with_retries(2)
    plan = Plan(store, "exhaust").add_step(j.step("ok")).add_step(bad)
    with pytest.raises(PlanFailed) as info:
        plan.execute()
    assert j.calls.count("bad.exec") == 3
    ((name, exc),) = info.value.errors
    assert name == "bad"
    assert isinstance(exc, ValueError)
    assert str(exc) == "bad.exec failed on call 3"
    assert j.calls[-1] == "ok.cleanup"
    assert "bad.cleanup" not in j.calls


def test_pre_exec_failure_skips_exec_and_a_post_failure_means_no_cleanup(store: Store) -> None:
    """A failing pre_exec skips exec/post; a step whose post_exec failed is not cleaned up."""
    j = Journal()
    plan = Plan(store, "hooks", continue_on_error=True)
    plan.add_step(j.step("pre", fail_pre=always)).add_step(j.step("post", fail_post=always))
    with pytest.raises(PlanFailed) as info:
        plan.execute()
    assert "pre.exec" not in j.calls
    assert "post.exec" in j.calls
    assert not any(c.endswith(".cleanup") for c in j.calls)
    assert [e.step for e in info.value.errors] == ["pre", "post"]


def test_first_failure_stops_the_plan_without_continue_on_error(store: Store) -> None:
    """Without continue_on_error later steps never run; earlier succeeded steps are cleaned backwards."""
    j = Journal()
    plan = Plan(store, "stop")
    for step in (j.step("a"), j.step("b"), j.step("c", fail_exec=always), j.step("d")):
        plan.add_step(step)
    with pytest.raises(PlanFailed):
        plan.execute()
    assert not any(c.startswith("d.") for c in j.calls)
    assert j.calls[-2:] == ["b.cleanup", "a.cleanup"]


def test_continue_on_error_collects_every_step_error_in_order(store: Store) -> None:
    """With continue_on_error every step runs; errors list all failures in order; only successes clean."""
    j = Journal()
    plan = Plan(store, "cont", continue_on_error=True)
    for step in (j.step("a", fail_exec=always), j.step("b"), j.step("c", fail_exec=always), j.step("d")):
        plan.add_step(step)
    with pytest.raises(PlanFailed) as info:
        plan.execute()
    assert [name for name, _ in info.value.errors] == ["a", "c"]
    assert all(isinstance(exc, ValueError) for _, exc in info.value.errors)
    assert [c for c in j.calls if c.endswith("cleanup")] == ["d.cleanup", "b.cleanup"]
    (finished,) = events_of(store, "cont", RunFinished)
    assert [e.step for e in finished.errors] == ["a", "c"]


def test_a_failing_cleanup_is_recorded_and_the_others_still_run(store: Store) -> None:
    """A cleanup that raises does not stop the other cleanups and turns success into PlanFailed."""
    j = Journal()
    bad_cleanup = GenericStep("b", cleanup=j.hook("b.cleanup", always))
    plan = Plan(store, "cleanfail").add_step(j.step("a")).add_step(bad_cleanup).add_step(j.step("c"))
    with pytest.raises(PlanFailed) as info:
        plan.execute()
    assert [c for c in j.calls if c.endswith("cleanup")] == ["c.cleanup", "b.cleanup", "a.cleanup"]
    assert info.value.errors == []
    assert [name for name, _ in info.value.cleanup_errors] == ["b"]
    finished = [e for e in events_of(store, "cleanfail", CleanupFinished) if e.error is not None]
    assert [e.step for e in finished] == ["b"]


def test_state_is_shared_recorded_and_seen_by_a_new_plan_object(store: Store) -> None:
    """State written by one step is read by the next, recorded as events and reloaded by a new Plan."""
    seen: list[Any] = []
    plan = Plan(store, "state")
    plan.add_step(GenericStep("w", exec=lambda _ctx, st: st.update(host="h1", ports=[80, 443])))
    plan.add_step(GenericStep("r", exec=lambda _ctx, st: seen.append((st["host"], st["ports"]))))
    plan.execute()
    assert seen == [("h1", [80, 443])]
    assert [e.values for e in events_of(store, "state", StateWritten)] == [{"host": "h1", "ports": [80, 443]}]
    again = Plan(store, "state")
    assert dict(again.state) == {"host": "h1", "ports": [80, 443]}
    del again.state["host"]
    assert dict(Plan(store, "state").state) == {"ports": [80, 443]}


def test_state_reads_are_copies(store: Store) -> None:
    """Mutating a value read from the state does not change the recorded state."""
    plan = Plan(store, "copies")
    plan.state["items"] = [1]
    plan.state["items"].append(2)
    assert plan.state["items"] == [1]


def test_non_finite_floats_and_big_ints_in_plan_state_recover_equal(store: Store) -> None:
    """Plan state keeps nan, inf, -inf and integers beyond 64 bits exactly across a reload."""
    plan = Plan(store, "floats")
    plan.state.update({"f": [float("inf"), -float("inf"), 0.1], "n": float("nan"), "big": 2**80})
    again = Plan(store, "floats").state
    assert again["f"] == [float("inf"), -float("inf"), 0.1]
    assert math.isnan(again["n"])
    assert again["big"] == 2**80


@pytest.mark.parametrize("bad", [{1, 2}, object(), {"k": b"bytes"}, {3: "int key"}, "lone \ud800"])
def test_non_json_state_values_are_rejected_before_anything_is_written(store: Store, bad: object) -> None:
    """A non-JSON value raises ValidationFailed and records nothing (also inside a multi-key update)."""
    plan = Plan(store, "badstate")
    plan.state["ok"] = 1
    version = store.load("plan:badstate", PlanRun).version
    with pytest.raises(ValidationFailed):
        plan.state["x"] = bad
    with pytest.raises(ValidationFailed):
        plan.state.update({"fine": 2, "x": bad})
    assert store.load("plan:badstate", PlanRun).version == version
    assert dict(plan.state) == {"ok": 1}


def test_bad_plan_definitions_raise_typed_errors_before_anything_runs(store: Store) -> None:
    """Duplicate names, negative pauses/retries and non-steps raise ValidationFailed; nothing is stored."""
    plan = Plan(store, "bad").add_step(GenericStep("a"))
    with pytest.raises(ValidationFailed, match="already has a step named 'a'"):
        plan.add_step(GenericStep("a"))
    with pytest.raises(ValidationFailed, match="negative"):
        plan.add_pause(-1)
    with pytest.raises(ValidationFailed, match="negative"):
        plan.add_pause(timedelta(seconds=-0.5))
    with pytest.raises(ValidationFailed, match="retries"):
        GenericStep("r").with_retries(-1)

    class NegativeRetries(GenericStep):
        def retries(self) -> int:
            return -3

    with pytest.raises(ValidationFailed, match="retries"):
        plan.add_step(NegativeRetries("n"))
    with pytest.raises(ValidationFailed):
        plan.add_step(object())  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed):
        GenericStep("")
    with pytest.raises(ValidationFailed):
        Plan(store, "")
    with pytest.raises(ValidationFailed):
        Plan(store, "x", limit_duration=timedelta(seconds=-1))
    assert store.stream_ids("plan:") == []


def test_each_execute_is_a_new_run_in_the_same_stream(store: Store) -> None:
    """Executing a finished plan again starts run 2; resume of a finished run or of no run is refused."""
    j = Journal()
    plan = Plan(store, "again").add_step(j.step("a"))
    with pytest.raises(NotFound):
        plan.resume()
    plan.execute()
    plan.execute()
    assert j.calls.count("a.exec") == 2
    assert [r.run for r in plan.runs()] == [1, 2]
    assert [r.status for r in plan.runs()] == ["succeeded", "succeeded"]
    with pytest.raises(InvalidTransition):
        plan.resume()
    assert not plan.needs_resume


def test_executing_an_unfinished_run_is_refused_and_resume_needs_the_same_steps(store: Store) -> None:
    """An unfinished latest run blocks execute(); resume() with other step names raises ValidationFailed."""
    crashed = PlanRun.start(PlanCreated, "plan:unfinished")  # as if the process died right after starting
    crashed.trigger(
        RunStarted,
        run=1,
        layout=[PlanItem(kind="step", name="a")],
        continue_on_error=False,
        limit_seconds=None,
    )
    store.save(crashed)
    assert Plan(store, "unfinished").needs_resume
    with pytest.raises(InvalidTransition, match="resume"):
        Plan(store, "unfinished").add_step(GenericStep("a")).execute()
    with pytest.raises(ValidationFailed, match="steps"):
        Plan(store, "unfinished").add_step(GenericStep("other")).resume()
    ran: list[str] = []
    Plan(store, "unfinished").add_step(GenericStep("a", exec=lambda _c, _s: ran.append("a"))).resume()
    assert ran == ["a"]
    assert not Plan(store, "unfinished").needs_resume


def test_recorded_errors_come_back_after_a_reload(store: Store) -> None:
    """A RecordedError rebuilt from the log keeps the original type name and message."""
    plan = Plan(store, "rec").add_step(GenericStep("x", exec=lambda _c, _s: int("nope")))
    with pytest.raises(PlanFailed):
        plan.execute()
    record = plan.current_run()
    assert record is not None
    (error,) = record.errors
    name, exc = error.as_step_error()
    assert isinstance(exc, RecordedError)
    assert (name, exc.type_name) == ("x", "ValueError")
    assert "invalid literal" in exc.message
    assert isinstance(error.as_step_error(), StepError)


def test_audit_can_replay_the_plan_as_of_any_version(store: Store) -> None:
    """Loading the plan at an earlier version shows the run as it was then (events are the truth)."""
    plan = Plan(store, "asof").add_step(GenericStep("a")).add_step(GenericStep("b"))
    plan.execute()
    events = store.stream("plan:asof")
    first_success = next(e for e in events if type(e).__name__ == "StepSucceeded")
    then = store.load("plan:asof", PlanRun, version=first_success.originator_version)
    assert then.current is not None
    assert then.current.succeeded == ["a"]
    assert then.current.status == "running"


def test_snapshots_restore_the_plan(durable_url: str) -> None:
    """With snapshots every few events a reloaded plan still knows its state and runs."""
    with open_store(durable_url, snapshot_interval=3) as store:
        plan = Plan(store, "snap").add_step(GenericStep("a", exec=lambda _c, s: s.set("k", 1)))
        plan.execute()
        plan.execute()
        assert store.app.snapshots is not None
        assert list(store.app.snapshots.get("plan:snap"))
        again = Plan(store, "snap")
        assert again.state["k"] == 1
        assert [r.run for r in again.runs()] == [1, 2]


def test_state_writes_from_many_threads_are_all_recorded(store: Store) -> None:
    """PlanState is thread-safe: concurrent writes from a hook's threads all land as events."""

    def fan_out(_ctx: PlanContext, state: PlanState) -> None:
        def writer(n: int) -> None:
            for i in range(10):
                state[f"w{n}-{i}"] = i

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    plan = Plan(store, "threads").add_step(GenericStep("fan", exec=fan_out))
    plan.execute()
    assert len(Plan(store, "threads").state) == 60
    assert len(events_of(store, "threads", StateWritten)) == 60


def test_a_second_executor_of_a_running_plan_is_refused(store: Store) -> None:
    """While one Plan object runs a plan, another's execute() on the same id raises InvalidTransition."""
    inside, release = threading.Event(), threading.Event()

    def wait(_ctx: PlanContext, _state: PlanState) -> None:
        inside.set()
        release.wait(30)

    first = Plan(store, "busy").add_step(GenericStep("wait", exec=wait))
    worker = threading.Thread(target=first.execute)
    worker.start()
    try:
        assert inside.wait(30)
        with pytest.raises(InvalidTransition, match="unfinished"):
            Plan(store, "busy").add_step(GenericStep("wait")).execute()
        with pytest.raises(InvalidTransition, match="already executing"):
            first.execute()
    finally:
        release.set()
        worker.join(30)
    assert [r.status for r in Plan(store, "busy").runs()] == ["succeeded"]
