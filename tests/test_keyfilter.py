"""The bounded memory of keys: a Bloom filter that never forgets, a key set that stays small."""

from __future__ import annotations

import threading

import pytest

from phaselog.domain.errors import ValidationFailed
from phaselog.runtime.keyfilter import BoundedKeySet, KeyFilter


def test_a_filter_finds_every_key_it_was_given() -> None:
    """No false negatives: each of 50,000 keys added is found again."""
    keys = KeyFilter(1 << 20)
    added = [f"plugin:{n}" for n in range(50_000)]
    for key in added:
        keys.add(key)
    assert all(key in keys for key in added)


def test_a_filter_rarely_claims_a_key_it_was_not_given() -> None:
    """False positives stay near the design rate: under 4 % at 100,000 keys in 128 KiB (1.5 % expected)."""
    keys = KeyFilter(1 << 20)
    for n in range(100_000):
        keys.add(f"in:{n}")
    claimed = sum(f"out:{n}" in keys for n in range(20_000))
    assert claimed < 800
    assert "out:1" not in KeyFilter()  # an empty filter claims nothing


def test_clearing_a_filter_forgets_every_key() -> None:
    """After clear, keys once added are no longer found and the filter is empty again."""
    keys = KeyFilter(64)
    keys.add("a")
    keys.clear()
    assert keys.empty
    assert "a" not in keys


def test_a_filter_refuses_a_size_that_is_not_a_power_of_two() -> None:
    """Sizes and hash counts outside the supported range fail at construction."""
    with pytest.raises(ValidationFailed, match="power of two"):
        KeyFilter(1000)
    with pytest.raises(ValidationFailed, match="power of two"):
        KeyFilter(64, hashes=0)


def test_a_bounded_key_set_holds_at_most_its_capacity_and_remembers_the_rest() -> None:
    """Past its capacity the set holds only the newest keys exactly, and still answers yes for older ones."""
    seen = BoundedKeySet(capacity=100)
    for n in range(10_000):
        seen.add(f"state:{n}")
    assert len(seen) == 100
    assert all(f"state:{n}" in seen for n in range(10_000))
    assert sum(f"other:{n}" in seen for n in range(10_000)) < 100
    with pytest.raises(ValidationFailed, match="at least one key"):
        BoundedKeySet(capacity=0)


def test_threads_adding_at_once_lose_no_key() -> None:
    """Eight threads adding 20,000 keys each past the capacity: every key is still found afterwards."""
    seen = BoundedKeySet(capacity=1000, evicted=KeyFilter(1 << 16))

    def add(thread: int) -> None:
        for n in range(20_000):
            seen.add(f"{thread}:{n}")

    workers = [threading.Thread(target=add, args=(t,)) for t in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(seen) == 1000
    assert all(f"{t}:{n}" in seen for t in range(8) for n in range(20_000))
