"""The steps of phaselog's sans-I/O PostgreSQL protocols, and the one policy for their errors.

A protocol (see :mod:`phaselog.runtime.sansio`) yields :class:`Query` and
:class:`Pause` steps; the sync recorder and the async store execute them on their
pools and throw driver errors back as eventsourcing's (:func:`persistence_error`).
A broken connection is retried with :data:`STATEMENT_RETRY`, the one back-off.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing import persistence as es
from psycopg.sql import SQL, Composed

from phaselog.domain.retry import Backoff

__all__ = [
    "APPEND_ATTEMPTS",
    "STATEMENT_RETRY",
    "UNLOCK_ALL",
    "Pause",
    "Query",
    "ResultRows",
    "StatementFlow",
    "StatementStep",
    "connection_lost",
    "persistence_error",
    "retrying",
]

APPEND_ATTEMPTS = 3
# The one retry policy (phaselog.domain.retry): a broken connection is retried after 0.1 s, then 0.2 s.
STATEMENT_RETRY = Backoff(first=0.1, factor=2.0, maximum=0.4, attempts=APPEND_ATTEMPTS)
# Run on the same session after a failed append: a pooled session never keeps the positions lock.
UNLOCK_ALL = SQL("SELECT pg_advisory_unlock_all()")
ResultRows = list[dict[str, Any]]


@dataclass(frozen=True)
class Query:
    """Run ``sql`` with ``params`` on one pooled autocommit connection; answer with its rows."""

    sql: SQL | Composed
    params: Sequence[Any] = ()
    prepare: bool = True
    unlock_on_error: bool = False  # run UNLOCK_ALL on the same session when it fails
    tuples: bool = False  # answer with plain tuples, in binary format (the log reader, the append)


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before the next step (a retry's back-off); answer with nothing."""

    seconds: float


StatementStep = Query | Pause
StatementFlow = Generator[StatementStep, Any, Any]

# psycopg's error classes and eventsourcing's, most specific first (as eventsourcing's datastore maps them).
_ERRORS: tuple[tuple[type[psycopg.Error], type[es.PersistenceError]], ...] = (
    (psycopg.InterfaceError, es.InterfaceError),
    (psycopg.OperationalError, es.OperationalError),
    (psycopg.DataError, es.DataError),
    (psycopg.IntegrityError, es.IntegrityError),
    (psycopg.InternalError, es.InternalError),
    (psycopg.ProgrammingError, es.ProgrammingError),
    (psycopg.NotSupportedError, es.NotSupportedError),
    (psycopg.DatabaseError, es.DatabaseError),
)


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the session itself failed (then a pool's idle sessions may have too)."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def persistence_error(exc: psycopg.Error) -> es.PersistenceError:
    """The eventsourcing error for a psycopg error (raise it ``from exc``)."""
    for driver, ours in _ERRORS:
        if isinstance(exc, driver):
            return ours(str(exc))
    return es.PersistenceError(str(exc))


def retrying(query: Query) -> Generator[StatementStep, Any, ResultRows]:
    """Run a read, retried with a back-off when the connection breaks."""
    delays = STATEMENT_RETRY.delays()
    while True:
        try:
            rows: ResultRows = yield query
        except (es.InterfaceError, es.OperationalError):
            delay = next(delays, None)
            if delay is None:
                raise
            yield Pause(delay)
        else:
            return rows
