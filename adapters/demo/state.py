# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""``phaselog demo`` section: crawler statistics recovered across runs of the demo.

The key is fixed on purpose: run ``phaselog demo`` twice on the same SQLite file
and the second run starts from the statistics the first one persisted.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel
from rich.table import Table

from phaselog.domain.state import StatePersisted, StateReset
from phaselog.runtime.recoverable import EventManager, SyncRecoverableState

if TYPE_CHECKING:
    from rich.console import Console

    from phaselog.adapters.store import Store

__all__ = ["DemoCrawlerStats", "run_demo"]

log = logging.getLogger("phaselog.demo.state")


class DemoCrawlerStats(BaseModel):
    """The statistics the demo crawler keeps."""

    runs: int = 0
    pages: int = 0
    failed: int = 0
    last_url: str | None = None


def run_demo(store: Store, console: Console) -> None:
    """Recover the demo crawler's statistics, crawl a few pages, persist, and show the stream."""
    manager = EventManager(timedelta(seconds=30))
    state = SyncRecoverableState(
        default_state=DemoCrawlerStats(),
        persist_state_key="demo-crawler",
        persistence_enabled=True,
        persist_state_kvs_name="demo",
        logger=log,
        store=store,
        event_manager=manager,
    )
    with manager:
        stats = state.initialize()
        recovered = stats.model_copy()
        with state.lock:
            stats.runs += 1
            for page in range(5):
                stats.pages += 1
                stats.failed += int(page == 3)
                stats.last_url = f"https://shop.example/run{stats.runs}/p{page}"
        state.persist_state()
        state.persist_state()  # unchanged: records nothing
    # leaving the manager emitted the final PERSIST_STATE (nothing changed since)
    events = store.stream(state.inner.stream_id)

    table = Table(title=f"Recoverable state {state.inner.stream_id}")
    table.add_column("")
    table.add_column("runs", justify="right")
    table.add_column("pages", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("last url")
    for label, value in (("recovered at start", recovered), ("persisted now", stats)):
        table.add_row(label, str(value.runs), str(value.pages), str(value.failed), value.last_url or "-")
    console.print(table)
    persists = sum(isinstance(e, StatePersisted) for e in events)
    resets = sum(isinstance(e, StateReset) for e in events)
    origin = "from a previous run" if recovered.runs else "from the default (first run on this store)"
    console.print(
        f"state recovered {origin}; stream holds {persists} persist and {resets} reset events "
        f"(equal values are not persisted again). Run the demo again to see run {stats.runs + 1}."
    )
