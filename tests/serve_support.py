"""Helpers of the console tests: a seeded store, the console served in a thread, bounded HTTP requests."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from eventsourcing.persistence import StoredEvent
from prometheus_client.parser import text_string_to_metric_families
from task_helpers import wait_for

from phaselog.adapters import Store, open_store
from phaselog.adapters.serve.app import ConsoleServer, open_read_only
from phaselog.domain.plan_errors import PlanFailed
from phaselog.domain.plugin import PluginPhase
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

PLUGIN = "camera"
TASK = "task:ops:resize"
PLAN = "plan:release"
FAILED_PLAN = "plan:deploy"
FAILED_TASK = "task:ops:crash"
TRANSITIONS = [
    (PluginPhase.INSTALLING, "fetching"),
    (PluginPhase.INSTALLED, "verified"),
    (PluginPhase.VALIDATING, "manifest ok"),
    (PluginPhase.STARTING, "spawning"),
    (PluginPhase.RUNNING, "healthy"),
    (PluginPhase.DEGRADED, "slow"),
]


class _Resizer:
    """Reports progress 1/4 .. 4/4, logging once."""

    def on_task_pending(self, _ctx: CancelContext, task: ActiveTask) -> None:
        task.add_log_entry(20, "resizing 4 images")

    def on_task_running(self, _ctx: CancelContext, task: ActiveTask) -> None:
        for done in range(1, 5):
            task.set_progress(done, 4)
            task.flush_progress()

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: object, *args: object) -> None:
        """Nothing to deliver."""


class _Crasher(_Resizer):
    """Logs a warning, then fails while running."""

    def on_task_running(self, _ctx: CancelContext, task: ActiveTask) -> None:
        task.add_log_entry(30, "disk almost full")
        raise OSError("no space left on device")


def _fail_migration(_ctx: PlanContext, _state: PlanState) -> None:
    raise ValueError("column exists")


def seed_failures(store: Store) -> None:
    """A plan whose second step fails (its first step cleaned up, its third never run) and a failed task."""
    restore = GenericStep("backup", cleanup=lambda _c, s: s.update(restored="yes"))
    plan = Plan(store, "deploy").add_step(restore)
    plan.add_step(GenericStep("migrate", exec=_fail_migration)).add_step(GenericStep("restart"))
    with contextlib.suppress(PlanFailed):
        plan.execute()
    with TaskController(store, "ops", _Crasher(), lease=timedelta(seconds=5)) as controller:
        controller.launch_task("crash")
        wait_for(lambda: controller.task_status("crash").state.is_finished, what="the task failed")
    store.projections.catch_up()


def seed(store: Store) -> None:
    """A plugin with six transitions and a forced one, a task with progress, a plan with a retry."""
    machine = store.plugins.machine(PLUGIN)
    for phase, reason in TRANSITIONS:
        machine.transition_to(phase, reason)
    machine.retry.advance()
    machine.force_phase(PluginPhase.STOPPED, "operator")
    with TaskController(store, "ops", _Resizer(), lease=timedelta(seconds=5)) as controller:
        controller.launch_task("resize")
        wait_for(lambda: controller.task_status("resize").state.is_finished, what="the task finished")
    calls = [0]

    def flaky(ctx: PlanContext, state: PlanState) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("first try fails")

    plan = Plan(store, "release").add_step(GenericStep("build", exec=flaky).with_retries(1))
    plan.add_pause(0.01).add_step(GenericStep("ship"))
    plan.execute()
    store.projections.catch_up()


@dataclass
class Served:
    """A console on 127.0.0.1 over a read-only view of a seeded store."""

    base: str
    store: Store
    server: ConsoleServer


@contextmanager
def served(url: str, *, token: str | None = None, allow_actions: bool = False) -> Iterator[Served]:
    """Serve the store at ``url`` on a free port in a thread (read-only unless actions are allowed)."""
    with open_store(url) if allow_actions else open_read_only(url) as store:
        server = ConsoleServer(store, port=0, token=token, allow_actions=allow_actions)
        server.start(timeout=15)
        try:
            yield Served(f"http://127.0.0.1:{server.port}", store, server)
        finally:
            server.stop(timeout=15)


def seeded_url(url: str, *, failures: bool = False, plugins: int = 0) -> str:
    """Seed the store at ``url`` (with failures and ``plugins`` more plugins if asked); return ``url``."""
    with open_store(url) as store:
        seed(store)
        if failures:
            seed_failures(store)
        for i in range(plugins):
            store.plugins.machine(f"bulk{i:03d}")
        store.projections.catch_up()
    return url


def poison(url: str) -> int:
    """Append an event the plugin_phases fold cannot read (its attempts are not a number); its position."""
    stored = StoredEvent(
        originator_id="plugin:poison",
        originator_version=1,
        topic="phaselog.plugin.RetryAdvanced",
        state=b'{"attempts":"many","timestamp":"2026-01-01T00:00:00+00:00"}',
    )
    with open_store(url) as store:
        store.app.recorder.insert_events([stored])
        store.projections.catch_up()
        return store.max_position()


def fetch(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One bounded HTTP request: (status, headers, body), HTTP errors included."""
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - 127.0.0.1 only
            return int(response.status), dict(response.headers), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(exc.headers), bytes(exc.read())


def metric_sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``, in Prometheus text."""
    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (name, labels, found)
    return float(found[0])
