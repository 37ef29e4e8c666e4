"""The commit horizon: only phaselog's own appends in flight may hold readers of the global order back."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from phaselog.adapters import Store, open_store
from phaselog.adapters.migrate import SCHEMA_VERSION, SchemaOutdated
from phaselog.domain.errors import ValidationFailed

from horizon_support import (
    append_query,
    base_dsn,
    held_append,
    idle_transaction,
    other_database,
    prepared_transaction,
)
from support_events import open_counter


@pytest.fixture
def pg_url(make_url: Callable[[str], str]) -> str:
    """A fresh PostgreSQL store URL."""
    return make_url("postgresql")


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """An open, empty PostgreSQL store."""
    with open_store(pg_url) as opened:
        yield opened


def _ids(store: Store, start: int = 1) -> list[int]:
    return [r.id for r in store.records(start, 10_000)]


def _streams(store: Store, start: int = 1) -> list[str]:
    return [r.originator_id for r in store.records(start, 10_000)]


def test_horizon_is_the_newest_position_when_nothing_is_in_flight(store: Store) -> None:
    """On every store, with no append in flight, readers read up to the newest position."""
    assert store.horizon().position == 0
    saved = store.save(open_counter("c:1"))
    store.save(open_counter("c:2"))
    horizon = store.horizon()
    assert (horizon.position, horizon.head, horizon.held_back) == (2, 2, 0)
    assert horizon.in_flight == ()
    assert horizon.stall is None
    assert not horizon.unhealthy
    assert saved.position == 1
    assert _ids(store) == [1, 2]


@pytest.mark.parametrize(
    "statements",
    [
        pytest.param((), id="bare-xid"),
        pytest.param(
            ("CREATE TEMP TABLE scratch (x int)", "INSERT INTO scratch VALUES (1)"), id="temp-write"
        ),
    ],
)
def test_a_transaction_in_another_database_holds_nobody(
    pg_dsn: str, pg_store: Store, statements: tuple[str, ...]
) -> None:
    """An idle transaction with a transaction id in another database delays no reader of this store."""
    with idle_transaction(other_database(pg_dsn, "phaselog_elsewhere"), *statements):
        saved = pg_store.save(open_counter("c:elsewhere"))
        assert _ids(pg_store) == [saved.position]
        assert pg_store.horizon().in_flight == ()
        assert pg_store.projections.catch_up() >= 1
        assert pg_store.projections.position() == saved.position


def test_a_transaction_on_another_table_of_this_database_holds_nobody(pg_url: str, pg_store: Store) -> None:
    """A transaction in the same database that wrote only other tables delays no reader."""
    dsn = base_dsn(pg_url)
    table = "scratch_" + uuid.uuid4().hex[:8]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x int)".encode())
    with idle_transaction(dsn, f"INSERT INTO {table} VALUES (1)"):
        saved = pg_store.save(open_counter("c:other-table"))
        assert _ids(pg_store) == [saved.position]
        assert pg_store.horizon().position == saved.position


def test_a_read_only_phaselog_session_holds_nobody(pg_url: str, pg_store: Store) -> None:
    """A reader of this store in a long repeatable-read transaction delays no other reader."""
    with open_store(pg_url, read_only=True) as reader, psycopg.connect(base_dsn(pg_url)) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(f'SELECT count(*) FROM "{pg_url.rpartition("=")[2]}".phaselog_events'.encode())
        saved = pg_store.save(open_counter("c:while-reading"))
        assert _ids(reader) == [saved.position]
        assert reader.horizon().in_flight == ()


def test_a_prepared_transaction_holds_nobody_and_is_named(pg_url: str, pg_store: Store) -> None:
    """A prepared transaction left behind delays no reader; the horizon lists it for the operator."""
    with prepared_transaction(pg_url) as gid:
        saved = pg_store.save(open_counter("c:prepared"))
        assert _ids(pg_store) == [saved.position]
        horizon = pg_store.horizon()
        assert horizon.in_flight == ()
        assert gid in [p.gid for p in horizon.prepared]


def test_an_append_cannot_be_prepared(pg_url: str, pg_store: Store) -> None:
    """PostgreSQL refuses to prepare an append (it ran UNLISTEN): no prepared transaction holds readers."""
    query = append_query(pg_store, "c:never-prepared")
    with psycopg.connect(base_dsn(pg_url)) as conn:
        conn.execute(query.sql, query.params)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="NOTIFY"):
            conn.execute("PREPARE TRANSACTION 'phaselog-append'")
    assert pg_store.max_position() == 0


def test_a_later_append_of_the_same_session_cannot_be_prepared(pg_url: str, pg_store: Store) -> None:
    """The refusal holds for every append of a session, not only its first one."""
    first, second = append_query(pg_store, "c:first"), append_query(pg_store, "c:second")
    with psycopg.connect(base_dsn(pg_url)) as conn:
        conn.execute(first.sql, first.params)
        conn.commit()
        conn.execute(second.sql, second.params)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="NOTIFY"):
            conn.execute("PREPARE TRANSACTION 'phaselog-append'")
    assert [s.id for s in pg_store.records(1, 10)] == [1]


def test_an_append_in_flight_holds_readers_and_is_named(pg_url: str) -> None:
    """Only an append still in flight holds readers back; it is named, and readers catch up once it ends."""
    with open_store(pg_url, stall_warning=1.5, stall_unhealthy=2.0) as store:
        first = store.save(open_counter("c:before")).position
        with held_append(store, pg_url, "c:held") as conn:
            later = store.save(open_counter("c:later")).position
            assert _ids(store) == [first]
            assert [r.id for r in store.records(1, 10, final=False)] == [first, later]
            horizon = store.horizon()
            assert (horizon.position, horizon.head, horizon.held_back) == (first, later, 1)
            holder = horizon.holder
            assert holder is not None
            assert holder.pid == conn.info.backend_pid
            assert holder.application_name == "held-append"
            assert horizon.stall is None
            time.sleep(2.1)
            horizon = store.horizon()
            assert horizon.stall == horizon.holder
            assert horizon.unhealthy
            assert f"pg_terminate_backend({conn.info.backend_pid})" in horizon.describe()
            conn.commit()
        assert _streams(store) == ["c:before", "c:held", "c:later"]
        assert store.horizon().in_flight == ()


def test_a_rolled_back_append_releases_readers(pg_url: str, pg_store: Store) -> None:
    """An append that rolls back holds readers only while in flight, and leaves a gap, never a skip."""
    first = pg_store.save(open_counter("c:first")).position  # the first append makes the partitions
    with held_append(pg_store, pg_url, "c:rolled-back"):
        later = pg_store.save(open_counter("c:later")).position
        assert _ids(pg_store) == [first]
    assert _ids(pg_store) == [first, later]
    assert pg_store.horizon().position == later


def test_an_append_after_another_write_in_its_transaction_is_refused(pg_url: str, pg_store: Store) -> None:
    """An append must assign its transaction's id: one that already has an id is refused, writing nothing."""
    query = append_query(pg_store, "c:late")
    for first in ("SELECT pg_current_xact_id()", "CREATE TEMP TABLE t (x int)"):
        with psycopg.connect(base_dsn(pg_url)) as conn:
            conn.execute(first.encode())
            with pytest.raises(
                psycopg.errors.InvalidTransactionState, match="first write of its transaction"
            ):
                conn.execute(query.sql, query.params)
    assert pg_store.max_position() == 0
    assert pg_store.stream_heads() == []


def _step(recorder: Any, flow: Any, answer: Any) -> Any:
    """Send ``answer`` into a sans-I/O flow; the next step, or ("done", value)."""
    try:
        return flow.send(answer)
    except StopIteration as stop:
        return ("done", stop.value)


def test_an_append_committing_between_the_look_and_the_read_is_not_skipped(
    pg_url: str, pg_store: Store
) -> None:
    """A writer that commits after the horizon look but before the read, with a later one, skips nothing."""
    recorder: Any = pg_store.app.recorder
    first = pg_store.save(open_counter("c:first")).position
    with held_append(pg_store, pg_url, "c:held") as conn:
        flow = recorder.statements.select_records(1, 100)
        look = next(flow)
        answer = recorder._do(look)
        conn.commit()  # the held append lands between the look and the read ...
        pg_store.save(open_counter("c:later"))  # ... and so does a later one
        read = _step(recorder, flow, answer)
        done = _step(recorder, flow, recorder._do(read))
    assert done[0] == "done"
    assert [r.originator_id for r in done[1]] == ["c:first"]
    assert _streams(pg_store, first + 1) == ["c:held", "c:later"]


class _Race:
    """Writers that linger in flight or append at once, and a follower reading behind them."""

    def __init__(self, store: Store, url: str) -> None:
        self.store, self.url = store, url
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.seen: list[int] = []

    def slow(self, n: int) -> None:
        rng = random.Random(n)  # noqa: S311 - test timing, not cryptography
        for i in range(8):
            with held_append(self.store, self.url, f"c:slow-{n}-{i}") as conn:
                time.sleep(rng.uniform(0, 0.03))
                conn.commit()

    def fast(self, n: int) -> None:
        for i in range(40):
            self.store.save(open_counter(f"c:fast-{n}-{i}"))

    def follow(self, _n: int) -> None:
        cursor = 0
        while not self.done.is_set() or cursor < self.store.horizon().position:
            page = self.store.records(cursor + 1, 50)
            self.seen.extend(r.id for r in page)
            cursor = page[-1].id if page else cursor

    def thread(self, fn: Callable[[int], None], n: int) -> threading.Thread:
        def run() -> None:
            try:
                fn(n)
            except BaseException as exc:
                self.errors.append(exc)

        return threading.Thread(target=run)


def test_a_follower_under_concurrent_slow_appends_never_skips(pg_url: str) -> None:
    """Appends lingering in flight, raced by fast ones, reach a follower in exactly the final order."""
    with open_store(pg_url) as store:
        store.save(open_counter("c:first"))  # the first append makes the partitions
        race = _Race(store, pg_url)
        follower = race.thread(race.follow, 0)
        writers = [race.thread(race.slow, n) for n in range(2)] + [
            race.thread(race.fast, n) for n in range(2)
        ]
        follower.start()
        for w in writers:
            w.start()
        for w in writers:
            w.join(60)
        race.done.set()
        follower.join(60)
        assert race.errors == []
        assert race.seen == _ids(store)
        assert len(race.seen) == 1 + 2 * 8 + 2 * 40


def test_a_store_whose_appends_do_not_mark_themselves_is_refused_until_migrated(pg_url: str) -> None:
    """A schema-2 store (appends not marked in flight) is refused read-only; opening to write upgrades it."""
    schema = pg_url.rpartition("=")[2]
    with open_store(pg_url) as store:
        store.save(open_counter("c:old"))
    with psycopg.connect(base_dsn(pg_url), autocommit=True) as conn:
        conn.execute(
            f"UPDATE \"{schema}\".phaselog_meta SET value = '2' WHERE key = 'schema_version'".encode()
        )
    with pytest.raises(SchemaOutdated, match="phaselog migrate"):
        open_store(pg_url, read_only=True)
    with open_store(pg_url) as store:
        assert store.schema_version == SCHEMA_VERSION
    with psycopg.connect(base_dsn(pg_url), autocommit=True) as conn:
        found = conn.execute(
            f"SELECT pg_get_functiondef('\"{schema}\".phaselog_events_append'::regproc)".encode()
        ).fetchone()
    assert found is not None
    assert "pg_advisory_xact_lock_shared" in str(found[0])


def test_a_running_follower_logs_one_warning_per_stall(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A projection runner nobody queries names a stall in exactly one warning, then catches up."""
    with open_store(pg_url, stall_warning=0.3) as store:
        store.save(open_counter("c:first"))
        views = store.projections
        views.start()
        try:
            with caplog.at_level(logging.WARNING, logger="phaselog.horizon"):
                with held_append(store, pg_url, "c:held") as conn:
                    later = store.save(open_counter("c:later")).position
                    deadline = time.monotonic() + 10
                    while not caplog.records and time.monotonic() < deadline:
                        time.sleep(0.1)
                    time.sleep(2.5)  # more looks at the same stall
                    pid = conn.info.backend_pid
                    conn.commit()
                views.wait(later, timeout=10)
            warnings = [r.getMessage() for r in caplog.records]
            assert len(warnings) == 1, warnings
            assert f"pid {pid}" in warnings[0]
        finally:
            views.stop()


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"stall_warning": "5"}, id="text"),
        pytest.param({"stall_warning": True}, id="bool"),
        pytest.param({"stall_unhealthy": float("nan")}, id="nan"),
        pytest.param({"stall_warning": 0}, id="zero"),
        pytest.param({"stall_warning": 10, "stall_unhealthy": 2}, id="warning-above-unhealthy"),
    ],
)
def test_bad_stall_thresholds_are_refused_before_anything_is_opened(
    store_url: str, options: dict[str, object]
) -> None:
    """Stall thresholds that are not finite seconds with warning <= unhealthy raise ValidationFailed."""
    with pytest.raises(ValidationFailed, match="stall_"):
        open_store(store_url, **options)  # type: ignore[arg-type]
    if store_url.startswith("sqlite:///"):
        assert not Path(store_url.removeprefix("sqlite:///")).exists()
