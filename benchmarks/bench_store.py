"""Foundation benchmark: append, replay and load, side by side with eventsourcing and raw psycopg.

Three implementations do the same work against the same PostgreSQL server:
``phaselog`` (this project), ``eventsourcing`` (plain eventsourcing 9.5 with its own
PostgreSQL recorder and dataclass events) and ``raw`` (psycopg inserts/selects of
the same rows, the floor). Ratios are phaselog's time over the other's.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate as ESAggregate
from eventsourcing.domain import event

from phaselog.adapters import Store, open_store
from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))


class BenchOpened(CreationEvent):
    """A benchmark stream was opened."""

    TOPIC = "bench.Opened"

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        return BenchItem

    def apply(self, aggregate: Any) -> None:
        aggregate.count = 0


class BenchTicked(DomainEvent):
    """One unit of work was recorded."""

    TOPIC = "bench.Ticked"
    n: int

    def apply(self, aggregate: Any) -> None:
        aggregate.count += 1


class BenchItem(Aggregate):
    """A stream that counts its events."""

    TOPIC = "bench.Item"
    SNAPSHOTS: ClassVar[bool] = False
    count: int


class ESItem(ESAggregate):
    """The same stream in plain eventsourcing."""

    def __init__(self) -> None:
        self.count = 0
        self.last = -1

    @event("Ticked")
    def tick(self, n: int) -> None:
        self.count += 1
        self.last = n


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def _threads(writers: int, work: Callable[[int], None]) -> float:
    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


class Phaselog:
    """phaselog: one command (load-free trigger + durable save) per event."""

    def __init__(self, url: str) -> None:
        self.store: Store = open_store(url)

    def append(self, writers: int, per_writer: int) -> float:
        items = [BenchItem.start(BenchOpened, f"bench:{uuid.uuid4()}") for _ in range(writers)]
        for item in items:
            self.store.save(item)

        def work(w: int) -> None:
            for i in range(per_writer):
                items[w].trigger(BenchTicked, n=i)
                self.store.save(items[w])

        return _threads(writers, work)

    def replay(self) -> tuple[int, float]:
        started = time.perf_counter()
        count = 0
        for note in self.store.iter_notifications():
            self.store.decode(note)
            count += 1
        return count, time.perf_counter() - started

    def load(self, events: int) -> float:
        item = BenchItem.start(BenchOpened, f"bench:{uuid.uuid4()}")
        for i in range(events - 1):
            item.trigger(BenchTicked, n=i)
            if i % 500 == 0:
                self.store.save(item)
        self.store.save(item)
        started = time.perf_counter()
        assert self.store.load(item.id, BenchItem).count == events - 1
        return time.perf_counter() - started

    def close(self) -> None:
        self.store.close()


class PlainEventsourcing:
    """eventsourcing 9.5 as documented: dataclass events, JSON transcoder, its PostgreSQL recorder."""

    def __init__(self, store_env: dict[str, str]) -> None:
        env = {k: v for k, v in store_env.items() if k != "APPLICATION_RECORDER_TOPIC"}
        env["ORIGINATOR_ID_TYPE"] = "uuid"
        self.app: Application[Any] = Application(env=env)

    def append(self, writers: int, per_writer: int) -> float:
        items = [ESItem() for _ in range(writers)]
        for item in items:
            self.app.save(item)

        def work(w: int) -> None:
            for i in range(per_writer):
                items[w].tick(i)
                self.app.save(items[w])

        return _threads(writers, work)

    def replay(self) -> tuple[int, float]:
        started, count, start = time.perf_counter(), 0, 1
        while True:
            page = self.app.recorder.select_notifications(start=start, limit=1000)
            for note in page:
                self.app.mapper.to_domain_event(note)
            count += len(page)
            if len(page) < 1000:
                return count, time.perf_counter() - started
            start = page[-1].id + 1

    def load(self, events: int) -> float:
        item = ESItem()
        for i in range(events - 1):
            item.tick(i)
            if i % 500 == 0:
                self.app.save(item)
        self.app.save(item)
        started = time.perf_counter()
        loaded: ESItem = self.app.repository.get(item.id)
        assert loaded.count == events - 1
        return time.perf_counter() - started

    def close(self) -> None:
        self.app.close()


INSERT_ROW = "INSERT INTO events (originator_id, originator_version, topic, state) VALUES (%s,%s,%s,%s)"


class RawPsycopg:
    """The floor: psycopg writing and reading the same rows, one transaction per event."""

    STATE = b'{"timestamp":"2026-11-23T00:00:00.000000Z","n":1}'

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".events (originator_id text, '
                "originator_version bigint, topic text, state bytea, notification_id bigserial, "
                "PRIMARY KEY (originator_id, originator_version))"
            )
            conn.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS raw_nid ON "{schema}".events (notification_id)')

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute(f'SET search_path TO "{self.schema}"')
        return conn

    def append(self, writers: int, per_writer: int) -> float:
        def work(_w: int) -> None:
            sid = f"raw:{uuid.uuid4()}"
            with self._connect() as conn:
                for i in range(per_writer):
                    conn.execute(
                        INSERT_ROW,
                        (sid, i + 1, "bench.Ticked", self.STATE),
                        prepare=True,
                    )

        return _threads(writers, work)

    def replay(self) -> tuple[int, float]:
        started, count = time.perf_counter(), 0
        with self._connect() as conn, conn.transaction(), conn.cursor(name="replay") as cur:
            cur.execute("SELECT * FROM events ORDER BY notification_id")
            for _row in cur:
                count += 1
        return count, time.perf_counter() - started

    def load(self, events: int) -> float:
        sid = f"raw:{uuid.uuid4()}"
        with self._connect() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    INSERT_ROW,
                    [(sid, v, "bench.Ticked", self.STATE) for v in range(1, events + 1)],
                )
            started = time.perf_counter()
            rows = conn.execute(
                "SELECT * FROM events WHERE originator_id = %s ORDER BY originator_version", (sid,)
            )
            assert len(rows.fetchall()) == events
            return time.perf_counter() - started

    def close(self) -> None:
        """Nothing to release: connections are per call."""


def run(pg_dsn: str, sqlite_url: str, *, per_writer: int = 400, load_events: int = 5000) -> dict[str, Any]:
    """Measure all workloads; PostgreSQL side by side, SQLite for phaselog alone."""
    tag = uuid.uuid4().hex[:8]
    pg_url = f"{pg_dsn}?schema=bench_pl_{tag}"
    ph = Phaselog(pg_url)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "bench_es_{tag}"')
    es = PlainEventsourcing({**ph.store.env, "POSTGRES_SCHEMA": f"bench_es_{tag}"})
    raw = RawPsycopg(pg_dsn, f"bench_raw_{tag}")
    impls: dict[str, Any] = {"phaselog": ph, "eventsourcing": es, "raw": raw}
    results: dict[str, Any] = {"postgresql": {}, "sqlite": {}}
    for writers in (1, 4):
        row: dict[str, Any] = {}
        for name, impl in impls.items():
            seconds = impl.append(writers, per_writer)
            row[name] = {"events_per_s": _rate(writers * per_writer, seconds)}
        _ratios(row, "events_per_s", higher_is_better=True)
        results["postgresql"][f"append_{writers}_writer{'s' if writers > 1 else ''}"] = row
    row = {}
    for name, impl in impls.items():
        count, seconds = impl.replay()
        row[name] = {"events": count, "events_per_s": _rate(count, seconds)}
    _ratios(row, "events_per_s", higher_is_better=True)
    results["postgresql"]["replay"] = row
    row = {name: {"ms": round(impl.load(load_events) * 1000, 2)} for name, impl in impls.items()}
    _ratios(row, "ms", higher_is_better=False)
    results["postgresql"][f"load_{load_events}_events"] = row
    for impl in impls.values():
        impl.close()
    sq = Phaselog(sqlite_url)
    results["sqlite"]["append_1_writer"] = {
        "phaselog": {"events_per_s": _rate(per_writer, sq.append(1, per_writer))}
    }
    results["sqlite"]["append_4_writers"] = {
        "phaselog": {"events_per_s": _rate(4 * per_writer, sq.append(4, per_writer))}
    }
    count, seconds = sq.replay()
    results["sqlite"]["replay"] = {"phaselog": {"events": count, "events_per_s": _rate(count, seconds)}}
    results["sqlite"][f"load_{load_events}_events"] = {
        "phaselog": {"ms": round(sq.load(load_events) * 1000, 2)}
    }
    sq.close()
    return results


def _ratios(row: dict[str, Any], key: str, *, higher_is_better: bool) -> None:
    """Add phaselog's cost relative to each baseline (1.0 = as fast; 2.0 = twice the cost)."""
    ours = row["phaselog"][key]
    for other in ("eventsourcing", "raw"):
        theirs = row[other][key]
        cost = theirs / ours if higher_is_better else ours / theirs
        row[f"phaselog_cost_vs_{other}"] = round(cost, 2)
