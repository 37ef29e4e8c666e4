"""PostgreSQL: phaselog's application recorder, its schema objects and its infrastructure factory."""

from phaselog.adapters.postgres.factory import (
    CONNINFO_ENV,
    PhaselogPostgresFactory,
)
from phaselog.adapters.postgres.recorder import (
    PhaselogPostgresApplicationRecorder,
)
from phaselog.adapters.postgres.schema import (
    APPEND_ONLY_MESSAGE,
    CHAIN_TABLE,
    HEADS_TABLE,
    SCHEMA_META_TABLE,
    SCHEMA_VERSION,
    SEALS_TABLE,
)

__all__ = [
    "APPEND_ONLY_MESSAGE",
    "CHAIN_TABLE",
    "CONNINFO_ENV",
    "HEADS_TABLE",
    "SCHEMA_META_TABLE",
    "SCHEMA_VERSION",
    "SEALS_TABLE",
    "PhaselogPostgresApplicationRecorder",
    "PhaselogPostgresFactory",
]
