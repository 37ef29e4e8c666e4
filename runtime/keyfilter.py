"""Remembering many string keys in bounded memory: never forgetting one, sometimes claiming one.

:class:`KeyFilter` is a fixed-size Bloom filter: a key added is always found
again; a key never added is found with a small probability that grows with the
keys added (about 2 % for a 128 KiB filter holding 100,000 keys, three bits each).
:class:`BoundedKeySet` holds its newest keys exactly and folds older ones into a
filter, so "was this key ever added?" is answered without false negatives, in
memory that does not grow with the keys. Use them where a false "yes" is the
safe answer (a snapshot refused, a row looked up), never where it would lose data.

The bits of a key come from Python's ``hash``, which varies between processes:
a filter is only meaningful in the process that filled it (never store one).
"""

from __future__ import annotations

import threading

from phaselog.domain.errors import ValidationFailed

__all__ = ["BoundedKeySet", "KeyFilter"]

_LOW32 = 0xFFFFFFFF


class KeyFilter:
    """A Bloom filter of ``bits`` bits (a power of two) setting ``hashes`` bits per key.

    Not safe for threads adding at once (two could update one byte and lose a bit):
    one thread adds, or the caller locks, as :class:`BoundedKeySet` does.
    """

    def __init__(self, bits: int = 1 << 20, hashes: int = 3) -> None:
        if bits < 8 or bits & (bits - 1) or not 1 <= hashes <= 16:
            msg = f"a key filter has a power of two of at least 8 bits and 1-16 hashes, not {bits}, {hashes}"
            raise ValidationFailed(msg)
        self.bits = bits
        self.hashes = hashes
        self._mask = bits - 1
        self._array = bytearray(bits // 8)
        self.empty = True
        """True until the first key is added (and again after :meth:`clear`)."""

    def _positions(self, key: object) -> list[int]:
        # Double hashing over one 64-bit hash (Kirsch and Mitzenmacher): bit i is h1 + i * h2.
        h = hash(key)
        h1, h2 = h & _LOW32, ((h >> 32) & _LOW32) | 1
        mask = self._mask
        return [(h1 + i * h2) & mask for i in range(self.hashes)]

    def add(self, key: str) -> None:
        """Remember ``key``."""
        array = self._array
        for i in self._positions(key):
            array[i >> 3] |= 1 << (i & 7)
        self.empty = False

    def __contains__(self, key: object) -> bool:
        """True when ``key`` may have been added; False when it certainly was not."""
        if self.empty:
            return False
        array = self._array
        return all(array[i >> 3] & (1 << (i & 7)) for i in self._positions(key))

    def clear(self) -> None:
        """Forget every key."""
        if not self.empty:
            self._array[:] = bytes(len(self._array))
        self.empty = True


class BoundedKeySet:
    """The keys added so far: the newest ``capacity`` exactly, the older ones in a :class:`KeyFilter`."""

    def __init__(self, capacity: int, evicted: KeyFilter | None = None) -> None:
        if capacity < 1:
            msg = f"a bounded key set holds at least one key exactly, not {capacity}"
            raise ValidationFailed(msg)
        self.capacity = capacity
        self._held: dict[str, None] = {}  # insertion order: the oldest first out
        self._lock = threading.Lock()
        self.evicted = KeyFilter() if evicted is None else evicted

    def add(self, key: str) -> None:
        """Remember ``key`` (a key held already keeps its place); safe from several threads at once."""
        held = self._held
        if key in held:
            return
        with self._lock:  # one writer at a time: a filter byte updated by two at once could lose a bit
            held[key] = None
            if len(held) > self.capacity:
                oldest = next(iter(held))
                self.evicted.add(oldest)  # into the filter before out of the dict: never absent from both
                del held[oldest]

    def __contains__(self, key: object) -> bool:
        """True when ``key`` was added (or, for an evicted key's lookalike, may have been)."""
        return key in self._held or key in self.evicted

    def __len__(self) -> int:
        """The keys held exactly (at most ``capacity``)."""
        return len(self._held)
