"""Group commit's sync shell: the threads of one process share their appends' commits.

The decisions are :class:`phaselog.adapters.core.gather.Gathering`'s; this shell
only waits. A thread whose append leads writes the batch itself (no extra
thread, no hand-off for a lone writer), settles every command in it, and hands
the lead to the first thread that queued meanwhile; the others sleep on one
``threading.Condition`` until their command is settled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent

from phaselog.adapters.core.gather import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_COMMANDS,
    Command,
    Gathering,
    Outcome,
)

__all__ = ["BatchWriter", "ThreadGathering", "shared_failure"]

BatchWriter = Callable[[list[Command]], list[Outcome]]
"""Writes one batch in one transaction; answers each command's outcome (raises: the batch failed)."""


def shared_failure(exc: BaseException, batch: Sequence[Command], own: Command | None) -> list[Outcome]:
    """The outcomes of a batch whose write failed: the leader's own error, a fresh one for the others.

    One exception object raised in several threads (or tasks) would share one
    traceback; each caller gets its own, chained to the batch's failure.
    """
    outcomes: list[Outcome] = []
    for command in batch:
        if command is own or not isinstance(exc, Exception):
            outcomes.append(exc)
            continue
        kind = type(exc) if isinstance(exc, es.PersistenceError) else es.OperationalError
        theirs = kind(f"the group commit holding this append failed: {exc}")
        theirs.__cause__ = exc
        outcomes.append(theirs)
    return outcomes


class ThreadGathering:
    """Gathers the appends of concurrent threads into batches written by ``write``."""

    def __init__(
        self,
        write: BatchWriter,
        *,
        max_commands: int = DEFAULT_MAX_BATCH_COMMANDS,
        max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> None:
        self._write = write
        self._gathering = Gathering(max_commands, max_bytes)
        self._settled = threading.Condition()
        self.batches = 0  # batches written, and the commands in them (for telemetry and tests)
        self.commands = 0

    def append(self, events: Sequence[StoredEvent], opens: Mapping[str, bool]) -> Sequence[int]:
        """Append ``events`` with whatever other threads append meanwhile; return their positions."""
        with self._settled:
            command = self._gathering.arrive(Command.of(events, opens))
            while not (command.leads or command.done):
                self._settled.wait()
            batch = [] if command.done else self._gathering.take()
        if batch:
            try:
                outcomes = self._write(batch)
            except BaseException as exc:
                outcomes = shared_failure(exc, batch, command)
            with self._settled:
                self.batches += 1
                self.commands += len(batch)
                self._gathering.settle(batch, outcomes)
                self._settled.notify_all()
        return command.result()
