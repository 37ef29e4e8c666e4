"""Archived history: sealed, compressed segments of the event log, verifiable alone.

``archive(store, before, path)`` writes every event below position ``before``
that no earlier archive holds, with its chain rows, into a gzip JSON-lines file
closed by an **archive seal**: a digest over the segment's chain digests,
chained to the previous archive's seal and HMAC-signed with
``PHASELOG_AUDIT_KEY`` when it is set (the key policy of
:mod:`phaselog.adapters.audit.archive_file`). Before anything is written the store is
sealed (so no later seal spans positions whose chain rows may be dropped) and
the segment's streams are snapshotted at their current version, so no aggregate
needs archived events to load. The file is read back and compared with what was
collected, row for row, and its seal checked, then recorded in the store
(``phaselog_archives`` and the per-stream *tails* in ``phaselog_archive_tails``,
which let the live chain be checked without the file). Only then, and only with
``detach=True`` on a partitioned PostgreSQL store, are the partitions wholly
below ``before`` detached and dropped: nothing is deleted without a verified archive.

``verify_archive(path)`` checks one file alone; ``integrity.verify(store,
archives=[...])`` checks the live store with archives as its prefix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg.sql import SQL, Identifier

from phaselog.adapters.audit.archive_file import (
    ARCHIVE_FORMAT,
    Archive,
    archive_policy,
    read_archive,
    read_back,
    write_archive,
)
from phaselog.adapters.audit.chain import AUDIT_KEY_ENV, GENESIS_DIGEST, audit_key, sign_seal
from phaselog.adapters.audit.ports import recorder_of
from phaselog.adapters.audit.reading import Reader, snapshot_reader
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.holds import check_not_held
from phaselog.adapters.postgres.recorder import PhaselogPostgresApplicationRecorder
from phaselog.adapters.postgres.schema import ARCHIVES_TABLE, CHAIN_TABLE, SCHEMA_META_TABLE, TAILS_TABLE
from phaselog.domain.errors import IntegrityViolation, ValidationFailed

if TYPE_CHECKING:
    from phaselog.adapters.audit.ports import AuditedStore

__all__ = [
    "ARCHIVE_FORMAT",
    "Archive",
    "ArchiveRecord",
    "ArchiveReport",
    "archive",
    "archive_policy",
    "read_archive",
    "recorded_tails",
    "records",
]


@dataclass(frozen=True)
class ArchiveRecord:
    """An archive as the store records it."""

    id: int
    start: int
    before: int
    events: int
    digest: str
    signature: str | None


@dataclass(frozen=True)
class ArchiveReport:
    """What :func:`archive` did."""

    path: str
    start: int
    before: int
    events: int
    digest: str
    signed: bool
    snapshotted: int
    detached: list[str]


def records(read: Reader) -> list[ArchiveRecord]:
    """The archives a store has recorded, oldest first."""
    rows = read(
        f"SELECT id, start, before, events, digest, signature FROM {read.table(ARCHIVES_TABLE)} ORDER BY id"
    )
    return [ArchiveRecord(int(r[0]), int(r[1]), int(r[2]), int(r[3]), str(r[4]), r[5]) for r in rows]


def recorded_tails(read: Reader, archive_id: int) -> dict[str, tuple[int, str]]:
    """The per-stream tails recorded with an archive."""
    rows = read(
        f"SELECT stream_id, version, digest FROM {read.table(TAILS_TABLE)} WHERE archive_id = {read.param}",
        (archive_id,),
    )
    return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}


def archive(store: AuditedStore, before: int, path: str | Path, *, detach: bool = False) -> ArchiveReport:
    """Archive the events below ``before`` into ``path`` (see the module docs); detach only if asked."""
    if store.kind == "memory":
        msg = "the memory store cannot be archived"
        raise ValidationFailed(msg)
    if detach and store.kind != "postgresql":
        msg = "only a partitioned PostgreSQL store can detach archived history"
        raise ValidationFailed(msg)
    target = Path(path)
    recorder = recorder_of(store)
    with translate_errors("archiving the history"):
        horizon = int(recorder.horizon_position())
    if not 1 < before <= horizon + 1:
        msg = (
            f"--before must be between 2 and {horizon + 1} (every position below it committed), got {before}"
        )
        raise ValidationFailed(msg)
    with translate_errors("archiving the history"), snapshot_reader(store) as read:
        done = records(read)
        start = done[-1].before if done else 1
        if before <= start:
            msg = f"positions below {start} are archived already"
            raise ValidationFailed(msg)
        tails_in = recorded_tails(read, done[-1].id) if done else {}
        streams = [str(r[0]) for r in read(_streams_sql(read), (start, before))]
    check_not_held(store, streams, "archiving")
    _check_detachable(store, streams, detach=detach)
    if audit_key() is None and any(r.signature is not None for r in done):
        msg = f"not archiving: an earlier archive is signed and {AUDIT_KEY_ENV} is not set here: set the key"
        raise ValidationFailed(msg)
    store.seal()  # every later seal starts at or after the horizon, so none spans dropped chain rows
    snapshotted = _snapshot_streams(store, streams)
    with translate_errors("archiving the history"), snapshot_reader(store) as read:
        contents = _collect(read, start, before, done, tails_in)
    key = audit_key()
    contents.digest = contents.seal()
    contents.signature = sign_seal(contents.digest, key) if key is not None else None
    try:
        write_archive(target, contents)
    except OSError as exc:
        msg = f"cannot write the archive {target}: {exc.strerror or exc}"
        raise ValidationFailed(msg) from exc
    problems = read_back(target, contents)
    if problems:
        target.unlink(missing_ok=True)
        msg = f"the archive written to {target} does not verify when read back: {'; '.join(problems)}"
        raise IntegrityViolation(msg)
    _record(store, contents, target)
    detached = _detach(store, before) if detach else []
    return ArchiveReport(
        str(target),
        start,
        before,
        len(contents.events),
        contents.digest,
        key is not None,
        snapshotted,
        detached,
    )


def _streams_sql(read: Reader) -> str:
    return (
        f"SELECT DISTINCT originator_id FROM {read.table(read.events)} "
        f"WHERE {read.position} >= {read.param} AND {read.position} < {read.param}"
    )


def _check_detachable(store: AuditedStore, streams: Sequence[str], *, detach: bool) -> None:
    """Refuse to detach events of streams holding personal data (never snapshotted, they would not load)."""
    keyring = getattr(store.app.mapper, "keyring", None)
    personal = keyring.table.personal(streams) if detach and keyring is not None else []
    if personal:
        named = ", ".join(personal[:5]) + (f" and {len(personal) - 5} more" if len(personal) > 5 else "")
        msg = (
            f"not detaching: {named} hold personal data, which is never snapshotted, so they would not load "
            "without their archived events (archive without --detach)"
        )
        raise ValidationFailed(msg)


def _snapshot_streams(store: AuditedStore, streams: Sequence[str]) -> int:
    """Snapshot every stream at its current version unless a snapshot already covers it."""
    taken = 0
    for sid in streams:
        with translate_errors(f"snapshotting {sid!r} before archiving"):
            aggregate: Any = store.app.repository.get(sid)
            latest = list(store.app.snapshots.get(sid, desc=True, limit=1)) if store.app.snapshots else []
        if latest and latest[0].originator_version >= aggregate.version:
            continue
        store.snapshot(aggregate)
        taken += 1
    return taken


def _collect(
    read: Reader, start: int, before: int, done: list[ArchiveRecord], tails_in: dict[str, Any]
) -> Archive:
    global_in = GENESIS_DIGEST
    legacy = list(
        read(
            f"SELECT digest FROM {read.table(CHAIN_TABLE)} WHERE position < {read.param} AND link IS NULL "
            "ORDER BY position DESC LIMIT 1",
            (start,),
        )
    )
    if legacy:
        global_in = str(legacy[0][0])
    contents = Archive(start, before, done[-1].digest if done else GENESIS_DIGEST, tails_in, global_in)
    p = read.param
    contents.events = [
        (int(r[0]), str(r[1]), int(r[2]), str(r[3]), bytes(r[4]))
        for r in read(
            f"SELECT {read.position}, originator_id, originator_version, topic, state "
            f"FROM {read.table(read.events)} "
            f"WHERE {read.position} >= {p} AND {read.position} < {p} ORDER BY {read.position}",
            (start, before),
        )
    ]
    contents.chain = [
        (int(r[0]), str(r[1]), int(r[2]), str(r[3]), None if r[4] is None else int(r[4]))
        for r in read(
            "SELECT position, originator_id, originator_version, digest, link "
            f"FROM {read.table(CHAIN_TABLE)} "
            f"WHERE position >= {p} AND position < {p} ORDER BY position",
            (start, before),
        )
    ]
    return contents


def _record(store: AuditedStore, contents: Archive, target: Path) -> None:
    tails, global_out = contents.tails_out()
    file_digest = hashlib.sha256(target.read_bytes()).hexdigest()
    with translate_errors("recording the archive"), snapshot_reader(store, write=True) as read:
        done = records(read)
        new_id = (done[-1].id if done else 0) + 1
        p = read.param
        read.write(
            f"INSERT INTO {read.table(ARCHIVES_TABLE)} "
            "(id, start, before, events, digest, signature, file_digest) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
            (
                new_id,
                contents.start,
                contents.before,
                len(contents.events),
                contents.digest,
                contents.signature,
                file_digest,
            ),
        )
        read.write(
            f"INSERT INTO {read.table(SCHEMA_META_TABLE)} (key, value) VALUES ({p}, {p})",
            (f"archive_{new_id}", global_out),
        )
        read.write_many(
            f"INSERT INTO {read.table(TAILS_TABLE)} (archive_id, stream_id, version, digest) "
            f"VALUES ({p}, {p}, {p}, {p})",
            [(new_id, sid, version, digest) for sid, (version, digest) in tails.items()],
        )


def _detach(store: AuditedStore, before: int) -> list[str]:
    """Detach and drop the partitions (events and chain) wholly below ``before``; PostgreSQL only."""
    recorder = store.app.recorder
    if not isinstance(recorder, PhaselogPostgresApplicationRecorder):
        msg = "only a partitioned PostgreSQL store can detach archived history"
        raise ValidationFailed(msg)
    schema, events = recorder.datastore.schema, recorder.events_table_name
    detached: list[str] = []
    with translate_errors("detaching archived partitions"), recorder.datastore.get_connection() as conn:
        row = conn.execute(
            SQL("SELECT value FROM {}.{} WHERE key = 'partition_size'").format(
                Identifier(schema), Identifier(SCHEMA_META_TABLE)
            )
        ).fetchone()
        kind = conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = %s::regclass", (f'"{schema}"."{events}"',)
        ).fetchone()
        if row is None or kind is None or kind["relkind"] != "p":
            msg = "this store's events table is not partitioned (it was created before partitioning)"
            raise ValidationFailed(msg)
        size = int(row["value"])
        for parent in (events, CHAIN_TABLE):
            children = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
                (f'"{schema}"."{parent}"',),
            ).fetchall()
            for child in children:
                name = str(child["relname"])
                k = int(name.rsplit("_p", 1)[1])
                if (k + 1) * size <= before:  # every position of the partition is archived
                    conn.execute(
                        SQL("ALTER TABLE {}.{} DETACH PARTITION {}.{}").format(
                            Identifier(schema), Identifier(parent), Identifier(schema), Identifier(name)
                        )
                    )
                    conn.execute(SQL("DROP TABLE {}.{}").format(Identifier(schema), Identifier(name)))
                    detached.append(name)
    return detached
