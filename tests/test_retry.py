"""The one retry policy (domain/retry.Backoff) and the one retry loop (runtime/retry.retry)."""

from __future__ import annotations

import itertools

import pytest

from phaselog.domain.errors import ConcurrencyConflict, StoreUnavailable, ValidationFailed
from phaselog.domain.retry import Backoff
from phaselog.runtime.retry import retry


def test_delays_grow_geometrically_up_to_the_cap() -> None:
    """Delays start at first, multiply by factor and stop growing at maximum; attempts bound their count."""
    policy = Backoff(first=0.1, factor=2.0, maximum=0.5, attempts=6)
    assert list(policy.delays()) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert policy.delay(1) == pytest.approx(0.1)
    assert list(itertools.islice(Backoff(first=1.0, maximum=3.0).delays(), 4)) == [1.0, 2.0, 3.0, 3.0]
    assert list(Backoff(attempts=1).delays()) == []


def test_after_steps_a_loops_own_delay() -> None:
    """after(previous) doubles a delay kept by the caller, never below first nor above maximum."""
    policy = Backoff(first=0.05, maximum=1.0)
    assert policy.after(0.2) == pytest.approx(0.4)
    assert policy.after(0.0) == pytest.approx(0.05)
    assert policy.after(0.8) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad", [{"first": -1.0}, {"factor": 0.5}, {"first": 2.0, "maximum": 1.0}, {"attempts": 0}]
)
def test_a_nonsense_policy_is_refused(bad: dict[str, float]) -> None:
    """Negative delays, a shrinking factor, a cap below the first delay, zero attempts: ValidationFailed."""
    with pytest.raises(ValidationFailed):
        Backoff(**bad)  # type: ignore[arg-type]


def test_retry_waits_between_attempts_and_returns_the_result() -> None:
    """A call failing twice with a retryable error succeeds on the third attempt after the policy's waits."""
    calls: list[int] = []
    waits: list[float] = []
    seen: list[tuple[str, float]] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailable(f"down {len(calls)}")
        return "ok"

    def wait(delay: float) -> bool:
        waits.append(delay)
        return False

    result = retry(
        flaky,
        policy=Backoff(first=0.1, attempts=5),
        retry_on=StoreUnavailable,
        wait=wait,
        on_retry=lambda exc, d: seen.append((str(exc), d)),
    )
    assert result == "ok"
    assert waits == pytest.approx([0.1, 0.2])
    assert seen == [("down 1", 0.1), ("down 2", pytest.approx(0.2))]


def test_retry_gives_up_with_the_last_error() -> None:
    """When the attempts are used up the last error is raised unchanged."""
    errors = iter([ConcurrencyConflict("first"), ConcurrencyConflict("second")])

    def always() -> None:
        raise next(errors)

    with pytest.raises(ConcurrencyConflict, match="second"):
        retry(always, policy=Backoff(first=0.0, maximum=0.0, attempts=2), retry_on=ConcurrencyConflict)


def test_retry_only_retries_what_it_is_told_to() -> None:
    """Other errors, errors for which `when` is false, and a wait that says stop end the loop at once."""
    calls: list[int] = []

    def fails(exc: Exception) -> None:
        calls.append(1)
        raise exc

    with pytest.raises(ValidationFailed):
        retry(lambda: fails(ValidationFailed("bad")), policy=Backoff(attempts=9), retry_on=StoreUnavailable)
    with pytest.raises(StoreUnavailable):
        retry(
            lambda: fails(StoreUnavailable("x")),
            policy=Backoff(attempts=9),
            retry_on=StoreUnavailable,
            when=lambda _exc: False,
        )
    with pytest.raises(StoreUnavailable):
        retry(
            lambda: fails(StoreUnavailable("y")),
            policy=Backoff(attempts=9),
            retry_on=StoreUnavailable,
            wait=lambda _delay: True,
        )
    assert len(calls) == 3
