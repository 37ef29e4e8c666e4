"""Translate driver and eventsourcing errors into the phaselog exception tree.

A driver error caused by the data (psycopg's and SQLite's ``DataError``,
eventsourcing's, PostgreSQL's "program limit exceeded" such as a value too large
for an index or a field, and the ``OverflowError`` sqlite3 raises for an integer
beyond 64 bits) is a :class:`ValidationFailed`, also when eventsourcing wrapped it
in an error class of its own; one caused by the database being unreachable or
failing is a :class:`StoreUnavailable`.

:func:`translate_view_errors` is the same policy for read-model work, with two
additions: a lock another runner holds (a lock timeout, a cancelled statement)
is a :class:`ProjectionBusy`, and an ``OSError`` (a read-model file that cannot
be opened) a :class:`StoreUnavailable`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import (
    ConnectionPoolClosedError,
    DataError,
    InterfaceError,
    OperationalError,
    PersistenceError,
    RecordConflictError,
)

from phaselog.domain.errors import (
    ConcurrencyConflict,
    NotFound,
    PhaselogError,
    StoreClosed,
    StoreUnavailable,
    ValidationFailed,
)
from phaselog.projections.errors import ProjectionBusy

__all__ = ["first_line", "translate_errors", "translate_view_errors"]

# Errors caused by the data written or asked for, not by the database: bad input on every store.
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    psycopg.DataError,
    psycopg.errors.ProgramLimitExceeded,
    sqlite3.DataError,
    OverflowError,
)


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Re-raise driver and eventsourcing errors met while doing ``what`` as phaselog errors."""
    try:
        yield
    except PhaselogError:
        raise
    except RecordConflictError as exc:
        msg = f"{what}: another writer recorded first ({first_line(exc)}); reload and retry"
        raise ConcurrencyConflict(msg) from exc
    except AggregateNotFoundError as exc:
        raise NotFound(f"{what}: not found") from exc
    except _DATA_ERRORS as exc:
        # Caused by the data, not the database: bad input, whatever the store.
        raise ValidationFailed(f"{what}: the store cannot hold this data: {first_line(exc)}") from exc
    except (PersistenceError, ConnectionPoolClosedError, psycopg.Error, sqlite3.Error) as exc:
        raise _translated(what, exc) from exc


_BUSY = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)


@contextmanager
def translate_view_errors(what: str) -> Iterator[None]:
    """:func:`translate_errors` for read-model work: a held lock is busy, an ``OSError`` unavailable."""
    with translate_errors(what):
        try:
            yield
        except _BUSY as exc:
            raise ProjectionBusy(f"{what}: another runner holds the lock") from exc
        except OSError as exc:
            raise StoreUnavailable(f"{what}: {first_line(exc)}") from exc


def _translated(what: str, exc: Exception) -> PhaselogError:
    """The phaselog error for a driver or eventsourcing error (the data's fault, or the database's)."""
    if _caused_by_data(exc):  # e.g. eventsourcing's OperationalError around ProgramLimitExceeded
        return ValidationFailed(f"{what}: the store cannot hold this data: {first_line(exc)}")
    # A closed pool first: psycopg_pool's PoolClosed is also an OperationalError.
    if isinstance(exc, ConnectionPoolClosedError | psycopg_pool.PoolClosed):
        return StoreClosed(f"{what}: the store is closed")
    unreachable = InterfaceError | OperationalError | psycopg.OperationalError | sqlite3.OperationalError
    if isinstance(exc, unreachable):
        return StoreUnavailable(f"{what}: store unavailable: {first_line(exc)}")
    return StoreUnavailable(f"{what}: database error: {first_line(exc)}")


def _caused_by_data(exc: BaseException) -> bool:
    """True when a data error is an explicit cause (``raise ... from``) of ``exc`` (eventsourcing wraps)."""
    seen: set[int] = set()
    cause = exc.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, _DATA_ERRORS):
            return True
        seen.add(id(cause))
        cause = cause.__cause__
    return False


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
