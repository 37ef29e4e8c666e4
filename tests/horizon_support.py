"""Test hooks for the commit horizon: an append held open, and sessions that must not hold it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from phaselog.adapters import Store
from phaselog.adapters.postgres.statements import Query

from conftest import IN_CI
from support_events import open_counter


def base_dsn(url: str) -> str:
    """The libpq DSN of a test store URL (its ``?schema=`` dropped)."""
    return url.partition("?")[0]


def append_query(store: Store, stream_id: str) -> Query:
    """The exact statement phaselog sends to append a new counter stream ``stream_id``."""
    counter = open_counter(stream_id)
    stored = [store.app.mapper.to_stored_event(e) for e in counter.collect_events()]
    flow: Any = store.app.recorder.statements.append(stored, {})  # type: ignore[attr-defined]
    query: Query = next(flow)
    flow.close()
    return query


@contextmanager
def held_append(store: Store, url: str, stream_id: str) -> Iterator[psycopg.Connection[Any]]:
    """An append of a new stream sent by phaselog's own statement, left in flight until the block ends.

    The block may ``conn.commit()`` to let it land; otherwise it is rolled back.
    """
    query = append_query(store, stream_id)
    with psycopg.connect(base_dsn(url), application_name="held-append") as conn:
        conn.execute(query.sql, query.params)
        try:
            yield conn
        finally:
            conn.rollback()


@contextmanager
def idle_transaction(dsn: str, *statements: str) -> Iterator[psycopg.Connection[Any]]:
    """A session that runs ``statements`` in one transaction, then stays idle in it (with an xid)."""
    with psycopg.connect(dsn, application_name="idle-elsewhere") as conn:
        for statement in statements:
            conn.execute(statement.encode())
        conn.execute("SELECT pg_current_xact_id()")
        try:
            yield conn
        finally:
            conn.rollback()


def other_database(dsn: str, name: str) -> str:
    """The DSN of database ``name`` on the same server, created if missing."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
    base, _, _db = dsn.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def prepared_transaction(url: str) -> Iterator[str]:
    """A prepared transaction left behind in the store's database; yields its gid, rolled back after.

    Skipped when the server allows no prepared transactions (failed in CI).
    """
    dsn = base_dsn(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SHOW max_prepared_transactions").fetchone() == ("0",):
            if IN_CI:
                pytest.fail(
                    "CI's PostgreSQL must allow prepared transactions (max_prepared_transactions > 0)"
                )
            pytest.skip("this server has max_prepared_transactions = 0")
    gid = "phaselog-test-" + uuid.uuid4().hex[:8]
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_current_xact_id()")
        conn.execute(f"PREPARE TRANSACTION '{gid}'".encode())
    try:
        yield gid
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"ROLLBACK PREPARED '{gid}'".encode())
