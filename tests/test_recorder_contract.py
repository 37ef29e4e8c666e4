"""eventsourcing's own recorder contract suites, run against phaselog's append-only recorders."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.tests import persistence as contract

from phaselog.adapters import open_store
from phaselog.adapters.recorders import (
    AppendOnlyPostgresApplicationRecorder,
    AppendOnlySQLiteApplicationRecorder,
)


class _StoreRecorderCase(contract.ApplicationRecorderTestCase[ApplicationRecorder]):
    """Builds each recorder through ``open_store`` so the suite checks what users get."""

    __test__ = False

    url_kind = ""
    url = ""

    def new_originator_id(self) -> str:
        return str(uuid.uuid4())

    def create_recorder(self) -> ApplicationRecorder:
        store = open_store(self.url)
        before = set(threading.enumerate())

        def close() -> None:
            # eventsourcing's threaded cases stop their reader threads without joining them: wait for
            # them (bounded) so the store is never closed under a thread still using its connection.
            for thread in set(threading.enumerate()) - before:
                thread.join(timeout=30)
            store.close()

        self.addCleanup(close)
        return store.app.recorder

    # Speed lives in benchmarks/, not in tests: these two timing cases are not collected.
    test_concurrent_throughput = None  # type: ignore[assignment]
    test_performance = None  # type: ignore[assignment]


class TestSQLiteRecorderContract(_StoreRecorderCase):
    """eventsourcing's application recorder contract on the SQLite append-only recorder."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _fresh_file(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / (uuid.uuid4().hex + '.db')}"

    def test_recorder_class(self) -> None:
        """The SQLite store records through the append-only recorder."""
        assert isinstance(self.create_recorder(), AppendOnlySQLiteApplicationRecorder)


class TestPostgresRecorderContract(_StoreRecorderCase):
    """eventsourcing's application recorder contract on the PostgreSQL append-only recorder."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _fresh_schema(self, pg_dsn: str) -> None:
        self.url = f"{pg_dsn}?schema=c_{uuid.uuid4().hex[:12]}"

    def test_recorder_class(self) -> None:
        """The PostgreSQL store records through the append-only recorder."""
        assert isinstance(self.create_recorder(), AppendOnlyPostgresApplicationRecorder)
