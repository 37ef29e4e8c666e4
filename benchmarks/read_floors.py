"""The bare-driver floors the read side is compared with (psycopg or sqlite3, no phaselog).

* :func:`one_view` folds plugin phases: one ordered scan of the log, orjson decode
  of the events it folds, a dict fold, one bulk write.
* :func:`four_views` does the same for the four read models at once, as a
  catch-up does: one scan, each folded event decoded once, four dict folds
  (plugin phases, task status, plan progress, recoverable state) and four bulk
  writes in one transaction. It is the raw read floor of a catch-up: what reading
  the log and writing the four tables costs without tracking, batches or leases.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg

from phaselog.adapters import Store

__all__ = ["four_views", "one_view"]

Row = tuple[Any, ...]
PLUGIN_TOPICS = frozenset({"phaselog.plugin.PluginCreated", "phaselog.plugin.PhaseChanged"})
TABLES = {
    "floor_phases": "id text PRIMARY KEY, phase text, reason text, since text",
    "floor_tasks": "id text PRIMARY KEY, task_id text, controller text, status int, run int, logs int",
    "floor_plans": "id text PRIMARY KEY, status text, run int, since text",
    "floor_state": "id text PRIMARY KEY, kvs text, key text, value text, since text",
}


def one_view(store: Store) -> float:
    """Seconds for the bare-driver fold of plugin phases: scan, decode, fold, bulk insert."""
    started = time.perf_counter()
    rows: dict[str, Row] = {}
    for oid, topic, state in _scan(store):
        if topic in PLUGIN_TOPICS:
            d = orjson.loads(state)
            rows[oid] = (oid, d.get("phase") or d.get("to_phase"), d.get("reason"), d.get("timestamp"))
    _write(store, {"floor_phases": rows})
    return time.perf_counter() - started


def four_views(store: Store) -> float:
    """Seconds for the bare-driver fold of all four read models: one scan, four folds, four bulk inserts."""
    started = time.perf_counter()
    phases: dict[str, Row] = {}
    tasks: dict[str, list[Any]] = {}
    plans: dict[str, list[Any]] = {}
    states: dict[str, Row] = {}
    for oid, topic, state in _scan(store):
        kind, _, name = topic.rpartition(".")
        if kind == "phaselog.plugin" and topic in PLUGIN_TOPICS:
            d = orjson.loads(state)
            phases[oid] = (oid, d.get("phase") or d.get("to_phase"), d.get("reason"), d.get("timestamp"))
        elif kind == "phaselog.task":
            d = orjson.loads(state)
            if name == "TaskLaunched":
                tasks[oid] = [oid, d["task_id"], d["controller"], 0, 0, 0]
            elif (row := tasks.get(oid)) is not None:
                if name == "TaskLogged":
                    row[5] += 1
                elif "state" in d:
                    row[3], row[4] = d["state"], d.get("run", row[4])
        elif kind == "phaselog.plan":
            d = orjson.loads(state)
            row = plans.setdefault(oid, [oid, "created", 0, d.get("timestamp")])
            row[1] = d.get("status") or name
            row[2] = d.get("run", row[2])
            row[3] = d.get("timestamp")
        elif kind == "phaselog.state":
            d = orjson.loads(state)
            value = orjson.dumps(d.get("value")).decode()
            states[oid] = (oid, d.get("kvs"), d.get("key"), value, d.get("timestamp"))
    tables: dict[str, dict[str, Row]] = {
        "floor_phases": phases,
        "floor_tasks": {k: tuple(v) for k, v in tasks.items()},
        "floor_plans": {k: tuple(v) for k, v in plans.items()},
        "floor_state": states,
    }
    _write(store, tables)
    return time.perf_counter() - started


def _scan(store: Store) -> Iterator[tuple[str, str, bytes]]:
    """Every stored event's stream, topic and state, in log order (a server-side cursor on PostgreSQL)."""
    if store.kind == "postgresql":
        schema = store.location.schema
        with (
            psycopg.connect(**store.location.conninfo) as conn,  # type: ignore[arg-type]
            conn.cursor(name="scan") as cur,
        ):
            cur.itersize = 5000
            cur.execute(
                f'SELECT originator_id, topic, state FROM "{schema}".phaselog_events ORDER BY notification_id'
            )
            yield from cur
        return
    assert store.location.sqlite_path is not None
    conn2 = sqlite3.connect(store.location.sqlite_path)
    try:
        yield from conn2.execute("SELECT originator_id, topic, state FROM stored_events ORDER BY rowid")
    finally:
        conn2.close()


def _write(store: Store, tables: dict[str, dict[str, Row]]) -> None:
    """Replace each floor table's rows in one transaction (COPY on PostgreSQL, executemany on SQLite)."""
    if store.kind == "postgresql":
        schema = store.location.schema
        with psycopg.connect(**store.location.conninfo) as conn:  # type: ignore[arg-type]
            for table, rows in tables.items():
                conn.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".{table} ({TABLES[table]})')
                conn.execute(f'TRUNCATE "{schema}".{table}')
                with conn.cursor() as writer, writer.copy(f'COPY "{schema}".{table} FROM STDIN') as copy:
                    for row in rows.values():
                        copy.write_row(row)
        return
    assert store.location.sqlite_path is not None
    conn2 = sqlite3.connect(store.location.sqlite_path)
    try:
        for table, rows in tables.items():
            conn2.execute(f"CREATE TABLE IF NOT EXISTS {table} ({TABLES[table]})")
            conn2.execute(f"DELETE FROM {table}")
            marks = ", ".join("?" * len(TABLES[table].split(",")))
            conn2.executemany(f"INSERT INTO {table} VALUES ({marks})", rows.values())
        conn2.commit()
    finally:
        conn2.close()
