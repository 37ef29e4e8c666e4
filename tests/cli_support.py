"""Running the real ``phaselog`` command as a subprocess, and stores for the CLI tests to read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
from pydantic import BaseModel

from phaselog.adapters import Store
from phaselog.domain import PluginPhase
from phaselog.runtime import TaskController

from conftest import raw_execute

FIXTURES = Path(__file__).parent / "fixtures"


def phaselog(
    *args: str, cwd: Path, columns: int = 160, env: dict[str, str] | None = None, module: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``phaselog ARGS`` (or ``python -m phaselog ARGS``) in ``cwd`` with a plain environment."""
    exe = shutil.which("phaselog")
    cmd = [sys.executable, "-m", "phaselog"] if module or exe is None else [exe]
    base = {"COLUMNS": str(columns), "PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run(
        [*cmd, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**base, **(env or {})},
    )


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful command printed."""
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The command failed with ``status``, nothing on stdout, one ``error:`` line on stderr."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def assert_usage_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """A usage error: status 2, nothing on stdout, one ``Error:`` line naming every one of ``words``."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], (word, result.stderr)
    return errors[0]


class Pages(BaseModel):
    """A plugin's state in the CLI tests."""

    pages: int = 0


class QuickRunner:
    """A task runner that logs, reports progress and completes."""

    def on_task_pending(self, _ctx: Any, task: Any) -> None:
        """Log that the task is queued."""
        task.add_log_entry(20, "queued")

    def on_task_running(self, _ctx: Any, task: Any) -> None:
        """Two steps of progress."""
        for i in range(2):
            task.set_progress(i + 1, 2)

    def on_task_completed(self, ctx: Any, task: Any, state: Any, *args: Any) -> None:
        """Nothing to clean up."""


def fill(store: Store) -> None:
    """A plugin with state (stream plugin:cam) and one completed, delivered task (task:cli:t1)."""
    machine = store.plugins.machine("cam")
    machine.transition_to(PluginPhase.INSTALLING, "install")
    machine.handle(lambda mgr: mgr.put(1, Pages(pages=3)))
    machine.transition_to(PluginPhase.INSTALLED, "installed")
    done = threading.Event()
    tasks = TaskController(store, "cli", QuickRunner(), max_workers=1)
    try:
        tasks.launch_task("t1", metadata={"month": "2026-11"}, on_status=lambda _status: done.set())
        assert done.wait(60), "the task never finished"
    finally:
        tasks.close()


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL."""
    return Path(url.removeprefix("sqlite:///"))


def pg_schema_exists(url: str) -> bool:
    """True when the schema of a PostgreSQL test URL exists."""
    base, _, query = url.partition("?")
    schema = query.removeprefix("schema=")
    with psycopg.connect(base, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def store_exists(url: str) -> bool:
    """True when anything of the store at ``url`` exists (its SQLite file, its PostgreSQL schema)."""
    return sqlite_path(url).exists() if url.startswith("sqlite") else pg_schema_exists(url)


def schema_v1_url(kind: str, tmp_path: Path, pg_dsn: str | None) -> str:
    """A copy of the schema-version-1 fixture store (schema version 1, no phaselog_meta)."""
    if kind == "sqlite":
        path = tmp_path / "schema-v1.db"
        shutil.copy(FIXTURES / "schema-v1.db", path)
        return f"sqlite:///{path}"
    assert pg_dsn is not None
    schema = "w1_" + uuid.uuid4().hex[:10]
    script = (FIXTURES / "schema-v1-postgres.sql").read_text().replace("schema_v1", schema)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(script.encode())
    return f"{pg_dsn}?schema={schema}"


def meta(url: str) -> dict[str, str]:
    """The rows of phaselog_meta ({} when the table does not exist)."""
    if url.startswith("sqlite"):
        tables = raw_execute(url, "SELECT name FROM sqlite_master WHERE name = 'phaselog_meta'")
    else:
        schema = url.partition("?")[2].removeprefix("schema=")
        tables = raw_execute(url, "SELECT to_regclass(%s)", (f"{schema}.phaselog_meta",))
        tables = [t for t in tables if t[0] is not None]
    if not tables:
        return {}
    return {str(k): str(v) for k, v in raw_execute(url, "SELECT key, value FROM phaselog_meta")}
