"""Stall test helpers: a store with small stall thresholds, a stall held open, a prepared transaction."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from phaselog.adapters import Store

from conftest import IN_CI
from horizon_support import base_dsn, held_append
from support_events import open_counter

STALL_WARNING = 0.2
STALL_UNHEALTHY = 0.5


def stall_url(make_url: Callable[[str], str]) -> str:
    """A fresh PostgreSQL store URL whose stalls are named after 0.2 s and unhealthy after 0.5 s."""
    return f"{make_url('postgresql')}&stall_warning={STALL_WARNING}&stall_unhealthy={STALL_UNHEALTHY}"


@contextmanager
def stalled(store: Store, url: str, *, later: int = 2) -> Iterator[psycopg.Connection[Any]]:
    """A caught-up store, then an append held in flight with ``later`` appends committed behind it.

    The block starts once the stall is older than ``stall_unhealthy``; ``conn.commit()``
    lets the held append land (otherwise it is rolled back).
    """
    store.save(open_counter("c:before"))
    store.projections.catch_up()
    with held_append(store, url, "c:held") as conn:
        for n in range(later):
            store.save(open_counter(f"c:later-{n}"))
        store.projections.catch_up()
        time.sleep(STALL_UNHEALTHY + 0.1)
        yield conn


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
    gid = "phaselog-stall-test-" + uuid.uuid4().hex[:8]
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_current_xact_id()")
        conn.execute(f"PREPARE TRANSACTION '{gid}'".encode())
    try:
        yield gid
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"ROLLBACK PREPARED '{gid}'".encode())
