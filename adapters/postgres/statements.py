"""Sans-I/O PostgreSQL: the statements phaselog sends and how it reads their rows.

Shared by the sync recorder (:mod:`phaselog.adapters.postgres.recorder`) and the
async store (:mod:`phaselog.aio`), so both write exactly the same rows through the
same server-side append function and read the global order below the same commit
horizon. Each operation is a protocol (a generator, see :mod:`phaselog.runtime.sansio`)
that yields :class:`Query` and :class:`Pause` steps and returns decoded values;
the shells execute the steps on a sync or an async connection, turning driver
errors into eventsourcing's (:func:`persistence_error`) before throwing them back.
The writing half (the batch append, snapshots) is :mod:`phaselog.adapters.postgres.writes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from eventsourcing.persistence import Notification, StoredEvent
from psycopg.sql import SQL, Composable

from phaselog.adapters.postgres.horizon import (
    HORIZON,
    IN_FLIGHT,
    IN_FLIGHT_DETAILS,
    PREPARED,
    in_flight_append,
    prepared_transaction,
)
from phaselog.adapters.postgres.steps import (
    APPEND_ATTEMPTS,
    STATEMENT_RETRY,
    UNLOCK_ALL,
    Pause,
    Query,
    ResultRows,
    StatementFlow,
    persistence_error,
    retrying,
)
from phaselog.adapters.postgres.writes import WriteStatements
from phaselog.adapters.recorder_protocol import ChainRow
from phaselog.adapters.stream_index import heads_query, prefix_range
from phaselog.runtime.ports import LogRecord, StreamHead

__all__ = [
    "APPEND_ATTEMPTS",
    "HORIZON",
    "IN_FLIGHT",
    "STATEMENT_RETRY",
    "UNLOCK_ALL",
    "Pause",
    "PostgresStatements",
    "Query",
    "ResultRows",
    "StatementFlow",
    "persistence_error",
    "prefix_range",
]

_log_record = partial(tuple.__new__, LogRecord)  # LogRecord._make without its Python frame (per row read)


def _stored_event(row: Mapping[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )


@dataclass(frozen=True)
class PostgresStatements(WriteStatements):
    """The statements of one events table (and its snapshots table) in one schema."""

    def select_events(  # noqa: PLR0913 - eventsourcing's select_events arguments, plus the table
        self,
        originator_id: str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
        snapshots: bool = False,
    ) -> StatementFlow:
        """One stream's events (or snapshots) by version, as eventsourcing's recorder selects them."""
        text = "SELECT * FROM {schema}.{table} WHERE originator_id = %s"
        params: list[Any] = [originator_id]
        if gt is not None:
            text += " AND originator_version > %s"
            params.append(gt)
        if lte is not None:
            text += " AND originator_version <= %s"
            params.append(lte)
        text += " ORDER BY originator_version " + ("DESC" if desc else "ASC")
        if limit is not None:
            text += " LIMIT %s"
            params.append(limit)
        table = self.names["snapshots" if snapshots else "events"]
        rows = yield from retrying(Query(self._sql(text, table=table), params))
        return [_stored_event(row) for row in rows]

    def select_stream_heads(
        self, prefix: str, *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> StatementFlow:
        """Heads of the streams starting with ``prefix`` (open ones only if asked), by stream id."""
        where, params = heads_query(prefix, open_only=open_only, after=after, limit=limit, mark="%s")
        text = "SELECT stream_id, version, position, open FROM {schema}.{heads} " + where
        rows: ResultRows = yield Query(self._sql(text), params)
        return [
            StreamHead(str(r["stream_id"]), int(r["version"]), int(r["position"]), bool(r["open"]))
            for r in rows
            if str(r["stream_id"]).startswith(prefix)
        ]

    # -- the global order -------------------------------------------------------------------------
    def horizon(self) -> StatementFlow:
        """The transaction-id horizon (text): rows written below it are final. Its own statement."""
        rows = yield from retrying(Query(self._sql(HORIZON)))
        return str(rows[0]["h"])

    def _log_query(  # noqa: PLR0913 - the reader's filters
        self,
        horizon: str | None,
        start: int | None,
        limit: int,
        stop: int | None,
        topics: Sequence[str],
        *,
        inclusive_of_start: bool = True,
        tuples: bool = False,
    ) -> Query:
        """The ordered read of the log from ``start``, only rows written below ``horizon`` if given."""
        conditions: list[Composable] = [SQL("TRUE")]
        params: list[Any] = []
        if horizon is not None:
            conditions.append(SQL("(e.tx_id IS NULL OR e.tx_id < %s::xid8)"))
            params.append(horizon)
        if start is not None:
            conditions.append(
                SQL("e.notification_id >= %s" if inclusive_of_start else "e.notification_id > %s")
            )
            params.append(start)
        if stop is not None:
            conditions.append(SQL("e.notification_id <= %s"))
            params.append(stop)
        if topics:
            conditions.append(SQL("e.topic = ANY(%s)"))
            params.append(list(topics))
        params.append(limit)
        statement = self._sql(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state "
            "FROM {schema}.{events} e WHERE {where} ORDER BY e.notification_id LIMIT %s",
            where=SQL(" AND ").join(conditions),
        )
        return Query(statement, params, tuples=tuples)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> StatementFlow:
        """Notifications from ``start`` in position order, only final ones (below the horizon)."""
        horizon = yield from self.horizon()
        query = self._log_query(horizon, start, limit, stop, topics, inclusive_of_start=inclusive_of_start)
        rows = yield from retrying(query)
        return [
            Notification(
                id=row["notification_id"],
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            for row in rows
        ]

    def select_records(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        final: bool = True,
    ) -> StatementFlow:
        """Like :meth:`select_notifications` (``start`` inclusive), as :class:`LogRecord` tuples.

        ``final=False`` also returns committed rows beyond the horizon: never advance
        a cursor past them (an append in flight may still commit below them); they
        serve to measure lag.
        """
        horizon = (yield from self.horizon()) if final else None
        rows = yield from retrying(self._log_query(horizon, start, limit, stop, topics, tuples=True))
        return list(map(_log_record, rows))

    def horizon_position(self) -> StatementFlow:
        """The newest final position: every position up to it has committed or never will."""
        position, _head, _held = yield from self.positions()
        return position

    def positions(self) -> StatementFlow:
        """``(horizon position, newest committed position, committed events beyond the horizon)``."""
        horizon = yield from self.horizon()
        rows = yield from retrying(
            Query(
                self._sql(
                    "WITH p AS (SELECT coalesce(max(e.notification_id), 0) AS p FROM {schema}.{events} e "
                    "WHERE e.tx_id IS NULL OR e.tx_id < %s::xid8) "
                    "SELECT p.p, (SELECT coalesce(max(notification_id), 0) FROM {schema}.{events}) AS m, "
                    "(SELECT count(*) FROM {schema}.{events} e WHERE e.notification_id > p.p) AS held FROM p"
                ),
                (horizon,),
            )
        )
        row = rows[0] if rows else {}
        return int(row.get("p") or 0), int(row.get("m") or 0), int(row.get("held") or 0)

    def in_flight(self) -> StatementFlow:
        """The appends in flight to this table (session details where the server shows them)."""
        rows = yield from retrying(Query(self._sql("WITH" + IN_FLIGHT + IN_FLIGHT_DETAILS), prepare=False))
        return [in_flight_append(row) for row in rows]

    def prepared(self) -> StatementFlow:
        """The prepared transactions of this database (``pg_prepared_xacts``)."""
        rows = yield from retrying(Query(SQL(PREPARED), prepare=False))
        return [prepared_transaction(row) for row in rows]

    def max_position(self) -> StatementFlow:
        """The newest position written (committed or not yet), 0 when empty."""
        rows = yield from retrying(
            Query(self._sql("SELECT max(notification_id) AS m FROM {schema}.{events}"))
        )
        return int(rows[0]["m"] or 0) if rows else 0

    def select_chain(self, start: int, limit: int, stop: int | None = None) -> StatementFlow:
        """At most ``limit`` chain rows from position ``start`` (inclusive) to ``stop``, by position."""
        text = (
            "SELECT position, originator_id, originator_version, digest, link "
            "FROM {schema}.{chain} WHERE position >= %s"
        )
        params: list[Any] = [start]
        if stop is not None:
            text += " AND position <= %s"
            params.append(stop)
        params.append(limit)
        rows = yield from retrying(Query(self._sql(text + " ORDER BY position LIMIT %s"), params))
        return [
            ChainRow(
                int(r["position"]),
                str(r["originator_id"]),
                int(r["originator_version"]),
                str(r["digest"]),
                None if r["link"] is None else int(r["link"]),
            )
            for r in rows
        ]
