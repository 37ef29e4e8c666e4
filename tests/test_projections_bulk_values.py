"""Rows written in bulk (COPY on PostgreSQL) read back exactly as an in-memory fold gives them."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from phaselog.adapters import Store
from phaselog.adapters.postgres.views_sql import COPY_FROM
from phaselog.projections.base import EventData, Projection, Rows
from phaselog.projections.runner import Projections

TOPIC = "tests.bulk.Set"
ROWS = 3 * COPY_FROM  # enough for the bulk path, new rows and replaced rows alike
TEXTS = ["plain", "nul\x00inside", "\ufdd0json:looks escaped", "astral \U0001f600", ""]
INTS = [0, -1, 2**63 - 1, -(2**63), 42]


class Kinds(Projection):
    """One row per key with a column of each kind, set from the event."""

    name: ClassVar[str] = "bulk_kinds"
    key: ClassVar[str] = "id"
    columns: ClassVar[dict[str, str]] = {
        "id": "text",
        "label": "text",
        "count": "int",
        "on": "bool",
        "doc": "json",
    }
    topics: ClassVar[frozenset[str] | None] = frozenset({TOPIC})

    def apply(self, rows: Rows, event: EventData) -> None:
        rows.put(event.stream_id, {"id": event.stream_id, **event.data})


def _values(n: int, round_: int) -> dict[str, Any]:
    """Column values for row ``n`` in ``round_``, with a NULL in each column now and then."""
    return {
        "label": None if (n + round_) % 7 == 0 else TEXTS[(n + round_) % len(TEXTS)],
        "count": None if (n + round_) % 11 == 0 else INTS[(n + round_) % len(INTS)],
        "on": None if (n + round_) % 13 == 0 else bool((n + round_) % 2),
        "doc": None
        if (n + round_) % 5 == 0
        else {"n": n, "tags": ["a", "\x00"], "f": 1.5, "deep": {"r": round_}},
    }


def test_bulk_written_rows_of_every_kind_read_back_as_folded(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Text with NUL or the escape marker, 64-bit ints, bools, JSON, NULLs: inserted, replaced, in bulk."""
    caplog.set_level(logging.INFO, logger="phaselog.projections")
    events: list[StoredEvent] = []
    for round_ in (1, 2):  # the second round replaces every row (an upsert through a staging table)
        events.extend(
            StoredEvent(f"bulk:{n}", round_, TOPIC, orjson.dumps(_values(n, round_))) for n in range(ROWS)
        )
    projection = Kinds()
    views = Projections(store, [projection])
    try:
        store.app.recorder.insert_events(events[:ROWS])
        views.catch_up()
        store.app.recorder.insert_events(events[ROWS:])
        views.catch_up()
        model = views[projection.name]
        for n in range(ROWS):
            expected = projection.normalise({"id": f"bulk:{n}", **_values(n, 2)})
            assert model.get(f"bulk:{n}") == expected
        assert not [
            r for r in caplog.records if "bulk write failed" in r.getMessage()
        ]  # no event-by-event redo
    finally:
        views.close()
