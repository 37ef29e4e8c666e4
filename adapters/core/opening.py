"""Opening a store, decided once: the checked options, the application's settings, sealing, the pools.

The sync :class:`~phaselog.adapters.Store` opens by :func:`decide_opening` (the
async stores open a sync store first, so they open by it too); the async
PostgreSQL store sizes its pool by :func:`async_pool_bounds`. No I/O here: the
probe of the schema version and the connections are the shells'.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from phaselog.adapters.migrate import sqlite_uri
from phaselog.adapters.postgres.factory import CONNINFO_ENV
from phaselog.adapters.urls import StoreURL, parse_url, stall_watch
from phaselog.domain.errors import ValidationFailed
from phaselog.runtime.horizon import StallWatch
from phaselog.runtime.sealing import check_seal_interval

__all__ = ["Opening", "async_pool_bounds", "decide_opening"]


@dataclass(frozen=True)
class Opening:
    """What opening one store decided: where, how (creating, read-only), and its policies."""

    location: StoreURL
    create: bool
    read_only: bool
    snapshot_interval: int
    seal_interval: float
    stalls: StallWatch

    @property
    def sealing(self) -> bool:
        """Whether the store seals its own appends (a writing, durable store with an interval)."""
        return not self.read_only and self.location.kind != "memory" and self.seal_interval > 0

    def application_env(self) -> dict[str, str]:
        """The eventsourcing settings of this process's application: no DDL unless creating.

        Read-only, SQLite opens the file with ``mode=ro`` and every PostgreSQL
        session starts with ``default_transaction_read_only``: nothing can be written.
        """
        env = dict(self.location.env)
        if not self.create:
            env["CREATE_TABLE"] = "n"
        if self.read_only and self.location.sqlite_path is not None:
            env["SQLITE_DBNAME"] = sqlite_uri(self.location, read_only=True)
        if self.read_only and self.location.kind == "postgresql":
            extra: dict[str, str] = orjson.loads(env.get(CONNINFO_ENV) or "{}")
            extra["options"] = f"{extra.get('options', '')} -c default_transaction_read_only=on".strip()
            env[CONNINFO_ENV] = orjson.dumps(extra).decode()
        return env


def decide_opening(  # noqa: PLR0913 - every option of open_store
    url: str | None,
    *,
    create: bool,
    read_only: bool,
    snapshot_interval: int,
    stall_warning: float | None,
    stall_unhealthy: float | None,
    seal_interval: float | None,
) -> Opening:
    """Check the options of ``open_store`` (``ValidationFailed``) and decide how to open, before any I/O."""
    if snapshot_interval < 1:
        msg = f"snapshot_interval must be at least 1, got {snapshot_interval}"
        raise ValidationFailed(msg)
    location = parse_url(url)
    stalls = stall_watch(location, stall_warning, stall_unhealthy)
    return Opening(
        location=location,
        create=create and not read_only,
        read_only=read_only,
        snapshot_interval=snapshot_interval,
        seal_interval=check_seal_interval(location.seal_interval if seal_interval is None else seal_interval),
        stalls=stalls,
    )


def async_pool_bounds(location: StoreURL, pool_size: int | None) -> tuple[int, int]:
    """``(min, max)`` connections of the async PostgreSQL pool (max: ``pool_size``, else the URL's)."""
    env = location.env
    most = pool_size or int(env["POSTGRES_POOL_SIZE"]) + int(env["POSTGRES_MAX_OVERFLOW"])
    return min(most, int(env["POSTGRES_POOL_SIZE"])), most
