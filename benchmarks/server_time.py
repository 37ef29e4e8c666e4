"""Server time per append, from ``pg_stat_statements``: the batch append function against the floor's.

:func:`append_server_time` resets the statistics of the benchmark's database, lets
one writer append one event per command ``commands`` times through phaselog and
through the same-work floor (the one-command function called by raw psycopg),
and reads the mean execution time of each function call (microseconds, server
side only: no network, no client). The goal is at most 200 µs for one event.
Needs the extension preloaded (``shared_preload_libraries=pg_stat_statements``;
the benchmarks' throwaway server preloads it when the server has it); without
it the result says why.
"""

from __future__ import annotations

from typing import Any

import commit_workers as w
import psycopg

from phaselog.adapters import Store

__all__ = ["append_server_time"]

GOAL_US = 200.0


def append_server_time(target: w.Target, store: Store, commands: int) -> dict[str, Any]:
    """Mean server µs per call of the batch append (phaselog) and of the one-command append (floor)."""
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        except psycopg.Error as exc:
            return {"available": False, "why": str(exc).strip().splitlines()[0]}
        w.phaselog(store, commands)
        w.floor(target, commands)
        rows = conn.execute(
            "SELECT query, calls, mean_exec_time FROM pg_stat_statements WHERE toplevel AND calls >= %s "
            "AND query LIKE %s",
            (commands, f"%{target.schema}%phaselog_events_append%"),
        ).fetchall()
    means = {("phaselog" if "append_batch" in query else "floor"): mean * 1000 for query, _, mean in rows}
    phaselog_us = round(means.get("phaselog", float("nan")), 1)
    return {
        "available": True,
        "commands": commands,
        "phaselog_us": phaselog_us,
        "floor_us": round(means.get("floor", float("nan")), 1),
        "goal_us": GOAL_US,
        "met": phaselog_us <= GOAL_US,
    }
