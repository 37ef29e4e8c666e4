"""``phaselog demo`` section: durable plans.

Three plans with a per-run suffix (so repeated demos on one SQLite file add new
ones): a release that succeeds after a retried step and a pause, a migration
whose failing step stops the plan and triggers the backwards cleanup, and a
backup cut short by its duration limit. The table shows each plan's outcome,
attempts, cleanups and the number of recorded events.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from rich.table import Table

from phaselog.domain.plan import PlanError
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan

if TYPE_CHECKING:
    from rich.console import Console

    from phaselog.adapters.store import Store

__all__ = ["run_demo"]


def _flaky(failures: int) -> GenericStep:
    count = [0]

    def run(_ctx: PlanContext, state: PlanState) -> None:
        count[0] += 1
        state["checks"] = count[0]
        if count[0] <= failures:
            msg = f"health check {count[0]} failed"
            raise ConnectionError(msg)

    return GenericStep("health-check", exec=run).with_retries(failures)


def _plans(store: Store, token: str) -> list[Plan]:
    release = Plan(store, f"demo-release-{token}")
    release.add_step(GenericStep("build", exec=lambda _c, s: s.set("artifact", f"app-{token}.whl")))
    release.add_step(GenericStep("upload")).add_pause(timedelta(milliseconds=50))
    release.add_step(_flaky(2))

    migrate = Plan(store, f"demo-migrate-{token}")
    migrate.add_step(GenericStep("backup-db", cleanup=lambda _c, s: s.update(restored=True)))
    migrate.add_step(GenericStep("add-column", cleanup=lambda _c, s: s.set("column", "dropped")))

    def bad_data(_c: PlanContext, _s: PlanState) -> None:
        msg = "row 42 violates NOT NULL"
        raise ValueError(msg)

    migrate.add_step(GenericStep("backfill", exec=bad_data)).add_step(GenericStep("drop-old-column"))

    backup = Plan(store, f"demo-backup-{token}", limit_duration=timedelta(milliseconds=300))
    backup.add_step(GenericStep("snapshot-volume", cleanup=lambda _c, s: s.set("snapshot", "released")))
    backup.add_step(GenericStep("copy-offsite", exec=lambda ctx, _s: ctx.wait(30)))
    return [release, migrate, backup]


def run_demo(store: Store, console: Console) -> None:
    """Execute three demo plans and print how each ended."""
    token = uuid.uuid4().hex[:6]
    table = Table(title=f"Plans (run {token}): steps, retries, pauses, limits and backwards cleanup")
    table.add_column("plan", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("attempts")
    table.add_column("cleaned up")
    table.add_column("errors")
    table.add_column("events", justify="right")
    for plan in _plans(store, token):
        try:
            plan.execute()
            outcome = "succeeded"
            errors = ""
        except PlanError as exc:
            outcome = type(exc).__name__
            errors = "; ".join(f"{step}: {error}" for step, error in exc.errors)
        run = plan.current_run()
        assert run is not None  # noqa: S101 - the plan just ran
        attempts = " ".join(f"{step} x{n}" for step, n in run.attempts.items())
        name = plan.plan_id.removesuffix(f"-{token}")
        events = len(store.stream(f"plan:{plan.plan_id}"))
        table.add_row(name, outcome, attempts, " → ".join(run.cleanup_done), errors, str(events))
    console.print(table)
