"""The keys of a store's data subjects: made on first use, cached, erased for good, re-wrapped on rotation.

A :class:`KeyRing` hands the mapper a subject's 32-byte data key to seal or open its
values. Keys are cached for ``cache_seconds`` (another process's erasure is seen within
that window); an erased subject is remembered for good. Without a key provider,
nothing personal can be written or read (``KeyUnavailable``, nothing written).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from phaselog.adapters.crypto.keys import MASTER_KEY_ENV, KeyProvider
from phaselog.adapters.crypto.tables import KeyRow, KeyTable, now
from phaselog.domain.errors import KeyUnavailable, NotFound, SubjectErased, ValidationFailed

__all__ = ["ERASED", "KeyRing"]

ERASED = None
"""What :meth:`KeyRing.key_for_reading` answers for an erased subject."""
KEY_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class _Cached:
    key: bytes | None
    until: float


class KeyRing:
    """The data keys of one store's subjects, wrapped by ``provider`` (the store gives its master key)."""

    def __init__(
        self,
        table: KeyTable,
        provider: KeyProvider | None = None,
        *,
        cache_seconds: float = KEY_CACHE_SECONDS,
    ) -> None:
        self.table = table
        self.provider = provider
        self.cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}
        self._noted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def use(self, provider: KeyProvider | None) -> None:
        """Wrap and unwrap keys with ``provider`` from now on (``None``: none; cached keys are forgotten)."""
        with self._lock:
            self.provider = provider
            self._cache.clear()

    def _provider(self, subject: str) -> KeyProvider:
        if self.provider is None:
            msg = f"personal data of subject {subject!r} needs the master key: set ${MASTER_KEY_ENV}"
            raise KeyUnavailable(msg)
        return self.provider

    def _open(self, row: KeyRow) -> bytes | None:
        if row.wrapped is None:
            return ERASED
        provider = self._provider(row.subject)
        if row.key_id != provider.key_id:
            msg = f"the key of subject {row.subject!r} is wrapped by {row.key_id}, not by {provider.key_id}"
            raise KeyUnavailable(msg)
        return provider.unwrap(row.subject, row.wrapped)

    def _cached(self, subject: str) -> _Cached | None:
        found = self._cache.get(subject)
        if found is None or (found.key is not None and found.until < time.monotonic()):
            return None
        return found

    def _remember(self, subject: str, key: bytes | None) -> bytes | None:
        self._cache[subject] = _Cached(key, time.monotonic() + self.cache_seconds)
        return key

    def key_for_reading(self, subject: str) -> bytes | None:
        """The data key of ``subject``, or ``ERASED`` (``KeyUnavailable`` without the right master key)."""
        cached = self._cached(subject)
        if cached is not None:
            return cached.key
        row = self.table.read(subject)
        if row is None:
            msg = f"no key is stored for subject {subject!r}: its personal values cannot be opened"
            raise KeyUnavailable(msg)
        return self._remember(subject, self._open(row))

    def key_for_writing(self, subject: str, stream_id: str) -> bytes:
        """The data key to seal ``subject``'s values in ``stream_id`` with, made on first use.

        ``SubjectErased`` when the subject was erased; ``KeyUnavailable`` without the master key.
        """
        if not subject:
            raise ValidationFailed("personal data needs a subject id, not an empty one")
        provider = self._provider(subject)
        cached = self._cached(subject)
        key = None if cached is None else cached.key
        if cached is None:
            row = self.table.read(subject)
            fresh = os.urandom(32) if row is None else None
            if fresh is not None and self.table.insert(
                KeyRow(subject, provider.key_id, provider.wrap(subject, fresh), now()), stream_id
            ):
                key = self._remember(subject, fresh)
                self._noted.add((subject, stream_id))  # noted with the key
            else:
                row = row or self.table.read(subject)  # another process made it first
                assert row is not None  # noqa: S101 - inserted or found
                key = self._remember(subject, self._open(row))
        if key is None:
            msg = f"subject {subject!r} was erased: its personal data is not written (use a new subject id)"
            raise SubjectErased(msg)
        if (subject, stream_id) not in self._noted:
            self.table.note_stream(subject, stream_id)
            self._noted.add((subject, stream_id))
        return key

    def erase(self, subject: str, reason: str) -> KeyRow:
        """Destroy ``subject``'s key for good (``NotFound`` when it has none); the row as erased."""
        row = self.table.read(subject)
        if row is None:
            raise NotFound(f"no personal data of subject {subject!r} is stored")
        if row.wrapped is not None:
            self.table.erase(subject, reason, now())
        self._remember(subject, ERASED)
        erased = self.table.read(subject)
        assert erased is not None  # noqa: S101 - it was there
        return erased

    def rotate(self, new: KeyProvider) -> int:
        """Re-wrap every live key with ``new`` (events are not touched); return how many were re-wrapped."""
        done = 0
        for row in self.table.rows():
            if row.wrapped is None or row.key_id == new.key_id:
                continue
            key = self._open(row)
            assert key is not None  # noqa: S101 - a live row
            self.table.rewrap(row.subject, new.key_id, new.wrap(row.subject, key))
            done += 1
        self.use(new)
        return done
