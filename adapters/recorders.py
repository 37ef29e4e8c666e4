"""eventsourcing recorders extended so stored events are append-only and tamper-evident.

The application recorder classes are selected through eventsourcing's
``APPLICATION_RECORDER_TOPIC`` setting. Each one

* adds triggers that reject any UPDATE or DELETE of a stored event (immutable
  events are enforced by the database itself, not only by the absence of an API);
* keeps a **hash chain** in the table ``phaselog_audit_chain``: one row per
  stored event, written in the SAME transaction as the event, holding
  ``sha256(previous digest, position, stream id, version, topic, sha256(state))``.
  Chain order is the commit order: SQLite serialises writers, and eventsourcing's
  PostgreSQL recorder holds an EXCLUSIVE lock on the events table while inserting
  (the chain rows are written after the insert, under that lock).

``phaselog audit verify`` (:mod:`phaselog.adapters.audit`) recomputes the chain
and names the first position where an event was changed, removed or inserted
behind the framework's back. The memory store has no chain (nothing outside the
process can change it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from typing_extensions import override

__all__ = [
    "APPEND_ONLY_MESSAGE",
    "CHAIN_TABLE",
    "GENESIS_DIGEST",
    "AppendOnlyPostgresApplicationRecorder",
    "AppendOnlySQLiteApplicationRecorder",
    "chain_digest",
]

APPEND_ONLY_MESSAGE = "phaselog stored events are append-only"
CHAIN_TABLE = "phaselog_audit_chain"
GENESIS_DIGEST = "0" * 64


def chain_digest(  # noqa: PLR0913, PLR0917 - the fields of one chained event
    previous: str,
    position: int,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> str:
    """The chain digest of one stored event, given the digest of the event before it."""
    head = f"{previous}\n{position}\n{originator_id}\n{originator_version}\n{topic}\n".encode()
    return hashlib.sha256(head + hashlib.sha256(bytes(state)).digest()).hexdigest()


def _links(
    previous: str, ids: Sequence[int], stored_events: Sequence[StoredEvent]
) -> list[tuple[int, str, int, str]]:
    """Chain rows (position, stream id, version, digest) for freshly inserted events."""
    rows: list[tuple[int, str, int, str]] = []
    for position, event in sorted(zip(ids, stored_events, strict=True), key=lambda pair: pair[0]):
        previous = chain_digest(
            previous, position, str(event.originator_id), event.originator_version, event.topic, event.state
        )
        rows.append((position, str(event.originator_id), event.originator_version, previous))
    return rows


class AppendOnlySQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder: append-only events plus a hash chain in the same transaction."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)

    @override
    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} ("
            "position INTEGER PRIMARY KEY, originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, digest TEXT NOT NULL)"
        )
        for table in (self.events_table_name, CHAIN_TABLE):
            for action in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                    f"BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
        return statements

    @override
    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if ids:
            # The INSERTs above hold SQLite's single write lock, so the head is stable.
            c.execute(f"SELECT digest FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            previous = str(row[0]) if row else GENESIS_DIGEST
            c.executemany(
                f"INSERT INTO {CHAIN_TABLE} (position, originator_id, originator_version, digest) "
                "VALUES (?, ?, ?, ?)",
                _links(previous, ids, stored_events),
            )
        return ids


class AppendOnlyPostgresApplicationRecorder(PostgresApplicationRecorder):
    """PostgreSQL application recorder: append-only events plus a hash chain in the same transaction."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        function = Identifier(f"{self.events_table_name}_append_only")
        chain = Identifier(CHAIN_TABLE)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "position bigint PRIMARY KEY, originator_id text NOT NULL, "
                "originator_version bigint NOT NULL, digest text NOT NULL)"
            ).format(schema=schema, chain=chain)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege'; "
                "END $$"
            ).format(schema=schema, function=function, message=SQL(APPEND_ONLY_MESSAGE))
        )
        for table in (self.events_table_name, CHAIN_TABLE):
            self.sql_create_statements.append(
                SQL(
                    "CREATE OR REPLACE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {schema}.{table} "
                    "FOR EACH ROW EXECUTE FUNCTION {schema}.{function}()"
                ).format(
                    trigger=Identifier(f"{table}_no_change"),
                    schema=schema,
                    table=Identifier(table),
                    function=function,
                )
            )
            self.sql_create_statements.append(
                SQL(
                    "CREATE OR REPLACE TRIGGER {trigger} BEFORE TRUNCATE ON {schema}.{table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{function}()"
                ).format(
                    trigger=Identifier(f"{table}_no_truncate"),
                    schema=schema,
                    table=Identifier(table),
                    function=function,
                )
            )
        self._select_chain_head = SQL(
            "SELECT digest FROM {schema}.{chain} ORDER BY position DESC LIMIT 1"
        ).format(schema=schema, chain=chain)
        self._insert_chain = SQL(
            "INSERT INTO {schema}.{chain} (position, originator_id, originator_version, digest) "
            "VALUES (%s, %s, %s, %s)"
        ).format(schema=schema, chain=chain)

    @override
    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if ids:
            # Still inside the insert transaction, holding the EXCLUSIVE table lock.
            curs.execute(self._select_chain_head)
            row = curs.fetchone()
            previous = str(row["digest"]) if row else GENESIS_DIGEST
            curs.executemany(self._insert_chain, _links(previous, ids, stored_events))
        return ids
