"""Read models in the store's PostgreSQL schema, and LISTEN/NOTIFY to follow the log live.

A write transaction locks the tracking rows of the read models it writes
(``SELECT … FOR UPDATE`` in one global order, the rows created when missing),
so the writers of one read model serialise while the others never wait, and
commits with ``synchronous_commit`` off: a read model is derived data, and a
crash loses whole batches only (rows and position commit together), which the
runner folds again. Driver errors are translated by the adapters' one policy
(:func:`phaselog.adapters.errors.translate_view_errors`); :func:`poison` tells
the errors of a row's own values. :class:`PostgresListener` wakes followers on
the recorder's notification channel.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from eventsourcing import persistence as es
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg.sql import SQL, Composable, Identifier, Literal

from phaselog.adapters.errors import translate_view_errors
from phaselog.adapters.postgres.views_sql import TRACKING_TABLE, PostgresViewSession
from phaselog.domain.retry import Backoff
from phaselog.projections.errors import ProjectionBusy, is_poison
from phaselog.runtime.retry import retry

__all__ = ["PostgresListener", "PostgresViewStore", "poison"]

_POISON = (es.DataError, es.IntegrityError, psycopg.DataError, psycopg.IntegrityError)


def poison(exc: BaseException) -> bool | None:
    """True for a driver error caused by the row's own values, False for another; None: not a driver error."""
    if isinstance(exc, _POISON):
        return True
    if isinstance(exc, psycopg.ProgrammingError):
        return exc.sqlstate is None  # raised by the client while adapting a value, not by the server
    if type(exc).__module__.startswith(("psycopg", "eventsourcing")):
        return is_poison(exc)
    return None


def _create_retrying(create: Callable[[], object]) -> None:
    """Run table creation, retrying when another process created the same objects at once."""
    retry(create, policy=Backoff(first=0.1, attempts=5), retry_on=es.IntegrityError)


class PostgresViewStore:
    """Read models in a PostgreSQL schema (see the module docstring)."""

    kind = "postgresql"
    concurrent = True

    def __init__(self, datastore: PostgresDatastore, *, create: bool = True) -> None:
        self.datastore = datastore
        self.schema = datastore.schema
        with translate_view_errors("creating projection tracking"):
            self._tracking = PostgresTrackingRecorder(datastore, tracking_table_name=TRACKING_TABLE)
            if create:  # a read-only store creates nothing
                _create_retrying(self._tracking.create_table)

    @contextmanager
    def write(
        self, names: Sequence[str], *, lock_timeout: float | None = None
    ) -> Iterator[PostgresViewSession]:
        """A transaction holding the locks on the tracking rows of ``names``."""
        with self.datastore.transaction(commit=True) as cursor:
            # Both settings are local to this transaction, and sent in one statement.
            settings: list[Composable] = (
                [SQL("set_config('synchronous_commit', 'off', true)")] if names else []
            )
            if lock_timeout is not None:
                wait = Literal(f"{max(1, int(lock_timeout * 1000))}ms")
                settings.append(SQL("set_config('lock_timeout', {}, true)").format(wait))
            if settings:
                cursor.execute(SQL("SELECT {}").format(SQL(", ").join(settings)))
            session = PostgresViewSession(cursor, self.schema, self._tracking)
            if names:
                self._lock(cursor, names)
            yield session

    def _lock(self, cursor: Any, names: Sequence[str]) -> None:
        # Lock the tracking rows in one global order (created first when missing): the writers
        # of one read model (runners in any process, rebuild swaps) serialise here, others don't.
        tracking = Identifier(self.schema, TRACKING_TABLE)
        lock = SQL(
            "SELECT application_name FROM {} WHERE application_name = ANY(%s) "
            "ORDER BY application_name FOR UPDATE"
        ).format(tracking)
        try:
            if len(cursor.execute(lock, [list(names)]).fetchall()) < len(set(names)):
                cursor.execute(
                    SQL("INSERT INTO {} SELECT unnest(%s::text[]), 0 ON CONFLICT DO NOTHING").format(
                        tracking
                    ),
                    [list(names)],
                )
                cursor.execute(lock, [list(names)])
        except psycopg.errors.LockNotAvailable as exc:
            raise ProjectionBusy(f"another runner is updating {', '.join(names)}") from exc

    @contextmanager
    def read(self) -> Iterator[PostgresViewSession]:
        """A read transaction."""
        with self.datastore.transaction(commit=False) as cursor:
            yield PostgresViewSession(cursor, self.schema, self._tracking)

    def translate_errors(self, what: str) -> AbstractContextManager[None]:
        """Re-raise driver errors met while doing ``what`` as phaselog errors."""
        return translate_view_errors(what)

    def poison(self, exc: BaseException) -> bool | None:
        """Whether the driver error ``exc`` was caused by the row's values (None: not a driver error)."""
        return poison(exc)

    def close(self) -> None:
        """Nothing to release: the store owns the datastore."""


class PostgresListener:
    """LISTEN on the recorder's notification channel, on a connection of its own (opened on first use)."""

    def __init__(self, conninfo: dict[str, str], channel: str) -> None:
        self._conninfo = conninfo
        self.channel = channel
        self.connection: psycopg.Connection[Any] | None = None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Block until a notification arrives, ``timeout`` passes, or ``stop`` is set.

        The first call only arms LISTEN and returns (the caller catches up once more before sleeping).
        """
        if self.connection is None or self.connection.closed:
            try:
                self.connection = psycopg.connect(**self._conninfo, autocommit=True, connect_timeout=5)  # type: ignore[arg-type]
                self.connection.execute(SQL("LISTEN {}").format(Identifier(self.channel)))
            except psycopg.Error:
                self.connection = None
                stop.wait(timeout)
                return
            return
        deadline = time.monotonic() + timeout
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                for _ in self.connection.notifies(timeout=min(0.25, timeout), stop_after=1):
                    return
        except psycopg.Error:
            self.close()

    def close(self) -> None:
        """Close the listening connection."""
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):
                self.connection.close()
            self.connection = None
