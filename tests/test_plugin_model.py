from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import BaseModel

from phaselog.domain.errors import PhaselogError, StateVersionMismatch, ValidationFailed
from phaselog.domain.plugin import (
    PluginPhase,
    RetryPolicy,
    RetryStatus,
    Transition,
    UnknownPhase,
    is_valid_transition,
    parse_phase,
    plugin_stream_id,
)
from phaselog.domain.plugin_state import PluginStateManager, PluginStateUnreadable

# The documented transition table, written out independently of the implementation.
DOCUMENTED_TABLE = {
    "Uninstalled": {"Installing"},
    "Installing": {"Installed", "Failed"},
    "Installed": {"Building", "Validating", "Uninstalling", "Stopped"},
    "Building": {"Validating", "BuildFailed", "Failed"},
    "BuildFailed": {"Building", "Failed", "Uninstalling"},
    "Validating": {"Starting", "Failed", "Installed"},
    "Starting": {"Running", "Failed", "Degraded"},
    "Running": {"Stopping", "Degraded", "Failed", "Recovering", "Validating"},
    "Degraded": {"Recovering", "Stopping", "Failed"},
    "Recovering": {"Validating", "Failed"},
    "Stopping": {"Stopped", "Failed"},
    "Stopped": {"Validating", "Starting", "Uninstalling", "Installed"},
    "Failed": {"Validating", "Building", "Uninstalling", "Installed"},
    "Uninstalling": {"Uninstalled", "Failed"},
}


class Counter(BaseModel):
    """A plugin state model."""

    count: int
    label: str = ""


class Other(BaseModel):
    """A different plugin state model."""

    name: str


def test_phase_values_are_the_spec_strings() -> None:
    """PluginPhase has exactly the 14 documented phases with their string values and is a str."""
    assert {p.value for p in PluginPhase} == set(DOCUMENTED_TABLE)
    assert PluginPhase("BuildFailed") is PluginPhase.BUILD_FAILED
    assert isinstance(PluginPhase.RUNNING, str)
    assert str(PluginPhase.RUNNING) == "Running"


def test_transition_table_is_exactly_the_spec() -> None:
    """is_valid_transition allows exactly the documented table's pairs, all 196 checked, no self-loops."""
    for a in PluginPhase:
        for b in PluginPhase:
            assert is_valid_transition(a, b) == (b.value in DOCUMENTED_TABLE[a.value]), (a, b)
            assert is_valid_transition(a.value, b.value) == is_valid_transition(a, b)
        assert not is_valid_transition(a, a)


def test_active_and_terminal_properties() -> None:
    """is_active is Running/Degraded; is_terminal is Running/Stopped/Failed/BuildFailed/Uninstalled."""
    assert {p.value for p in PluginPhase if p.is_active} == {"Running", "Degraded"}
    assert {p.value for p in PluginPhase if p.is_terminal} == {
        "Running",
        "Stopped",
        "Failed",
        "BuildFailed",
        "Uninstalled",
    }


def test_parse_phase_accepts_values_and_names_and_rejects_others() -> None:
    """parse_phase takes a value or member name; anything else is UnknownPhase (a ValidationFailed)."""
    assert parse_phase("BuildFailed") is PluginPhase.BUILD_FAILED
    assert parse_phase("BUILD_FAILED") is PluginPhase.BUILD_FAILED
    for bad in ["running", "Exploded", "", 3, None]:
        with pytest.raises(UnknownPhase):
            parse_phase(bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed, match="unknown plugin phase"):
        is_valid_transition("Running", "Sleeping")
    assert issubclass(UnknownPhase, PhaselogError)


def test_plugin_stream_id_rejects_empty_ids() -> None:
    """Plugin streams are plugin:<id>; empty or non-string ids are ValidationFailed."""
    assert plugin_stream_id("a/b") == "plugin:a/b"
    for bad in ["", "  ", None, 5]:
        with pytest.raises(ValidationFailed):
            plugin_stream_id(bad)  # type: ignore[arg-type]


def test_transition_serializes_from() -> None:
    """Transition is frozen and serializes from_ as "from", and parses it back."""
    now = datetime.now(UTC)
    t = Transition(from_=PluginPhase.RUNNING, to=PluginPhase.DEGRADED, reason="probe", timestamp=now)
    dumped = orjson.loads(t.model_dump_json())
    assert dumped["from"] == "Running"
    assert "from_" not in dumped
    assert Transition.model_validate(dumped) == t
    with pytest.raises(ValueError, match="frozen"):
        t.reason = "x"  # type: ignore[misc]


def test_retry_policy_doubles_from_one_second_capped_at_sixty() -> None:
    """Backoff doubles from 1 s per advance, capped at 60 s; can_retry below 5 attempts."""
    policy = RetryPolicy()
    status = policy.initial()
    assert (status.attempts, status.next_backoff, status.last_attempt) == (0, timedelta(seconds=1), None)
    seen = []
    now = datetime.now(UTC)
    for _ in range(8):
        assert policy.can_retry(status) == (status.attempts < 5)
        status = policy.advanced(status, now)
        seen.append(status.next_backoff.total_seconds())
    assert seen == [2, 4, 8, 16, 32, 60, 60, 60]
    assert status.attempts == 8
    assert status.last_attempt == now


def test_retry_policy_limits_are_validated() -> None:
    """A non-positive initial backoff or a cap below it is ValidationFailed."""
    with pytest.raises(ValidationFailed):
        RetryPolicy(initial_backoff=timedelta(0))
    with pytest.raises(ValidationFailed):
        RetryPolicy(initial_backoff=timedelta(seconds=5), max_backoff=timedelta(seconds=1))
    assert RetryStatus().next_backoff == timedelta(seconds=1)


# -- PluginStateManager ------------------------------------------------------------------------------
def test_manager_without_previous_state_reads_zero_none() -> None:
    """With no previous state, get returns (0, None) and nothing is written by default."""
    mgr = PluginStateManager(None, 0)
    assert mgr.get(Counter) == (0, None)
    assert mgr.get_state_version() == 0
    assert mgr.get_new_state() == (None, 0, False)


def test_manager_treats_empty_bytes_as_no_state() -> None:
    """As the original, empty previous bytes mean no state: get returns (version, None) instead of raising."""
    assert PluginStateManager(b"", 0).get(Counter) == (0, None)
    assert PluginStateManager(b"", 4).get(Counter) == (4, None)


def test_manager_reports_the_version_it_was_given_even_without_state() -> None:
    """get_state_version returns the previous version as given, with or without previous bytes."""
    mgr = PluginStateManager(None, 3)
    assert mgr.get_state_version() == 3
    assert mgr.get(Counter) == (3, None)


def test_manager_reads_previous_round_not_this_rounds_put() -> None:
    """Get decodes the previous state; a put in the same round is not visible to get; last put wins."""
    mgr = PluginStateManager(orjson.dumps({"count": 1}), 7)
    assert mgr.get_state_version() == 7
    mgr.put(8, Counter(count=2))
    mgr.put(9, Counter(count=3, label="last"))
    assert mgr.get(Counter) == (7, Counter(count=1))
    data, version, written = mgr.get_new_state()
    assert (version, written) == (9, True)
    assert data is not None
    assert Counter.model_validate_json(data) == Counter(count=3, label="last")


def test_manager_put_encodes_at_put_time() -> None:
    """Put captures the value as it was: mutating the model afterwards changes nothing."""
    value = Counter(count=1)
    mgr = PluginStateManager(None, 0)
    mgr.put(1, value)
    value.count = 99
    data, _, _ = mgr.get_new_state()
    assert data == b'{"count":1,"label":""}'


def test_manager_reset_is_a_write_of_empty_state() -> None:
    """Reset after a put yields (None, 0, True): written as empty, distinct from not written."""
    mgr = PluginStateManager(orjson.dumps({"count": 1}), 3)
    mgr.put(4, Counter(count=5))
    mgr.reset()
    assert mgr.get_new_state() == (None, 0, True)
    assert mgr.get(Counter) == (3, Counter(count=1))
    mgr.put(2, Counter(count=6))
    assert mgr.get_new_state()[1:] == (2, True)


@pytest.mark.parametrize("version", [-1, 256, 1000, 1.5, "3", True, None])
def test_manager_rejects_versions_outside_0_255(version: object) -> None:
    """Put with a version outside 0-255 (or not an int) is ValidationFailed and writes nothing."""
    mgr = PluginStateManager(None, 0)
    with pytest.raises(ValidationFailed, match="0-255"):
        mgr.put(version, Counter(count=1))  # type: ignore[arg-type]
    assert mgr.get_new_state() == (None, 0, False)
    with pytest.raises(ValidationFailed):
        PluginStateManager(None, version)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [{"count": 1}, 5, "text", None, Counter])
def test_manager_rejects_non_model_values(value: object) -> None:
    """Put with anything but a pydantic model instance is ValidationFailed and writes nothing."""
    mgr = PluginStateManager(None, 0)
    with pytest.raises(ValidationFailed, match="pydantic model"):
        mgr.put(1, value)  # type: ignore[arg-type]
    assert mgr.get_new_state() == (None, 0, False)


def test_manager_get_needs_a_model_class() -> None:
    """Get with something that is not a pydantic model class is ValidationFailed."""
    mgr = PluginStateManager(b"{}", 1)
    with pytest.raises(ValidationFailed):
        mgr.get(dict)  # type: ignore[type-var]


@pytest.mark.parametrize("raw", [b"\x00\xffgarbage", b'{"count": "many"}', b"[1, 2]", b'{"name": "x"}'])
def test_manager_decode_failure_is_typed_never_garbage(raw: bytes) -> None:
    """Undecodable or mismatched previous state raises StateVersionMismatch and ValidationFailed."""
    mgr = PluginStateManager(raw, 2)
    with pytest.raises(PluginStateUnreadable) as info:
        mgr.get(Counter)
    assert isinstance(info.value, StateVersionMismatch)
    assert isinstance(info.value, ValidationFailed)
    assert "version 2" in str(info.value)


def test_manager_rejects_non_bytes_previous_state() -> None:
    """A previous state that is not bytes or None is ValidationFailed."""
    with pytest.raises(ValidationFailed):
        PluginStateManager("text", 1)  # type: ignore[arg-type]
    raw: object = bytearray(b'{"name":"a"}')
    assert PluginStateManager(raw, 1).get(Other) == (1, Other(name="a"))  # type: ignore[arg-type]
