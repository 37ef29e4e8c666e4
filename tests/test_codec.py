from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from phaselog.adapters import Store
from phaselog.adapters.codec import OrjsonTranscoder, PydanticMapper
from phaselog.domain.errors import UnknownEventType, ValidationFailed
from phaselog.domain.events import DomainEvent, resolve_topic, topic_of

from support_events import Added, Counter, open_counter


def _mapper() -> PydanticMapper:
    return PydanticMapper(transcoder=OrjsonTranscoder())


def test_stored_topic_is_the_stable_name(store: Store) -> None:
    """Events are stored under their declared TOPIC, never a module path."""
    store.save(open_counter("counter:t"))
    (note,) = store.notifications()
    assert note.topic == "tests.counter.Opened"
    assert ":" not in note.topic


def test_event_round_trip_preserves_fields() -> None:
    """An event survives encode/decode with its fields, id, version and aware timestamp."""
    event = Added(
        originator_id="c", originator_version=2, timestamp=datetime(2026, 1, 2, tzinfo=UTC), amount=5
    )
    stored = _mapper().to_stored_event(event)
    assert b"originator_id" not in stored.state
    assert b'"class_version":2' in stored.state
    assert _mapper().to_domain_event(stored) == event


def test_events_from_an_older_class_version_are_upcast(store: Store) -> None:
    """A version-1 event (field ``n``) written long ago is read as version 2 (``amount``)."""
    store.save(open_counter("counter:o"))
    old = StoredEvent(
        originator_id="counter:o",
        originator_version=2,
        topic="tests.counter.Added",
        state=b'{"timestamp":"2025-01-01T00:00:00Z","n":41}',
    )
    store.app.recorder.insert_events([old])
    assert store.load("counter:o", Counter).total == 41
    (event,) = store.stream("counter:o", gt=1)
    assert isinstance(event, Added)
    assert event.amount == 41


def test_unknown_topic_is_a_typed_error() -> None:
    """A stored topic no class is registered under raises UnknownEventType."""
    stored = StoredEvent(originator_id="x", originator_version=1, topic="nobody.Knows", state=b"{}")
    with pytest.raises(UnknownEventType, match=r"nobody\.Knows"):
        _mapper().to_domain_event(stored)


def test_stored_data_that_does_not_validate_is_a_typed_error() -> None:
    """Stored state missing a required field raises ValidationFailed naming the event."""
    stored = StoredEvent(
        originator_id="x",
        originator_version=2,
        topic="tests.counter.Added",
        state=b'{"timestamp":"2025-01-01T00:00:00Z","class_version":2}',
    )
    with pytest.raises(ValidationFailed, match=r"tests.counter.Added x@2"):
        _mapper().to_domain_event(stored)


def test_corrupt_bytes_are_a_typed_error() -> None:
    """Bytes that are not JSON raise ValidationFailed, not a decoder exception."""
    stored = StoredEvent(originator_id="x", originator_version=1, topic="tests.counter.Added", state=b"\xff")
    with pytest.raises(ValidationFailed):
        _mapper().to_domain_event(stored)


def test_class_without_own_topic_cannot_be_stored() -> None:
    """An event class that inherits, but does not declare, a TOPIC is refused."""

    class Untitled(Added):
        pass

    event = Untitled(originator_id="c", originator_version=2, timestamp=datetime.now(UTC), amount=1)
    with pytest.raises(ValidationFailed, match="declares no stable TOPIC"):
        _mapper().to_stored_event(event)
    assert topic_of(Added) == "tests.counter.Added"
    assert resolve_topic("tests.counter.Added") is Added


def test_transcoder_rejects_values_json_cannot_hold() -> None:
    """Encoding a value JSON cannot represent raises ValidationFailed."""
    with pytest.raises(ValidationFailed, match="not JSON"):
        OrjsonTranscoder().encode({"x": object()})


class Loose(DomainEvent):
    """An event with an untyped payload (anything may be put in it)."""

    TOPIC = "tests.counter.Loose"
    payload: Any


def test_failed_save_of_unencodable_event_writes_nothing(store: Store) -> None:
    """If one pending event cannot be encoded, none of the aggregate's events are recorded."""
    counter = open_counter("counter:l")
    counter.add(1)
    counter.trigger(Loose, payload=object())
    with pytest.raises(ValidationFailed, match="cannot be encoded"):
        store.save(counter)
    assert store.max_position() == 0


def test_data_from_a_newer_class_version_is_refused() -> None:
    """An event written by a newer class version than this code raises ValidationFailed, not garbage."""
    stored = StoredEvent(
        originator_id="x",
        originator_version=2,
        topic="tests.counter.Added",
        state=b'{"timestamp":"2025-01-01T00:00:00Z","class_version":3,"amount":1,"unit":"kg"}',
    )
    with pytest.raises(ValidationFailed, match="newer than this code"):
        _mapper().to_domain_event(stored)
