"""The PostgreSQL write path: one statement per append, no table lock, a global order readers can follow."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.history import verify
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.schema import append_function_name
from phaselog.aio import open_async_store
from phaselog.domain import PluginPhase
from phaselog.domain.errors import ConcurrencyConflict, StoreUnavailable

from conftest import raw_execute
from pgserver import PostgresServer
from support_events import Counter, open_counter


def _counter(store: Store, stream_id: str, adds: int = 0) -> None:
    counter = open_counter(stream_id)
    for amount in range(adds):
        counter.add(amount + 1)
    store.save(counter)


def _raw(url: str) -> psycopg.Connection[tuple[object, ...]]:
    base, _, query = url.partition("?")
    conn = psycopg.connect(base)
    schema = dict(part.split("=", 1) for part in query.split("&"))["schema"]
    conn.execute(f'SET search_path TO "{schema}"')
    conn.commit()
    return conn


def _append_raw(conn: psycopg.Connection[tuple[object, ...]], stream: str) -> int:
    """Call the append function in the connection's open transaction (as a slow writer would)."""
    row = conn.execute(
        f"SELECT * FROM {append_function_name('phaselog_events')}"
        "(%s::text[], %s::bigint[], %s::text[], %s::bytea[], %s::boolean[])",
        ([stream], [1], ["tests.support.Opened"], [b"{}"], [True]),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_appends_do_not_wait_for_an_open_writer_and_readers_stop_below_it(
    make_url: Callable[[str], str],
) -> None:
    """A writer holding its transaction open blocks no other append; followers do not pass its position."""
    url = make_url("postgresql") + "&statement_timeout=10000"
    with open_store(url) as store:
        _counter(store, "before")
        slow = _raw(url)
        try:
            slow_position = _append_raw(slow, "slow")  # uncommitted, with the older transaction id
            store.plugins.machine("fast").transition_to(PluginPhase.INSTALLING, "not blocked by a table lock")
            fast_position = store.max_position()
            assert fast_position > slow_position
            seen = [n.id for n in store.notifications(1)]
            assert fast_position not in seen  # committed, but behind a still-running older writer
            assert slow_position not in seen
            slow.commit()
        finally:
            slow.close()
        seen = [n.id for n in store.notifications(1)]
        assert slow_position in seen
        assert fast_position in seen
        assert seen == sorted(seen)


WRITER = """
import sys
from phaselog.adapters import Store, open_store
from support_events import open_counter


def _counter(store: Store, stream_id: str, adds: int = 0) -> None:
    counter = open_counter(stream_id)
    for amount in range(adds):
        counter.add(amount + 1)
    store.save(counter)
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open_store(url) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        counter = open_counter(f"{name}-{i}")
        for amount in range(i % 3):
            counter.add(amount + 1)
        store.save(counter)
"""


def test_a_follower_reads_the_final_global_order_of_four_writer_processes(
    make_url: Callable[[str], str],
) -> None:
    """A follower reading while 4 processes append sees every position once, in the final order."""
    url = make_url("postgresql")
    with open_store(url) as store:
        tests_dir = str(__import__("pathlib").Path(__file__).parent)
        env = {**__import__("os").environ, "PYTHONPATH": ":".join(filter(None, [tests_dir, *sys.path]))}
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, url, f"w{n}", "60"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for n in range(4)
        ]
        for proc in writers:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        followed: list[int] = []
        done = threading.Event()

        def follow() -> None:
            while True:
                finished = done.is_set()
                page = store.notifications(followed[-1] + 1 if followed else 1, 50)
                followed.extend(n.id for n in page)
                if finished and not page:
                    return

        follower = threading.Thread(target=follow)
        follower.start()
        for proc in writers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        codes = [proc.wait(timeout=180) for proc in writers]
        for proc in writers:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.close()
            proc.stdout.close()
        assert codes == [0, 0, 0, 0]
        done.set()
        follower.join(timeout=60)
        assert not follower.is_alive()
        final = [n.id for n in store.iter_notifications()]
        assert len(final) == len(set(final)) > 4 * 60
        assert followed == final


def test_statement_timeout_bounds_every_query(make_url: Callable[[str], str]) -> None:
    """A statement running past the URL's statement_timeout ends in StoreUnavailable, not a hang."""
    url = make_url("postgresql") + "&statement_timeout=200"
    with open_store(url) as store:
        datastore = store.app.recorder.datastore  # type: ignore[attr-defined]
        with (
            pytest.raises(StoreUnavailable),
            translate_errors("sleeping"),
            datastore.transaction(commit=False) as cur,
        ):
            cur.execute("SELECT pg_sleep(5)")


@pytest.mark.parametrize("pool", [2, 4], ids=["appends-take-turns", "append-session"])
def test_a_broken_pooled_connection_is_retried_without_duplicating(
    make_url: Callable[[str], str], pool: int
) -> None:
    """Killing the pool's server sessions (the append session too) does not fail the next append."""
    url = make_url("postgresql") + f"&pool_min=2&pool_max={pool}"
    with open_store(url) as store:
        _counter(store, "warm")
        with psycopg.connect(url.partition("?")[0], autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        _counter(store, "after-kill")
        assert [n.originator_id for n in store.notifications(1)].count("after-kill") == 1


def test_a_broken_async_append_session_is_retried_without_duplicating(make_url: Callable[[str], str]) -> None:
    """Killing the async store's server sessions does not fail its next append, stored exactly once."""
    url = make_url("postgresql") + "&pool_min=2&pool_max=4"

    async def main() -> list[str]:
        async with open_async_store(url) as store:
            await store.save(open_counter("warm"))
            with psycopg.connect(url.partition("?")[0], autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'"
                )
            await store.save(open_counter("after-kill"))
            return [str(n.originator_id) for n in await store.notifications(1)]

    assert asyncio.run(main()).count("after-kill") == 1


def test_an_immediate_server_restart_loses_nothing_acknowledged() -> None:
    """After pg_ctl restart -m immediate every acknowledged append is stored and the history verifies."""
    server = PostgresServer.start()
    try:
        with open_store(f"{server.dsn}?schema=crash&statement_timeout=10000") as store:
            acknowledged: list[str] = []
            failures: list[BaseException] = []
            stop = threading.Event()

            def write() -> None:
                n = 0
                while not stop.is_set() and n < 2000:
                    n += 1
                    try:
                        _counter(store, f"c-{n}", adds=1)
                    except StoreUnavailable as exc:  # the server is down: a clear error, never a hang
                        failures.append(exc)
                        continue
                    acknowledged.append(f"c-{n}")

            writer = threading.Thread(target=write)
            writer.start()
            deadline = time.monotonic() + 60
            while len(acknowledged) < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.restart_immediately()
            seen_after = len(acknowledged)
            while len(acknowledged) < seen_after + 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            writer.join(timeout=120)
            assert not writer.is_alive()
            assert len(acknowledged) >= seen_after + 50  # writing resumed after the restart
            stored = {str(n.originator_id) for n in store.iter_notifications()}
            assert set(acknowledged) <= stored
            assert verify(store).ok
    finally:
        server.stop()


def test_a_new_store_is_partitioned_and_keeps_streams_consistent(make_url: Callable[[str], str]) -> None:
    """Partitions are added ahead automatically; a stale writer still conflicts across partitions."""
    base = make_url("postgresql")
    with open_store(base + "&partition_size=100") as store:
        for n in range(130):
            _counter(store, f"c-{n}", adds=1)
        stale = store.load("c-0", Counter)
        fresh = store.load("c-0", Counter)
        fresh.add(5)
        store.save(fresh)
        stale.add(7)
        with pytest.raises(ConcurrencyConflict):
            store.save(stale)
        with pytest.raises(ConcurrencyConflict):
            _counter(store, "c-1")  # a second creation of an existing stream
        partitions = raw_execute(
            base,
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
            "WHERE c.relname = 'phaselog_events' AND c.relnamespace = current_schema()::regnamespace",
        )
        assert int(str(partitions[0][0])) == 4  # 260 positions in 3 partitions of 100, and one ahead
        with pytest.raises(psycopg.Error, match="append-only"):
            raw_execute(base, "TRUNCATE phaselog_events_p1")
        assert store.load("c-0", Counter).total == 1 + 5
        assert verify(store).ok
