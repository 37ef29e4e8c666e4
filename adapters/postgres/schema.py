"""phaselog's own PostgreSQL objects beside eventsourcing's events table, created and migrated on open.

* ``tx_id xid8`` on every event: the writing transaction, so readers of the
  global order can stop below the oldest transaction still running;
* ``phaselog_append(...)``: the one server-side function an append calls (one
  round trip): it draws positions in transaction-id order, inserts the events,
  their per-stream chain rows and the stream heads, and sends one NOTIFY;
* ``phaselog_streams``: one row per stream (its head), the stream index;
* ``phaselog_seals``: sealed checkpoints; ``phaselog_meta``: the schema version.

Everything is ``IF NOT EXISTS`` / ``CREATE OR REPLACE``, so opening a store
written by the wave-1 recorder migrates it in place (old chain rows keep their
global links) and opening a current one changes nothing.
"""

from __future__ import annotations

import zlib

from psycopg.sql import SQL, Composed, Identifier, Literal

from phaselog.adapters.chain import GENESIS_DIGEST, STREAM_LINK

__all__ = [
    "APPEND_ONLY_MESSAGE",
    "CHAIN_TABLE",
    "HEADS_TABLE",
    "META_TABLE",
    "SCHEMA_VERSION",
    "SEALS_TABLE",
    "append_function_name",
    "lock_key",
    "phaselog_statements",
]

APPEND_ONLY_MESSAGE = "phaselog stored events are append-only"
CHAIN_TABLE = "phaselog_audit_chain"
HEADS_TABLE = "phaselog_streams"
SEALS_TABLE = "phaselog_seals"
META_TABLE = "phaselog_meta"
SCHEMA_VERSION = 2  # 1: wave 1 (global chain, table lock); 2: per-stream chains, heads, seals, xid8


def lock_key(schema: str, table: str, purpose: str) -> int:
    """A stable 32-bit advisory lock key for one purpose on one events table."""
    return zlib.crc32(f"phaselog:{purpose}:{schema}.{table}".encode())


def append_function_name(table: str) -> str:
    """Name of the append function of an events table."""
    return f"{table}_append"


def phaselog_statements(schema: str, table: str, channel: str) -> list[Composed]:
    """The DDL (and migration) statements run on open, after eventsourcing's own."""
    ids = {
        "schema": Identifier(schema),
        "events": Identifier(table),
        "chain": Identifier(CHAIN_TABLE),
        "heads": Identifier(HEADS_TABLE),
        "seals": Identifier(SEALS_TABLE),
        "meta": Identifier(META_TABLE),
        "guard": Identifier(f"{table}_append_only"),
        "append": Identifier(append_function_name(table)),
        "seq": Literal(f'"{schema}"."{table}_notification_id_seq"'),
        "open_index": Identifier(f"{HEADS_TABLE}_open_idx"),
        "genesis": Literal(GENESIS_DIGEST),
        "link": Literal(STREAM_LINK),
        "channel": Literal(channel),
        "position_lock": Literal(lock_key(schema, table, "positions")),
        "version": Literal(SCHEMA_VERSION),
    }
    statements: list[str | Composed] = [
        "ALTER TABLE {schema}.{events} ADD COLUMN IF NOT EXISTS tx_id xid8",
        "ALTER TABLE {schema}.{events} ALTER COLUMN tx_id SET DEFAULT pg_current_xact_id()",
        (
            "CREATE TABLE IF NOT EXISTS {schema}.{chain} (position bigint PRIMARY KEY, "
            "originator_id text NOT NULL, originator_version bigint NOT NULL, digest text NOT NULL)"
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
        "CREATE TABLE IF NOT EXISTS {schema}.{meta} (key text PRIMARY KEY, value text NOT NULL)",
        # A wave-1 store: index the streams it already holds (all counted open until saved again).
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
    for guarded in ("events", "chain", "seals"):
        trigger = {**ids, "table": ids[guarded]}
        name = table if guarded == "events" else {"chain": CHAIN_TABLE, "seals": SEALS_TABLE}[guarded]
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
    statements.append(_APPEND_FUNCTION.format(**ids))
    return [s if isinstance(s, Composed) else SQL(s).format(**ids) for s in statements]


# The append: positions are drawn under a transaction-scoped-for-microseconds advisory lock
# together with the transaction id, so position order equals transaction-id order between
# writers; readers that stop below the oldest running transaction then never pass a position
# that commits later. The lock is released before the inserts: commits are never serialised.
_APPEND_FUNCTION = SQL(
    """
CREATE OR REPLACE FUNCTION {schema}.{append}(
    p_ids text[], p_versions bigint[], p_topics text[], p_states bytea[], p_open boolean[]
) RETURNS SETOF bigint LANGUAGE plpgsql AS $fn$
DECLARE
    n integer := cardinality(p_ids);
    tx xid8;
    positions bigint[];
    digests text[] := '{{}}';
    prev text;
    i integer;
BEGIN
    PERFORM pg_advisory_lock({position_lock});
    tx := pg_current_xact_id();
    positions := ARRAY(SELECT nextval({seq}::regclass) FROM generate_series(1, n));
    PERFORM pg_advisory_unlock({position_lock});
    INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state, notification_id, tx_id)
        SELECT u.i, u.v, u.t, u.s, u.p, tx FROM unnest(p_ids, p_versions, p_topics, p_states, positions)
        AS u(i, v, t, s, p);
    FOR i IN 1..n LOOP
        prev := NULL;
        IF i > 1 AND p_ids[i] = p_ids[i - 1] THEN
            prev := digests[i - 1];
        ELSIF p_versions[i] > 1 THEN
            SELECT h.digest INTO prev FROM {schema}.{heads} h
                WHERE h.stream_id = p_ids[i] AND h.version = p_versions[i] - 1;
            IF prev IS NULL THEN
                SELECT c.digest INTO prev FROM {schema}.{events} e
                    JOIN {schema}.{chain} c ON c.position = e.notification_id
                    WHERE e.originator_id = p_ids[i] AND e.originator_version = p_versions[i] - 1;
            END IF;
        END IF;
        prev := coalesce(prev, {genesis});
        digests[i] := encode(sha256(convert_to(prev || E'\\n' || positions[i] || E'\\n' || p_ids[i]
            || E'\\n' || p_versions[i] || E'\\n' || p_topics[i] || E'\\n', 'UTF8')
            || sha256(p_states[i])), 'hex');
    END LOOP;
    INSERT INTO {schema}.{chain} (position, originator_id, originator_version, digest, link)
        SELECT u.p, u.i, u.v, u.d, {link} FROM unnest(positions, p_ids, p_versions, digests) AS u(p, i, v, d);
    INSERT INTO {schema}.{heads} AS h (stream_id, version, position, open, digest, updated_at)
        SELECT DISTINCT ON (u.i) u.i, u.v, u.p, u.o, u.d, now()
        FROM unnest(p_ids, p_versions, positions, p_open, digests) AS u(i, v, p, o, d)
        ORDER BY u.i, u.v DESC
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, position = EXCLUDED.position,
        open = EXCLUDED.open, digest = EXCLUDED.digest, updated_at = EXCLUDED.updated_at
        WHERE h.version < EXCLUDED.version;
    PERFORM pg_notify({channel}, '');
    RETURN QUERY SELECT unnest(positions);
END
$fn$
"""
)
