"""Stores of schema version 1 (a global chain, a table-locking recorder) open, verify and grow today."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import BaseModel

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.history import seal, verify
from phaselog.domain import PluginPhase

from conftest import raw_execute

FIXTURES = Path(__file__).parent / "fixtures"
# The fixture files of a store written at schema version 1, and the schema name inside the SQL dump.
VERSION1_SQLITE = FIXTURES / "schema-v1.db"
VERSION1_POSTGRES = FIXTURES / "schema-v1-postgres.sql"
VERSION1_SCHEMA = "schema_v1"


class Stats(BaseModel):
    """The plugin state the fixture stores recorded."""

    pages: int = 0


def _version1_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "version1.db"
    shutil.copy(VERSION1_SQLITE, path)
    return f"sqlite:///{path}"


def _version1_postgres(pg_dsn: str) -> str:
    schema = "w1_" + uuid.uuid4().hex[:10]
    script = VERSION1_POSTGRES.read_text().replace(VERSION1_SCHEMA, schema)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(script.encode())
    return f"{pg_dsn}?schema={schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def version1_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A copy of the schema-version-1 store fixture, on SQLite or in a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return _version1_sqlite(tmp_path)
    return _version1_postgres(request.getfixturevalue("pg_dsn"))


def _check_history(store: Store) -> None:
    alpha = store.plugins.machine("alpha")
    assert alpha.phase is PluginPhase.BUILDING
    assert [t.to for t in alpha.history()][-1] is PluginPhase.BUILDING
    assert store.plugins.handle("beta", lambda mgr: mgr.get(Stats)) == (1, Stats(pages=3))


def test_a_version1_store_verifies_after_migration(version1_url: str) -> None:
    """Opening migrates in place; the old global chain still verifies every old event."""
    with open_store(version1_url) as store:
        report = verify(store)
        assert report.ok, report.problems
        assert report.checked == store.max_position() == 9
        _check_history(store)


def test_a_version1_store_indexes_its_existing_streams(version1_url: str) -> None:
    """The stream index of a migrated store lists the streams written before it existed."""
    with open_store(version1_url) as store:
        heads = {h.stream_id: h.version for h in store.stream_heads("plugin:")}
        assert heads == {
            "plugin:alpha": len(store.stream("plugin:alpha")),
            "plugin:beta": len(store.stream("plugin:beta")),
        }


def test_new_events_on_a_version1_store_chain_per_stream_and_verify(version1_url: str) -> None:
    """Events appended after migration link to the old chain's digests and the whole history verifies."""
    with open_store(version1_url) as store:
        alpha = store.plugins.machine("alpha")
        alpha.transition_to(PluginPhase.VALIDATING, "after the upgrade")
        store.plugins.machine("gamma").transition_to(PluginPhase.INSTALLING, "a new plugin")
        assert seal(store) is not None
    with open_store(version1_url) as store:  # and a second open changes nothing
        report = verify(store)
        assert report.ok, report.problems
        assert report.checked == store.max_position() > 9
        assert report.seals == 1
        _check_history_after(store)


def _check_history_after(store: Store) -> None:
    assert store.plugins.machine("alpha").phase is PluginPhase.VALIDATING
    assert store.plugins.machine("gamma").phase is PluginPhase.INSTALLING


def test_tampering_with_a_version1_event_is_still_named(version1_url: str) -> None:
    """An old event edited after the upgrade is reported at its position, as before."""
    table = "stored_events" if version1_url.startswith("sqlite") else "phaselog_events"
    with open_store(version1_url) as store:
        if version1_url.startswith("sqlite"):
            raw_execute(version1_url, f"DROP TRIGGER {table}_no_update")
            raw_execute(version1_url, f"UPDATE {table} SET topic = 'x' WHERE rowid = 4")
        else:
            raw_execute(version1_url, f"ALTER TABLE {table} DISABLE TRIGGER USER")
            raw_execute(version1_url, f"UPDATE {table} SET topic = 'x' WHERE notification_id = 4")
        assert [(p.position, p.kind) for p in verify(store).problems] == [(4, "changed")]
