"""Where subjects' keys are kept: one guarded table per store (memory, SQLite, PostgreSQL).

``phaselog_subject_keys`` holds one row per subject: its data key wrapped by the
master key, and once erased no key at all. The table only grows: a trigger refuses
every DELETE and TRUNCATE and any update of an erased row (a destroyed key never
comes back), so erasure and re-wrapping are the only changes it allows.
``phaselog_subject_streams`` records which streams hold values of which subject
(what an erasure names, and whose snapshots and read-model rows it scrubs).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from psycopg import sql

from phaselog.adapters.errors import translate_errors

if TYPE_CHECKING:
    from phaselog.adapters.postgres.recorder import PhaselogPostgresApplicationRecorder
    from phaselog.adapters.sqlite.recorder import PhaselogSQLiteApplicationRecorder

__all__ = ["KeyRow", "KeyTable", "key_table"]


@dataclass(frozen=True)
class KeyRow:
    """One subject's key as stored: wrapped by ``key_id``, or ``None`` once erased."""

    subject: str
    key_id: str
    wrapped: bytes | None
    created_at: str
    erased_at: str | None = None
    reason: str | None = None


class KeyTable(Protocol):
    """The subjects' keys and streams of one store."""

    def read(self, subject: str) -> KeyRow | None:
        """The row of ``subject``, if it has one."""
        ...

    def insert(self, row: KeyRow, stream_id: str) -> bool:
        """Add ``row`` and note ``stream_id`` in one transaction; False when the subject had a row already."""
        ...

    def erase(self, subject: str, reason: str, at: str) -> None:
        """Destroy the subject's wrapped key, recording why and when."""
        ...

    def rewrap(self, subject: str, key_id: str, wrapped: bytes) -> None:
        """Replace the subject's wrapped key (the same key, wrapped by another master key)."""
        ...

    def rows(self) -> list[KeyRow]:
        """Every row, by subject."""
        ...

    def note_stream(self, subject: str, stream_id: str) -> None:
        """Record that ``stream_id`` holds values of ``subject``."""
        ...

    def streams(self, subject: str) -> list[str]:
        """The streams holding values of ``subject``, by id."""
        ...

    def personal(self, stream_ids: Sequence[str]) -> list[str]:
        """Those of ``stream_ids`` that hold personal values of any subject, by id."""
        ...


def now() -> str:
    """The current time as the key table records it."""
    return datetime.now(UTC).isoformat()


class MemoryKeyTable:
    """The key table of a memory store (the same rules, kept in a dict)."""

    def __init__(self) -> None:
        self._rows: dict[str, KeyRow] = {}
        self._streams: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def read(self, subject: str) -> KeyRow | None:
        return self._rows.get(subject)

    def insert(self, row: KeyRow, stream_id: str) -> bool:
        with self._lock:
            if row.subject in self._rows:
                return False
            self._rows[row.subject] = row
            self._streams.add((row.subject, stream_id))
            return True

    def erase(self, subject: str, reason: str, at: str) -> None:
        with self._lock:
            self._rows[subject] = replace(self._rows[subject], wrapped=None, erased_at=at, reason=reason)

    def rewrap(self, subject: str, key_id: str, wrapped: bytes) -> None:
        with self._lock:
            self._rows[subject] = replace(self._rows[subject], key_id=key_id, wrapped=wrapped)

    def rows(self) -> list[KeyRow]:
        return [self._rows[s] for s in sorted(self._rows)]

    def note_stream(self, subject: str, stream_id: str) -> None:
        with self._lock:
            self._streams.add((subject, stream_id))

    def streams(self, subject: str) -> list[str]:
        return sorted(s for subj, s in self._streams if subj == subject)

    def personal(self, stream_ids: Sequence[str]) -> list[str]:
        wanted = set(stream_ids)
        return sorted({s for _, s in self._streams if s in wanted})


_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS phaselog_subject_keys (subject TEXT PRIMARY KEY, key_id TEXT NOT NULL,
  wrapped BLOB, created_at TEXT NOT NULL, erased_at TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS phaselog_subject_streams (subject TEXT NOT NULL, stream_id TEXT NOT NULL,
  PRIMARY KEY (subject, stream_id));
CREATE TRIGGER IF NOT EXISTS phaselog_subject_keys_no_delete BEFORE DELETE ON phaselog_subject_keys
BEGIN SELECT RAISE(ABORT, 'phaselog_subject_keys only grows: a key is erased, never deleted'); END;
CREATE TRIGGER IF NOT EXISTS phaselog_subject_keys_erased BEFORE UPDATE ON phaselog_subject_keys
WHEN OLD.wrapped IS NULL OR NEW.subject <> OLD.subject OR NEW.created_at <> OLD.created_at
BEGIN SELECT RAISE(ABORT, 'phaselog_subject_keys: an erased key never comes back'); END;
"""
_COLUMNS = "subject, key_id, wrapped, created_at, erased_at, reason"
_NOTE = "INSERT INTO phaselog_subject_streams (subject, stream_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
_INSERT = (
    f"INSERT INTO phaselog_subject_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, NULL, NULL) "
    "ON CONFLICT (subject) DO NOTHING RETURNING subject"
)


def _row(found: Any) -> KeyRow:
    wrapped = found["wrapped"]
    return KeyRow(
        str(found["subject"]),
        str(found["key_id"]),
        None if wrapped is None else bytes(wrapped),
        str(found["created_at"]),
        found["erased_at"] and str(found["erased_at"]),
        found["reason"],
    )


class SQLiteKeyTable:
    """The key table in a SQLite store's file (created on the first key, guarded by triggers)."""

    def __init__(self, recorder: PhaselogSQLiteApplicationRecorder) -> None:
        self._datastore = recorder.datastore
        self._ready = False

    def _run(self, *steps: tuple[str, tuple[Any, ...]], write: bool = False) -> list[Any]:
        """Run ``steps`` (query, parameters) in one transaction; the rows of the last."""
        with translate_errors("using the subject keys"), self._datastore.transaction(commit=write) as c:
            if write and not self._ready:
                for statement in _SQLITE_DDL.split(";\n"):
                    if statement.strip():
                        c.execute(statement + ";" if "BEGIN" in statement else statement)
                self._ready = True
            for query, params in steps:
                c.execute(query, params)
            return list(c.fetchall())

    def _read(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        with translate_errors("reading the subject keys"), self._datastore.transaction(commit=False) as c:
            c.execute("SELECT name FROM sqlite_master WHERE name = 'phaselog_subject_keys'")
            if not c.fetchall():
                return []
            c.execute(query, params)
            return list(c.fetchall())

    def read(self, subject: str) -> KeyRow | None:
        found = self._read(f"SELECT {_COLUMNS} FROM phaselog_subject_keys WHERE subject = ?", (subject,))
        return _row(found[0]) if found else None

    def insert(self, row: KeyRow, stream_id: str) -> bool:
        found = self._run(
            (_NOTE.replace("%s", "?"), (row.subject, stream_id)),
            (_INSERT.replace("%s", "?"), (row.subject, row.key_id, row.wrapped, row.created_at)),
            write=True,
        )
        return bool(found)

    def erase(self, subject: str, reason: str, at: str) -> None:
        query = "UPDATE phaselog_subject_keys SET wrapped = NULL, erased_at = ?, reason = ? WHERE subject = ?"
        self._run((query, (at, reason, subject)), write=True)

    def rewrap(self, subject: str, key_id: str, wrapped: bytes) -> None:
        query = "UPDATE phaselog_subject_keys SET key_id = ?, wrapped = ? WHERE subject = ?"
        self._run((query, (key_id, wrapped, subject)), write=True)

    def rows(self) -> list[KeyRow]:
        return [
            _row(r) for r in self._read(f"SELECT {_COLUMNS} FROM phaselog_subject_keys ORDER BY subject", ())
        ]

    def note_stream(self, subject: str, stream_id: str) -> None:
        self._run((_NOTE.replace("%s", "?"), (subject, stream_id)), write=True)

    def streams(self, subject: str) -> list[str]:
        query = "SELECT stream_id FROM phaselog_subject_streams WHERE subject = ? ORDER BY stream_id"
        return [str(r["stream_id"]) for r in self._read(query, (subject,))]

    def personal(self, stream_ids: Sequence[str]) -> list[str]:
        found: set[str] = set()
        for i in range(0, len(stream_ids), 500):
            chunk = tuple(stream_ids[i : i + 500])
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT DISTINCT stream_id FROM phaselog_subject_streams WHERE stream_id IN ({marks})"
            found.update(str(r["stream_id"]) for r in self._read(query, chunk))
        return sorted(found)


_PG_DDL = (
    """SELECT pg_advisory_xact_lock(hashtext({schema_text} || '.phaselog_subject_keys'))""",
    """CREATE TABLE IF NOT EXISTS {schema}.phaselog_subject_keys (subject text PRIMARY KEY,
  key_id text NOT NULL, wrapped bytea, created_at text NOT NULL, erased_at text, reason text)""",
    """CREATE TABLE IF NOT EXISTS {schema}.phaselog_subject_streams (subject text NOT NULL,
  stream_id text NOT NULL, PRIMARY KEY (subject, stream_id))""",
    """CREATE OR REPLACE FUNCTION {schema}.phaselog_subject_keys_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
    RAISE EXCEPTION 'phaselog_subject_keys only grows: a key is erased, never deleted';
  END IF;
  IF OLD.wrapped IS NULL OR NEW.subject <> OLD.subject OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'phaselog_subject_keys: an erased key never comes back (subject %)', OLD.subject;
  END IF;
  RETURN NEW;
END $$""",
    """CREATE OR REPLACE TRIGGER phaselog_subject_keys_rows
  BEFORE UPDATE OR DELETE ON {schema}.phaselog_subject_keys
  FOR EACH ROW EXECUTE FUNCTION {schema}.phaselog_subject_keys_guard()""",
    """CREATE OR REPLACE TRIGGER phaselog_subject_keys_truncate
  BEFORE TRUNCATE ON {schema}.phaselog_subject_keys
  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.phaselog_subject_keys_guard()""",
)


class PostgresKeyTable:
    """The key table in a PostgreSQL store's schema (created on the first key, guarded by triggers)."""

    def __init__(self, recorder: PhaselogPostgresApplicationRecorder) -> None:
        self._datastore = recorder.datastore
        self._schema = sql.Identifier(recorder.datastore.schema)
        self._schema_name = recorder.datastore.schema
        self._ready = False

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=self._schema, schema_text=sql.Literal(self._schema_name))

    def _run(self, *steps: tuple[str, tuple[Any, ...]], write: bool = False) -> list[Any]:
        """Run ``steps`` (query, parameters) in one transaction; the rows of the last."""
        with translate_errors("using the subject keys"), self._datastore.transaction(commit=write) as c:
            if write and not self._ready:
                for statement in _PG_DDL:
                    c.execute(self._q(statement))
            if not self._ready:  # a reader asks once whether the tables exist yet
                table = f'"{self._schema_name}".phaselog_subject_keys'
                c.execute("SELECT to_regclass(%s) IS NULL AS missing", [table])
                if (c.fetchone() or {}).get("missing"):
                    return []
                self._ready = True
            for query, params in steps:
                c.execute(self._q(query), params)
            return list(c.fetchall()) if c.description else []

    def read(self, subject: str) -> KeyRow | None:
        found = self._run(
            (f"SELECT {_COLUMNS} FROM {{schema}}.phaselog_subject_keys WHERE subject = %s", (subject,))
        )
        return _row(found[0]) if found else None

    def insert(self, row: KeyRow, stream_id: str) -> bool:
        found = self._run(
            (_NOTE.replace("phaselog_", "{schema}.phaselog_"), (row.subject, stream_id)),
            (
                _INSERT.replace("phaselog_", "{schema}.phaselog_"),
                (row.subject, row.key_id, row.wrapped, row.created_at),
            ),
            write=True,
        )
        return bool(found)

    def erase(self, subject: str, reason: str, at: str) -> None:
        query = (
            "UPDATE {schema}.phaselog_subject_keys SET wrapped = NULL, erased_at = %s, reason = %s "
            "WHERE subject = %s"
        )
        self._run((query, (at, reason, subject)), write=True)

    def rewrap(self, subject: str, key_id: str, wrapped: bytes) -> None:
        query = "UPDATE {schema}.phaselog_subject_keys SET key_id = %s, wrapped = %s WHERE subject = %s"
        self._run((query, (key_id, wrapped, subject)), write=True)

    def rows(self) -> list[KeyRow]:
        query = f"SELECT {_COLUMNS} FROM {{schema}}.phaselog_subject_keys ORDER BY subject"
        return [_row(r) for r in self._run((query, ()))]

    def note_stream(self, subject: str, stream_id: str) -> None:
        self._run((_NOTE.replace("phaselog_", "{schema}.phaselog_"), (subject, stream_id)), write=True)

    def streams(self, subject: str) -> list[str]:
        query = (
            "SELECT stream_id FROM {schema}.phaselog_subject_streams WHERE subject = %s ORDER BY stream_id"
        )
        return [str(r["stream_id"]) for r in self._run((query, (subject,)))]

    def personal(self, stream_ids: Sequence[str]) -> list[str]:
        query = "SELECT DISTINCT stream_id FROM {schema}.phaselog_subject_streams WHERE stream_id = ANY(%s)"
        return sorted(str(r["stream_id"]) for r in self._run((query, (list(stream_ids),))))


def key_table(recorder: Any) -> KeyTable:
    """The key table of the store whose events ``recorder`` records."""
    from phaselog.adapters.postgres.recorder import PhaselogPostgresApplicationRecorder  # noqa: PLC0415 - a cycle

    # (the recorders import the codec, which imports this module)
    from phaselog.adapters.sqlite.recorder import PhaselogSQLiteApplicationRecorder  # noqa: PLC0415 - the same cycle

    if isinstance(recorder, PhaselogPostgresApplicationRecorder):
        return PostgresKeyTable(recorder)
    if isinstance(recorder, PhaselogSQLiteApplicationRecorder):
        return SQLiteKeyTable(recorder)
    table: KeyTable | None = getattr(recorder, "phaselog_key_table", None)
    if table is None:
        table = MemoryKeyTable()
        recorder.phaselog_key_table = table
    return table
