"""Turn a phaselog store URL into eventsourcing persistence settings."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from phaselog.adapters.codec import MAX_EVENT_BYTES
from phaselog.adapters.errors import first_line
from phaselog.domain.errors import ValidationFailed
from phaselog.runtime.horizon import DEFAULT_STALL_UNHEALTHY, DEFAULT_STALL_WARNING, StallWatch
from phaselog.runtime.sealing import DEFAULT_SEAL_INTERVAL

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_URL",
    "MAX_EVENT_BYTES_ENV",
    "PHASELOG_PARAMETERS",
    "StoreURL",
    "check_stall_thresholds",
    "parse_url",
    "stall_watch",
]

DEFAULT_URL = "sqlite:///phaselog.db"
DEFAULT_MAX_EVENT_BYTES = MAX_EVENT_BYTES  # one limit: the codec's
MAX_EVENT_BYTES_ENV = "PHASELOG_MAX_EVENT_BYTES"
DEFAULT_CONNECT_TIMEOUT_S = 5
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
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S
    stall_warning: float = DEFAULT_STALL_WARNING
    stall_unhealthy: float = DEFAULT_STALL_UNHEALTHY
    seal_interval: float = DEFAULT_SEAL_INTERVAL
    archive_dir: str | None = None
    """Where the store's archives are read through from (``?archive_dir=DIR``), if anywhere."""


def parse_url(url: str | None) -> StoreURL:
    """Parse ``url`` (or ``$PHASELOG_URL``, or the SQLite default) into a :class:`StoreURL`."""
    raw = url or os.environ.get("PHASELOG_URL") or DEFAULT_URL
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        own = _own_params(raw, parts.query)
        limit = _int_param(own, "max_event_bytes", DEFAULT_MAX_EVENT_BYTES, minimum=1)
        warning, unhealthy = _stall_params(own)
        return StoreURL(
            kind="memory",
            display="memory://",
            env={
                "PERSISTENCE_MODULE": "phaselog.adapters.memory:MemoryFactory",
                MAX_EVENT_BYTES_ENV: str(limit),
            },
            max_event_bytes=limit,
            stall_warning=warning,
            stall_unhealthy=unhealthy,
            seal_interval=_seal_param(own),
        )
    if scheme == "sqlite":
        own = _own_params(raw, parts.query)
        limit = _int_param(own, "max_event_bytes", DEFAULT_MAX_EVENT_BYTES, minimum=1)
        warning, unhealthy = _stall_params(own)
        found = _sqlite(raw, parts.netloc, parts.path)
        return StoreURL(
            kind=found.kind,
            display=found.display,
            env={**found.env, MAX_EVENT_BYTES_ENV: str(limit)},
            sqlite_path=found.sqlite_path,
            max_event_bytes=limit,
            stall_warning=warning,
            stall_unhealthy=unhealthy,
            seal_interval=_seal_param(own),
            archive_dir=own.get("archive_dir") or None,
        )
    if scheme in _POSTGRES_SCHEMES:
        return _postgres(raw)
    msg = f"unsupported store URL {raw!r}: use sqlite:///FILE, postgresql://USER@HOST/DB or memory://"
    raise ValidationFailed(msg)


_OWN_PARAMETERS = frozenset(
    {"max_event_bytes", "stall_warning", "stall_unhealthy", "seal_interval", "archive_dir"}
)


def _own_params(raw: str, query: str) -> dict[str, str]:
    """The query parameters of a memory or SQLite URL (``max_event_bytes``, stall thresholds, sealing)."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - _OWN_PARAMETERS)
    if unknown:
        known = ", ".join(sorted(_OWN_PARAMETERS))
        msg = f"unknown URL parameter {unknown[0]!r} in {raw!r} (known: {known})"
        raise ValidationFailed(msg)
    return params


def _stall_params(params: dict[str, str]) -> tuple[float, float]:
    """``stall_warning`` and ``stall_unhealthy`` (seconds, warning <= unhealthy) from URL parameters."""
    warning = _seconds_param(params, "stall_warning", DEFAULT_STALL_WARNING)
    unhealthy = _seconds_param(params, "stall_unhealthy", max(DEFAULT_STALL_UNHEALTHY, warning))
    return check_stall_thresholds(warning, unhealthy)


def check_stall_thresholds(warning: object, unhealthy: object) -> tuple[float, float]:
    """The two stall thresholds in seconds, refused unless finite and ``0 < warning <= unhealthy``."""
    warning, unhealthy = _seconds("stall_warning", warning), _seconds("stall_unhealthy", unhealthy)
    if not 0 < warning <= unhealthy:
        msg = f"stall_warning ({warning} s) must be above 0 and at most stall_unhealthy ({unhealthy} s)"
        raise ValidationFailed(msg)
    return warning, unhealthy


def _seal_param(params: dict[str, str]) -> float:
    """``seal_interval`` (seconds, at least 0; 0: the store never seals on its own) from URL parameters."""
    raw = params.get("seal_interval")
    if raw is None:
        return DEFAULT_SEAL_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        msg = f"invalid URL parameter seal_interval={raw!r}: expected a number of seconds, at least 0"
        raise ValidationFailed(msg)
    return value


def _seconds(name: str, value: object) -> float:
    """``value`` as a finite number of seconds (not a bool), else ``ValidationFailed``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{name} must be a finite number of seconds, got {value!r}"
        raise ValidationFailed(msg)
    return float(value)


def _seconds_param(params: dict[str, str], name: str, default: float) -> float:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        msg = f"invalid URL parameter {name}={raw!r}: expected a number of seconds above 0"
        raise ValidationFailed(msg)
    return value


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
            "APPLICATION_RECORDER_TOPIC": ("phaselog.adapters.sqlite:PhaselogSQLiteApplicationRecorder"),
        },
    )


# phaselog's own query parameters; every other one goes to libpq (sslmode, host, port, options, ...).
PHASELOG_PARAMETERS = frozenset(
    {
        "schema",
        "pool_min",
        "pool_max",
        "statement_timeout",
        "max_event_bytes",
        "partition_size",
        "stall_warning",
        "stall_unhealthy",
        "seal_interval",
        "archive_dir",
    }
)
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
_POSTGRES_SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")


def _int_param(params: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        msg = f"invalid URL parameter {name}={raw!r}: expected a whole number of at least {minimum}"
        raise ValidationFailed(msg)
    return value


def _postgres(raw: str) -> StoreURL:
    """Parse a PostgreSQL URL with libpq's own parser (psycopg.conninfo), phaselog's parameters split out."""
    scheme, _, rest = raw.partition("://")
    base, _, query = rest.partition("?")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        (ours.__setitem__(key, value) if key in PHASELOG_PARAMETERS else theirs.append((key, value)))
    libpq_url = "postgresql://" + base + ("?" + urlencode(theirs) if theirs else "")
    try:
        conninfo = {k: str(v) for k, v in conninfo_to_dict(libpq_url).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        msg = f"invalid PostgreSQL URL {_redact(raw)!r}: {first_line(exc)}"
        raise ValidationFailed(msg) from exc
    if not conninfo.get("dbname"):
        msg = "invalid PostgreSQL URL: the database name is missing (postgresql://USER@HOST:PORT/DB)"
        raise ValidationFailed(msg)
    del scheme
    schema = ours.get("schema", "public")
    if not schema or not set(schema) <= _SCHEMA_CHARS or schema[0].isdigit():
        msg = f"invalid schema name {schema!r}: use lowercase letters, digits and underscores (not first)"
        raise ValidationFailed(msg)
    pool_min = _int_param(ours, "pool_min", 4, minimum=1)
    pool_max = _int_param(ours, "pool_max", max(12, pool_min), minimum=pool_min)
    statement_timeout = _int_param(ours, "statement_timeout", DEFAULT_STATEMENT_TIMEOUT_MS, minimum=0)
    max_event_bytes = _int_param(ours, "max_event_bytes", DEFAULT_MAX_EVENT_BYTES, minimum=1)
    warning, unhealthy = _stall_params(ours)
    conninfo.setdefault("host", "localhost")
    conninfo.setdefault("port", "5432")
    conninfo.setdefault("user", os.environ.get("PGUSER", "postgres"))
    connect_timeout = _int_param(conninfo, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_S, minimum=1)
    conninfo.pop("connect_timeout", None)  # callers pass it explicitly (StoreURL.connect_timeout)
    options = conninfo.get("options", "")
    conninfo["options"] = f"{options} -c statement_timeout={statement_timeout}".strip()
    extra = {k: v for k, v in conninfo.items() if k not in {"dbname", "host", "port", "user", "password"}}
    extra["connect_timeout"] = str(connect_timeout)
    env = {
        "PERSISTENCE_MODULE": "phaselog.adapters.postgres:PhaselogPostgresFactory",
        "POSTGRES_DBNAME": conninfo["dbname"],
        "POSTGRES_HOST": conninfo["host"],
        "POSTGRES_PORT": conninfo["port"],
        "POSTGRES_USER": conninfo["user"],
        "POSTGRES_PASSWORD": conninfo.get("password", ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_CONNECT_TIMEOUT": str(connect_timeout),
        "POSTGRES_POOL_SIZE": str(pool_min),
        "POSTGRES_MAX_OVERFLOW": str(pool_max - pool_min),
        "POSTGRES_PRE_PING": "n",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "ORIGINATOR_ID_TYPE": "text",
        "APPLICATION_RECORDER_TOPIC": "phaselog.adapters.postgres:PhaselogPostgresApplicationRecorder",
        "PHASELOG_POSTGRES_CONNINFO": orjson.dumps(extra).decode(),
        MAX_EVENT_BYTES_ENV: str(max_event_bytes),
        "PHASELOG_PARTITION_SIZE": str(_int_param(ours, "partition_size", 1_000_000, minimum=100)),
    }
    display = f"postgresql://{conninfo['user']}@{conninfo['host']}:{conninfo['port']}/{conninfo['dbname']}"
    if schema != "public":
        display += f"?schema={schema}"
    return StoreURL(
        kind="postgresql",
        display=display,
        env=env,
        conninfo=conninfo,
        schema=schema,
        max_event_bytes=max_event_bytes,
        connect_timeout=connect_timeout,
        stall_warning=warning,
        stall_unhealthy=unhealthy,
        seal_interval=_seal_param(ours),
        archive_dir=ours.get("archive_dir") or None,
    )


def _redact(raw: str) -> str:
    """``raw`` with any password replaced by ``***``."""
    parts = urlsplit(raw)
    if parts.password:
        return raw.replace(f":{parts.password}@", ":***@", 1)
    return raw


def stall_watch(location: StoreURL, warning: float | None, unhealthy: float | None) -> StallWatch:
    """A store's stall watch: the thresholds given as options, else its URL's (defaults 5 s and 30 s)."""
    warn = location.stall_warning if warning is None else _seconds("stall_warning", warning)
    if unhealthy is None:  # a warning given alone raises the URL's unhealthy threshold to meet it
        unhealthy = location.stall_unhealthy if warning is None else max(location.stall_unhealthy, warn)
    warn, bad = check_stall_thresholds(warn, unhealthy)
    return StallWatch(stall_warning=warn, stall_unhealthy=bad)
