"""The master key that wraps every subject's data key, and the port a key service plugs into.

:class:`MasterKey` wraps data keys with AES-256-GCM under one 32-byte secret, read
from ``PHASELOG_MASTER_KEY`` (base64 or hex). A key management service plugs in as
any :class:`KeyProvider`: it names itself (``key_id``, stored beside each wrapped
key so a wrong key is told apart from a damaged one) and wraps and unwraps bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phaselog.domain.errors import KeyUnavailable, ValidationFailed

__all__ = ["MASTER_KEY_ENV", "KeyProvider", "MasterKey", "master_key_from_env"]

MASTER_KEY_ENV = "PHASELOG_MASTER_KEY"
"""The environment variable holding the master key: 32 bytes, base64 or hex."""
_NONCE = 12


class KeyProvider(Protocol):
    """Wraps and unwraps subjects' data keys (a master key here, or a key management service)."""

    @property
    def key_id(self) -> str:
        """A stable, non-secret name of the wrapping key (stored beside every key it wraps)."""
        ...

    def wrap(self, subject: str, key: bytes) -> bytes:
        """``key`` encrypted for ``subject``."""
        ...

    def unwrap(self, subject: str, wrapped: bytes) -> bytes:
        """The key :meth:`wrap` gave ``wrapped`` for (``KeyUnavailable`` when it does not open)."""
        ...


def _secret(text: str) -> bytes:
    cleaned = text.strip()
    for decode in (bytes.fromhex, base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(cleaned)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    msg = f"{MASTER_KEY_ENV} must be 32 bytes written as base64 or hex (e.g. openssl rand -base64 32)"
    raise ValidationFailed(msg)


class MasterKey:
    """AES-256-GCM key wrapping under one 32-byte master key (each wrap bound to its subject)."""

    def __init__(self, secret: bytes | str) -> None:
        raw = _secret(secret) if isinstance(secret, str) else secret
        if len(raw) != 32:
            raise ValidationFailed("a master key is 32 bytes")
        self._aead = AESGCM(raw)
        self.key_id = "master:" + hashlib.sha256(b"phaselog master key id:" + raw).hexdigest()[:16]

    def wrap(self, subject: str, key: bytes) -> bytes:
        """``key`` encrypted under the master key, bound to ``subject``."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, key, b"phaselog:key:" + subject.encode())

    def unwrap(self, subject: str, wrapped: bytes) -> bytes:
        """The data key of ``subject`` (``KeyUnavailable`` when ``wrapped`` does not open)."""
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], b"phaselog:key:" + subject.encode())
        except InvalidTag:
            msg = f"the key of subject {subject!r} does not open with master key {self.key_id}"
            raise KeyUnavailable(msg) from None

    def __repr__(self) -> str:
        return f"MasterKey({self.key_id})"


def master_key_from_env(env: Mapping[str, str] | None = None) -> MasterKey | None:
    """The master key in ``$PHASELOG_MASTER_KEY`` (``None`` when unset or empty)."""
    text = (os.environ if env is None else env).get(MASTER_KEY_ENV, "")
    return MasterKey(text) if text.strip() else None
