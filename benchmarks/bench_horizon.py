"""The read side's price for a horizon only appends can hold: catch-ups beside the former horizon.

``run(dsn)`` fills identical PostgreSQL stores with mixed events (50,000; 10,000
with ``PHASELOG_BENCH_QUICK``), then, alternating the two readers in one run:

* ``appends_in_flight``: today's reader — a look at the appends in flight
  (``pg_locks``) in a statement of its own, then the read below that horizon;
* ``former``: the reader before it — one statement that stops below the
  cluster's oldest running transaction (``pg_snapshot_xmin``), which any idle
  session anywhere in the cluster could hold.

For each it reports a fresh catch-up of all four read models and a bare scan of
the log in 5,000-event pages (events/s, best of the rounds), and the ratio of
today's to the former (the goal: no more than 10 % slower, a ratio of at least 0.9).
The same pages are also scanned by raw psycopg (one plain ordered SELECT per page,
binary tuples, no horizon) and by plain eventsourcing's own reader
(``PostgresApplicationRecorder.select_notifications``, no horizon), with today's
scan's ratio to each.

Run: ``python benchmarks/bench_horizon.py [DSN]`` (or ``$PHASELOG_BENCH_DSN``; else a throwaway server).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Composable, Identifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.history import load_domain_modules
from phaselog.adapters.postgres.statements import PostgresStatements, Query, StatementFlow
from phaselog.projections.runner import Projections
from phaselog.runtime.ports import LogRecord

from bench_common import calibration_loop_s, main_on_postgres
from bench_projections import _fill

PAGE = 5000


class FormerStatements(PostgresStatements):
    """The reader before: one statement, below the cluster's oldest running transaction."""

    def select_records(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        final: bool = True,  # noqa: ARG002 - always below the former horizon
    ) -> StatementFlow:
        """The former lean read: ``pg_snapshot_xmin`` joined into the read itself."""
        conditions: list[Composable] = [
            SQL("(e.tx_id IS NULL OR e.tx_id < h.x)"),
            SQL("e.notification_id >= %s"),
        ]
        params: list[Any] = [start]
        if stop is not None:
            conditions.append(SQL("e.notification_id <= %s"))
            params.append(stop)
        if topics:
            conditions.append(SQL("e.topic = ANY(%s)"))
            params.append(list(topics))
        params.append(limit)
        statement = self._sql(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state "
            "FROM {schema}.{events} e, (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x) h "
            "WHERE {where} ORDER BY e.notification_id LIMIT %s",
            where=SQL(" AND ").join(conditions),
        )
        rows = yield Query(statement, params, tuples=True)
        return list(map(LogRecord._make, rows))


def _use(store: Store, reader: str) -> None:
    recorder: Any = store.app.recorder
    if reader == "former":
        current = recorder.statements
        recorder.statements = FormerStatements(current.schema, current.events_table)


def _scan(store: Store) -> float:
    started = time.perf_counter()
    position = 1
    while page := store.records(position, PAGE):
        position = page[-1].id + 1
    return time.perf_counter() - started


def _raw_scan(store: Store) -> float:
    """The floor: raw psycopg reading the same pages with no horizon."""
    recorder: Any = store.app.recorder
    query = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{} "
        "WHERE notification_id >= %s ORDER BY notification_id LIMIT %s"
    ).format(Identifier(recorder.statements.schema), Identifier(recorder.statements.events_table))
    with psycopg.connect(make_conninfo("", **store.location.conninfo)) as conn:
        started = time.perf_counter()
        position = 1
        with conn.cursor(binary=True) as cur:
            while page := cur.execute(query, (position, PAGE)).fetchall():
                position = page[-1][0] + 1
        return time.perf_counter() - started


def _eventsourcing_scan(store: Store) -> float:
    """Plain eventsourcing's own reader of the global order (no horizon) over the same pages."""
    recorder: Any = store.app.recorder
    started = time.perf_counter()
    position = 1
    while page := PostgresApplicationRecorder.select_notifications(recorder, position, PAGE):
        position = page[-1].id + 1
    return time.perf_counter() - started


def _catch_up(store: Store) -> float:
    views = Projections(store)
    try:
        started = time.perf_counter()
        views.catch_up()
        return time.perf_counter() - started
    finally:
        views.close()


def run(dsn: str, events: int | None = None, rounds: int = 2) -> dict[str, Any]:
    """Catch-ups and scans with today's horizon and the former one, alternated in one run."""
    load_domain_modules()
    total = events or (10_000 if os.environ.get("PHASELOG_BENCH_QUICK") else 50_000)
    readers = ("appends_in_flight", "former")
    best: dict[str, dict[str, float]] = {r: {"catch_up": float("inf"), "scan": float("inf")} for r in readers}
    floor = {"raw_psycopg": float("inf"), "eventsourcing": float("inf")}
    calibration = calibration_loop_s()
    tag = uuid.uuid4().hex[:6]
    for n in range(rounds):
        for reader in readers if n % 2 == 0 else reversed(readers):
            with open_store(f"{dsn}?schema=bench_horizon_{tag}_{reader}_{n}") as store:
                _fill(store, total)
                _use(store, reader)
                best[reader]["scan"] = min(best[reader]["scan"], _scan(store))
                if reader == readers[0]:
                    floor["raw_psycopg"] = min(floor["raw_psycopg"], _raw_scan(store))
                    floor["eventsourcing"] = min(floor["eventsourcing"], _eventsourcing_scan(store))
                best[reader]["catch_up"] = min(best[reader]["catch_up"], _catch_up(store))
    out: dict[str, Any] = {"events": total, "rounds": rounds, "calibration_loop_s": calibration}
    for reader in readers:
        out[reader] = {f"{k}_events_per_s": round(total / v) for k, v in best[reader].items()}
    for k in ("catch_up", "scan"):
        out[f"{k}_ratio"] = round(best["former"][k] / best["appends_in_flight"][k], 3)
    for name, seconds in floor.items():
        out[f"{name}_scan_events_per_s"] = round(total / seconds)
        out[f"scan_vs_{name}"] = round(seconds / best["appends_in_flight"]["scan"], 3)
    return out


if __name__ == "__main__":
    main_on_postgres(run)
