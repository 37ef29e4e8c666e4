# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""``phaselog demo`` section: one plugin's lifecycle, recovery with backoff, and its state.

Each run uses a fresh plugin id (a per-run token), so running the demo again on
the same SQLite file adds a new plugin next to the earlier ones.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from pydantic import BaseModel
from rich.table import Table

from phaselog.domain.plugin import PluginPhase, Transition, plugin_stream_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from phaselog.adapters.store import Store
    from phaselog.domain.plugin_state import PluginStateManager
    from phaselog.runtime.plugins import PluginStateMachine

__all__ = ["DemoPluginState", "run_demo"]

P = PluginPhase


class DemoPluginState(BaseModel):
    """The demo plugin's own state (state version 1)."""

    handled: int = 0
    cursor: str = ""


def _work(cursor: str) -> Callable[[PluginStateManager], int]:
    def handle(mgr: PluginStateManager) -> int:
        _, state = mgr.get(DemoPluginState)
        state = state or DemoPluginState()
        mgr.put(1, DemoPluginState(handled=state.handled + 1, cursor=cursor))
        return state.handled + 1

    return handle


def run_demo(store: Store, console: Console) -> str:
    """Install, start, degrade, recover (with backoff), stop a plugin; print its history.

    Returns the plugin's stream id (the demo shows its timeline at the end).
    """
    plugin_id = f"demo-echo-{uuid.uuid4().hex[:6]}"
    machine: PluginStateMachine = store.plugins.machine(plugin_id)
    seen: list[Transition] = []
    machine.add_observer(lambda _pid, t: seen.append(t))
    for phase, reason in [
        (P.INSTALLING, "fetching package"),
        (P.INSTALLED, "package verified"),
        (P.VALIDATING, "manifest ok"),
        (P.STARTING, "spawning"),
        (P.RUNNING, "healthy"),
    ]:
        machine.transition_to(phase, reason)
    for page in ("a", "b"):
        machine.handle(_work(f"page-{page}"))
    machine.transition_to(P.DEGRADED, "slow responses")
    machine.transition_to(P.RECOVERING, "restarting with backoff")
    for _ in range(2):
        machine.retry.advance()
    backoff = machine.retry.next_backoff
    machine.transition_to(P.VALIDATING, f"healthy after {machine.retry.attempts} attempts")
    machine.transition_to(P.STARTING, "respawn")
    machine.transition_to(P.RUNNING, "recovered")
    machine.retry.reset()
    machine.handle(_work("page-c"))
    machine.force_phase(P.STOPPED, "operator reconciled: process gone")

    title = f"plugin {plugin_id}: {len(seen)} transitions (each seen by an observer once recorded)"
    table = Table(title=title)
    for column in ("#", "from", "to", "reason", "at (UTC)"):
        table.add_column(column)
    for n, t in enumerate(machine.history(), start=1):
        table.add_row(str(n), t.from_.value, t.to.value, t.reason, t.timestamp.strftime("%H:%M:%S.%f")[:-3])
    console.print(table)
    state, version = machine.state
    console.print(
        f"phase [bold]{machine.phase.value}[/], {machine.version} events; backoff reached "
        f"{backoff.total_seconds():.0f}s before the reset; plugin state v{version}: "
        f"{state.decode() if state else None}"
    )
    return plugin_stream_id(plugin_id)
