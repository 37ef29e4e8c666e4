"""Sans-I/O PostgreSQL: the statements that write, through the batch append function.

:class:`WriteStatements` holds the names of one events table (and its
snapshots table) and the protocols that append and snapshot;
:class:`~phaselog.adapters.postgres.statements.PostgresStatements` adds the reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from phaselog.adapters.core.gather import Command, Outcome
from phaselog.adapters.postgres.arrays import BigintArray, BoolArray, ByteaArray, IntArray, TextArray
from phaselog.adapters.postgres.schema import (
    CHAIN_TABLE,
    HEADS_TABLE,
    SEALS_TABLE,
    append_batch_function_name,
    lock_key,
)
from phaselog.adapters.postgres.steps import STATEMENT_RETRY, Pause, Query, ResultRows, StatementFlow

__all__ = ["WriteStatements"]

log = logging.getLogger("phaselog.store")


@dataclass(frozen=True)
class WriteStatements:
    """The writing statements of one events table (and its snapshots table) in one schema."""

    schema: str
    events_table: str
    snapshots_table: str = ""
    names: dict[str, Identifier] = field(init=False, repr=False)
    append_batch_sql: SQL = field(init=False, repr=False)
    """The batch append call, composed once (each append runs it; composing it costs per call)."""

    def __post_init__(self) -> None:
        names = {
            "schema": Identifier(self.schema),
            "events": Identifier(self.events_table),
            "snapshots": Identifier(self.snapshots_table or self.events_table),
            "chain": Identifier(CHAIN_TABLE),
            "heads": Identifier(HEADS_TABLE),
            "seals": Identifier(SEALS_TABLE),
            "append_batch": Identifier(append_batch_function_name(self.events_table)),
            "append_lock": Literal(lock_key(self.schema, self.events_table, "appends")),
        }
        object.__setattr__(self, "names", names)
        call = self._sql(
            "SELECT positions, conflicts FROM {schema}.{append_batch}(%s::integer[], %s::text[], "
            "%s::bigint[], %s::text[], %s::bytea[], %s::boolean[])"
        )
        object.__setattr__(self, "append_batch_sql", SQL(call.as_string()))

    def _sql(self, text: str, **more: Composable) -> Composed:
        return SQL(text).format(**self.names, **more)

    # -- appending -------------------------------------------------------------------------------
    def append(self, stored_events: Sequence[StoredEvent], opens: Mapping[Any, bool]) -> StatementFlow:
        """Append ``stored_events`` in one round trip, as a batch of one; return their positions.

        ``es.IntegrityError`` when a stream is not at the version they follow.
        """
        if not stored_events:
            return []
        (outcome,) = yield from self.append_batch([Command.of(stored_events, opens)])
        if isinstance(outcome, BaseException):
            raise outcome
        return list(outcome)

    def append_batch(self, commands: Sequence[Command]) -> StatementFlow:
        """Write ``commands`` in one call of the batch append function; answer each one's outcome.

        A command whose stream moved on fails alone (``es.IntegrityError``).
        A broken connection is retried; on a retry, a command that finds exactly
        its own events already stored (the lost attempt had committed) gets their
        positions: no command is ever written twice. Any other failure of a
        batch of several writes each command alone, so only a bad one fails.
        """
        events = [event for command in commands for event in command.events]
        params = (  # typed arrays: dumped without psycopg inspecting each list (see arrays.py)
            IntArray([number for number, command in enumerate(commands, 1) for _ in command.events]),
            TextArray([str(e.originator_id) for e in events]),
            BigintArray([e.originator_version for e in events]),
            TextArray([e.topic for e in events]),
            ByteaArray([e.state for e in events]),
            BoolArray([bool(c.opens.get(str(e.originator_id), True)) for c in commands for e in c.events]),
        )
        query = Query(self.append_batch_sql, params, unlock_on_error=True, tuples=True)
        uncertain = False
        delays = STATEMENT_RETRY.delays()
        while True:
            try:
                rows: list[tuple[Any, ...]] = yield query
                break
            except (es.InterfaceError, es.OperationalError):
                delay = next(delays, None)
                if delay is None:
                    raise
                uncertain = True  # the first attempt may have committed before the connection broke
                yield Pause(delay)
            except es.PersistenceError as exc:
                if len(commands) == 1:
                    return [exc]
                outcomes: list[Outcome] = []
                for command in commands:  # find the one the database refused
                    outcomes += yield from self.append_batch([command])
                return outcomes
        return (yield from self._outcomes(commands, rows[0], uncertain=uncertain))

    def _outcomes(self, commands: Sequence[Command], row: Sequence[Any], *, uncertain: bool) -> StatementFlow:
        """Each command's positions from the batch function's row (positions, conflicts), or its conflict."""
        positions, conflicts = row
        outcomes: list[Outcome] = []
        at = 0
        for command, conflict in zip(commands, conflicts, strict=True):
            count = len(command.events)
            if conflict is None:
                outcomes.append([int(p) for p in positions[at : at + count]])
            else:
                found = (yield from self.own_positions(command.events)) if uncertain else None
                if found is not None:
                    log.info("append retried after a lost connection had already committed it")
                    outcomes.append(found)
                else:
                    outcomes.append(es.IntegrityError(conflict))
            at += count
        return outcomes

    def own_positions(self, stored_events: Sequence[StoredEvent]) -> StatementFlow:
        """Positions of ``stored_events`` if exactly these events are already stored, else None."""
        statement = self._sql(
            "SELECT notification_id, topic, state FROM {schema}.{events} "
            "WHERE originator_id = %s AND originator_version = %s"
        )
        positions: list[int] = []
        for event in stored_events:
            rows: ResultRows = yield Query(statement, (str(event.originator_id), event.originator_version))
            row = rows[0] if rows else None
            if row is None or row["topic"] != event.topic or bytes(row["state"]) != event.state:
                return None
            positions.append(int(row["notification_id"]))
        return positions

    def insert_snapshot(self, snapshot: StoredEvent) -> StatementFlow:
        """Store one snapshot row (the columns eventsourcing's snapshot recorder writes)."""
        yield Query(
            self._sql(
                "INSERT INTO {schema}.{snapshots} (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s)"
            ),
            (str(snapshot.originator_id), snapshot.originator_version, snapshot.topic, snapshot.state),
        )

    # -- streams ----------------------------------------------------------------------------------
