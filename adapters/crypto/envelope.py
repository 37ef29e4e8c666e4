"""Personal values sealed with their subject's data key (AES-256-GCM), and revealed or redacted on reading.

A sealed value replaces the plain one in the stored JSON: ``{"$pii": 1, "s": SUBJECT,
"n": NONCE, "c": CIPHERTEXT}`` (base64), bound to its stream by the associated data.
Hash chains and seals are computed over these bytes, so an erasure (which destroys
the key, never an event) leaves them intact.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phaselog.domain.encoding import dump_json, load_json
from phaselog.domain.errors import IntegrityViolation
from phaselog.domain.personal import Redacted

__all__ = ["MARK", "open_value", "reveal", "seal_paths", "seal_value"]

MARK = "$pii"
"""The key that tells a sealed value in stored JSON."""
MARK_BYTES = b'"$pii"'
"""How a sealed value shows in stored bytes (checked before any JSON is walked)."""
_NONCE = 12

KeyFor = Callable[[str], "bytes | None"]
"""A subject's data key, ``None`` once it was erased."""


def _aad(stream_id: str, subject: str) -> bytes:
    return f"phaselog:value:{stream_id}:{subject}".encode()


def seal_value(key: bytes, stream_id: str, subject: str, value: Any) -> dict[str, Any]:
    """``value`` (any JSON value) encrypted under ``key`` for ``subject`` in ``stream_id``."""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, dump_json(value), _aad(stream_id, subject))
    return {
        MARK: 1,
        "s": subject,
        "n": base64.b64encode(nonce).decode(),
        "c": base64.b64encode(sealed).decode(),
    }


def open_value(key: bytes, stream_id: str, sealed: dict[str, Any]) -> Any:
    """The value :func:`seal_value` sealed (``IntegrityViolation`` when it does not open)."""
    subject = str(sealed["s"])
    try:
        nonce, data = base64.b64decode(sealed["n"]), base64.b64decode(sealed["c"])
        return load_json(AESGCM(key).decrypt(nonce, data, _aad(stream_id, subject)))
    except (InvalidTag, ValueError, KeyError) as exc:
        msg = f"a personal value of subject {subject!r} in {stream_id!r} does not open: it was altered"
        raise IntegrityViolation(msg) from exc


def seal_paths(state: dict[str, Any], paths: Sequence[str], stream_id: str, subject: str, key: bytes) -> None:
    """Seal the values at the dotted ``paths`` of ``state`` in place (absent or ``None`` ones stay)."""
    for path in paths:
        *parents, leaf = path.split(".")
        holder: Any = state
        for name in parents:
            holder = holder.get(name) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and holder.get(leaf) is not None:
            holder[leaf] = seal_value(key, stream_id, subject, holder[leaf])


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and MARK in value and "c" in value


def reveal(value: Any, stream_id: str, key_for: KeyFor) -> Any:
    """``value`` with each sealed value opened, or a redacted marker where its subject was erased."""
    if isinstance(value, dict):
        if _is_sealed(value):
            key = key_for(str(value["s"]))
            return Redacted(str(value["s"])).as_json() if key is None else open_value(key, stream_id, value)
        return {k: reveal(v, stream_id, key_for) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, stream_id, key_for) for v in value]
    return value
