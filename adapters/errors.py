"""Translate driver and eventsourcing errors into the phaselog exception tree.

A driver error caused by the data (psycopg's and SQLite's ``DataError``, and
eventsourcing's) is a :class:`ValidationFailed`; one caused by the database
being unreachable or failing is a :class:`StoreUnavailable`.
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
    StoreUnavailable,
    ValidationFailed,
)

__all__ = ["translate_errors"]


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Re-raise driver and eventsourcing errors met while doing ``what`` as phaselog errors."""
    try:
        yield
    except PhaselogError:
        raise
    except RecordConflictError as exc:
        msg = f"{what}: another writer recorded first ({_first_line(exc)}); reload and retry"
        raise ConcurrencyConflict(msg) from exc
    except AggregateNotFoundError as exc:
        raise NotFound(f"{what}: not found") from exc
    except (DataError, psycopg.DataError, sqlite3.DataError) as exc:
        # Caused by the data, not the database: bad input, whatever the store.
        raise ValidationFailed(f"{what}: the store cannot hold this data: {_first_line(exc)}") from exc
    except (InterfaceError, OperationalError, psycopg.OperationalError, sqlite3.OperationalError) as exc:
        raise StoreUnavailable(f"{what}: store unavailable: {_first_line(exc)}") from exc
    except (ConnectionPoolClosedError, psycopg_pool.PoolClosed) as exc:
        raise StoreUnavailable(f"{what}: the store is closed") from exc
    except (PersistenceError, psycopg.Error, sqlite3.Error) as exc:
        raise StoreUnavailable(f"{what}: database error: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
