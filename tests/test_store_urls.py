"""Store URLs: every libpq option reaches the connection, phaselog's own parameters are checked."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from pydantic import BaseModel

from phaselog.adapters import open_store
from phaselog.adapters.urls import parse_url
from phaselog.domain.errors import PayloadTooLarge, StoreUnavailable, ValidationFailed


class Blob(BaseModel):
    """A plugin state of a chosen size."""

    text: str


def test_sqlalchemy_spelling_and_libpq_options_are_accepted() -> None:
    """postgresql+psycopg:// is accepted and libpq options such as sslmode are kept."""
    url = parse_url(
        "postgresql+psycopg://me@db.example:6543/ops?sslmode=require&application_name=svc&schema=ops"
    )
    assert url.kind == "postgresql"
    assert url.schema == "ops"
    assert url.conninfo["sslmode"] == "require"
    assert url.conninfo["application_name"] == "svc"
    assert url.env["POSTGRES_PORT"] == "6543"


def test_unknown_parameters_are_an_error() -> None:
    """A typo in a query parameter is refused instead of silently ignored."""
    with pytest.raises(ValidationFailed, match="shcema"):
        parse_url("postgresql://me@localhost/ops?shcema=ops")
    with pytest.raises(ValidationFailed, match="unknown URL parameter"):
        parse_url("sqlite:///x.db?schema=ops")


def test_pool_and_timeout_parameters() -> None:
    """pool_min, pool_max and statement_timeout become the pool size and a server-side timeout."""
    url = parse_url("postgresql://me@localhost/ops?pool_min=2&pool_max=5&statement_timeout=1500")
    assert (url.env["POSTGRES_POOL_SIZE"], url.env["POSTGRES_MAX_OVERFLOW"]) == ("2", "3")
    assert "statement_timeout=1500" in url.conninfo["options"]
    for bad in ("pool_min=0", "pool_min=3&pool_max=2", "statement_timeout=soon", "max_event_bytes=0"):
        with pytest.raises(ValidationFailed):
            parse_url(f"postgresql://me@localhost/ops?{bad}")


def test_sslmode_require_is_enforced(pg_dsn: str) -> None:
    """sslmode=require against a server without TLS fails instead of connecting in the clear."""
    with pytest.raises(StoreUnavailable, match="SSL"):
        open_store(f"{pg_dsn}?sslmode=require")


def test_a_unix_socket_directory_in_host_is_used(pg_dsn: str) -> None:
    """postgresql:///db?host=/socket/dir&port=N connects through that socket, not localhost:5432."""
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SHOW unix_socket_directories").fetchone()
        port = conn.info.port
    assert row is not None
    socket_dir = str(row[0]).split(",")[0].strip()
    with open_store(
        f"postgresql:///postgres?host={socket_dir}&port={port}&user=postgres&schema=sock"
    ) as store:
        assert store.max_position() >= 0
        datastore = store.app.recorder.datastore  # type: ignore[attr-defined]
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT inet_server_addr() IS NULL AS local")
            assert cursor.fetchone()["local"] is True  # a socket connection has no server address


def test_max_event_bytes_from_the_url_refuses_before_writing(make_url: Callable[[str], str]) -> None:
    """An event larger than the URL's max_event_bytes raises PayloadTooLarge and writes nothing."""
    for kind in ("memory", "sqlite", "postgresql"):
        base = make_url(kind)
        url = base + ("&" if "?" in base else "?") + "max_event_bytes=2000"
        with open_store(url) as store:
            before = store.max_position()
            with pytest.raises(PayloadTooLarge):
                store.plugins.handle("big", lambda mgr: mgr.put(1, Blob(text="x" * 5000)))
            assert store.max_position() == before


def test_a_large_state_below_the_limit_is_written_without_hanging(make_url: Callable[[str], str]) -> None:
    """An event of 3.9 MiB (below the 4 MiB default) is stored and read back on PostgreSQL."""
    # A model's plugin state travels as its JSON in the event: 3.9 MiB of state makes a 3.9 MiB
    # event (eventsourcing's pipelined recorder hung on events from about 6 MB on).
    with open_store(make_url("postgresql") + "&statement_timeout=60000") as store:
        state = Blob(text="y" * int(3.9 * 1024 * 1024 - 200))
        store.plugins.handle("large", lambda mgr: mgr.put(1, state))
        assert len(store.notifications(store.max_position())[0].state) > int(3.8 * 1024 * 1024)
        assert store.plugins.handle("large", lambda mgr: mgr.get(Blob)) == (1, state)
