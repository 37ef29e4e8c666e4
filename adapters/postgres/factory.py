"""eventsourcing's PostgreSQL infrastructure factory, given every libpq option of the store URL."""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, EnvType
from typing_extensions import override

from phaselog.adapters.postgres.recorder import PhaselogPostgresApplicationRecorder
from phaselog.adapters.postgres.schema import DEFAULT_PARTITION_SIZE, PARTITION_SIZE_ENV

__all__ = ["CONNINFO_ENV", "PhaselogPostgresFactory"]

CONNINFO_ENV = "PHASELOG_POSTGRES_CONNINFO"  # JSON object of extra libpq keywords (sslmode, options, ...)


class PhaselogPostgresFactory(PostgresFactory):
    """A PostgresFactory whose pool connects with all the URL's libpq options.

    eventsourcing builds its pool from host, port, user, password and dbname;
    the rest of the URL (``sslmode``, ``options`` carrying ``statement_timeout``,
    ``application_name``, ``connect_timeout``, ``target_session_attrs``, ...) is
    added to the pool's connection keywords before the pool is opened.
    """

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        extra: dict[str, Any] = orjson.loads(self.env.get(CONNINFO_ENV) or "{}")
        kwargs = self.datastore.pool.kwargs
        if isinstance(kwargs, dict):
            kwargs.update(extra)
        # Read by the recorder's schema (a new store's partition size); eventsourcing ignores it.
        self.datastore.phaselog_partition_size = int(  # type: ignore[attr-defined]
            self.env.get(PARTITION_SIZE_ENV) or DEFAULT_PARTITION_SIZE
        )
        self._recorders: list[PhaselogPostgresApplicationRecorder] = []

    @override
    def application_recorder(self) -> ApplicationRecorder:
        recorder = super().application_recorder()
        if isinstance(recorder, PhaselogPostgresApplicationRecorder):
            self._recorders.append(recorder)  # its notifier thread stops when the store closes
        return recorder

    @override
    def close(self) -> None:
        for recorder in self._recorders:
            recorder.close()
        super().close()
