"""A writer that meets many streams with personal data keeps bounded memory and still never snapshots one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from privacy_support import EMAIL, KEY_A, sign

from phaselog.adapters import Store, codec, open_store
from phaselog.adapters.crypto import MASTER_KEY_ENV


@pytest.fixture
def forgetful(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A keyed store (snapshot after every save) whose mapper holds only two personal streams exactly."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    monkeypatch.setattr(codec, "PERSONAL_STREAMS_HELD", 2)
    with open_store(store_url, snapshot_interval=1) as store:
        yield store


def _snapshots(store: Store, stream: str) -> list[bytes]:
    recorder = store.app.snapshots.recorder if store.app.snapshots is not None else None
    return [] if recorder is None else [bytes(e.state) for e in recorder.select_events(stream)]


def test_a_stream_evicted_from_the_exact_set_is_still_never_snapshotted(forgetful: Store) -> None:
    """The first of five personal streams, evicted from an exact set of two, refuses its snapshot later."""
    first = sign("person-1", "customer:1")
    forgetful.save(first)
    for n in range(2, 6):
        forgetful.save(sign(f"person-{n}", f"customer:{n}"))
    mapper = forgetful.app.mapper
    assert isinstance(mapper, codec.PydanticMapper)
    assert len(mapper._personal_streams) == 2
    first.change_plan("silver")  # an event with nothing personal: only the mapper's memory refuses
    forgetful.save(first)
    assert _snapshots(forgetful, "customer:1") == []
    assert forgetful.load("customer:1", type(first)).plan == "silver"
    assert all(EMAIL.encode() not in state for state in _snapshots(forgetful, "customer:5"))
