"""How the read side decodes a page of stored events (pure: no store involved)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from phaselog.projections.base import EventData, EventDecoder
from phaselog.runtime.ports import LogRecord

import support_events  # noqa: F401 - registers the counter topics


def _record(position: int, topic: str, state: Any) -> LogRecord:
    return LogRecord(position, "counter:1", position, topic, orjson.dumps(state))


def _sealed(state: Any, stream_id: str) -> Any:
    """A codec's reveal: these events hold no sealed personal value, so it is never asked."""
    raise AssertionError(f"nothing sealed in {stream_id}: {state}")


def _page(records: list[LogRecord], after: int = 0) -> list[EventData | Exception]:
    decoder = EventDecoder(SimpleNamespace(cipher=None, compressor=None, reveal=_sealed))
    memo: dict[str, bool] = {}
    return [event for _, event in decoder.page(records, after, lambda _topic: True, memo)]


def test_a_versioned_class_is_upcast_on_every_event() -> None:
    """Events of a class at version 2 stored at version 1 reach the fold upcast, page after page."""
    records = [_record(i, "tests.counter.Added", {"n": i}) for i in (1, 2)]
    events = _page(records)
    assert [e.data for e in events if isinstance(e, EventData)] == [{"amount": 1}, {"amount": 2}]


def test_a_stored_class_version_of_an_unversioned_class_is_applied() -> None:
    """A ``class_version`` in the stored state is honoured (and dropped) even for a class at version 1."""
    events = _page([_record(1, "tests.counter.Opened", {"label": "a", "class_version": 1})] * 2)
    assert [e.data for e in events if isinstance(e, EventData)] == [{"label": "a"}, {"label": "a"}]


def test_an_unknown_topic_is_decoded_raw_without_its_class_version() -> None:
    """A topic no class is registered for reaches the fold as its raw JSON, ``class_version`` removed."""
    events = _page([_record(1, "elsewhere.Thing", {"x": 1, "class_version": 3})])
    assert events == [EventData(1, "elsewhere.Thing", "counter:1", 1, {"x": 1})]


def test_a_non_object_state_is_wrapped_and_bad_json_is_the_events_error() -> None:
    """A JSON state that is not an object arrives as ``{"value": ...}``; undecodable bytes as the error."""
    bad = LogRecord(2, "counter:1", 2, "tests.counter.Opened", b"{not json")
    events = _page([_record(1, "tests.counter.Opened", [1, 2]), bad])
    assert isinstance(events[0], EventData)
    assert events[0].data == {"value": [1, 2]}
    assert isinstance(events[1], Exception)
    with pytest.raises(Exception, match="not valid JSON"):
        raise events[1]


def test_positions_up_to_after_are_left_out() -> None:
    """Only records past ``after`` are decoded."""
    records = [_record(i, "tests.counter.Opened", {"label": str(i)}) for i in (1, 2, 3)]
    assert [e.position for e in _page(records, after=2) if isinstance(e, EventData)] == [3]
