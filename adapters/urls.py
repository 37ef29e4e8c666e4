"""Turn a phaselog store URL into eventsourcing persistence settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from phaselog.domain.errors import ValidationFailed

__all__ = ["DEFAULT_URL", "StoreURL", "parse_url"]

DEFAULT_URL = "sqlite:///phaselog.db"
_SCHEMA_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: its kind, a password-free display form, and eventsourcing env."""

    kind: str
    display: str
    env: dict[str, str] = field(default_factory=dict)
    sqlite_path: Path | None = None
    conninfo: dict[str, str] = field(default_factory=dict)
    schema: str = "public"


def parse_url(url: str | None) -> StoreURL:
    """Parse ``url`` (or ``$PHASELOG_URL``, or the SQLite default) into a :class:`StoreURL`."""
    raw = url or os.environ.get("PHASELOG_URL") or DEFAULT_URL
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return StoreURL(
            kind="memory",
            display="memory://",
            env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        )
    if scheme == "sqlite":
        return _sqlite(raw, parts.netloc, parts.path)
    if scheme in {"postgresql", "postgres"}:
        return _postgres(parts.username, parts.password, parts.hostname, parts.port, parts.path, parts.query)
    msg = f"unsupported store URL {raw!r}: use sqlite:///FILE, postgresql://USER@HOST/DB or memory://"
    raise ValidationFailed(msg)


def _sqlite(raw: str, netloc: str, path: str) -> StoreURL:
    if netloc or not path.startswith("/") or path == "/":
        msg = f"invalid SQLite URL {raw!r}: expected sqlite:///relative.db or sqlite:////absolute.db"
        raise ValidationFailed(msg)
    file = Path(unquote(path[1:]))
    return StoreURL(
        kind="sqlite",
        display=f"sqlite:///{file}",
        sqlite_path=file,
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(file),
            "SQLITE_LOCK_TIMEOUT": "30",
            "ORIGINATOR_ID_TYPE": "text",
            "APPLICATION_RECORDER_TOPIC": ("phaselog.adapters.recorders:AppendOnlySQLiteApplicationRecorder"),
        },
    )


def _postgres(  # noqa: PLR0913, PLR0917 - the six parts of one URL
    user: str | None,
    password: str | None,
    host: str | None,
    port: int | None,
    path: str,
    query: str,
) -> StoreURL:
    dbname = unquote(path.lstrip("/"))
    if not dbname:
        msg = "invalid PostgreSQL URL: the database name is missing (postgresql://USER@HOST:PORT/DB)"
        raise ValidationFailed(msg)
    params = parse_qs(query)
    schema = params.get("schema", ["public"])[0]
    if not schema or not set(schema) <= _SCHEMA_CHARS or schema[0].isdigit():
        msg = f"invalid schema name {schema!r}: use lowercase letters, digits and underscores"
        raise ValidationFailed(msg)
    conninfo = {
        "dbname": dbname,
        "host": host or "localhost",
        "port": str(port or 5432),
        "user": unquote(user or os.environ.get("PGUSER", "postgres")),
        "password": unquote(password or ""),
    }
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": conninfo["dbname"],
        "POSTGRES_HOST": conninfo["host"],
        "POSTGRES_PORT": conninfo["port"],
        "POSTGRES_USER": conninfo["user"],
        "POSTGRES_PASSWORD": conninfo["password"],
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "ORIGINATOR_ID_TYPE": "text",
        "APPLICATION_RECORDER_TOPIC": ("phaselog.adapters.recorders:AppendOnlyPostgresApplicationRecorder"),
    }
    display = f"postgresql://{conninfo['user']}@{conninfo['host']}:{conninfo['port']}/{dbname}"
    if schema != "public":
        display += f"?schema={schema}"
    return StoreURL(kind="postgresql", display=display, env=env, conninfo=conninfo, schema=schema)
