"""Audit of the stored history: timelines, state as of a version or time, export, verify.

Everything here is generic over any stream (``plugin:…``, ``task:…``, ``plan:…``,
``state:…``) and reads the event log only. ``verify`` recomputes the hash chain
that the recorders of :mod:`phaselog.adapters.recorders` write with every event
and names each position where a stored event was changed, removed or inserted
behind phaselog's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from phaselog.adapters.audit.integrity import Problem, Seal, VerifyReport, seal, verify
from phaselog.adapters.audit.topics import load_domain_modules
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.recorder import PhaselogPostgresApplicationRecorder
from phaselog.adapters.sqlite.recorder import PhaselogSQLiteApplicationRecorder
from phaselog.domain.encoding import dump_json, load_json
from phaselog.domain.errors import NotFound, ValidationFailed
from phaselog.domain.events import Aggregate
from phaselog.projections.base import EventData, EventDecoder, event_data
from phaselog.runtime.log_time import TimeOf

if TYPE_CHECKING:
    from phaselog.adapters.audit.ports import AuditedStore

__all__ = [
    "AsOf",
    "Problem",
    "Seal",
    "VerifyReport",
    "as_of",
    "export_jsonl",
    "load_domain_modules",
    "log_time_of",
    "parse_time",
    "seal",
    "timeline",
    "verify",
]


def parse_time(text: str) -> datetime:
    """An ISO-8601 time; naive times are taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(f"not an ISO-8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def log_time_of(store: AuditedStore) -> TimeOf:
    """How :func:`phaselog.runtime.log_time.position_at` reads the time of the event at a position here."""
    decode = EventDecoder(store.app.mapper)

    def time_of(position: int) -> tuple[int, datetime] | None:
        found = store.records(position, 1)
        if not found:
            return None
        stamp = decode(found[0]).timestamp
        return found[0].id, datetime.fromisoformat(stamp) if stamp else datetime.min.replace(tzinfo=UTC)

    return time_of


# -- timeline and export ---------------------------------------------------------------------
def _positions(store: AuditedStore, stream_id: str) -> dict[int, int]:
    """Version -> global position of every event of ``stream_id``."""
    recorder = store.app.recorder
    with translate_errors(f"reading positions of {stream_id!r}"):
        if isinstance(recorder, PhaselogPostgresApplicationRecorder):
            sql = (
                f'SELECT originator_version AS v, notification_id AS p FROM "{recorder.datastore.schema}".'
                f'"{recorder.events_table_name}" WHERE originator_id = %s'
            )
            with recorder.datastore.transaction(commit=False) as pg:
                pg.execute(sql, [stream_id])
                return {int(row["v"]): int(row["p"]) for row in pg.fetchall()}
        if isinstance(recorder, PhaselogSQLiteApplicationRecorder):
            table = recorder.events_table_name
            sql = f"SELECT originator_version AS v, rowid AS p FROM {table} WHERE originator_id = ?"
            with recorder.datastore.transaction(commit=False) as lite:
                lite.execute(sql, [stream_id])
                return {int(row["v"]): int(row["p"]) for row in lite.fetchall()}
        return {  # the memory store: no index to ask
            n.originator_version: n.id
            for n in store.iter_notifications()
            if str(n.originator_id) == stream_id
        }


def timeline(store: AuditedStore, stream_id: str) -> list[EventData]:
    """Every event of one stream, oldest first, with global positions and stored JSON."""
    with translate_errors(f"reading {stream_id!r}"):
        stored = list(store.app.recorder.select_events(stream_id))
    positions = _positions(store, stream_id)
    tier = getattr(store, "archives", None)
    if tier is not None and (not stored or stored[0].originator_version > 1):  # detached: from the archives
        upto = stored[0].originator_version - 1 if stored else None
        archived = tier.stream_positions(stream_id, None, upto)
        positions.update({e.originator_version: p for p, e in archived})
        stored = [e for _, e in archived] + stored
    if not stored:
        raise NotFound(f"no stream {stream_id!r}")
    mapper = store.app.mapper
    return [event_data(mapper, _Note(positions.get(s.originator_version, 0), s)) for s in stored]


@dataclass(frozen=True)
class _Note:
    """A stored event dressed as a notification (``id`` is its global position)."""

    id: int
    stored: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stored, name)


def export_jsonl(store: AuditedStore, out: IO[bytes], *, start: int = 1) -> int:
    """Write every stored event from ``start`` as one JSON line; return how many."""
    count = 0
    mapper = store.app.mapper
    for note in store.iter_notifications(start):
        event = event_data(mapper, note)
        out.write(
            dump_json(
                {
                    "position": event.position,
                    "stream_id": event.stream_id,
                    "version": event.version,
                    "topic": event.topic,
                    "timestamp": event.timestamp,
                    "data": event.data,
                }
            )
            + b"\n"
        )
        count += 1
    return count


# -- state as of ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AsOf:
    """One stream's state at one version."""

    stream_id: str
    version: int
    timestamp: str | None
    aggregate: str
    state: dict[str, Any]


def as_of(
    store: AuditedStore, stream_id: str, *, version: int | None = None, at: datetime | None = None
) -> AsOf:
    """Load ``stream_id`` as it was at ``version`` or at time ``at`` (the last event at or before it)."""
    if (version is None) == (at is None):
        raise ValidationFailed("give exactly one of --version and --at")
    load_domain_modules()
    events = store.stream(stream_id)
    if not events:
        raise NotFound(f"no stream {stream_id!r}")
    if at is not None:
        moment = at if at.tzinfo else at.replace(tzinfo=UTC)
        earlier = [e for e in events if e.timestamp <= moment]
        if not earlier:
            raise NotFound(f"{stream_id!r} did not exist yet at {moment.isoformat()}")
        version = earlier[-1].originator_version
    assert version is not None  # noqa: S101 - one of the two was given
    if not 1 <= version <= events[-1].originator_version:
        raise NotFound(f"{stream_id!r} has versions 1..{events[-1].originator_version}, not {version}")
    first: Any = events[0]
    aggregate_type: type[Aggregate] = type(first.mutate(None))
    aggregate = store.load(stream_id, aggregate_type, version=version)
    state = load_json(dump_json(aggregate.snapshot_state(), fallback=str))
    return AsOf(
        stream_id=stream_id,
        version=aggregate.version,
        timestamp=events[version - 1].timestamp.isoformat(),
        aggregate=aggregate_type.__name__,
        state=state,
    )
