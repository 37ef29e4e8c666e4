"""SQLite: phaselog's application recorder (the embedded default store)."""

from phaselog.adapters.sqlite.recorder import (
    PhaselogSQLiteApplicationRecorder,
)

__all__ = ["PhaselogSQLiteApplicationRecorder"]
