"""Schema versions of phaselog's own tables: reading them, and recording an upgrade.

A store records its schema version in ``phaselog_meta`` (key ``schema_version``);
a store written by phaselog's first releases has no such table and counts as
version 1. The recorders create and upgrade phaselog's tables when a store is
opened with ``create=True``; ``phaselog migrate`` does exactly that on purpose,
then finishes the upgrade here: it re-derives the stream index's open flags (a
version-1 store's streams were indexed as open, whatever their aggregate says)
and records the upgrade in ``phaselog_meta`` (key ``migrated:<from>-><to>``). A
store opened with ``create=False`` (or ``read_only=True``) whose schema is older
than the code is refused with a hint to run ``phaselog migrate``.

The store calls this module (:func:`probe`, :func:`check_version`,
:func:`record_upgrade`); this module never imports the store: it reads the
store through :class:`UpgradingStore` and opens one with the opener
:func:`migrate` is given.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from phaselog.adapters.audit.topics import load_domain_modules
from phaselog.adapters.errors import first_line, translate_errors
from phaselog.adapters.postgres.recorder import PhaselogPostgresApplicationRecorder
from phaselog.adapters.postgres.schema import CHAIN_TABLE, HEADS_TABLE, SCHEMA_META_TABLE, SCHEMA_VERSION
from phaselog.adapters.sqlite.recorder import PhaselogSQLiteApplicationRecorder
from phaselog.adapters.urls import StoreURL, parse_url
from phaselog.domain.encoding import dump_json
from phaselog.domain.errors import NotFound, PhaselogError, StoreUnavailable, ValidationFailed
from phaselog.domain.retry import Backoff
from phaselog.runtime.retry import retry

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from phaselog.adapters.application import PhaselogApplication
    from phaselog.runtime.ports import StreamHead

__all__ = [
    "SCHEMA_VERSION",
    "Migration",
    "NotAPhaselogStore",
    "SchemaOutdated",
    "UpgradedStore",
    "UpgradingStore",
    "check_version",
    "migrate",
    "phaselog_version",
    "postgres_schema_version",
    "probe",
    "record_upgrade",
    "sqlite_schema_version",
    "sqlite_uri",
]

PG_EVENTS_TABLE = "phaselog_events"
_SQLITE_BUSY_S = 30.0
_PROBE_RETRIES = Backoff(first=0.05, factor=1.5, maximum=1.0, attempts=12)
SQLITE_EVENTS_TABLE = "stored_events"


class SchemaOutdated(StoreUnavailable):
    """The store's tables are older than this phaselog: run ``phaselog migrate`` first."""


class NotAPhaselogStore(StoreUnavailable):
    """The database holds a table of a phaselog store's name but not phaselog's tables: it is not one.

    phaselog neither reads nor migrates it, and creates nothing in it.
    """


class UpgradingStore(Protocol):
    """A store as :func:`record_upgrade` reads and writes it, right after its recorder upgraded it."""

    @property
    def kind(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"postgresql"``."""
        ...

    @property
    def url(self) -> str:
        """The store's URL without its password (for messages)."""
        ...

    @property
    def app(self) -> PhaselogApplication:
        """The eventsourcing application: its recorder and its repository."""
        ...

    def stream_heads(self, prefix: str = "", *, open_only: bool = False) -> list[StreamHead]:
        """The head of every stream whose id starts with ``prefix`` (only open ones if asked), by id."""
        ...


class UpgradedStore(Protocol):
    """A store as :func:`migrate` opens it: it says how many streams its upgrade marked closed."""

    @property
    def closed_on_upgrade(self) -> int:
        """How many streams of the index opening the store marked closed (0 if it was current)."""
        ...


def phaselog_version() -> str:
    """The installed phaselog's version."""
    try:
        return version("phaselog")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "0+unknown"


@dataclass(frozen=True)
class Migration:
    """What ``phaselog migrate`` found and did."""

    url: str
    from_version: int
    to_version: int
    closed_streams: int

    @property
    def changed(self) -> bool:
        """True when the store was upgraded (False when it was already current)."""
        return self.from_version != self.to_version


# -- reading the version ------------------------------------------------------------------------------
def sqlite_uri(location: StoreURL, *, read_only: bool) -> str:
    """The ``file:`` URI of a SQLite store (``mode=ro`` when read-only)."""
    assert location.sqlite_path is not None  # noqa: S101 - only called for SQLite
    path = quote(str(location.sqlite_path.resolve()))
    return f"file:{path}" + ("?mode=ro" if read_only else "")


def sqlite_schema_version(location: StoreURL) -> int | None:
    """The schema version of a SQLite store, ``None`` when there is no store (no file, no events table).

    A file whose events table is not phaselog's (neither ``phaselog_meta`` nor the
    hash chain beside it, as in every phaselog store since version 1) is refused
    with :class:`NotAPhaselogStore`, whether the store is to be created or not.
    """
    path = location.sqlite_path
    assert path is not None  # noqa: S101 - only called for SQLite
    if not path.is_file():
        return None

    def read() -> tuple[set[str], object]:
        conn = sqlite3.connect(sqlite_uri(location, read_only=True), uri=True, timeout=_SQLITE_BUSY_S)
        try:
            names = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if SCHEMA_META_TABLE not in names:
                return names, None
            row = conn.execute(
                f"SELECT value FROM {SCHEMA_META_TABLE} WHERE key = 'schema_version'"
            ).fetchone()
            return names, row[0] if row else None
        finally:
            conn.close()

    try:  # a file another process is creating this moment may be locked while it switches to WAL
        names, raw = retry(read, policy=_PROBE_RETRIES, retry_on=sqlite3.OperationalError, when=_locked)
    except sqlite3.Error as exc:
        msg = f"cannot open {location.display}: {first_line(exc)}"
        raise StoreUnavailable(msg) from exc
    if SQLITE_EVENTS_TABLE not in names:
        return None
    if SCHEMA_META_TABLE not in names and CHAIN_TABLE not in names:  # every phaselog store has a chain
        msg = (
            f"{location.display} is not a phaselog store: its {SQLITE_EVENTS_TABLE} table is not phaselog's "
            f"(none of phaselog's tables, such as {CHAIN_TABLE} or {SCHEMA_META_TABLE}, is there); "
            "give the URL of a phaselog store, or a new file"
        )
        raise NotAPhaselogStore(msg)
    return 1 if SCHEMA_META_TABLE not in names else _version(location, raw)


def _locked(exc: BaseException) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def postgres_schema_version(location: StoreURL, conn: psycopg.Connection[Any]) -> int | None:
    """The schema version of a PostgreSQL store, ``None`` when its events table does not exist."""
    schema = Identifier(location.schema).as_string(conn)
    found = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
        (f"{schema}.{PG_EVENTS_TABLE}", f"{schema}.{SCHEMA_META_TABLE}"),
    ).fetchone()
    if found is None or not found[0]:
        return None
    if not found[1]:
        return 1
    query = SQL("SELECT value FROM {}.{} WHERE key = 'schema_version'").format(
        Identifier(location.schema), Identifier(SCHEMA_META_TABLE)
    )
    row = conn.execute(query).fetchone()
    return _version(location, row[0] if row else None)


def _version(location: StoreURL, raw: object) -> int:
    if raw is None:
        return 1
    try:
        return int(str(raw))
    except ValueError as exc:
        msg = f"{location.display}: unreadable schema version {raw!r} in {SCHEMA_META_TABLE}"
        raise ValidationFailed(msg) from exc


def check_version(location: StoreURL, found: int | None, *, create: bool) -> None:
    """Refuse a store this code cannot open as asked: missing (unless creating), older, or newer."""
    if found is None:
        if not create:
            lives = " (a memory:// store lives only inside the process that opened it)"
            note = lives if location.kind == "memory" else " (nothing was created)"
            raise NotFound(f"no phaselog store at {location.display}{note}")
        return
    if found > SCHEMA_VERSION:
        msg = (
            f"{location.display} has schema version {found}, newer than this phaselog "
            f"({phaselog_version()}, schema {SCHEMA_VERSION}): upgrade phaselog"
        )
        raise StoreUnavailable(msg)
    if found < SCHEMA_VERSION and not create:
        msg = (
            f"{location.display} has schema version {found}, older than this phaselog's "
            f"{SCHEMA_VERSION}: run `phaselog migrate --url URL` first"
        )
        raise SchemaOutdated(msg)


# -- finishing an upgrade ---------------------------------------------------------------------------
def record_upgrade(store: UpgradingStore, from_version: int) -> int:
    """After the recorder upgraded ``store`` from ``from_version``: fix open flags, record it.

    Returns how many streams of the index were marked closed.
    """
    closed = _closed_streams(store)
    note = dump_json(
        {
            "at": datetime.now(UTC).isoformat(),
            "by": f"phaselog {phaselog_version()}",
            "closed_streams": len(closed),
        }
    ).decode()
    key = f"migrated:{from_version}->{SCHEMA_VERSION}"
    recorder = store.app.recorder
    with translate_errors(f"recording the upgrade of {store.url}"):
        if isinstance(recorder, PhaselogPostgresApplicationRecorder):
            _record_postgres(recorder, closed, key, note)
        elif isinstance(recorder, PhaselogSQLiteApplicationRecorder):
            _record_sqlite(recorder, closed, key, note)
    return len(closed)


def _record_postgres(
    recorder: PhaselogPostgresApplicationRecorder, closed: list[str], key: str, note: str
) -> None:
    ids = {"schema": Identifier(recorder.datastore.schema)}
    with recorder.datastore.transaction(commit=True) as cur:
        if closed:
            cur.execute(
                SQL("UPDATE {schema}.{heads} SET open = false WHERE stream_id = ANY(%s)").format(
                    heads=Identifier(HEADS_TABLE), **ids
                ),
                (closed,),
            )
        cur.execute(
            SQL(
                "INSERT INTO {schema}.{meta} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ).format(meta=Identifier(SCHEMA_META_TABLE), **ids),
            (key, note),
        )


def _record_sqlite(
    recorder: PhaselogSQLiteApplicationRecorder, closed: list[str], key: str, note: str
) -> None:
    with recorder.datastore.transaction(commit=True) as cur:
        update = f"UPDATE {HEADS_TABLE} SET open = 0 WHERE stream_id = ?"
        cur.executemany(update, [(s,) for s in closed])
        cur.execute(
            f"INSERT INTO {SCHEMA_META_TABLE} (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, note),
        )


def _closed_streams(store: UpgradingStore) -> list[str]:
    """Streams the index counts as open whose aggregate says they are not (``stream_open`` False)."""
    load_domain_modules()
    closed = []
    for head in store.stream_heads("", open_only=True):
        try:
            with translate_errors(f"loading {head.stream_id!r}"):
                aggregate: Any = store.app.repository.get(head.stream_id)
        except PhaselogError:
            continue  # unreadable streams keep their flag; verify reports them
        if not getattr(aggregate, "stream_open", True):
            closed.append(head.stream_id)
    return closed


def migrate(
    url: str | None, open_store: Callable[[str | None], AbstractContextManager[UpgradedStore]]
) -> Migration:
    """Upgrade phaselog's own tables of the store at ``url`` to this version and record it.

    ``open_store`` opens the store, creating (so upgrading) its tables:
    :func:`phaselog.adapters.open_store`, given by the caller. The store must
    exist (``NotFound`` otherwise; nothing is created). A store already at this
    version is left as it is; a newer one is refused.
    """
    location = parse_url(url)
    before = probe(location, create=False)
    check_version(location, before, create=True)  # missing or newer: refused here
    if before is None:
        raise NotFound(f"no phaselog store at {location.display} (nothing was created)")
    if before >= SCHEMA_VERSION:
        return Migration(location.display, before, before, 0)
    with open_store(url) as store:  # opening upgrades the tables and records the upgrade
        closed = store.closed_on_upgrade
    return Migration(location.display, before, SCHEMA_VERSION, closed)


def probe(location: StoreURL, *, create: bool) -> int | None:
    """The schema version of the store at ``location`` (``None``: no store there).

    On PostgreSQL this is the first, direct connection, so an unreachable server
    fails fast with its real reason; with ``create`` it also creates the URL's
    schema when it does not exist yet (and only then: ``CREATE SCHEMA`` needs a
    privilege that a role using an existing schema may not have).
    """
    if location.kind == "memory":
        return None
    if location.kind == "sqlite":
        return sqlite_schema_version(location)
    with (
        translate_errors(f"opening {location.display}"),
        psycopg.connect(
            make_conninfo("", **location.conninfo), connect_timeout=location.connect_timeout, autocommit=True
        ) as conn,
    ):
        found = postgres_schema_version(location, conn)
        if found is None and create and location.schema != "public":
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (location.schema,))
            if exists.fetchone() is None:
                with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema):
                    conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(location.schema)))
        return found
