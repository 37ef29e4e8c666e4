"""Rewriting a store behind phaselog's back, as an attacker with database access would."""

from __future__ import annotations

from phaselog.adapters import Store
from phaselog.adapters.audit.chain import GENESIS_DIGEST, chain_digest, seal_digest
from phaselog.adapters.recorders import CHAIN_TABLE

from conftest import raw_execute

GUARDED = ("EVENTS", CHAIN_TABLE, "phaselog_seals")


def events_table(url: str) -> str:
    """Eventsourcing names the events table ``stored_events`` on SQLite, ``phaselog_events`` on PostgreSQL."""
    return "stored_events" if url.startswith("sqlite") else "phaselog_events"


def sql(url: str, statement: str) -> str:
    """``statement`` for this store: EVENTS and POS named, ``%s`` placeholders as SQLite wants them."""
    pos = "rowid" if url.startswith("sqlite") else "notification_id"
    statement = statement.replace("EVENTS", events_table(url)).replace("POS", pos)
    return statement.replace("%s", "?") if url.startswith("sqlite") else statement


def unguarded(url: str, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Run ``statements`` with every append-only trigger out of the way."""
    tables = [events_table(url) if t == "EVENTS" else t for t in GUARDED]
    if url.startswith("sqlite"):
        for table in tables:
            for action in ("update", "delete"):
                raw_execute(url, f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    else:
        for table in tables:
            raw_execute(url, f"ALTER TABLE {table} DISABLE TRIGGER USER")
    for statement, params in statements:
        raw_execute(url, sql(url, statement), params)
    if not url.startswith("sqlite"):
        for table in tables:
            raw_execute(url, f"ALTER TABLE {table} ENABLE TRIGGER USER")


def rewrite_event_and_chain(url: str, store: Store, event: tuple[str, int], old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` in the state of ``event`` (stream, version) and recompute its chain row."""
    stream_id, version = event
    notes = {(n.originator_id, n.originator_version): n for n in store.notifications(1, 10_000)}
    target = notes[stream_id, version]
    state = target.state.replace(old, new)
    assert state != target.state
    previous = GENESIS_DIGEST
    if version > 1:
        rows = raw_execute(
            url,
            sql(
                url, f"SELECT digest FROM {CHAIN_TABLE} WHERE originator_id = %s AND originator_version = %s"
            ),
            (stream_id, version - 1),
        )
        previous = str(rows[0][0])
    digest = chain_digest(previous, target.id, stream_id, version, target.topic, state)
    unguarded(
        url,
        ("UPDATE EVENTS SET state = %s WHERE POS = %s", (state, target.id)),
        (f"UPDATE {CHAIN_TABLE} SET digest = %s WHERE position = %s", (digest, target.id)),
    )


def reseal_everything(url: str) -> None:
    """Replace every seal by one unsigned seal recomputed over the chain as it now is."""
    rows = raw_execute(url, sql(url, f"SELECT position, digest FROM {CHAIN_TABLE} ORDER BY position"))
    horizon = max(int(str(r[0])) for r in rows)
    digest, count = seal_digest(GENESIS_DIGEST, horizon, [str(r[1]) for r in rows])
    unguarded(
        url,
        ("DELETE FROM phaselog_seals", ()),
        (
            "INSERT INTO phaselog_seals (id, horizon, events, digest) VALUES (%s, %s, %s, %s)",
            (1, horizon, count, digest),
        ),
    )
