r"""phaselog's one encoding policy: JSON that keeps every value it is given.

Everything phaselog writes as JSON (event and snapshot payloads, plugin state,
task metadata, plan state, read-model values, exports) goes through
:func:`dump_json`, and everything it reads back through :func:`load_json`:

* text is any Unicode scalar value, NUL included (escaped as ``\u0000``);
  a lone surrogate cannot be encoded and raises :class:`ValidationFailed`;
* floats round-trip exactly, and the non-finite ones are written as the
  literals ``NaN``, ``Infinity`` and ``-Infinity`` (as Python's ``json`` module
  and JSON5 do) instead of ``null``, which would lose them;
* integers of any size round-trip exactly.

orjson, used before, writes ``nan`` as ``null`` and refuses integers beyond 64
bits (and reads them back as floats), so the policy uses pydantic-core's JSON
reader and writer, which handle both. JSON written before this policy (plain
JSON, ``null`` where a non-finite float was lost) still reads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pydantic_core
from pydantic import BaseModel

from phaselog.domain.errors import ValidationFailed

__all__ = ["dump_json", "dump_model", "jsonable_model", "load_json", "parse_json_bytes", "same_json"]


def dump_json(value: Any, *, fallback: Callable[[Any], Any] | None = None) -> bytes:
    """Encode a JSON-able value (dicts, lists, str, int, float, bool, None) by the policy.

    ``fallback`` turns a value of any other type into an encodable one (e.g. ``str``
    for a display); without it such a value raises :class:`ValidationFailed`.
    """
    try:
        return pydantic_core.to_json(value, inf_nan_mode="constants", fallback=fallback)
    except pydantic_core.PydanticSerializationError as exc:
        msg = f"value is not JSON-serialisable: {exc}"
        raise ValidationFailed(msg) from exc


def jsonable_model(model: BaseModel, *, by_alias: bool = False) -> Any:
    """A model as plain JSON values (dicts, lists, str, numbers), non-finite floats kept."""
    return load_json(_dump_model(model, by_alias=by_alias))


def dump_model(model: BaseModel) -> bytes:
    """Encode a pydantic model by the policy (non-finite floats kept).

    The model is dumped in Python mode and encoded here: a model's own JSON mode
    would turn ``nan`` into ``null`` under pydantic's default ``ser_json_inf_nan``,
    which a user's model cannot be expected to change. (Serializers a model
    declares for JSON mode only are therefore not applied.)
    """
    return _dump_model(model, by_alias=False)


def _dump_model(model: BaseModel, *, by_alias: bool) -> bytes:
    try:
        data = model.model_dump(mode="python", by_alias=by_alias)
    except pydantic_core.PydanticSerializationError as exc:
        msg = f"{type(model).__name__} cannot be stored as JSON: {exc}"
        raise ValidationFailed(msg) from exc
    return dump_json(data)


def same_json(a: Any, b: Any) -> bool:
    """True when two JSON values are the same, ``nan`` included (which ``==`` says never is)."""
    return bool(a == b) or dump_json(a) == dump_json(b)


parse_json_bytes: Callable[[bytes], Any] = partial(pydantic_core.from_json, allow_inf_nan=True)
""":func:`load_json` for bytes in a hot loop: no Python frame, and bad JSON raises a plain
``ValueError`` (call :func:`load_json` then, for the typed error)."""


def load_json(data: bytes | str) -> Any:
    """Decode JSON written by :func:`dump_json` (or any plain JSON); text with a lone surrogate is refused."""
    try:
        raw = data.encode() if isinstance(data, str) else data  # a lone surrogate: UnicodeEncodeError
        return pydantic_core.from_json(raw, allow_inf_nan=True)
    except ValueError as exc:
        msg = f"stored bytes are not valid JSON: {exc}"
        raise ValidationFailed(msg) from exc
