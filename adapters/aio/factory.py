"""``open_async_store``: the async store of a URL (the PostgreSQL one on psycopg's async pool).

Its own module so that :mod:`phaselog.aio.store` never imports the PostgreSQL
store built on it (no import circle).
"""

from __future__ import annotations

from typing import Any

from phaselog.adapters.urls import parse_url
from phaselog.aio.store import AsyncStore

__all__ = ["open_async_store"]


def open_async_store(url: str | None = None, **options: Any) -> AsyncStore:
    """The async store at ``url`` (``$PHASELOG_URL``, else ``sqlite:///phaselog.db``).

    Use ``async with open_async_store(url) as store:`` (or ``store = await
    open_async_store(url)`` and ``await store.aclose()``). Options:
    ``snapshot_interval``, ``stall_warning``, ``stall_unhealthy`` and
    ``seal_interval`` (as for ``open_store``; the async store's saves are sealed
    as the sync store's are) and, on PostgreSQL,
    ``pool_size`` (the async pool's connections; default the URL's ``pool_max``).
    """
    if parse_url(url).kind == "postgresql":
        from phaselog.aio.postgres import PostgresAsyncStore  # noqa: PLC0415 - imports psycopg_pool's async pool

        return PostgresAsyncStore(url, **options)
    return AsyncStore(url, **options)
