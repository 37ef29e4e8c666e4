"""Stall test helpers: a store with small stall thresholds, a stall held open."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from phaselog.adapters import Store

from horizon_support import held_append, prepared_transaction
from support_events import open_counter

__all__ = ["STALL_UNHEALTHY", "STALL_WARNING", "prepared_transaction", "stall_url", "stalled"]

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
