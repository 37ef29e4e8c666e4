"""Database errors met by the read side, as phaselog errors, and which of them an event causes.

The read side talks to the store's database directly (its own tables), so it
translates driver errors itself rather than importing the adapters: errors
caused by the data of one row (a constraint, a value the column cannot hold,
a value the driver cannot adapt) are *poison* and dead-letter the event;
anything else (the database is unreachable, a lock is busy) is *transient*
and the batch is retried later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from eventsourcing import persistence as es

from phaselog.domain.errors import PhaselogError, StoreUnavailable, ValidationFailed

__all__ = ["ProjectionBusy", "db_errors", "is_poison"]

_POISON_DB = (
    es.DataError,
    es.IntegrityError,
    psycopg.DataError,
    psycopg.IntegrityError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,  # a value sqlite3 cannot bind
)
_POISON_VALUES = (OverflowError, ValueError, TypeError)


class ProjectionBusy(StoreUnavailable):
    """Another runner holds this read model's lock right now (a lock timeout, not a failure)."""


def is_poison(exc: BaseException) -> bool:
    """True when writing a row failed because of the row's own values (never for an outage)."""
    if isinstance(exc, (ValidationFailed, *_POISON_DB)):
        return True
    if isinstance(exc, psycopg.ProgrammingError):
        return exc.sqlstate is None  # raised by the client while adapting a value, not by the server
    if isinstance(exc, PhaselogError):
        return False
    return isinstance(exc, _POISON_VALUES)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Re-raise driver errors met while doing ``what`` as :class:`StoreUnavailable`/``ValidationFailed``."""
    try:
        yield
    except PhaselogError:
        raise
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        raise ProjectionBusy(f"{what}: another runner holds the lock") from exc
    except (es.DataError, psycopg.DataError, sqlite3.DataError) as exc:
        raise ValidationFailed(f"{what}: the store cannot hold this data: {_first_line(exc)}") from exc
    except (es.PersistenceError, psycopg.Error, sqlite3.Error) as exc:
        raise StoreUnavailable(f"{what}: store unavailable: {_first_line(exc)}") from exc
    except (es.ConnectionPoolClosedError, OSError) as exc:
        raise StoreUnavailable(f"{what}: {_first_line(exc)}") from exc
