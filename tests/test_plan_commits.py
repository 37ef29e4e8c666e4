"""A plan step costs one commit: outcomes wait for the next fact that must be durable; nothing is lost."""

from __future__ import annotations

from collections.abc import Sequence

from sweep_helpers import CountingStore

from phaselog.adapters import Store
from phaselog.domain.events import Aggregate
from phaselog.runtime.plan_state import GenericStep
from phaselog.runtime.plans import Plan


class SaveCounting(CountingStore):
    """Counts the commits (saves) a plan makes through a real store."""

    saves = 0

    def save(self, *aggregates: Aggregate) -> Sequence[object]:
        """Count, then delegate."""
        self.saves += 1
        return super().save(*aggregates)


def test_each_step_is_one_commit_and_every_event_is_stored(store: Store) -> None:
    """Ten trivial steps take one commit each (plus the run's start and end); every event is stored."""
    counting = SaveCounting(store)
    plan = Plan(counting, "one-commit-steps")
    for n in range(10):
        plan.add_step(GenericStep(f"s{n}"))
    plan.execute()
    assert counting.saves == 10 + 3  # RunStarted, an AttemptStarted a step, CleanupPhaseStarted, RunFinished
    names = [type(e).__name__ for e in store.stream("plan:one-commit-steps")]
    assert names.count("StepSucceeded") == 10
    assert names.count("HookSucceeded") == 30
    assert "CleanupStarted" not in names  # no step has a cleanup function
    assert "CleanupPhaseStarted" in names
    assert names[-1] == "RunFinished"


def test_a_cleanup_function_is_recorded_and_its_result_made_durable(store: Store) -> None:
    """A step with a cleanup records its start before it runs; the result is stored by the run's end."""
    ran: list[str] = []
    plan = Plan(store, "cleanups")
    plan.add_step(GenericStep("a", cleanup=lambda _c, _s: ran.append("a")))
    plan.add_step(GenericStep("b"))
    plan.execute()
    names = [type(e).__name__ for e in store.stream("plan:cleanups")]
    assert ran == ["a"]
    assert names.count("CleanupStarted") == names.count("CleanupFinished") == 1
    assert names.index("CleanupStarted") < names.index("CleanupFinished") < names.index("RunFinished")
