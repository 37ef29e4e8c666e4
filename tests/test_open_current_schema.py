"""Opening a PostgreSQL store whose DDL is current runs none of it, so it never waits on appends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from phaselog.adapters import open_store

from support_events import open_counter


def _schema(url: str) -> str:
    return url.rpartition("schema=")[2].partition("&")[0]


def test_opening_a_current_store_takes_no_lock_an_append_holds(make_url: Callable[[str], str]) -> None:
    """A store opens while another session holds the locks of an append in flight (no DDL, no wait)."""
    url = make_url("postgresql")
    with open_store(url) as store:
        store.save(open_counter("counter:first"))
    schema = _schema(url)
    opened = threading.Event()
    with psycopg.connect(url.partition("?")[0]) as holder:  # an append in flight holds these locks
        holder.execute(f'LOCK TABLE "{schema}".phaselog_streams IN ROW EXCLUSIVE MODE')
        holder.execute(f'LOCK TABLE "{schema}".phaselog_events IN ROW EXCLUSIVE MODE')

        def reopen() -> None:
            with open_store(url):
                opened.set()

        thread = threading.Thread(target=reopen, daemon=True)
        thread.start()
        assert opened.wait(15), "opening a current store waited on an append's locks"
        holder.rollback()
    thread.join(10)


def test_a_store_whose_ddl_changed_gets_it_on_open(make_url: Callable[[str], str]) -> None:
    """A schema whose recorded DDL digest differs from this phaselog's has its DDL run again on open."""
    url = make_url("postgresql")
    with open_store(url) as store:
        recorder: Any = store.app.recorder
        table = recorder.events_table_name
    schema = _schema(url)
    with psycopg.connect(url.partition("?")[0], autocommit=True) as conn:
        conn.execute(f'DROP TRIGGER "{table}_no_change" ON "{schema}"."{table}"')
        conn.execute(f"UPDATE \"{schema}\".phaselog_meta SET value = 'older' WHERE key = 'schema_digest'")
    with open_store(url):
        pass
    with psycopg.connect(url.partition("?")[0], autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass",
            (f"{table}_no_change", f'"{schema}"."{table}"'),
        ).fetchone()
        digest = conn.execute(
            f"SELECT value FROM \"{schema}\".phaselog_meta WHERE key = 'schema_digest'"
        ).fetchone()
    assert found == (1,)
    assert digest is not None
    assert digest[0] != "older"
