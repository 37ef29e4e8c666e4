"""Async read models: the sync :mod:`phaselog.projections` API, each call on a thread.

The read models are tables in the store's database, kept by the same runner as
for sync code; waiting and querying run in the loop's default executor (never
on the store's own worker thread, which a long :meth:`AsyncProjections.wait`
would otherwise hold).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

__all__ = ["AsyncProjections", "AsyncReadModel"]


class AsyncReadModel:
    """One read model (a table): ``await model.get(key)``, ``await model.list(**filters)``."""

    def __init__(self, model: Any) -> None:
        self._model = model

    @property
    def name(self) -> str:
        """The read model's name."""
        return str(self._model.name)

    async def get(self, key: str) -> dict[str, Any] | None:
        """The row of ``key``, or None."""
        row: dict[str, Any] | None = await asyncio.to_thread(self._model.get, key)
        return row

    async def list(self, **filters: Any) -> list[dict[str, Any]]:
        """The rows matching ``filters`` (column=value)."""
        rows: list[dict[str, Any]] = await asyncio.to_thread(partial(self._model.list, **filters))
        return rows

    async def counts(self) -> dict[str, int]:
        """Counts by status, for the read models that have them (task statuses)."""
        found: dict[str, int] = await asyncio.to_thread(self._model.counts)
        return found


class AsyncProjections:
    """``store.projections`` of an async store: wait for a position, query read models."""

    def __init__(self, store: Any) -> None:
        self._store = store

    @property
    def sync(self) -> Any:
        """The sync :class:`~phaselog.projections.Projections` behind this object."""
        return self._store.projections

    async def wait(self, position: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - the documented signature
        """Return once every read model has folded ``position`` (``ProjectionTimeout`` after ``timeout``)."""
        await asyncio.to_thread(self.sync.wait, position, timeout)

    async def wait_for(
        self,
        position: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - the sync wait_for's signature
        models: Sequence[str] | None = None,
    ) -> None:
        """Return once the read models (all, or those named in ``models``) have folded ``position``.

        Read your own writes: ``await store.projections.wait_for(machine.position)``.
        Raises what the sync :meth:`~phaselog.projections.Projections.wait_for` raises
        (``ProjectionTimeout`` naming the read models behind and the append holding them).
        """
        await asyncio.to_thread(self.sync.wait_for, position, timeout, models)

    async def catch_up(self, *, until: int | None = None) -> int:
        """Fold every event not yet folded (up to ``until``); return the position reached."""
        reached: int = await asyncio.to_thread(partial(self.sync.catch_up, until=until))
        return reached

    async def position(self) -> int:
        """The lowest position every read model has folded."""
        reached: int = await asyncio.to_thread(self.sync.position)
        return reached

    async def status(self) -> list[dict[str, Any]]:
        """One row per read model: position, lag, errors."""
        rows: list[dict[str, Any]] = await asyncio.to_thread(self.sync.status)
        return rows

    def __getitem__(self, name: str) -> AsyncReadModel:
        return AsyncReadModel(self.sync[name])

    @property
    def plugin_phases(self) -> AsyncReadModel:
        """Current phase of every plugin."""
        return AsyncReadModel(self.sync.plugin_phases)

    @property
    def task_statuses(self) -> AsyncReadModel:
        """Current status of every task."""
        return AsyncReadModel(self.sync.task_statuses)

    @property
    def plan_runs(self) -> AsyncReadModel:
        """Progress of every plan run."""
        return AsyncReadModel(self.sync.plan_runs)

    @property
    def recoverable_states(self) -> AsyncReadModel:
        """Latest value of every recoverable state."""
        return AsyncReadModel(self.sync.recoverable_states)

    async def close(self) -> None:
        """Stop any runner threads this object's read models started."""
        projections = self._store.__dict__.get("projections")
        if projections is not None:
            await asyncio.to_thread(projections.close)
