from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from plan_helpers import LIMIT, WAIT, events_of

from phaselog.adapters import Store
from phaselog.domain.errors import ConcurrencyConflict
from phaselog.domain.plan import (
    AttemptInterrupted,
    AttemptStarted,
    CleanupFinished,
    HookFailed,
    PauseStarted,
    PlanCancelled,
    PlanFailed,
    PlanTimeout,
    RunFinished,
    StepSucceeded,
)
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan


def test_no_pause_is_recorded_after_a_timeout(store: Store) -> None:
    """A step cut by the time limit is followed by a pause in the layout: the pause never starts."""
    plan = Plan(store, "late-pause", limit_duration=LIMIT)
    plan.add_step(GenericStep("a", exec=lambda ctx, _st: ctx.wait(WAIT)))
    plan.add_pause(timedelta(hours=1)).add_step(GenericStep("b"))
    with pytest.raises(PlanTimeout):
        plan.execute()
    assert events_of(store, "late-pause", PauseStarted) == []
    assert [e.step for e in events_of(store, "late-pause", AttemptStarted)] == ["a"]
    assert events_of(store, "late-pause", RunFinished)[0].status == "timed_out"


def test_no_pause_is_recorded_after_a_cancel(store: Store) -> None:
    """A run cancelled inside a step records no pause for the pauses after it, and runs no later step."""
    ctx = PlanContext()
    log: list[str] = []

    def cancel(_c: PlanContext, _st: PlanState) -> None:
        ctx.cancel()

    plan = Plan(store, "cancel-pause")
    plan.add_step(GenericStep("a", exec=cancel)).add_pause(0).add_pause(timedelta(hours=1))
    plan.add_step(GenericStep("b", exec=lambda _c, _st: log.append("b")))
    with pytest.raises(PlanCancelled):
        plan.execute(ctx)
    assert events_of(store, "cancel-pause", PauseStarted) == []
    assert log == []
    assert events_of(store, "cancel-pause", RunFinished)[0].status == "cancelled"


def test_cleanup_is_bounded_by_limit_duration_by_default(store: Store, release: threading.Event) -> None:
    """Without cleanup_limit a cleanup ignoring its context is abandoned after limit_duration (documented)."""
    log: list[str] = []
    plan = Plan(store, "default-cleanup", limit_duration=LIMIT, grace=timedelta(milliseconds=100))
    plan.add_step(GenericStep("a", cleanup=lambda _c, _st: log.append("a.cleanup")))
    plan.add_step(GenericStep("b", cleanup=lambda _c, _st: release.wait(WAIT)))  # ignores its context
    plan.add_step(GenericStep("boom", exec=lambda _c, _st: 1 / 0))
    with pytest.raises(PlanFailed) as info:
        plan.execute()
    assert [name for name, _exc in info.value.cleanup_errors] == ["b"]
    assert isinstance(info.value.cleanup_errors[0].error, PlanTimeout)
    assert log == ["a.cleanup"]  # the next cleanup still ran
    errors = {e.step: e.error for e in events_of(store, "default-cleanup", CleanupFinished) if e.error}
    assert list(errors) == ["b"]
    assert errors["b"].type == "PlanTimeout"


def test_an_interrupted_attempt_does_not_use_up_a_retry_after_resume(store: Store) -> None:
    """Attempt 1 is cut off by a crash; after resume the step still has its one retry: fail, then succeed."""
    calls: list[int] = []
    in_first = threading.Event()
    free_first = threading.Event()

    def flaky(_ctx: PlanContext, _st: PlanState) -> None:
        calls.append(len(calls) + 1)
        if len(calls) == 1:  # the "crashed" process: never returns before the resume
            in_first.set()
            free_first.wait(WAIT)
        elif len(calls) == 2:
            msg = "second attempt fails"
            raise RuntimeError(msg)

    def plan() -> Plan:
        return Plan(store, "resume-retry").add_step(GenericStep("s", exec=flaky).with_retries(1))

    crashed: list[BaseException] = []

    def first_process() -> None:
        try:
            plan().execute()
        except BaseException as exc:
            crashed.append(exc)

    original = threading.Thread(target=first_process)
    original.start()
    try:
        assert in_first.wait(WAIT)
        resumed = plan()
        assert resumed.needs_resume
        resumed.resume()  # records AttemptInterrupted for attempt 1, then attempts 2 (fails) and 3
    finally:
        free_first.set()
        original.join(WAIT)
    assert not original.is_alive()
    assert len(crashed) == 1
    assert isinstance(crashed[0], ConcurrencyConflict)  # fenced: the old run writes nothing more
    assert calls == [1, 2, 3]
    (interrupted,) = events_of(store, "resume-retry", AttemptInterrupted)
    assert interrupted.attempt == 1
    assert [e.attempt for e in events_of(store, "resume-retry", HookFailed)] == [2]
    assert [(e.step, e.attempts) for e in events_of(store, "resume-retry", StepSucceeded)] == [("s", 3)]
    assert events_of(store, "resume-retry", RunFinished)[-1].status == "succeeded"
