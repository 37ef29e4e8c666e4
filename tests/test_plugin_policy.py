from __future__ import annotations

from datetime import timedelta

import pytest

from phaselog.domain.errors import ValidationFailed
from phaselog.domain.ids import InvalidStreamId
from phaselog.domain.plugin import RetryPolicy, RetryStatus, plugin_stream_id

S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": -1}, r"max_attempts must be a non-negative integer, got -1"),
        ({"max_attempts": True}, r"max_attempts must be a non-negative integer, got True"),
        ({"max_attempts": 2.0}, r"max_attempts must be a non-negative integer, got 2.0"),
        ({"initial_backoff": 1.0}, r"initial_backoff and max_backoff must be timedeltas"),
        ({"max_backoff": 60}, r"initial_backoff and max_backoff must be timedeltas"),
        ({"initial_backoff": timedelta(0)}, r"initial_backoff must be positive, got 0:00:00"),
        ({"initial_backoff": -S}, r"initial_backoff must be positive"),
        (
            {"initial_backoff": 5 * S, "max_backoff": 4 * S},
            r"max_backoff 0:00:04 is below initial_backoff 0:00:05",
        ),
    ],
)
def test_a_bad_retry_policy_names_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    """Each invalid limit raises ValidationFailed with a message naming that limit and its value."""
    with pytest.raises(ValidationFailed, match=f"^{message}"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]  # bad input on purpose


def test_the_boundaries_of_a_retry_policy_are_allowed() -> None:
    """Zero attempts, the smallest positive backoff and a cap equal to the start are all valid."""
    policy = RetryPolicy(
        max_attempts=0, initial_backoff=timedelta(microseconds=1), max_backoff=timedelta(microseconds=1)
    )
    status = policy.initial()
    assert status == RetryStatus(attempts=0, next_backoff=timedelta(microseconds=1), last_attempt=None)
    assert not policy.can_retry(status)
    assert RetryPolicy(initial_backoff=3 * S, max_backoff=3 * S).initial().next_backoff == 3 * S


def test_a_custom_initial_backoff_is_where_a_reset_starts() -> None:
    """initial() is 0 attempts at the policy's own initial backoff, with no last attempt."""
    assert RetryPolicy(initial_backoff=timedelta(milliseconds=250)).initial() == RetryStatus(
        attempts=0, next_backoff=timedelta(milliseconds=250), last_attempt=None
    )


@pytest.mark.parametrize("blank", [" ", "\t", "   "])
def test_a_blank_plugin_id_is_an_invalid_stream_id(blank: str) -> None:
    """Whitespace-only plugin ids raise InvalidStreamId saying they are blank."""
    with pytest.raises(InvalidStreamId, match=r"plugin id must not be blank"):
        plugin_stream_id(blank)
    assert plugin_stream_id(" x ") == "plugin: x "
