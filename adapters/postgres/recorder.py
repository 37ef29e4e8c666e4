"""phaselog's PostgreSQL application recorder: one round trip per append, no table lock.

Plugged in through eventsourcing's ``APPLICATION_RECORDER_TOPIC``; the mapper,
repository, snapshots and tracking stay eventsourcing's. Compared with
eventsourcing's own recorder:

* an append is ONE statement in autocommit — ``SELECT * FROM <events>_append(...)``
  — that inserts the events, their per-stream chain rows and stream heads and
  sends one NOTIFY, in one implicit transaction; no pipeline (so no client/server
  deadlock on large payloads), no ``LOCK TABLE``, no pre-ping;
* readers of the global order (:meth:`select_notifications`, hence the projection
  runner, ``audit`` and subscriptions) only return rows whose writing transaction
  is below the oldest transaction still running, and positions are drawn in
  transaction-id order, so a follower never passes a position that commits later;
* a broken connection is retried, and a retry that finds its own events already
  stored (the first attempt committed before the connection broke) returns their
  positions instead of reporting a conflict: an append is never duplicated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from typing_extensions import override

from phaselog.adapters.postgres.schema import (
    CHAIN_TABLE,
    HEADS_TABLE,
    SEALS_TABLE,
    append_function_name,
    lock_key,
    phaselog_statements,
)
from phaselog.runtime.ports import StreamHead

__all__ = ["PhaselogPostgresApplicationRecorder"]

log = logging.getLogger("phaselog.store")

_APPEND_ATTEMPTS = 3
_RETRY_DELAY = 0.1
# Rows whose transaction is below this are final: nothing can commit before them any more.
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())"


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The half-open range of text (in C collation) that starts with ``prefix``."""
    if not prefix:
        return "", None
    last = prefix[-1]
    if ord(last) >= 0x10FFFF:  # pragma: no cover - no character after it
        return prefix, None
    return prefix, prefix[:-1] + chr(ord(last) + 1)


class PhaselogPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The PostgreSQL application recorder behind every phaselog store."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = self.datastore.schema
        self.sql_create_statements.extend(
            phaselog_statements(schema, self.events_table_name, self.channel_name)
        )
        self._ddl_lock = lock_key(schema, self.events_table_name, "ddl")
        self._positions_lock = lock_key(schema, self.events_table_name, "positions")
        names = {
            "schema": Identifier(schema),
            "events": Identifier(self.events_table_name),
            "chain": Identifier(CHAIN_TABLE),
            "heads": Identifier(HEADS_TABLE),
            "seals": Identifier(SEALS_TABLE),
            "append": Identifier(append_function_name(self.events_table_name)),
        }
        self.names = names
        self._append = SQL(
            "SELECT * FROM {schema}.{append}"
            "(%s::text[], %s::bigint[], %s::text[], %s::bytea[], %s::boolean[])"
        ).format(**names)
        self._select_own = SQL(
            "SELECT notification_id, topic, state FROM {schema}.{events} "
            "WHERE originator_id = %s AND originator_version = %s"
        ).format(**names)
        self._select_heads = SQL(
            "SELECT stream_id, version, position, open FROM {schema}.{heads} WHERE stream_id >= %s"
        ).format(**names)

    # -- creating --------------------------------------------------------------------------------
    @override
    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # Serialise the DDL of processes opening the same new schema at once (CREATE OR REPLACE
        # FUNCTION races otherwise fail with "tuple concurrently updated").
        curs.execute(SQL("SELECT pg_advisory_xact_lock({})").format(self._ddl_lock))
        super()._create_table(curs)

    # -- appending -------------------------------------------------------------------------------
    @override
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Append ``stored_events`` in one round trip; return their positions."""
        if not stored_events:
            return []
        opens: dict[Any, bool] = kwargs.get("stream_open") or {}
        params = (
            [str(e.originator_id) for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
            [bool(opens.get(e.originator_id, True)) for e in stored_events],
        )
        uncertain = False
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                with self.datastore.get_connection() as conn:
                    try:
                        with conn.cursor() as curs:
                            curs.execute(self._append, params, prepare=True)
                            return [int(row[append_function_name(self.events_table_name)]) for row in curs]
                    except BaseException:
                        self._release_position_lock(conn)
                        raise
            except IntegrityError:
                if uncertain:
                    found = self._own_positions(stored_events)
                    if found is not None:
                        log.info("append retried after a lost connection had already committed it")
                        return found
                raise
            except (InterfaceError, OperationalError):
                if attempt == _APPEND_ATTEMPTS - 1:
                    raise
                uncertain = True  # the first attempt may have committed before the connection broke
                time.sleep(_RETRY_DELAY * (attempt + 1))
        msg = "unreachable"  # pragma: no cover - the loop returns or raises
        raise AssertionError(msg)

    def _release_position_lock(self, conn: psycopg.Connection[DictRow]) -> None:
        """Make sure a failed append never leaves the positions lock held by a pooled session."""
        if conn.broken or conn.closed:
            return
        try:
            conn.execute(SQL("SELECT pg_advisory_unlock_all()"))
        except psycopg.Error:  # pragma: no cover - the connection is unusable; the pool drops it
            log.debug("could not reset advisory locks on a failing connection", exc_info=True)

    def _own_positions(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """Positions of ``stored_events`` if exactly these events are already stored, else None."""
        positions: list[int] = []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            for event in stored_events:
                curs.execute(self._select_own, (str(event.originator_id), event.originator_version))
                row = curs.fetchone()
                if row is None or row["topic"] != event.topic or bytes(row["state"]) != event.state:
                    return None
                positions.append(int(row["notification_id"]))
        return positions

    # -- the global order -------------------------------------------------------------------------
    @override
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Notifications from ``start`` in position order, only below the commit horizon."""
        conditions: list[Composed | SQL] = [SQL("(e.tx_id IS NULL OR e.tx_id < h.x)")]
        params: list[Any] = []
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
        statement = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state "
            "FROM {schema}.{events} e, (SELECT " + _HORIZON + " AS x) h WHERE {where} "
            "ORDER BY e.notification_id LIMIT %s"
        ).format(**self.names, where=SQL(" AND ").join(conditions))
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                with self.datastore.get_connection() as conn, conn.cursor() as curs:
                    curs.execute(statement, params, prepare=True)
                    return [
                        Notification(
                            id=row["notification_id"],
                            originator_id=row["originator_id"],
                            originator_version=row["originator_version"],
                            topic=row["topic"],
                            state=bytes(row["state"]),
                        )
                        for row in curs.fetchall()
                    ]
            except (InterfaceError, OperationalError):
                if attempt == _APPEND_ATTEMPTS - 1:
                    raise
                time.sleep(_RETRY_DELAY * (attempt + 1))
        msg = "unreachable"  # pragma: no cover
        raise AssertionError(msg)

    def horizon_position(self) -> int:
        """The newest position below the commit horizon: every position up to it is final."""
        statement = SQL(
            "SELECT max(e.notification_id) AS m FROM {schema}.{events} e, (SELECT " + _HORIZON + " AS x) h "
            "WHERE e.tx_id IS NULL OR e.tx_id < h.x"
        ).format(**self.names)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement)
            row = curs.fetchone()
            return int(row["m"] or 0) if row else 0

    # -- the stream index -------------------------------------------------------------------------
    def select_stream_heads(self, prefix: str, *, open_only: bool = False) -> list[StreamHead]:
        """Heads of the streams starting with ``prefix`` (open ones only if asked), by stream id."""
        low, high = prefix_range(prefix)
        statement = self._select_heads
        params: list[Any] = [low]
        if high is not None:
            statement += SQL(" AND stream_id < %s")
            params.append(high)
        if open_only:
            statement += SQL(" AND open")
        statement += SQL(" ORDER BY stream_id")
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                StreamHead(str(r["stream_id"]), int(r["version"]), int(r["position"]), bool(r["open"]))
                for r in curs.fetchall()
                if str(r["stream_id"]).startswith(prefix)
            ]
