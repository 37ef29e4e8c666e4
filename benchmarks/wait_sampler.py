"""What the database's backends wait on while a benchmark runs (``pg_stat_activity`` and ``pg_locks``).

``with sampling(dsn) as waits:`` polls every few milliseconds from a thread of
its own (its own connection, not counted) and, once the block ends, fills
``waits`` with the mean number of active client backends per wait event
(``CPU`` when a backend waits on nothing) and the mean number of lock requests
not yet granted per lock type and mode.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

__all__ = ["sampling"]

ACTIVE = """
SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, 'running'), count(*)
FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
GROUP BY 1
"""
BLOCKED = "SELECT locktype || ':' || mode, count(*) FROM pg_locks WHERE NOT granted GROUP BY 1"


@contextlib.contextmanager
def sampling(dsn: str, every: float = 0.005) -> Iterator[dict[str, Any]]:
    """Sample while the block runs; the dict holds the means once it ended."""
    out: dict[str, Any] = {}
    active: collections.Counter[str] = collections.Counter()
    blocked: collections.Counter[str] = collections.Counter()
    done = threading.Event()
    samples = 0

    def run() -> None:
        nonlocal samples
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not done.wait(every):
                active.update(dict(conn.execute(ACTIVE).fetchall()))
                blocked.update(dict(conn.execute(BLOCKED).fetchall()))
                samples += 1

    thread = threading.Thread(target=run, name="wait-sampler", daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join(timeout=10)
        n = max(1, samples)
        out["samples"] = samples
        out["active_backends"] = {k: round(v / n, 2) for k, v in active.most_common()}
        out["ungranted_locks"] = {k: round(v / n, 2) for k, v in blocked.most_common()}
