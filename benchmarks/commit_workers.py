"""The writers of the commit benchmark: one command (one commit) at a time, each timed.

Every implementation writes ``per_writer`` commands to a stream of its own and
returns the duration of each command in seconds. ``Target`` says where:

* ``bare`` — an autocommit ``INSERT`` of one row into a table with a primary key:
  the bare-INSERT floor;
* ``floor`` — psycopg calling the one-command append function (kept for processes
  not yet upgraded) as a plain SQL string with the rows one command writes: the
  same work per command as phaselog (event, chain row with its digest, stream head,
  a notification) without phaselog's Python, one commit per command: the
  same-work floor;
* ``eventsourcing`` — plain eventsourcing 9.5 (its PostgreSQL recorder), threads and processes;
* ``phaselog`` — ``store.save`` of one aggregate with one new event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.application import Application

from phaselog.adapters import Store, open_store
from phaselog.aio import AsyncStore

from bench_store import BenchItem, BenchOpened, BenchTicked, ESItem, RawPsycopg

STATE = RawPsycopg.STATE
BARE_TABLE = "commit_bare"


@dataclass(frozen=True)
class Target:
    """Where the writers write: the server, phaselog's URL (its schema) and a schema for the floors."""

    dsn: str
    url: str
    schema: str
    es_env: dict[str, str]

    @property
    def bare_insert(self) -> str:
        """The bare-INSERT floor's statement: one event row into a table with a primary key."""
        return (
            f'INSERT INTO "{self.schema}".{BARE_TABLE} (stream, version, topic, state) VALUES (%s,%s,%s,%s)'
        )

    @property
    def append_call(self) -> str:
        """The append function of phaselog, called as a plain SQL string (the same-work floor)."""
        return (
            f'SELECT * FROM "{self.schema}".phaselog_events_append('
            "%s::text[], %s::bigint[], %s::text[], %s::bytea[], %s::boolean[])"
        )


WARM_UP = 8
"""Commands a new store or application sends before it is timed: each pooled session's first call
plans its statements (and compiles the append function), a cost a long-running service pays once.
A writer process also waits for its pool to have opened its minimum of connections (a pool opens
them in the background: eight processes would otherwise start two dozen backends while timed)."""


def prepare(dsn: str) -> Target:
    """A fresh phaselog schema (its append function is the floor's), a bare table and an ES schema."""
    tag = uuid.uuid4().hex[:8]
    schema = f"commit_{tag}"
    url = f"{dsn}?schema={schema}&pool_min=4&pool_max=20"
    with open_store(url) as store:
        es_env = {k: v for k, v in store.env.items() if k != "APPLICATION_RECORDER_TOPIC"}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".{BARE_TABLE} (stream text, version bigint, topic text, '
            "state bytea, position bigserial, PRIMARY KEY (stream, version))"
        )
        conn.execute(f'CREATE SCHEMA "commit_es_{tag}"')
    es_env |= {
        "ORIGINATOR_ID_TYPE": "uuid",
        "POSTGRES_SCHEMA": f"commit_es_{tag}",
        "POSTGRES_POOL_SIZE": "20",
    }
    return Target(dsn, url, schema, es_env)


def bare(target: Target, per_writer: int) -> list[float]:
    """Autocommit INSERTs of one row each."""
    sid, samples = f"bare:{uuid.uuid4()}", []
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        statement = target.bare_insert
        for i in range(per_writer):
            started = time.perf_counter()
            conn.execute(statement, (sid, i + 1, "bench.Ticked", STATE), prepare=True)
            samples.append(time.perf_counter() - started)
    return samples


def floor(target: Target, per_writer: int) -> list[float]:
    """The append function of phaselog called directly, one event per command."""
    sid, samples = f"floor:{uuid.uuid4()}", []
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        for i in range(per_writer):
            started = time.perf_counter()
            conn.execute(target.append_call, ([sid], [i + 1], ["bench.Ticked"], [STATE], [True])).fetchall()
            samples.append(time.perf_counter() - started)
    return samples


def phaselog(store: Store, per_writer: int) -> list[float]:
    """``store.save`` of one new event per command, on a store shared by the writers."""
    item = BenchItem.start(BenchOpened, f"bench:{uuid.uuid4()}")
    store.save(item)
    samples = []
    for i in range(per_writer):
        item.trigger(BenchTicked, n=i)
        started = time.perf_counter()
        store.save(item)
        samples.append(time.perf_counter() - started)
    return samples


def eventsourcing(app: Application[Any], per_writer: int) -> list[float]:
    """Plain eventsourcing's ``Application.save`` of one new event per command."""
    item = ESItem()
    app.save(item)
    samples = []
    for i in range(per_writer):
        item.tick(i)
        started = time.perf_counter()
        app.save(item)
        samples.append(time.perf_counter() - started)
    return samples


async def bare_async(target: Target, per_writer: int) -> list[float]:
    """Autocommit INSERTs on an ``AsyncConnection`` of its own."""
    sid, samples = f"bare:{uuid.uuid4()}", []
    async with await psycopg.AsyncConnection.connect(target.dsn, autocommit=True) as conn:
        statement = target.bare_insert
        for i in range(per_writer):
            started = time.perf_counter()
            await conn.execute(statement, (sid, i + 1, "bench.Ticked", STATE), prepare=True)
            samples.append(time.perf_counter() - started)
    return samples


async def floor_async(target: Target, per_writer: int) -> list[float]:
    """The append function on an ``AsyncConnection`` of its own."""
    sid, samples = f"floor:{uuid.uuid4()}", []
    async with await psycopg.AsyncConnection.connect(target.dsn, autocommit=True) as conn:
        for i in range(per_writer):
            started = time.perf_counter()
            cur = await conn.execute(target.append_call, ([sid], [i + 1], ["bench.Ticked"], [STATE], [True]))
            await cur.fetchall()
            samples.append(time.perf_counter() - started)
    return samples


async def phaselog_async(store: AsyncStore, per_writer: int) -> list[float]:
    """``await store.save`` of one new event per command, on an async store shared by the tasks."""
    item = BenchItem.start(BenchOpened, f"bench:{uuid.uuid4()}")
    await store.save(item)
    samples = []
    for i in range(per_writer):
        item.trigger(BenchTicked, n=i)
        started = time.perf_counter()
        await store.save(item)
        samples.append(time.perf_counter() - started)
    return samples


def in_process(
    kind: str, target: Target, per_writer: int
) -> tuple[Callable[[], list[float]], Callable[[], None]]:
    """One writer process's run and its clean-up, opened before the start (its own store or connection)."""
    if kind == "phaselog":
        store = open_store(target.url)
        phaselog(store, WARM_UP)
        store.app.recorder.datastore.pool.wait(timeout=60)  # type: ignore[attr-defined]
        return (lambda: phaselog(store, per_writer)), store.close
    if kind == "eventsourcing":
        # One writer per process: a small pool, or 8 processes would open 160 connections.
        env = {**target.es_env, "CREATE_TABLE": "n", "POSTGRES_POOL_SIZE": "2"}
        app: Application[Any] = Application(env=env)
        eventsourcing(app, WARM_UP)
        app.recorder.datastore.pool.wait(timeout=60)  # type: ignore[attr-defined]
        return (lambda: eventsourcing(app, per_writer)), app.close
    work = {"bare": bare, "floor": floor}[kind]
    return (lambda: work(target, per_writer)), lambda: None
