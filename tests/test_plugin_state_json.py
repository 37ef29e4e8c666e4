"""Plugin state is recorded as JSON when it is a model's JSON, bytes stay bytes, old events still read."""

from __future__ import annotations

from pydantic import BaseModel

from phaselog.adapters import Store
from phaselog.domain.encoding import dump_json
from phaselog.domain.plugin import PluginAggregate, PluginStateWritten
from phaselog.domain.plugin_state import encode_b64


class Settings(BaseModel):
    """A plugin's state."""

    level: int
    name: str
    blob: str = ""


def _written(store: Store, stream: str) -> PluginStateWritten:
    (event,) = [e for e in store.stream(stream) if isinstance(e, PluginStateWritten)]
    return event


def test_a_models_state_is_recorded_as_its_json(store: Store) -> None:
    """``put`` of a model records a JSON object the log, console and export show as structure."""
    store.plugins.handle("cam", lambda mgr: mgr.put(3, Settings(level=7, name="x")))
    event = _written(store, "plugin:cam")
    assert (event.value, event.data) == ({"level": 7, "name": "x", "blob": ""}, None)
    assert store.plugins.handle("cam", lambda mgr: mgr.get(Settings)) == (3, Settings(level=7, name="x"))


def test_bytes_that_are_not_a_json_object_come_back_byte_for_byte(store: Store) -> None:
    """State bytes that are not exactly an object's JSON (binary, spaced JSON, a list) stay base64."""
    for n, raw in enumerate([b"\x00\xffbinary", b'{"level": 7}', b"[1,2]"]):
        agg = store.plugins.machine(f"raw{n}")._known()
        agg.write_state(raw, 5)
        store.save(agg)
        event = _written(store, f"plugin:raw{n}")
        assert event.value is None
        assert event.data == encode_b64(raw)
        loaded = store.load(f"plugin:raw{n}", PluginAggregate)
        assert (loaded.state, loaded.state_version) == (raw, 5)


def test_state_events_recorded_as_base64_are_still_read(store: Store) -> None:
    """An event written before states were JSON (base64 ``data`` only) loads as it always did."""
    agg = store.plugins.machine("old")._known()
    agg.trigger(PluginStateWritten, data=encode_b64(dump_json({"level": 1, "name": "o"})), state_version=2)
    store.save(agg)
    assert store.plugins.handle("old", lambda mgr: mgr.get(Settings)) == (2, Settings(level=1, name="o"))


def test_a_three_megabyte_state_fits_the_event_size_limit(store: Store) -> None:
    """A 3.2 MB model state is accepted under the 4 MiB limit (as base64 it was 4.3 MB, refused)."""
    big = Settings(level=1, name="big", blob="x" * 3_200_000)
    store.plugins.handle("big", lambda mgr: mgr.put(1, big))
    assert store.plugins.handle("big", lambda mgr: mgr.get(Settings)) == (1, big)
