"""Read models and audit: a fleet of plugins, a live projection runner, a rebuild, a tamper check.

Run: ``python examples/read_models.py [STORE_URL]`` (default: a temporary SQLite file).

1. A background runner follows the store (``store.projections.start()``).
2. Plugins move through their lifecycle; after each command ``wait(position)``
   makes the read model show the write at once (read-your-writes).
3. ``counts()`` and ``list(phase=...)`` answer fleet questions from the table.
4. ``rebuild()`` replays the whole log into shadow tables and swaps them in.
5. The audit prints one plugin's timeline, its state as of version 2, and
   ``verify`` checks the hash chain over every stored event.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

from rich.console import Console

from phaselog.adapters import open_store
from phaselog.adapters.audit.history import as_of, verify
from phaselog.adapters.cli.audit import render_timeline


def main(url: str | None = None) -> None:
    """Run the scenario on ``url`` (default: a temporary SQLite file)."""
    console = Console()
    with tempfile.TemporaryDirectory() as folder:
        target = url or f"sqlite:///{Path(folder) / 'read_models.db'}"
        with open_store(target) as store:
            views = store.projections
            views.start()
            token = uuid.uuid4().hex[:6]
            fleet = [f"cam-{token}", f"mic-{token}", f"gps-{token}"]
            for plugin_id in fleet:
                machine = store.plugins.machine(plugin_id)
                machine.transition_to("Installing", "fetch package")
                machine.transition_to("Installed", "verified")
                views.wait(store.max_position(), timeout=10)
                row = views.plugin_phases.get(plugin_id)
                print(f"{plugin_id}: read model says {row['phase'] if row else None} right after the command")
            store.plugins.machine(fleet[0]).transition_to("Building", "compile")
            views.wait(store.max_position(), timeout=10)
            print("phases across the store:", views.plugin_phases.counts())
            print("still Installed:", [r["plugin_id"] for r in views.plugin_phases.list(phase="Installed")])
            views.stop()
            progress: list[tuple[int, int]] = []
            rebuilt = views.rebuild(progress=lambda done, total: progress.append((done, total)))
            print("rebuilt from the event log:", rebuilt, f"(last progress report {progress[-1]})")
            render_timeline(store, f"plugin:{fleet[0]}", console)
            then = as_of(store, f"plugin:{fleet[0]}", version=2)
            print(f"{then.stream_id} as of version {then.version}: phase {then.state.get('phase')}")
            report = verify(store)
            print(
                "verify:",
                "ok" if report.ok else report.problems or "no hash chain on this store",
                f"({report.checked} events checked)",
            )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
