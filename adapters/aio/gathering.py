"""Group commit's async shell: the tasks of one event loop share their appends' commits.

The decisions are :class:`phaselog.adapters.core.gather.Gathering`'s, as in the
sync shell (:mod:`phaselog.adapters.gathering`). An append that finds no commit in
flight starts a *drain* task, which writes batch after batch until nothing is
queued; each caller awaits its own command's future. A caller cancelled while
its command still queues takes it back (nothing written); once its batch is in
flight the cancellation waits for the batch to end (it commits or fails for
every command in it), so whatever the caller reads next already shows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from eventsourcing.persistence import StoredEvent

from phaselog.adapters.core.gather import (
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
    ) -> None:
        self._write = write
        self._gathering = Gathering(max_commands, max_bytes)
        self._futures: dict[int, asyncio.Future[Sequence[int]]] = {}
        self._drain_task: asyncio.Task[None] | None = None
        self.batches = 0  # batches written, and the commands in them (for telemetry and tests)
        self.commands = 0

    async def append(self, events: Sequence[StoredEvent], opens: Mapping[str, bool]) -> Sequence[int]:
        """Append ``events`` with whatever other tasks append meanwhile; return their positions."""
        command = self._gathering.arrive(Command.of(events, opens))
        future: asyncio.Future[Sequence[int]] = asyncio.get_running_loop().create_future()
        self._futures[id(command)] = future
        if command.leads:
            self._drain_task = asyncio.create_task(self._drain(), name="phaselog-group-commit")
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self._gathering.abandon(command):
                self._futures.pop(id(command), None)
            else:  # in flight: let the batch end first, so the caller's next read sees what it did
                await asyncio.wait([future])
            raise

    async def _drain(self) -> None:
        """Write batches until nothing is queued."""
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
            self._gathering.settle(batch, outcomes)
            for command, outcome in zip(batch, outcomes, strict=True):
                future = self._futures.pop(id(command))
                if future.done():  # its caller was cancelled while the batch was in flight
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _cancel_queued(self) -> None:
        """Take back every queued append and cancel its caller (the drain itself was cancelled).

        Nothing is in flight afterwards, so the next append leads a new drain.
        """
        for command in list(self._gathering.queue):
            self._gathering.abandon(command)
            self._futures.pop(id(command)).cancel()
        self._gathering.pass_lead()  # nothing queued: nothing is in flight any more

    async def close(self) -> None:
        """Wait for the batch in flight (and what queued behind it) to be written."""
        task = self._drain_task
        if task is not None and not task.done():
            await asyncio.wait([task])
