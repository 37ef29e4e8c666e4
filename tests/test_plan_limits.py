from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from plan_helpers import LIMIT, WAIT, events_of

from phaselog.adapters import Store
from phaselog.domain.plan import (
    CleanupFinished,
    HookAbandoned,
    PauseFinished,
    PauseStarted,
    PlanCancelled,
    PlanTimeout,
    RunFinished,
    StepSucceeded,
)
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan

GRACE = timedelta(milliseconds=300)


def record(log: list[str], label: str) -> Any:
    return lambda _ctx, _state: log.append(label)


def test_a_cooperative_overrunning_step_times_out_and_cleanup_still_runs(store: Store) -> None:
    """limit_duration interrupts a step waiting on ctx; earlier steps are cleaned; PlanTimeout is raised."""
    log: list[str] = []

    def slow(ctx: PlanContext, state: PlanState) -> None:
        log.append("slow.start")
        assert ctx.wait(WAIT), "the deadline should have cancelled the context"
        log.append(f"slow.woken:{ctx.reason}")

    plan = Plan(store, "coop", limit_duration=LIMIT)
    plan.add_step(GenericStep("fast", exec=record(log, "fast"), cleanup=record(log, "fast.cleanup")))
    plan.add_step(
        GenericStep(
            "slow", exec=slow, post_exec=record(log, "slow.post"), cleanup=record(log, "slow.cleanup")
        )
    )
    with pytest.raises(PlanTimeout) as info:
        plan.execute()
    assert log == ["fast", "slow.start", "slow.woken:timed_out", "fast.cleanup"]
    assert info.value.errors == []
    assert [e.step for e in events_of(store, "coop", StepSucceeded)] == ["fast"]
    assert events_of(store, "coop", RunFinished)[0].status == "timed_out"


def test_a_hook_ignoring_the_context_is_abandoned_at_the_deadline(
    store: Store, release: threading.Event
) -> None:
    """A hook that ignores cancellation is abandoned after the grace period and recorded as such."""
    log: list[str] = []
    plan = Plan(store, "stubborn", limit_duration=LIMIT, grace=GRACE)
    plan.add_step(GenericStep("first", cleanup=record(log, "first.cleanup")))
    plan.add_step(GenericStep("stuck", exec=lambda _ctx, _st: release.wait(WAIT), cleanup=record(log, "x")))
    with pytest.raises(PlanTimeout):
        plan.execute()
    (abandoned,) = events_of(store, "stubborn", HookAbandoned)
    assert (abandoned.step, abandoned.hook, abandoned.reason) == ("stuck", "exec", "timed_out")
    assert log == ["first.cleanup"]


def test_cleanup_has_its_own_time_limit(store: Store, release: threading.Event) -> None:
    """A cleanup hook overrunning cleanup_limit is recorded as failed and the next cleanup still runs."""
    log: list[str] = []
    plan = Plan(
        store,
        "cleanlimit",
        limit_duration=timedelta(seconds=60),
        cleanup_limit=timedelta(seconds=0.5),
        grace=GRACE,
    )
    plan.add_step(GenericStep("a", cleanup=record(log, "a.cleanup")))
    plan.add_step(GenericStep("b", cleanup=lambda _ctx, _st: release.wait(WAIT)))
    plan.add_step(GenericStep("boom", exec=lambda _ctx, _st: 1 / 0))
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is asserted below
        plan.execute()
    assert type(info.value).__name__ == "PlanFailed"
    assert log == ["a.cleanup"]
    errors = {e.step: e.error for e in events_of(store, "cleanlimit", CleanupFinished) if e.error}
    assert list(errors) == ["b"]
    assert errors["b"].type == "PlanTimeout"


def test_cleanup_runs_with_a_fresh_context_after_a_timeout(store: Store) -> None:
    """Cleanup hooks after a timeout get an uncancelled context, so cooperative cleanups do their work."""
    seen: list[bool] = []
    plan = Plan(store, "freshctx", limit_duration=LIMIT)
    plan.add_step(GenericStep("a", cleanup=lambda ctx, _st: seen.append(ctx.cancelled)))
    plan.add_step(GenericStep("wait", exec=lambda ctx, _st: ctx.wait(WAIT)))
    with pytest.raises(PlanTimeout):
        plan.execute()
    assert seen == [False]


def test_cancel_from_another_thread_wakes_a_pause_and_runs_cleanup(store: Store) -> None:
    """Cancelling during a long pause wakes it at once; cleanup runs; PlanCancelled is raised."""
    log: list[str] = []
    ctx = PlanContext()
    plan = Plan(store, "cancelpause")
    plan.add_step(GenericStep("a", cleanup=record(log, "a.cleanup")))
    plan.add_pause(timedelta(hours=1))
    plan.add_step(GenericStep("never", exec=record(log, "never")))

    def cancel_once_paused() -> None:
        deadline = time.monotonic() + WAIT
        while not events_of(store, "cancelpause", PauseStarted) and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx.cancel()

    canceller = threading.Thread(target=cancel_once_paused)
    canceller.start()
    with pytest.raises(PlanCancelled):
        plan.execute(ctx)
    canceller.join(WAIT)
    assert log == ["a.cleanup"]
    (pause,) = events_of(store, "cancelpause", PauseFinished)
    assert pause.interrupted
    assert events_of(store, "cancelpause", RunFinished)[0].status == "cancelled"


def test_a_pre_cancelled_context_runs_nothing(store: Store) -> None:
    """Executing with an already-cancelled context runs no step and records a cancelled run."""
    log: list[str] = []
    ctx = PlanContext()
    ctx.cancel()
    plan = Plan(store, "precancel").add_step(GenericStep("a", exec=record(log, "a")))
    with pytest.raises(PlanCancelled):
        plan.execute(ctx)
    assert log == []
    assert events_of(store, "precancel", RunFinished)[0].status == "cancelled"


def test_a_hook_raising_plan_cancelled_is_not_a_step_error(store: Store) -> None:
    """A hook that notices cancellation via raise_if_cancelled ends the plan as cancelled, without errors."""
    ctx = PlanContext()

    def cancel_then_notice(c: PlanContext, state: PlanState) -> None:
        ctx.cancel()
        c.raise_if_cancelled()

    plan = Plan(store, "notice").add_step(GenericStep("a", exec=cancel_then_notice).with_retries(3))
    with pytest.raises(PlanCancelled) as info:
        plan.execute(ctx)
    assert info.value.errors == []
    assert plan.current_run() is not None
    assert plan.current_run().attempts == {"a": 1}  # type: ignore[union-attr]


def test_pauses_sit_between_steps_and_are_skipped_in_cleanup(store: Store) -> None:
    """A pause is recorded after its step with its duration and is not replayed during cleanup."""
    plan = Plan(store, "pauses")
    plan.add_pause(0)
    plan.add_step(GenericStep("a")).add_pause(timedelta(milliseconds=30)).add_step(GenericStep("b"))
    plan.execute()
    kinds = [type(e).__name__ for e in store.stream("plan:pauses")]
    assert kinds.index("PauseStarted") < kinds.index("AttemptStarted")
    second = [i for i, k in enumerate(kinds) if k == "PauseStarted"][1]
    assert kinds[second - 1] == "StepSucceeded"
    assert [e.seconds for e in events_of(store, "pauses", PauseStarted)] == [0.0, 0.03]
    assert kinds.index("CleanupPhaseStarted") > max(i for i, k in enumerate(kinds) if k == "PauseFinished")
    assert not any(e.interrupted for e in events_of(store, "pauses", PauseFinished))


def test_the_time_limit_also_cuts_a_pause(store: Store) -> None:
    """A pause longer than the plan's limit ends at the deadline with PlanTimeout."""
    plan = Plan(store, "longpause", limit_duration=LIMIT)
    plan.add_step(GenericStep("a")).add_pause(timedelta(hours=1)).add_step(GenericStep("b"))
    with pytest.raises(PlanTimeout):
        plan.execute()
    (pause,) = events_of(store, "longpause", PauseFinished)
    assert pause.interrupted
