"""The memory store: eventsourcing's POPO recorders plus phaselog's stream index.

Selected with ``PERSISTENCE_MODULE=phaselog.adapters.memory:MemoryFactory``
(eventsourcing's infrastructure-factory extension point). Nothing outside the
process can change memory, so there is no hash chain and no seal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    ApplicationRecorder,
    ConnectionPoolClosedError,
    Notification,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from typing_extensions import override

from phaselog.adapters.recorder_protocol import ChainRow, PhaselogRecorder
from phaselog.adapters.single_writer import SingleWriterHorizon
from phaselog.runtime.ports import LogRecord, StreamHead

__all__ = ["MemoryApplicationRecorder", "MemoryFactory"]

# What a closed memory store refuses (everything a store reads or writes through its recorder).
_GUARDED = frozenset(
    {
        "insert_events",
        "select_events",
        "select_notifications",
        "select_records",
        "max_notification_id",
        "select_stream_heads",
        "select_chain",
        "horizon_position",
        "positions",
        "in_flight",
        "subscribe",
    }
)


class MemoryApplicationRecorder(SingleWriterHorizon, POPOApplicationRecorder):
    """eventsourcing's in-memory application recorder that also keeps stream heads.

    Once its store is closed every call raises, as a closed durable store's would.
    """

    def __init__(self) -> None:
        super().__init__()
        self._heads: dict[str, StreamHead] = {}
        self.closed = False

    def __getattribute__(self, name: str) -> Any:
        if name in _GUARDED and object.__getattribute__(self, "closed"):
            msg = "the memory store is closed"
            raise ConnectionPoolClosedError(msg)
        return object.__getattribute__(self, name)

    @override
    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        ids = super()._update_table(stored_events, **kwargs)  # called under the database lock
        opens: dict[Any, bool] = kwargs.get("stream_open") or {}
        for position, event in zip(ids or (), stored_events, strict=True):
            sid = str(event.originator_id)
            self._heads[sid] = StreamHead(
                sid, event.originator_version, position, open=bool(opens.get(event.originator_id, True))
            )
        return ids

    @override
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The in-memory read of eventsourcing, except that a limit of 0 is an empty page (as in SQL)."""
        if limit <= 0:  # eventsourcing's in-memory recorder would return every notification
            return []
        return super().select_notifications(
            start, limit, stop=stop, topics=topics, inclusive_of_start=inclusive_of_start
        )

    def select_records(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        final: bool = True,  # noqa: ARG002 - every committed position is final here
    ) -> list[LogRecord]:
        """The log as :class:`LogRecord` tuples from ``start`` (inclusive), in order."""
        return [
            LogRecord(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
            for n in self.select_notifications(start, limit, stop=stop, topics=topics)
        ]

    def select_stream_heads(
        self, prefix: str, *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> list[StreamHead]:
        """Heads of the streams starting with ``prefix`` (open ones only if asked), by stream id."""
        with self._database_lock:
            heads = [
                h
                for sid, h in self._heads.items()
                if sid.startswith(prefix) and (h.open or not open_only) and (after is None or sid > after)
            ]
        return sorted(heads)[:limit]

    def select_chain(
        self,
        start: int,  # noqa: ARG002 - no chain to page through
        limit: int,  # noqa: ARG002 - no chain to page through
        stop: int | None = None,  # noqa: ARG002 - no chain to page through
    ) -> list[ChainRow]:
        """No chain rows: nothing outside the process can change memory, so it keeps no hash chain."""
        return []


# mypy --strict proves the memory recorder answers phaselog's recorder protocol.
_CONFORMS: type[PhaselogRecorder] = MemoryApplicationRecorder


class MemoryFactory(POPOFactory):
    """eventsourcing's POPO factory with phaselog's memory application recorder."""

    _recorder: MemoryApplicationRecorder | None = None

    @override
    def application_recorder(self) -> ApplicationRecorder:
        self._recorder = MemoryApplicationRecorder()
        return self._recorder

    @override
    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.closed = True
        super().close()
