"""Read models in the store's SQLite file (or, for a memory store, a private in-memory database).

A write transaction is ``BEGIN IMMEDIATE``: one writer per file, so it also
serialises the runners of every read model; positions go to eventsourcing's
tracking table through its tracking recorder, in the same transaction as the
rows. Driver errors are translated by the adapters' one policy
(:func:`phaselog.adapters.errors.translate_view_errors`); errors caused by one
row's data are *poison* (:func:`poison`), the others transient.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from eventsourcing import persistence as es
from eventsourcing.sqlite import SQLITE3_DEFAULT_LOCK_TIMEOUT, SQLiteDatastore, SQLiteTrackingRecorder

from phaselog.adapters.errors import translate_view_errors
from phaselog.adapters.sqlite.views_sql import SQLiteViewSession
from phaselog.domain.retry import Backoff
from phaselog.projections.errors import ProjectionBusy, is_poison
from phaselog.runtime.retry import retry

__all__ = ["SQLiteViewStore", "poison"]

_POISON = (
    es.DataError,
    es.IntegrityError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
)
"""Errors of one row's values (``ProgrammingError``: a value sqlite3 cannot bind)."""


def poison(exc: BaseException) -> bool | None:
    """True for a driver error caused by the row's own values, False for another; None: not a driver error."""
    if isinstance(exc, _POISON):
        return True
    if type(exc).__module__.startswith(("sqlite3", "eventsourcing")):
        return is_poison(exc)
    return None


def create_retrying(create: Callable[[], object]) -> None:
    """Run table creation, retrying when another process created the same objects at once."""
    retry(create, policy=Backoff(first=0.1, attempts=5), retry_on=es.IntegrityError)


class SQLiteViewStore:
    """Read models in an SQLite database (see the module docstring)."""

    kind = "sqlite"
    concurrent = False

    def __init__(self, datastore: SQLiteDatastore, *, owned: bool = False, create: bool = True) -> None:
        self.datastore = datastore
        self._owned = owned
        self._busy_ms = int((datastore.pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT) * 1000)
        with translate_view_errors("creating projection tracking"):
            self._tracking = SQLiteTrackingRecorder(datastore)
            if create:  # a read-only store creates nothing
                create_retrying(self._tracking.create_table)

    @contextmanager
    def write(
        self, names: Sequence[str], *, lock_timeout: float | None = None
    ) -> Iterator[SQLiteViewSession]:
        """A ``BEGIN IMMEDIATE`` transaction, with the tracking rows of ``names`` created when missing."""
        with self.datastore.get_connection(commit=True) as conn:
            raw: sqlite3.Connection = conn._sqlite_conn  # noqa: SLF001 - BEGIN IMMEDIATE needs the driver
            if lock_timeout is not None:  # one write lock per file: wait for it this long at most
                raw.execute(f"PRAGMA busy_timeout = {max(1, int(lock_timeout * 1000))}")
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise ProjectionBusy("another runner holds the SQLite write lock") from exc
                raise
            finally:
                if lock_timeout is not None:
                    raw.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            try:
                cursor = raw.cursor()
                if names:
                    cursor.executemany(
                        'INSERT INTO "tracking" VALUES (?, 0) ON CONFLICT DO NOTHING', [[n] for n in names]
                    )
                yield SQLiteViewSession(cursor, self._tracking)
            except BaseException:
                raw.rollback()
                raise
            raw.commit()

    @contextmanager
    def read(self) -> Iterator[SQLiteViewSession]:
        """A read transaction."""
        with self.datastore.transaction(commit=False) as cursor:
            yield SQLiteViewSession(cursor, self._tracking)

    def translate_errors(self, what: str) -> AbstractContextManager[None]:
        """Re-raise driver errors met while doing ``what`` as phaselog errors."""
        return translate_view_errors(what)

    def poison(self, exc: BaseException) -> bool | None:
        """Whether the driver error ``exc`` was caused by the row's values (None: not a driver error)."""
        return poison(exc)

    def close(self) -> None:
        """Close the datastore when this view store opened it."""
        if self._owned:
            self.datastore.close()
