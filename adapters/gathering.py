"""Group commit's sync shell: the threads of one process share their appends' commits.

The decisions are :class:`phaselog.adapters.core.gather.Gathering`'s; this shell
only waits. A thread whose append leads writes the batch itself (no extra
thread, no hand-off for a lone writer), settles every command in it, and hands
the lead to the first thread that queued meanwhile; the others sleep, each on a
lock of its own, until their command is settled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent

from phaselog.adapters.core.gather import (
    DEFAULT_LANE_AT,
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
    """Gathers the appends of concurrent threads into batches written by ``write``.

    Each waiting thread sleeps on a lock of its own, released when its command is
    settled or made the next leader: a batch wakes exactly the threads it concerns
    (a shared condition woke every waiter, and most went back to sleep).
    """

    def __init__(
        self,
        write: BatchWriter,
        *,
        max_commands: int = DEFAULT_MAX_BATCH_COMMANDS,
        max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        lanes: int = 1,
        lane_at: int = DEFAULT_LANE_AT,
    ) -> None:
        self._write = write
        self._gathering = Gathering(max_commands, max_bytes, lanes, lane_at)
        self._mutex = threading.Lock()
        self._waiters: dict[int, threading.Lock] = {}  # id(command) -> the lock its thread sleeps on
        self.batches = 0  # batches written, and the commands in them (for telemetry and tests)
        self.commands = 0

    def append(self, events: Sequence[StoredEvent], opens: Mapping[str, bool]) -> Sequence[int]:
        """Append ``events`` with whatever other threads append meanwhile; return their positions."""
        command = Command.of(events, opens)
        with self._mutex:
            self._gathering.arrive(command)
            if not command.leads:
                waiter = self._waiters[id(command)] = threading.Lock()
                waiter.acquire()
        if not command.leads:
            self._sleep(command, waiter)
        if not command.done:
            self._lead(command)
        return command.result()

    def _sleep(self, command: Command, waiter: threading.Lock) -> None:
        """Wait until ``command`` is settled or leads; an interrupted wait withdraws it (passing its lead)."""
        try:
            waiter.acquire()
        except BaseException:
            with self._mutex:
                self._waiters.pop(id(command), None)
                if command.done or not self._gathering.abandon(command):
                    raise  # settled, or in a batch in flight: its outcome stands
                self._wake(self._gathering.next_leader())  # made a leader as the wait ended: another leads
            raise

    def _lead(self, command: Command) -> None:
        """Write the batch ``command`` leads, settle it and wake its threads and the next leader."""
        with self._mutex:
            batch = self._gathering.take(command)
        try:
            outcomes = self._write(batch)
        except BaseException as exc:
            outcomes = shared_failure(exc, batch, command)
        with self._mutex:
            self.batches += 1
            self.commands += len(batch)
            leader = self._gathering.settle(batch, outcomes)
            for settled in batch:
                self._wake(settled)
            self._wake(leader)

    def _wake(self, command: Command | None) -> None:
        """Release the thread sleeping on ``command`` (called under the mutex)."""
        if command is not None and (waiter := self._waiters.pop(id(command), None)) is not None:
            waiter.release()
