"""Erasing a data subject: its key destroyed, the erasure recorded, the read models scrubbed.

:func:`erase` destroys the subject's key first (from then on every reader sees
redacted markers), then records who asked, when, why and which streams held the
subject's values (``erasure:<subject>``, no personal data), then rebuilds the read
models that fold those streams' events, so no row keeps a value in the clear. A
second call for the same subject records nothing more and answers the same record;
one interrupted after the key was destroyed completes the record and the scrub.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from phaselog.adapters.crypto.keyring import KeyRing
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.holds import check_not_held, requester
from phaselog.domain.erasure import ErasureRecord, SubjectErasure, erasure_stream
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.events import Aggregate

__all__ = ["ErasingStore", "Erasure", "erase"]

A = TypeVar("A", bound=Aggregate)


class ErasingStore(Protocol):
    """What an erasure uses of a store (a :class:`~phaselog.adapters.store.Store` answers it)."""

    @property
    def keys(self) -> KeyRing:
        """The store's key ring."""
        ...

    @property
    def app(self) -> Any:
        """The eventsourcing application (its recorder)."""
        ...

    @property
    def projections(self) -> Any:
        """The store's read models."""
        ...

    def exists(self, aggregate_id: str) -> bool:
        """True when the stream has an event."""
        ...

    def save(self, *aggregates: Aggregate) -> Any:
        """Append the aggregates' pending events."""
        ...

    def load(self, aggregate_id: str, aggregate_type: type[A], *, version: int | None = None) -> A:
        """The aggregate rebuilt from its events."""
        ...

    def stream_heads(self, prefix: str = "", *, open_only: bool = False) -> Any:
        """The heads of the streams starting with ``prefix``."""
        ...


@dataclass(frozen=True)
class Erasure:
    """What an erasure did: subject, reason, by whom, when, the streams affected and read models scrubbed."""

    subject: str
    reason: str
    requested_by: str
    erased_at: datetime
    streams: list[str]
    scrubbed: dict[str, int]
    recorded: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (the CLI's ``--json``)."""
        return {**self.__dict__, "erased_at": self.erased_at.isoformat()}


def _topics(store: ErasingStore, streams: list[str]) -> set[str]:
    """The topics of the events in ``streams`` (as stored: their classes need not be importable here)."""
    with translate_errors("reading the erased streams"):
        return {e.topic for stream in streams for e in store.app.recorder.select_events(stream)}


def erase(
    store: ErasingStore,
    subject: str,
    *,
    reason: str,
    requested_by: str | None = None,
    projections: Any = None,
) -> Erasure:
    """Erase ``subject``: destroy its key, record the erasure, scrub the read models that hold its values.

    ``projections`` are the read models to scrub (default: ``store.projections``; pass your own
    :class:`~phaselog.projections.Projections` when it folds the subject's events).
    """
    if not reason.strip():
        raise ValidationFailed("an erasure needs a reason (it is recorded with it)")
    keys = store.keys
    stream = erasure_stream(subject)
    check_not_held(store, keys.table.streams(subject), f"erasing subject {subject!r}")
    row = keys.erase(subject, reason)
    streams = keys.table.streams(subject)
    recorded = not store.exists(stream)
    if recorded:
        who = requester(requested_by)
        at = datetime.fromisoformat(row.erased_at) if row.erased_at else None
        record = ErasureRecord.start(
            SubjectErasure,
            stream,
            subject=subject,
            reason=reason,
            requested_by=who,
            erased_at=at,
            streams=streams,
        )
        store.save(record)
    done: ErasureRecord = store.load(stream, ErasureRecord)
    topics = _topics(store, done.streams)
    views = store.projections if projections is None else projections
    models = [m for m in views.models.values() if topics & set(m.projection.topics or topics)]
    scrubbed = {m.name: n for m in models for n in views.rebuild(m.name).values()}
    return Erasure(
        done.subject, done.reason, done.requested_by, done.erased_at, done.streams, scrubbed, recorded
    )
