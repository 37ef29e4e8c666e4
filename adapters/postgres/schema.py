"""phaselog's own PostgreSQL objects beside eventsourcing's events table, created and migrated on open.

* ``tx_id xid8`` on every event: the writing transaction, so readers of the
  global order can stop below the oldest append still in flight;
* ``<events>_append_batch(...)``: the one server-side function an append calls
  (one round trip for every command gathered into it, see
  :mod:`phaselog.adapters.core.gather`): it draws positions in transaction-id
  order, checks each command against its streams' heads (a stale command fails
  alone), and inserts the events, their per-stream chain rows and the stream
  heads; followers are woken after it commits, never from inside it. The
  one-command ``<events>_append(...)`` of schema version 3 is kept for processes
  not yet upgraded;
* ``phaselog_streams``: one row per stream (its head), the stream index;
* ``phaselog_seals``: sealed checkpoints; ``phaselog_meta``: the schema version.

Everything is ``IF NOT EXISTS`` / ``CREATE OR REPLACE``, so opening a store
written by an older phaselog migrates it in place (old chain rows keep their
global links). Opening a store whose DDL is exactly this one (the digest of
every statement, kept in ``phaselog_meta``, see :func:`installed`) runs none of
it: ``CREATE INDEX IF NOT EXISTS`` and ``CREATE OR REPLACE TRIGGER`` lock their
tables even when there is nothing to do, and a service instance starting while
others append would deadlock with them (an append locks the stream heads, then
the events table; the DDL the other way round).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from typing import Any

from psycopg import Cursor
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from phaselog.adapters.audit.chain import GENESIS_DIGEST, STREAM_LINK
from phaselog.adapters.postgres.functions import (
    APPEND_BATCH_FUNCTION,
    APPEND_FUNCTION,
    ENSURE_PARTITIONS_FUNCTION,
)

__all__ = [
    "APPEND_ONLY_MESSAGE",
    "ARCHIVES_TABLE",
    "CHAIN_TABLE",
    "DEFAULT_PARTITION_SIZE",
    "HEADS_TABLE",
    "PARTITION_SIZE_ENV",
    "SCHEMA_META_TABLE",
    "SCHEMA_VERSION",
    "SEALS_TABLE",
    "TAILS_TABLE",
    "append_batch_function_name",
    "append_function_name",
    "ddl_digest",
    "install_schema",
    "installed",
    "lock_key",
    "phaselog_statements",
    "record_digest",
]

APPEND_ONLY_MESSAGE = "phaselog stored events are append-only"
CHAIN_TABLE = "phaselog_audit_chain"
HEADS_TABLE = "phaselog_streams"
SEALS_TABLE = "phaselog_seals"
SCHEMA_META_TABLE = "phaselog_meta"
ARCHIVES_TABLE = "phaselog_archives"
TAILS_TABLE = "phaselog_archive_tails"
PARTITION_SIZE_ENV = "PHASELOG_PARTITION_SIZE"  # positions per partition of a new store (URL: partition_size)
DEFAULT_PARTITION_SIZE = 1_000_000
# 1: a global chain and a table lock; 2: per-stream chains, heads, seals, xid8;
# 3: appends mark themselves in flight, so only an append can hold readers of the global order back;
# 4: concurrent appends are written together by the batch append function, which sends no NOTIFY.
SCHEMA_VERSION = 4


def lock_key(schema: str, table: str, purpose: str) -> int:
    """A stable 32-bit advisory lock key for one purpose on one events table."""
    return zlib.crc32(f"phaselog:{purpose}:{schema}.{table}".encode())


def append_function_name(table: str) -> str:
    """Name of the one-command append function of an events table (schema version 3)."""
    return f"{table}_append"


def append_batch_function_name(table: str) -> str:
    """Name of the batch append function of an events table: many commands, one transaction."""
    return f"{table}_append_batch"


def install_schema(recorder: Any) -> None:
    """Give a PostgreSQL application recorder phaselog's DDL, run when it creates its tables.

    eventsourcing's own events-table statement is replaced by :func:`partitioned_events_table`
    (``CREATE TABLE IF NOT EXISTS``: an existing, unpartitioned table is kept as it is).
    """
    schema, table = recorder.datastore.schema, recorder.events_table_name
    recorder.sql_create_statements[recorder.create_table_statement_index] = partitioned_events_table(
        schema, table
    )
    size = int(getattr(recorder.datastore, "phaselog_partition_size", DEFAULT_PARTITION_SIZE))
    recorder.sql_create_statements.extend(
        phaselog_statements(schema, table, recorder.channel_name, partition_size=size)
    )


def ddl_digest(statements: Sequence[Composable | str], cursor: Cursor[Any]) -> str:
    """The digest of the DDL a store is opened with (every statement as the server would read it)."""
    digest = hashlib.sha256()
    for statement in statements:
        text = statement if isinstance(statement, str) else statement.as_string(cursor)
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()


def installed(cursor: Cursor[Any], schema: str, digest: str) -> bool:
    """Whether the schema already holds exactly the DDL of ``digest`` (then opening runs none)."""
    meta = Literal(f'"{schema}"."{SCHEMA_META_TABLE}"')
    row = cursor.execute(SQL("SELECT to_regclass({}) IS NOT NULL AS present").format(meta)).fetchone()
    if not row or not _first(row):
        return False
    query = SQL("SELECT value FROM {}.{} WHERE key = 'schema_digest'")
    row = cursor.execute(query.format(Identifier(schema), Identifier(SCHEMA_META_TABLE))).fetchone()
    return row is not None and _first(row) == digest


def record_digest(cursor: Cursor[Any], schema: str, digest: str) -> None:
    """Remember that the schema now holds the DDL of ``digest`` (in the transaction that ran it)."""
    cursor.execute(
        SQL(
            "INSERT INTO {}.{} (key, value) VALUES ('schema_digest', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ).format(Identifier(schema), Identifier(SCHEMA_META_TABLE)),
        (digest,),
    )


def _first(row: Any) -> Any:
    """The first column of a row, whether the cursor makes tuples or dicts."""
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def partitioned_events_table(schema: str, table: str) -> Composed:
    """The events table of a new store: eventsourcing's columns, partitioned by position.

    A partitioned table's unique indexes must hold the partition key, so the
    (stream, version) uniqueness eventsourcing's primary key gave is kept by the
    append function against the stream heads instead; a plain index serves reads.
    """
    return SQL(
        "CREATE TABLE IF NOT EXISTS {schema}.{events} (originator_id text NOT NULL, "
        "originator_version bigint NOT NULL, topic text, state bytea, notification_id bigserial, "
        "tx_id xid8 DEFAULT pg_current_xact_id()) "
        "PARTITION BY RANGE (notification_id)"
    ).format(schema=Identifier(schema), events=Identifier(table))


def phaselog_statements(schema: str, table: str, channel: str, *, partition_size: int) -> list[Composed]:
    """The DDL (and migration) statements run on open, after eventsourcing's own."""
    ids = {
        "schema": Identifier(schema),
        "events": Identifier(table),
        "chain": Identifier(CHAIN_TABLE),
        "heads": Identifier(HEADS_TABLE),
        "seals": Identifier(SEALS_TABLE),
        "meta": Identifier(SCHEMA_META_TABLE),
        "archives": Identifier(ARCHIVES_TABLE),
        "tails": Identifier(TAILS_TABLE),
        "guard": Identifier(f"{table}_append_only"),
        "append": Identifier(append_function_name(table)),
        "append_batch": Identifier(append_batch_function_name(table)),
        "seq": Literal(f'"{schema}"."{table}_notification_id_seq"'),
        "open_index": Identifier(f"{HEADS_TABLE}_open_idx"),
        "genesis": Literal(GENESIS_DIGEST),
        "link": Literal(STREAM_LINK),
        "channel": Literal(channel),
        "position_lock": Literal(lock_key(schema, table, "positions")),
        "append_lock": Literal(lock_key(schema, table, "appends")),
        "version": Literal(SCHEMA_VERSION),
        "ensure": Identifier(f"{table}_ensure_partitions"),
        "events_regclass": Literal(f'"{schema}"."{table}"'),
        "partition_lock": Literal(lock_key(schema, table, "partitions")),
        "partition_size": Literal(str(partition_size)),
        "events_name": Literal(table),
        "chain_name": Literal(CHAIN_TABLE),
        "schema_name": Literal(schema),
        "guard_name": Literal(f"{table}_append_only"),
        "threshold_setting": Literal(f"phaselog.partition_threshold_{lock_key(schema, table, 'setting')}"),
        "stream_index": Identifier(f"{table}_stream_idx"),
        "unprepared_setting": Literal("phaselog.append_guard"),
    }
    statements: list[str | Composed] = [
        "CREATE TABLE IF NOT EXISTS {schema}.{meta} (key text PRIMARY KEY, value text NOT NULL)",
        (
            "CREATE TABLE IF NOT EXISTS {schema}.{archives} (id bigint PRIMARY KEY, start bigint NOT NULL, "
            "before bigint NOT NULL, events bigint NOT NULL, digest text NOT NULL, signature text, "
            "file_digest text NOT NULL, archived_at timestamptz NOT NULL DEFAULT now())"
        ),
        (
            "CREATE TABLE IF NOT EXISTS {schema}.{tails} (archive_id bigint NOT NULL, "
            "stream_id text NOT NULL, "
            "version bigint NOT NULL, digest text NOT NULL, PRIMARY KEY (archive_id, stream_id))"
        ),
        "ALTER TABLE {schema}.{events} ADD COLUMN IF NOT EXISTS tx_id xid8",
        "ALTER TABLE {schema}.{events} ALTER COLUMN tx_id SET DEFAULT pg_current_xact_id()",
        # A new store's chain is partitioned like its events (archived and detached together).
        (
            "CREATE TABLE IF NOT EXISTS {schema}.{chain} (position bigint PRIMARY KEY, "
            "originator_id text NOT NULL, originator_version bigint NOT NULL, digest text NOT NULL) "
            "PARTITION BY RANGE (position)"
        ),
        (
            "INSERT INTO {schema}.{meta} (key, value) VALUES ('partition_size', {partition_size}) "
            "ON CONFLICT (key) DO NOTHING"
        ),
        # A partitioned events table reads streams through a plain (stream, version) index.
        (
            "DO $$ BEGIN IF (SELECT relkind FROM pg_class WHERE oid = {events_regclass}::regclass) = 'p' "
            "THEN CREATE INDEX IF NOT EXISTS {stream_index} ON {schema}.{events} "
            "(originator_id, originator_version); END IF; END $$"
        ),
        "ALTER TABLE {schema}.{chain} ADD COLUMN IF NOT EXISTS link smallint",
        (
            'CREATE TABLE IF NOT EXISTS {schema}.{heads} (stream_id text COLLATE "C" PRIMARY KEY, '
            "version bigint NOT NULL, position bigint NOT NULL, open boolean NOT NULL, digest text NOT NULL, "
            "updated_at timestamptz NOT NULL DEFAULT now()) WITH (fillfactor = 70)"
        ),
        "CREATE INDEX IF NOT EXISTS {open_index} ON {schema}.{heads} (stream_id) WHERE open",
        # Room on each page for HOT updates: an append updates its stream's head row in place.
        "ALTER TABLE {schema}.{heads} SET (fillfactor = 70)",
        (
            "CREATE TABLE IF NOT EXISTS {schema}.{seals} (id bigint PRIMARY KEY, horizon bigint NOT NULL, "
            "events bigint NOT NULL, digest text NOT NULL, signature text, "
            "sealed_at timestamptz NOT NULL DEFAULT now())"
        ),
        # A schema-1 store: index the streams it already holds (all counted open until saved again).
        (
            "INSERT INTO {schema}.{heads} (stream_id, version, position, open, digest) "
            "SELECT DISTINCT ON (e.originator_id) e.originator_id, e.originator_version, e.notification_id, "
            "true, coalesce(c.digest, {genesis}) FROM {schema}.{events} e "
            "LEFT JOIN {schema}.{chain} c ON c.position = e.notification_id "
            "WHERE NOT EXISTS (SELECT 1 FROM {schema}.{heads}) "
            "ORDER BY e.originator_id, e.originator_version DESC"
        ),
        (
            "INSERT INTO {schema}.{meta} (key, value) VALUES ('schema_version', {version}::text) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        (
            "CREATE OR REPLACE FUNCTION {schema}.{guard}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"
        ),
    ]
    for guarded in ("events", "chain", "seals", "archives", "tails"):
        trigger = {**ids, "table": ids[guarded]}
        names = {"chain": CHAIN_TABLE, "seals": SEALS_TABLE, "archives": ARCHIVES_TABLE, "tails": TAILS_TABLE}
        name = table if guarded == "events" else names[guarded]
        trigger["row_trigger"] = Identifier(f"{name}_no_change")
        trigger["statement_trigger"] = Identifier(f"{name}_no_truncate")
        statements.append(
            SQL(
                "CREATE OR REPLACE TRIGGER {row_trigger} BEFORE UPDATE OR DELETE ON {schema}.{table} "
                "FOR EACH ROW EXECUTE FUNCTION {schema}.{guard}()"
            ).format(**trigger)
        )
        statements.append(
            SQL(
                "CREATE OR REPLACE TRIGGER {statement_trigger} BEFORE TRUNCATE ON {schema}.{table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{guard}()"
            ).format(**trigger)
        )
    statements.append(ENSURE_PARTITIONS_FUNCTION.format(**ids))
    statements.append(APPEND_FUNCTION.format(**ids))  # kept for processes not yet upgraded
    statements.append(APPEND_BATCH_FUNCTION.format(**ids))
    return [s if isinstance(s, Composed) else SQL(s).format(**ids) for s in statements]
