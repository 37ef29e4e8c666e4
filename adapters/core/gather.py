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

A store whose database runs concurrent transactions side by side (PostgreSQL)
gives its gathering more than one *lane*: while a batch is in flight, a second
one starts as soon as :attr:`Gathering.lane_at` commands queue behind it, on a
session of its own. One batch at a time makes the writers alternate (half of
them in the batch in flight, half gathering behind it), so each batch pays the
whole commit for half of them; a second lane writes the other half meanwhile.
Fewer queued commands than that wait for the batch in flight, as with one lane:
a lane never opens for company that a batch of its own would commit dearer.

This module does no I/O and takes no lock: the sync shell
(:mod:`phaselog.adapters.gathering`) calls it under a lock, the
async shell (:mod:`phaselog.aio.gathering`) from its event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import StoredEvent

__all__ = [
    "DEFAULT_LANE_AT",
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_BATCH_COMMANDS",
    "Command",
    "Gathering",
    "Outcome",
]

DEFAULT_MAX_BATCH_COMMANDS = 64
DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024  # of event state: a batch stays one reasonable statement
DEFAULT_LANE_AT = 4
"""Commands queued behind a batch in flight that open a second lane (where the store has one)."""

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
    """The queue of one store's appends and the rule that batches them.

    ``lanes`` batches may be in flight at once (1: one at a time); a lane beyond
    the first opens when ``lane_at`` commands wait.
    """

    max_commands: int = DEFAULT_MAX_BATCH_COMMANDS
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES
    lanes: int = 1
    lane_at: int = DEFAULT_LANE_AT
    queue: deque[Command] = field(default_factory=deque)
    in_flight: int = 0
    """Lanes in use: batches being written, or led by a command that has yet to take its batch."""

    def __post_init__(self) -> None:
        if self.max_commands < 1 or self.max_bytes < 1 or self.lanes < 1 or self.lane_at < 1:
            msg = (
                f"a batch holds at least one command of at least one byte, in at least one lane, not {self!r}"
            )
            raise ValueError(msg)

    @property
    def writing(self) -> bool:
        """True while a batch is in flight (or about to be)."""
        return self.in_flight > 0

    def arrive(self, command: Command) -> Command:
        """Queue ``command``; it leads at once when no commit is in flight, or when it opens a lane."""
        self.queue.append(command)
        if self._lane_free():
            self.in_flight += 1
            command.leads = True
        return command

    def _lane_free(self) -> bool:
        """Whether the queue may start one more batch now."""
        if self.in_flight == 0:
            return True
        return self.in_flight < self.lanes and len(self.queue) >= self.lane_at

    def take(self, leader: Command | None = None) -> list[Command]:
        """The next batch, for its lane: ``leader`` first, then the queue's first commands, within bounds.

        Commands that lead a batch of their own are left for it. Empty (and the
        lane free again) when nothing is queued any more.
        """
        if leader is not None:
            self.queue.remove(leader)
            batch = [leader]
        elif self.queue:
            batch = [self.queue.popleft()]
        else:
            self.in_flight -= 1
            return []
        size = batch[0].size
        skipped: list[Command] = []
        while self.queue and len(batch) < self.max_commands:
            following = self.queue[0]
            if following.leads:
                skipped.append(self.queue.popleft())
                continue
            if size + following.size > self.max_bytes:
                break
            batch.append(self.queue.popleft())
            size += following.size
        self.queue.extendleft(reversed(skipped))
        return batch

    def settle(self, batch: Sequence[Command], outcomes: Sequence[Outcome]) -> Command | None:
        """Give each command of ``batch`` its outcome, free its lane; return the next leader (or None)."""
        for command, outcome in zip(batch, outcomes, strict=True):
            command.outcome = outcome
            command.done = True
        self.in_flight -= 1
        return self.next_leader()

    def next_leader(self) -> Command | None:
        """Make the first queued command that does not lead yet a leader, if a lane is free; return it."""
        if not self._lane_free():
            return None
        leader = next((command for command in self.queue if not command.leads), None)
        if leader is not None:
            leader.leads = True
            self.in_flight += 1
        return leader

    def abandon(self, command: Command) -> bool:
        """Drop a waiting ``command`` its caller gave up on (True: it was still queued, nothing written).

        A leader that gives up frees its lane: :meth:`next_leader` names who leads instead.
        """
        try:
            self.queue.remove(command)
        except ValueError:  # already taken into a batch in flight: its outcome stands
            return False
        if command.leads:
            self.in_flight -= 1
        return True
