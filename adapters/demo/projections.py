"""``phaselog demo`` section: read-your-writes on the projections, a rebuild, and verify.

Each run uses a fresh plugin id (a per-run token), so it works repeatedly on
the same SQLite file.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from rich.table import Table

from phaselog.adapters.audit.history import verify

if TYPE_CHECKING:
    from rich.console import Console

    from phaselog.adapters.store import Store

__all__ = ["run_demo"]


def run_demo(store: Store, console: Console) -> None:
    """Write, wait for the read models, rebuild one, verify the chain; print a table of it all."""
    plugin_id = f"demo-views-{uuid.uuid4().hex[:6]}"
    machine = store.plugins.machine(plugin_id)
    machine.transition_to("Installing", "demo")
    projections = store.projections
    started = time.perf_counter()
    projections.wait(store.max_position(), timeout=10)
    waited = time.perf_counter() - started
    row = projections.plugin_phases.get(plugin_id) or {}
    started = time.perf_counter()
    rebuilt = projections.rebuild("plugin_phases")
    rebuild_s = time.perf_counter() - started
    report = verify(store)
    table = Table(title="projections and audit", title_justify="left")
    table.add_column("step")
    table.add_column("result")
    table.add_row("read-your-writes", f"{plugin_id} is {row.get('phase')} (waited {waited * 1000:.1f} ms)")
    table.add_row(
        "rebuild plugin_phases", f"{rebuilt['plugin_phases']} rows in {rebuild_s * 1000:.1f} ms, swapped in"
    )
    for status in projections.status():
        table.add_row(
            f"view {status['name']}",
            f"position {status['position']}, lag {status['lag']}, {status['rows']} rows",
        )
    verdict = (
        "no hash chain (memory store)"
        if not report.supported
        else f"ok: {report.checked} events chained"
        if report.ok
        else f"TAMPERED at position {report.problems[0].position}"
    )
    table.add_row("audit verify", verdict)
    console.print(table)
