"""Task progress and log levels are refused, before any write, when no read model could hold them."""

from __future__ import annotations

from collections.abc import Callable

from task_helpers import ScriptedRunner, wait_for
from test_task_controller import fast_controller, finished

from phaselog.adapters import Store
from phaselog.domain.errors import ValidationFailed
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask


def test_integers_beyond_64_bits_are_refused(store: Store) -> None:
    """set_progress and add_log_entry outside 64-bit integers raise ValidationFailed and record nothing."""
    seen: dict[str, BaseException | None] = {}

    def run(ctx: CancelContext, task: ActiveTask) -> None:
        del ctx
        calls: dict[str, Callable[[], None]] = {
            "progress": lambda: task.set_progress(2**63, 1),
            "total": lambda: task.set_progress(1, 2**70),
            "level": lambda: task.add_log_entry(2**64, "too big"),
        }
        for name, call in calls.items():
            try:
                call()
            except ValidationFailed as exc:
                seen[name] = exc
            else:
                seen[name] = None
        task.set_progress(2**63 - 1, 2**63 - 1)

    runner = ScriptedRunner(running={"big": run})
    with fast_controller(store, runner) as controller:
        controller.launch_task("big")
        wait_for(lambda: finished(controller, "big"))
        status = controller.task_status("big")
    assert all(isinstance(exc, ValidationFailed) for exc in seen.values()), seen
    assert len(seen) == 3
    logged = [e for e in store.stream("task:ctl:big") if type(e).__name__ == "TaskLogged"]
    assert all("too big" not in str(e) for e in logged)
    assert status.progress is not None
    assert status.progress.current == 2**63 - 1
