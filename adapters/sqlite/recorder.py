"""phaselog's SQLite application recorder: append-only events, per-stream chains, heads and seals.

SQLite has one writer at a time, so positions (``rowid``) are in commit order
and the global order needs no horizon. Each append writes, in its own
transaction, the events, one chain row per event (linked to the previous event
of its stream, as on PostgreSQL) and the stream heads. Triggers reject UPDATE
and DELETE of events, chain rows and seals.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from typing_extensions import override

from phaselog.adapters.audit.chain import GENESIS_DIGEST, STREAM_LINK, chain_digest
from phaselog.adapters.core.gather import Command, Outcome
from phaselog.adapters.gathering import ThreadGathering
from phaselog.adapters.postgres.schema import (
    APPEND_ONLY_MESSAGE,
    ARCHIVES_TABLE,
    CHAIN_TABLE,
    HEADS_TABLE,
    SCHEMA_META_TABLE,
    SCHEMA_VERSION,
    SEALS_TABLE,
    TAILS_TABLE,
)
from phaselog.adapters.recorder_protocol import ChainRow, PhaselogRecorder
from phaselog.adapters.single_writer import SingleWriterHorizon
from phaselog.adapters.stream_index import heads_query
from phaselog.runtime.ports import LogRecord, StreamHead

__all__ = ["PhaselogSQLiteApplicationRecorder"]

# What the database refuses because of one append's own rows, as eventsourcing names it.
_REFUSED_AS: dict[type[sqlite3.Error], type[es.PersistenceError]] = {
    sqlite3.IntegrityError: es.IntegrityError,
    sqlite3.DataError: es.DataError,
    sqlite3.ProgrammingError: es.ProgrammingError,
}
_REFUSED = tuple(_REFUSED_AS)


class PhaselogSQLiteApplicationRecorder(SingleWriterHorizon, SQLiteApplicationRecorder):
    """The SQLite application recorder behind every phaselog store."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        self.gathering = ThreadGathering(self._write_batch)

    @override
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Append ``stored_events`` atomically, in one transaction with other threads' appends.

        ``es.IntegrityError`` (nothing of this append recorded) when another
        writer recorded one of its versions first.
        """
        if not stored_events:
            return []
        opens: dict[str, bool] = kwargs.get("stream_open") or {}
        return self.gathering.append(stored_events, opens)

    def _write_batch(self, batch: list[Command]) -> list[Outcome]:
        """Write one gathered batch in one transaction (one sync to disk), each append in a savepoint."""
        if len(batch) == 1:  # errors raised as eventsourcing's, by its transaction
            with self.datastore.transaction(commit=True) as c:
                return [self._insert_command(c, batch[0])]
        outcomes: list[Outcome] = []
        with self.datastore.transaction(commit=True) as c:
            for command in batch:
                c.execute("SAVEPOINT phaselog_append")
                try:
                    outcomes.append(self._insert_command(c, command))
                except _REFUSED as exc:  # this append alone is refused; the others commit
                    c.execute("ROLLBACK TO phaselog_append")
                    refused = next(ours for theirs, ours in _REFUSED_AS.items() if isinstance(exc, theirs))
                    outcome = refused(str(exc))
                    outcome.__cause__ = exc
                    outcomes.append(outcome)
                c.execute("RELEASE phaselog_append")
        return outcomes

    def _insert_command(self, c: SQLiteCursor, command: Command) -> list[int]:
        return list(self._insert_events(c, command.events, stream_open=command.opens) or ())

    @override
    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements += [
            (
                f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (position INTEGER PRIMARY KEY, "
                "originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, digest TEXT NOT NULL)"
            ),
            (
                f"CREATE TABLE IF NOT EXISTS {HEADS_TABLE} (stream_id TEXT PRIMARY KEY, "
                "version INTEGER NOT NULL, position INTEGER NOT NULL, open INTEGER NOT NULL, "
                "digest TEXT NOT NULL, updated_at TEXT NOT NULL "
                "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            ),
            f"CREATE INDEX IF NOT EXISTS {HEADS_TABLE}_open_idx ON {HEADS_TABLE} (stream_id) WHERE open",
            (
                f"CREATE TABLE IF NOT EXISTS {SEALS_TABLE} (id INTEGER PRIMARY KEY, "
                "horizon INTEGER NOT NULL, "
                "events INTEGER NOT NULL, digest TEXT NOT NULL, signature TEXT, sealed_at TEXT NOT NULL "
                "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            ),
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            (
                f"CREATE TABLE IF NOT EXISTS {ARCHIVES_TABLE} (id INTEGER PRIMARY KEY, "
                "start INTEGER NOT NULL, "
                "before INTEGER NOT NULL, events INTEGER NOT NULL, digest TEXT NOT NULL, signature TEXT, "
                "file_digest TEXT NOT NULL, archived_at TEXT NOT NULL "
                "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            ),
            (
                f"CREATE TABLE IF NOT EXISTS {TAILS_TABLE} (archive_id INTEGER NOT NULL, "
                "stream_id TEXT NOT NULL, "
                "version INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (archive_id, stream_id))"
            ),
        ]
        for table in (self.events_table_name, CHAIN_TABLE, SEALS_TABLE, ARCHIVES_TABLE, TAILS_TABLE):
            for action in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
        return statements

    @override
    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        c.execute(f"PRAGMA table_info({CHAIN_TABLE})")
        if "link" not in {str(row[1]) for row in c.fetchall()}:
            c.execute(f"ALTER TABLE {CHAIN_TABLE} ADD COLUMN link INTEGER")  # schema version 1: old rows NULL
        c.execute(f"SELECT 1 FROM {HEADS_TABLE} LIMIT 1")
        if c.fetchone() is None:  # index the streams a version-1 store already holds (counted open)
            c.execute(
                f"INSERT INTO {HEADS_TABLE} (stream_id, version, position, open, digest) "
                f"SELECT e.originator_id, e.originator_version, e.rowid, 1, coalesce(c.digest, ?) "
                f"FROM {self.events_table_name} e LEFT JOIN {CHAIN_TABLE} c ON c.position = e.rowid "
                "WHERE e.originator_version = "
                f"(SELECT max(originator_version) FROM {self.events_table_name} x "
                "WHERE x.originator_id = e.originator_id)",
                (GENESIS_DIGEST,),
            )
        c.execute(
            f"INSERT INTO {SCHEMA_META_TABLE} (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

    @override
    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if not ids:
            return ids
        opens: dict[Any, bool] = kwargs.get("stream_open") or {}
        links: list[tuple[int, str, int, str, int]] = []
        heads: dict[str, tuple[str, int, int, int, str]] = {}
        last: dict[str, tuple[int, str]] = {}
        for position, event in zip(ids, stored_events, strict=True):
            sid, version = str(event.originator_id), event.originator_version
            previous = self._previous_digest(c, sid, version, last.get(sid))
            digest = chain_digest(previous, position, sid, version, event.topic, event.state)
            last[sid] = (version, digest)
            links.append((position, sid, version, digest, STREAM_LINK))
            heads[sid] = (sid, version, position, int(bool(opens.get(event.originator_id, True))), digest)
        c.executemany(
            f"INSERT INTO {CHAIN_TABLE} (position, originator_id, originator_version, digest, link) "
            "VALUES (?, ?, ?, ?, ?)",
            links,
        )
        c.executemany(
            f"INSERT INTO {HEADS_TABLE} (stream_id, version, position, open, digest) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, position = excluded.position, "
            "open = excluded.open, digest = excluded.digest, "
            "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE version < excluded.version",
            list(heads.values()),
        )
        return ids

    def _previous_digest(
        self, c: SQLiteCursor, sid: str, version: int, pending: tuple[int, str] | None
    ) -> str:
        """The digest of the event before ``version`` in its stream (genesis when there is none)."""
        if pending is not None and pending[0] == version - 1:
            return pending[1]
        c.execute(f"SELECT version, digest FROM {HEADS_TABLE} WHERE stream_id = ?", (sid,))
        row = c.fetchone()
        if row is not None and int(row[0]) == version - 1:
            return str(row[1])
        c.execute(
            f"SELECT c.digest FROM {self.events_table_name} e JOIN {CHAIN_TABLE} c ON c.position = e.rowid "
            "WHERE e.originator_id = ? AND e.originator_version = ?",
            (sid, version - 1),
        )
        row = c.fetchone()
        return str(row[0]) if row is not None else GENESIS_DIGEST

    def select_records(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        final: bool = True,  # noqa: ARG002 - every committed position is final here
    ) -> list[LogRecord]:
        """The lean read of the log: :class:`LogRecord` tuples from ``start`` (inclusive), in order."""
        sql = f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name} "
        sql += "WHERE rowid >= ?"
        params: list[Any] = [start]
        if stop is not None:
            sql += " AND rowid <= ?"
            params.append(stop)
        if topics:
            sql += f" AND topic IN ({','.join('?' * len(topics))})"
            params.extend(topics)
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql + " ORDER BY rowid LIMIT ?", params)
            return [LogRecord(r[0], str(r[1]), r[2], r[3], r[4]) for r in c.fetchall()]

    def select_stream_heads(
        self, prefix: str, *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> list[StreamHead]:
        """Heads of the streams starting with ``prefix`` (open ones only if asked), by stream id."""
        where, params = heads_query(prefix, open_only=open_only, after=after, limit=limit, mark="?")
        sql = f"SELECT stream_id, version, position, open FROM {HEADS_TABLE} {where}"
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [
                StreamHead(str(r[0]), int(r[1]), int(r[2]), bool(r[3]))
                for r in c.fetchall()
                if str(r[0]).startswith(prefix)
            ]

    def select_chain(self, start: int, limit: int, stop: int | None = None) -> list[ChainRow]:
        """At most ``limit`` chain rows from position ``start`` (inclusive) to ``stop``, by position."""
        sql = (
            "SELECT position, originator_id, originator_version, digest, link "
            f"FROM {CHAIN_TABLE} WHERE position >= ?"
        )
        params: list[Any] = [start]
        if stop is not None:
            sql += " AND position <= ?"
            params.append(stop)
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql + " ORDER BY position LIMIT ?", params)
            return [
                ChainRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]), None if r[4] is None else int(r[4]))
                for r in c.fetchall()
            ]


# mypy --strict proves the SQLite recorder answers phaselog's recorder protocol.
_CONFORMS: type[PhaselogRecorder] = PhaselogSQLiteApplicationRecorder
