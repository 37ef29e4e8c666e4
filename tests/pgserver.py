"""Start and stop a throwaway PostgreSQL server for the test session.

Used by ``conftest.py`` when ``PHASELOG_TEST_DSN`` is not set, and by the
benchmarks. Runs ``initdb`` and ``pg_ctl`` as the ``postgres`` user when the
current user is root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PostgresNotAvailable(RuntimeError):
    """No PostgreSQL server binaries were found on this machine."""


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if candidates:
        return Path(candidates[-1]).parent
    raise PostgresNotAvailable("pg_ctl not found on PATH nor under /usr/lib/postgresql")


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway server; ``dsn`` reaches its ``postgres`` database."""

    datadir: Path
    port: int
    bindir: Path
    as_postgres: bool

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = find_bindir()
        as_postgres = os.geteuid() == 0
        datadir = Path(tempfile.mkdtemp(prefix="phaselog-pg-"))
        if as_postgres:
            shutil.chown(datadir, user="postgres", group="postgres")
        server = cls(datadir=datadir, port=free_port(), bindir=bindir, as_postgres=as_postgres)
        server._run("initdb", "-D", str(datadir / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        opts = (
            f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={datadir} "
            "-c fsync=on -c max_connections=200 -c shared_buffers=128MB -c max_prepared_transactions=10"
        )
        if (bindir.parent / "lib" / "pg_stat_statements.so").exists():  # server time, for the benchmarks
            opts += " -c shared_preload_libraries=pg_stat_statements"
        server._run(
            "pg_ctl", "-D", str(datadir / "data"), "-o", opts, "-l", str(datadir / "log"), "-w", "start"
        )
        return server

    def restart_immediately(self) -> None:
        """Crash-restart the server (``pg_ctl restart -m immediate``): no clean shutdown, WAL replay."""
        log = str(self.datadir / "log")  # the restarted server writes there, not into our pipes
        self._run("pg_ctl", "-D", str(self.datadir / "data"), "-m", "immediate", "-l", log, "-w", "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)
