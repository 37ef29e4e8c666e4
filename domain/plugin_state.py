# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""Versioned plugin state for one round of work: read the previous state, write the next.

A :class:`PluginStateManager` is created with the state recorded by the previous
round (bytes and a version 0-255). The plugin reads it with :meth:`get` and may
write a replacement with :meth:`put` or clear it with :meth:`reset`; at the end
:meth:`get_new_state` says what (if anything) to record. States are pydantic
models encoded as JSON bytes (:mod:`phaselog.domain.encoding`). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from phaselog.domain.encoding import dump_json, dump_model, load_json
from phaselog.domain.errors import PhaselogError, StateVersionMismatch, ValidationFailed

__all__ = [
    "MAX_STATE_VERSION",
    "PluginStateManager",
    "PluginStateUnreadable",
    "check_state_version",
    "decode_b64",
    "encode_b64",
    "state_bytes",
    "state_fields",
]

M = TypeVar("M", bound=BaseModel)
MAX_STATE_VERSION = 255


class PluginStateUnreadable(StateVersionMismatch, ValidationFailed):
    """Stored plugin state cannot be decoded as the requested model.

    Both a :class:`StateVersionMismatch` and a :class:`ValidationFailed`, so
    callers catching either see it.
    """


def check_state_version(state_version: object) -> int:
    """Return ``state_version`` if it is an int in 0-255, else raise :class:`ValidationFailed`."""
    if (
        not isinstance(state_version, int)
        or isinstance(state_version, bool)
        or not 0 <= state_version <= MAX_STATE_VERSION
    ):
        msg = f"state version must be an integer in 0-255, got {state_version!r}"
        raise ValidationFailed(msg)
    return state_version


def encode_b64(data: bytes) -> str:
    """Bytes as ASCII base64 (JSON-able)."""
    return base64.b64encode(data).decode("ascii")


def decode_b64(text: str) -> bytes:
    """Inverse of :func:`encode_b64`; raises :class:`ValidationFailed` on bad input."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        msg = f"plugin state is not valid base64: {exc}"
        raise ValidationFailed(msg) from exc


def state_fields(data: bytes) -> dict[str, Any]:
    """How state ``data`` is recorded: a JSON ``value`` when it can be, else base64 ``data``.

    ``{"value": ...}`` when the bytes are exactly the JSON of an object (what
    :meth:`PluginStateManager.put` writes), so the log shows its structure;
    otherwise ``{"data": base64}``, so any other bytes come back byte for byte.
    """
    try:
        value = load_json(data)
    except (ValidationFailed, UnicodeDecodeError):
        value = None
    if isinstance(value, dict) and dump_json(value) == data:
        return {"value": value}
    return {"data": encode_b64(data)}


def state_bytes(data: str | None, value: Any) -> bytes:
    """The state bytes :func:`state_fields` recorded (``data`` as base64, or ``value`` as JSON)."""
    if data is not None:
        return decode_b64(data)
    if not isinstance(value, dict):
        msg = "recorded plugin state has neither base64 data nor a JSON object value"
        raise ValidationFailed(msg)
    return dump_json(value)


class PluginStateManager:
    """Reader of the previous round's plugin state and writer of the next one's.

    ``get`` always reads the previous state (a ``put`` in the same round is not
    visible to it); the last ``put`` or ``reset`` wins. ``reset`` is a write:
    the new state is empty with version 0 and ``written`` is True, which is
    different from not writing at all.
    """

    def __init__(self, prev_state: bytes | None, prev_version: int) -> None:
        raw: object = prev_state
        if raw is not None and not isinstance(raw, bytes | bytearray | memoryview):
            msg = f"previous state must be bytes or None, got {type(raw).__name__}"
            raise ValidationFailed(msg)
        self._prev_state = None if raw is None else bytes(raw)
        self._prev_version = check_state_version(prev_version)
        self._new_state: bytes | None = None
        self._new_version = 0
        self._written = False

    def get_state_version(self) -> int:
        """Return the version the previous round's state was given (as the original: even with no bytes)."""
        return self._prev_version

    def get(self, model_type: type[M]) -> tuple[int, M | None]:
        """Decode the previous state as ``model_type``: ``(version, model)``, or ``(version, None)`` if none.

        "None" is no bytes or empty bytes, as in the original (which leaves the
        target untouched then); the store records a missing state as version 0,
        so a plugin with no state reads ``(0, None)``.

        Raises :class:`PluginStateUnreadable` (a :class:`StateVersionMismatch`
        and :class:`ValidationFailed`) when the bytes do not decode as
        ``model_type``; never returns a partially decoded value.
        """
        candidate: object = model_type
        if not isinstance(candidate, type) or not issubclass(candidate, BaseModel):
            msg = f"get() needs a pydantic model class, got {model_type!r}"
            raise ValidationFailed(msg)
        if not self._prev_state:  # None or b"": no previous state
            return self._prev_version, None
        try:
            value = model_type.model_validate_json(self._prev_state)
        except ValidationError as exc:
            msg = (
                f"stored plugin state (version {self._prev_version}) cannot be read as "
                f"{model_type.__name__}: {exc.error_count()} error(s): {exc.errors()[0]['msg']}"
            )
            raise PluginStateUnreadable(msg) from exc
        return self._prev_version, value

    def put(self, state_version: int, value: BaseModel) -> None:
        """Write ``value`` (a pydantic model) as the new state with ``state_version`` (0-255).

        The value is encoded now, so later changes to the object are not
        captured. Bad input raises :class:`ValidationFailed` and changes nothing.
        """
        version = check_state_version(state_version)
        given: object = value
        if not isinstance(given, BaseModel):
            msg = f"plugin state must be a pydantic model instance, got {type(given).__name__}"
            raise ValidationFailed(msg)
        try:
            data = dump_model(value)
        except (TypeError, ValueError, PhaselogError) as exc:
            msg = f"plugin state {type(value).__name__} cannot be encoded: {exc}"
            raise ValidationFailed(msg) from exc
        self._new_state, self._new_version, self._written = data, version, True

    def reset(self) -> None:
        """Write the new state as empty: no bytes, version 0, ``written`` True."""
        self._new_state, self._new_version, self._written = None, 0, True

    def get_new_state(self) -> tuple[bytes | None, int, bool]:
        """``(bytes, version, written)`` of this round; ``(None, 0, False)`` when nothing was written."""
        return self._new_state, self._new_version, self._written

    def __repr__(self) -> str:
        return (
            f"PluginStateManager(prev_version={self._prev_version}, "
            f"written={self._written}, new_version={self._new_version})"
        )
