"""Group commit, decided once: which appends are written together, and who writes them.

Concurrent appends (threads of one process, asyncio tasks of one loop) queue in
one :class:`Gathering` per store. An append that finds no commit in flight
*leads*: it is written at once (a lone writer never waits for company, there is
no timer). Appends that arrive while a commit is in flight wait; when it ends,
the first of them leads the next batch, which takes whatever queued meanwhile,
bounded by :attr:`Gathering.max_commands` and :attr:`Gathering.max_bytes`. A
batch is written in one transaction (one WAL flush on PostgreSQL) and each of its
:class:`Command` s keeps its own outcome: its positions, or the error that failed
it alone (a stale expected version), or the batch's failure.

This module does no I/O and takes no lock: the sync shell
(:mod:`phaselog.adapters.gathering`) calls it under a lock, the
async shell (:mod:`phaselog.aio.gathering`) from its event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import StoredEvent

__all__ = ["DEFAULT_MAX_BATCH_BYTES", "DEFAULT_MAX_BATCH_COMMANDS", "Command", "Gathering", "Outcome"]

DEFAULT_MAX_BATCH_COMMANDS = 64
DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024  # of event state: a batch stays one reasonable statement

Outcome = Sequence[int] | BaseException
"""What a written command comes to: its positions, or the error that failed it."""


@dataclass(eq=False, slots=True)
class Command:
    """One append waiting to be written: its events and the stream index's open flags."""

    events: Sequence[StoredEvent]
    opens: Mapping[str, bool]
    size: int = 0
    leads: bool = False
    done: bool = False
    outcome: Outcome | None = None

    @classmethod
    def of(cls, events: Sequence[StoredEvent], opens: Mapping[str, bool]) -> Command:
        """A command for ``events``, sized by their state."""
        return cls(events, opens, sum(len(event.state) for event in events))

    def result(self) -> Sequence[int]:
        """The command's positions; raises the error that failed it."""
        if not self.done or self.outcome is None:
            msg = "the command has not been written yet"
            raise RuntimeError(msg)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@dataclass
class Gathering:
    """The queue of one store's appends and the rule that batches them."""

    max_commands: int = DEFAULT_MAX_BATCH_COMMANDS
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES
    queue: deque[Command] = field(default_factory=deque)
    writing: bool = False

    def __post_init__(self) -> None:
        if self.max_commands < 1 or self.max_bytes < 1:
            msg = f"a batch holds at least one command of at least one byte, not {self!r}"
            raise ValueError(msg)

    def arrive(self, command: Command) -> Command:
        """Queue ``command``; it leads at once when no commit is in flight."""
        self.queue.append(command)
        if not self.writing:
            self.writing = True
            command.leads = True
        return command

    def take(self) -> list[Command]:
        """The next batch, for its leader: the queue's first command and those after it, within bounds.

        Empty (and no commit in flight any more) when every queued command was abandoned.
        """
        if not self.queue:
            self.writing = False
            return []
        batch = [self.queue.popleft()]
        size = batch[0].size
        while self.queue and len(batch) < self.max_commands:
            following = self.queue[0]
            if size + following.size > self.max_bytes:
                break
            batch.append(self.queue.popleft())
            size += following.size
        return batch

    def settle(self, batch: Sequence[Command], outcomes: Sequence[Outcome]) -> Command | None:
        """Give each command of ``batch`` its outcome; return the next batch's leader (None: idle)."""
        for command, outcome in zip(batch, outcomes, strict=True):
            command.outcome = outcome
            command.done = True
        return self.pass_lead()

    def pass_lead(self) -> Command | None:
        """Make the first queued command the next batch's leader and return it (None: idle)."""
        if not self.queue:
            self.writing = False
            return None
        leader = self.queue[0]
        leader.leads = True
        return leader

    def abandon(self, command: Command) -> bool:
        """Drop a waiting ``command`` its caller gave up on (True: it was still queued, nothing written)."""
        try:
            self.queue.remove(command)
        except ValueError:  # already taken into a batch in flight: its outcome stands
            return False
        return True
