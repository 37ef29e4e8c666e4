r"""The digests behind tamper evidence: per-stream event chains and sealed checkpoints.

Every stored event gets a **chain row** (position, stream id, version, digest)
written in the append's own transaction. The digest covers the event and the
digest of the previous event *of the same stream*::

    digest = sha256(previous \n position \n stream id \n version \n topic \n || sha256(state))

so writers of different streams never wait for each other (stream versions
already serialise the writers of one stream). Stores written at schema version 1
chained every event to the previous event of the *global* order (``link`` is
NULL on those chain rows); both kinds verify.

A per-stream chain alone cannot show that the newest event of a stream was
removed together with its chain row, or that events and chains were rewritten
together. **Seals** close that gap: ``phaselog audit seal`` (and every writing
store and projections runner, every ``seal_interval``) records a checkpoint over
every chain digest up to the commit horizon, chained to the previous seal. With
``PHASELOG_AUDIT_KEY`` set, each seal is HMAC-signed, so only the key holder can
forge one.

The **head digest** at a position is the digest a seal up to that position
would record (the newest seal's own digest when nothing follows it): one value
naming the whole history up to there, to publish outside the database
(``phaselog audit seal --print``) and check later (``verify --expect-head``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Iterator

__all__ = [
    "AUDIT_KEY_ENV",
    "GENESIS_DIGEST",
    "STREAM_LINK",
    "audit_key",
    "chain_digest",
    "head_digests",
    "seal_digest",
    "sign_seal",
]

GENESIS_DIGEST = "0" * 64
STREAM_LINK = 2  # chain rows linked per stream (NULL: the global chain of schema version 1)
AUDIT_KEY_ENV = "PHASELOG_AUDIT_KEY"


def chain_digest(  # noqa: PLR0913, PLR0917 - the fields of one chained event
    previous: str,
    position: int,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes | str,
) -> str:
    """The chain digest of one stored event, given the digest it links to.

    ``state`` may arrive as text when someone rewrote a stored blob as TEXT; it
    is hashed as its UTF-8 bytes, so such a row shows up as changed, not as an error.
    """
    raw = state.encode("utf-8", "surrogatepass") if isinstance(state, str) else bytes(state)
    head = f"{previous}\n{position}\n{originator_id}\n{originator_version}\n{topic}\n".encode()
    return hashlib.sha256(head + hashlib.sha256(raw).digest()).hexdigest()


def seal_digest(previous: str, horizon: int, digests: Iterable[str]) -> tuple[str, int]:
    """The digest of a seal over the chain digests after the previous seal, and how many it covers."""
    inner = hashlib.sha256()
    count = 0
    for digest in digests:
        inner.update(digest.encode())
        inner.update(b"\n")
        count += 1
    head = f"{previous}\n{horizon}\n{count}\n".encode()
    return hashlib.sha256(head + inner.digest()).hexdigest(), count


def head_digests(previous: str, rows: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """The head digest at each position of ``rows`` (position, chain digest) after the seal ``previous``.

    Each equals ``seal_digest(previous, position, digests up to it)[0]``, computed incrementally.
    """
    inner = hashlib.sha256()
    for count, (position, digest) in enumerate(rows, 1):
        inner.update(digest.encode())
        inner.update(b"\n")
        head = f"{previous}\n{position}\n{count}\n".encode()
        yield position, hashlib.sha256(head + inner.copy().digest()).hexdigest()


def audit_key() -> bytes | None:
    """The HMAC key for seals from ``$PHASELOG_AUDIT_KEY`` (None when unset or empty)."""
    key = os.environ.get(AUDIT_KEY_ENV, "")
    return key.encode() if key else None


def sign_seal(digest: str, key: bytes) -> str:
    """The HMAC-SHA256 signature of a seal digest."""
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()
