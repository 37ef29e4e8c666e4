"""The recorder classes under their wave-1 names, and the chain helpers (kept for imports).

The recorders now live in :mod:`phaselog.adapters.postgres`,
:mod:`phaselog.adapters.sqlite` and :mod:`phaselog.adapters.memory`; the chain
digests in :mod:`phaselog.adapters.audit.chain`. Stores opened with the wave-1
``APPLICATION_RECORDER_TOPIC`` values resolve to the current classes.
"""

from phaselog.adapters.audit.chain import GENESIS_DIGEST, chain_digest
from phaselog.adapters.postgres import APPEND_ONLY_MESSAGE, CHAIN_TABLE, PhaselogPostgresApplicationRecorder
from phaselog.adapters.sqlite import PhaselogSQLiteApplicationRecorder

__all__ = [
    "APPEND_ONLY_MESSAGE",
    "CHAIN_TABLE",
    "GENESIS_DIGEST",
    "AppendOnlyPostgresApplicationRecorder",
    "AppendOnlySQLiteApplicationRecorder",
    "chain_digest",
]

AppendOnlyPostgresApplicationRecorder = PhaselogPostgresApplicationRecorder
AppendOnlySQLiteApplicationRecorder = PhaselogSQLiteApplicationRecorder
