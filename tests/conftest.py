"""Fixtures: every store-level test runs on memory, SQLite and a real PostgreSQL."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from phaselog.adapters import Store, open_store
from phaselog.projections.runner import Projections

from pgserver import PostgresNotAvailable, PostgresServer

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ALL_KINDS = ["memory", "sqlite", "postgresql"]
DURABLE_KINDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a real PostgreSQL: $PHASELOG_TEST_DSN, else a throwaway server we start."""
    dsn = os.environ.get("PHASELOG_TEST_DSN")
    if dsn:
        yield dsn
        return
    try:
        server = PostgresServer.start()
    except (PostgresNotAvailable, OSError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"no PostgreSQL on this machine: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


def schema_url(dsn: str) -> str:
    """``dsn`` with a fresh schema of its own (an empty store)."""
    schema = "t_" + uuid.uuid4().hex[:12]
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}schema={schema}"


@pytest.fixture
def make_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Build a fresh, empty store URL of a kind ("memory", "sqlite" or "postgresql")."""

    def make(kind: str) -> str:
        if kind == "memory":
            return "memory://"
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / ('store-' + uuid.uuid4().hex[:8] + '.db')}"
        if kind == "postgresql":
            return schema_url(request.getfixturevalue("pg_dsn"))
        raise ValueError(kind)

    return make


@pytest.fixture(params=ALL_KINDS)
def store_url(request: pytest.FixtureRequest, make_url: Callable[[str], str]) -> str:
    """A fresh store URL, once per kind of store."""
    return make_url(request.param)


@pytest.fixture(params=DURABLE_KINDS)
def durable_url(request: pytest.FixtureRequest, make_url: Callable[[str], str]) -> str:
    """A fresh URL of a store that survives its process (SQLite, PostgreSQL)."""
    return make_url(request.param)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, empty store of each kind, closed after the test."""
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def durable_store(durable_url: str) -> Iterator[Store]:
    """An open, empty SQLite or PostgreSQL store, closed after the test."""
    with open_store(durable_url) as opened:
        yield opened


def raw_execute(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run SQL behind phaselog's back (for tamper and corruption tests)."""
    if url.startswith("sqlite:///"):
        import sqlite3  # noqa: PLC0415

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql, params).fetchall())
    base, _, query = url.partition("?")
    schema = query.removeprefix("schema=") or "public"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        cur = conn.execute(sql.encode(), params)
        return list(cur.fetchall()) if cur.description else []


def load_script(folder: str, name: str) -> ModuleType:
    """Import ``ROOT/folder/name.py`` (an example or a benchmark) as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves a model's postponed annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that frees non-cooperative hooks when the test ends."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def views_made() -> Iterator[list[Projections]]:
    """Projections opened by a test, closed at its end."""
    made: list[Projections] = []
    yield made
    for views in made:
        views.close()


# What a build reads: the metadata, the readme and the four layer folders.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "domain", "runtime", "projections", "adapters")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built offline from a clean copy of the sources (never from a stale build/ folder)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = base / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("phaselog-*.whl")
    with zipfile.ZipFile(built) as zf:
        yield zf


@pytest.fixture
def filled_url(durable_url: str) -> str:
    """A SQLite or PostgreSQL store holding plugin:cam (with state) and the delivered task:cli:t1."""
    from cli_support import fill  # noqa: PLC0415 - the CLI tests' own data

    with open_store(durable_url) as store:
        fill(store)
        store.projections.catch_up()
    return durable_url
