"""Composing the read side of a store: its log reader and the view store its read models live in.

:func:`view_ports` picks them by the store's kind: the store's own SQLite file
or PostgreSQL schema (LISTEN/NOTIFY to follow it live), and for a ``memory://``
store a private in-memory SQLite database, one per store and shared by every
runner of that store. It registers itself with :mod:`phaselog.projections.ports`
on import, so ``Projections(store)`` finds it; :func:`open_projections` is what
``store.projections`` calls.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteDatastore

from phaselog.adapters.errors import translate_view_errors
from phaselog.adapters.postgres.views import PostgresListener, PostgresViewStore
from phaselog.adapters.sqlite.views import SQLiteViewStore
from phaselog.domain.errors import StoreUnavailable
from phaselog.projections.base import Projection
from phaselog.projections.ports import HorizonView, StateCodec, ViewPorts, ViewStore
from phaselog.projections.runner import Projections
from phaselog.runtime.ports import LogRecord
from phaselog.runtime.sealing import DEFAULT_SEAL_INTERVAL

__all__ = ["StoreLogReader", "open_projections", "view_ports"]


class StoreLogReader:
    """A store's event log as the read side reads it (:class:`~phaselog.projections.ports.LogReader`)."""

    def __init__(self, store: Any, listener: PostgresListener | None = None) -> None:
        self._store = store
        self.listener = listener
        self.kind: str = store.kind
        self.read_only: bool = bool(getattr(store, "read_only", False))
        self.seal_interval: float = getattr(store, "seal_interval", DEFAULT_SEAL_INTERVAL)
        self.codec: StateCodec = store.app.mapper
        look = getattr(store, "horizon", None)
        self.horizon: Callable[[], HorizonView] | None = look if callable(look) else None
        seal = getattr(store, "seal", None)
        self.seal: Callable[[], object] | None = seal if callable(seal) else None
        self._records = getattr(store, "records", None)

    def records(
        self,
        start: int,
        limit: int,
        *,
        stop: int | None = None,
        topics: Sequence[str] = (),
        final: bool = True,
    ) -> list[LogRecord]:
        """The store's records (its notifications, up to the horizon, when it has no ``records``)."""
        if callable(self._records):
            found: list[LogRecord] = self._records(start, limit, stop=stop, topics=topics, final=final)
            return found
        return list(self._store.notifications(start, limit, stop=stop))

    def max_position(self) -> int:
        """The newest committed position."""
        return int(self._store.max_position())

    def wait_for_events(self, timeout: float, stop: threading.Event) -> None:
        """LISTEN on PostgreSQL; elsewhere just wait."""
        if self.listener is None:
            stop.wait(timeout)
        else:
            self.listener.wait(timeout, stop)

    def close(self) -> None:
        """Close the listener, if any."""
        if self.listener is not None:
            self.listener.close()


_MEMORY_VIEWS: weakref.WeakKeyDictionary[Any, SQLiteDatastore] = weakref.WeakKeyDictionary()


def _memory_views(store: Any) -> SQLiteDatastore:
    """The private in-memory database of ``store``'s read models (one per store)."""
    datastore = _MEMORY_VIEWS.get(store)
    if datastore is None:
        name = f"file:phaselog-views-{uuid.uuid4().hex}?mode=memory&cache=shared"
        with translate_view_errors("opening in-memory read models"):
            datastore = _MEMORY_VIEWS[store] = SQLiteDatastore(name, pool_size=4, max_overflow=4)
    return datastore


def view_ports(store: Any) -> ViewPorts:
    """The log reader and the view store of ``store`` (a private in-memory SQLite for ``memory://``)."""
    recorder = store.app.recorder
    create = not getattr(store, "read_only", False)
    views: ViewStore
    listener = None
    if store.kind == "sqlite":
        views = SQLiteViewStore(recorder.datastore, create=create)
    elif store.kind == "postgresql":
        assert isinstance(recorder, PostgresApplicationRecorder)  # noqa: S101 - narrowed by kind
        views = PostgresViewStore(recorder.datastore, create=create)
        listener = PostgresListener(store.location.conninfo, recorder.channel_name)
    elif store.kind == "memory":
        views = SQLiteViewStore(_memory_views(store))
    else:
        msg = f"no read-model backend for a {store.kind} store"
        raise StoreUnavailable(msg)
    return ViewPorts(StoreLogReader(store, listener), views)


def open_projections(
    store: Any, projections: Iterable[Projection] | None = None, **options: Any
) -> Projections:
    """The read models of ``store`` (``options`` as for :class:`~phaselog.projections.Projections`)."""
    return Projections(store, projections, ports=view_ports(store), **options)
