"""Group commit's async shell: the tasks of one event loop share their appends' commits.

The decisions are :class:`phaselog.adapters.core.gather.Gathering`'s, as in the
sync shell (:mod:`phaselog.adapters.gathering`). An append that leads (it found no
commit in flight, or it opened another lane) starts a *drain* task for its lane,
which writes batch after batch until the gathering gives the lane nothing more;
each caller awaits its own command's future. A caller cancelled while
its command still queues takes it back (nothing written); once its batch is in
flight the cancellation waits for the batch to end (it commits or fails for
every command in it), so whatever the caller reads next already shows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from eventsourcing.persistence import StoredEvent

from phaselog.adapters.core.gather import (
    DEFAULT_LANE_AT,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_COMMANDS,
    Command,
    Gathering,
    Outcome,
)
from phaselog.adapters.gathering import shared_failure

__all__ = ["AsyncBatchWriter", "AsyncGathering"]

AsyncBatchWriter = Callable[[list[Command]], Awaitable[list[Outcome]]]
"""Writes one batch in one transaction; answers each command's outcome (raises: the batch failed)."""


class AsyncGathering:
    """Gathers the appends of concurrent tasks into batches written by ``write``."""

    def __init__(
        self,
        write: AsyncBatchWriter,
        *,
        max_commands: int = DEFAULT_MAX_BATCH_COMMANDS,
        max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        lanes: int = 1,
        lane_at: int = DEFAULT_LANE_AT,
    ) -> None:
        self._write = write
        self._gathering = Gathering(max_commands, max_bytes, lanes, lane_at)
        self._futures: dict[int, asyncio.Future[Sequence[int]]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches written, and the commands in them (for telemetry and tests)
        self.commands = 0

    async def append(self, events: Sequence[StoredEvent], opens: Mapping[str, bool]) -> Sequence[int]:
        """Append ``events`` with whatever other tasks append meanwhile; return their positions."""
        command = self._gathering.arrive(Command.of(events, opens))
        future: asyncio.Future[Sequence[int]] = asyncio.get_running_loop().create_future()
        self._futures[id(command)] = future
        if command.leads:
            command.leads = False  # the lane is its drain's: the command waits like any other
            drain = asyncio.create_task(self._drain(), name="phaselog-group-commit")
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self._gathering.abandon(command):
                self._futures.pop(id(command), None)
            else:  # in flight: let the batch end first, so the caller's next read sees what it did
                await asyncio.wait([future])
            raise

    async def _drain(self) -> None:
        """Write batches on one lane until the gathering gives it none (nothing queued, or it closed)."""
        while batch := self._gathering.take():
            try:
                outcomes = await self._write(batch)
            except asyncio.CancelledError:
                self._gathering.settle(batch, shared_failure(asyncio.CancelledError(), batch, None))
                for command in batch:
                    self._futures.pop(id(command)).cancel()
                self._cancel_queued()
                raise
            except Exception as exc:  # the batch failed: every command in it fails, each with its own error
                outcomes = shared_failure(exc, batch, None)
            self.batches += 1
            self.commands += len(batch)
            following = self._gathering.settle(batch, outcomes)
            for command, outcome in zip(batch, outcomes, strict=True):
                future = self._futures.pop(id(command))
                if future.done():  # its caller was cancelled while the batch was in flight
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            if following is None:
                return  # the lane closed: what still queues waits for another lane
            following.leads = False  # the lane stays this drain's

    def _cancel_queued(self) -> None:
        """Take back every queued append and cancel its caller (the drain itself was cancelled).

        Its lane is free afterwards (a queued command made its next leader gives it up).
        """
        for command in list(self._gathering.queue):
            self._gathering.abandon(command)
            self._futures.pop(id(command)).cancel()

    async def close(self) -> None:
        """Wait for the batches in flight (and what queued behind them) to be written."""
        while self._drains:
            await asyncio.wait(list(self._drains))
