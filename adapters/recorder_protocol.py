"""What phaselog adds to eventsourcing's application recorders, as one protocol.

eventsourcing's ``ApplicationRecorder`` appends and reads events; every phaselog
recorder (memory, SQLite, PostgreSQL) also answers :class:`PhaselogRecorder`:
the lean read of the global order (bounded by the commit horizon), the stream
index, the horizon itself (with the appends in flight and the prepared
transactions a :class:`~phaselog.runtime.horizon.Horizon` is built from), the
newest position and the per-stream hash chain. The store and the audit code
call these methods, never a recorder class's own; every recorder passes the same
contract (``tests/test_phaselog_recorder_contract.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from phaselog.runtime.horizon import InFlightAppend, PreparedTransaction
    from phaselog.runtime.ports import LogRecord, StreamHead

__all__ = ["ChainRow", "PhaselogRecorder"]


class ChainRow(NamedTuple):
    """One row of a store's hash chain: the digest recorded for the event at ``position``.

    ``link`` is 2 for a row chained to the previous event of its own stream, None
    for a row of schema version 1 (chained to the previous event of the global order).
    """

    position: int
    stream_id: str
    version: int
    digest: str
    link: int | None


class PhaselogRecorder(Protocol):
    """The methods every phaselog recorder adds to eventsourcing's application recorder."""

    def select_records(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        final: bool = True,
    ) -> list[LogRecord]:
        """At most ``limit`` events from position ``start`` (inclusive) to ``stop``, in position order.

        Only final positions (up to the commit horizon) unless ``final=False``,
        which also returns events committed beyond it; only ``topics`` when given.
        """
        ...

    def select_stream_heads(
        self, prefix: str, *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> list[StreamHead]:
        """The head of every stream whose id starts with ``prefix`` (only open ones if asked), by id.

        ``after`` and ``limit`` page through them by id (keyset: the ids after ``after``, at most ``limit``).
        """
        ...

    def max_notification_id(self) -> int | None:
        """The newest position written, None (or 0) when the store is empty (eventsourcing's name)."""
        ...

    def horizon_position(self) -> int:
        """The newest final position: every position up to it has committed or never will."""
        ...

    def positions(self) -> tuple[int, int, int]:
        """``(horizon position, newest committed position, committed events beyond the horizon)``."""
        ...

    def in_flight(self) -> list[InFlightAppend]:
        """The appends to this store still in flight (they hold the horizon); none with one writer."""
        ...

    def prepared(self) -> list[PreparedTransaction]:
        """The prepared transactions of the store's database; none where there are no such things."""
        ...

    def select_chain(self, start: int, limit: int, stop: int | None = None) -> list[ChainRow]:
        """At most ``limit`` chain rows from position ``start`` (inclusive) to ``stop``, by position.

        A memory store keeps no chain (nothing outside the process can change it): always empty.
        """
        ...
