"""phaselog's recorders as one family: the protocol they answer, and their earlier names.

The recorders live in :mod:`phaselog.adapters.postgres`, :mod:`phaselog.adapters.sqlite`
and :mod:`phaselog.adapters.memory`; what they add to eventsourcing's recorders is
:class:`~phaselog.adapters.recorder_protocol.PhaselogRecorder`, and
:func:`phaselog_recorder` hands an application's recorder over as one. The
``AppendOnly*`` names are those of phaselog's first releases (schema version 1):
settings that still name them in ``APPLICATION_RECORDER_TOPIC`` resolve to the
current classes. The chain helpers are kept here for imports of those releases too.
"""

from __future__ import annotations

from phaselog.adapters.audit.chain import GENESIS_DIGEST, chain_digest
from phaselog.adapters.memory import MemoryApplicationRecorder
from phaselog.adapters.postgres import APPEND_ONLY_MESSAGE, CHAIN_TABLE, PhaselogPostgresApplicationRecorder
from phaselog.adapters.recorder_protocol import ChainRow, PhaselogRecorder
from phaselog.adapters.sqlite import PhaselogSQLiteApplicationRecorder

__all__ = [
    "APPEND_ONLY_MESSAGE",
    "CHAIN_TABLE",
    "GENESIS_DIGEST",
    "PHASELOG_RECORDERS",
    "AppendOnlyPostgresApplicationRecorder",
    "AppendOnlySQLiteApplicationRecorder",
    "ChainRow",
    "PhaselogRecorder",
    "chain_digest",
    "phaselog_recorder",
]

AppendOnlyPostgresApplicationRecorder = PhaselogPostgresApplicationRecorder
AppendOnlySQLiteApplicationRecorder = PhaselogSQLiteApplicationRecorder

# Every recorder class a phaselog store opens; mypy --strict proves each answers the protocol.
PHASELOG_RECORDERS: tuple[type[PhaselogRecorder], ...] = (
    MemoryApplicationRecorder,
    PhaselogSQLiteApplicationRecorder,
    PhaselogPostgresApplicationRecorder,
)


def phaselog_recorder(recorder: object) -> PhaselogRecorder:
    """``recorder`` as a :class:`PhaselogRecorder`; TypeError for a recorder phaselog did not make."""
    if isinstance(recorder, PHASELOG_RECORDERS):
        return recorder
    msg = f"{type(recorder).__name__} is not a phaselog recorder (memory, SQLite or PostgreSQL)"
    raise TypeError(msg)
