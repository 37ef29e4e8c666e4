# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""Keyed recoverable state: one stream per key of a named key-value store.

A recoverable state (:mod:`phaselog.runtime.recoverable`) persists a whole
pydantic model under a key. Each key of each key-value store ("kvs") is one
:class:`KeyedState` aggregate whose stream id is ``state:<kvs>:<key>``, where
``<kvs>`` is the store's name, ``id:<kvs_id>``, or ``default``.

Every persist is a :class:`StatePersisted` event carrying the whole JSON value,
the model's name and the model's ``class_version``; every reset is a
:class:`StateReset` event (carrying the default value it reset to). Persisting a
value equal to the current one records nothing (:meth:`KeyedState.persist`
returns ``False``).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from phaselog.domain.encoding import same_json
from phaselog.domain.errors import PhaselogError, ValidationFailed
from phaselog.domain.events import Aggregate, DomainEvent
from phaselog.domain.ids import check_id
from phaselog.domain.personal import personal_paths, subject_path

__all__ = [
    "DEFAULT_KVS",
    "EventManagerNotActive",
    "KeyedState",
    "StateNotInitialized",
    "StatePersisted",
    "StateReset",
    "StateValidationFailed",
    "decode_state",
    "kvs_label",
    "state_stream_id",
]

DEFAULT_KVS = "default"
STREAM_PREFIX = "state:"
M = TypeVar("M", bound=BaseModel)


class StateNotInitialized(PhaselogError, RuntimeError):
    """A recoverable state was used before ``initialize()`` loaded it."""


class EventManagerNotActive(PhaselogError, RuntimeError):
    """An event manager was asked to emit or stop while it is not running (or runs elsewhere)."""


class StateValidationFailed(ValidationFailed):
    """A stored state value cannot be read as the current model.

    ``kvs`` and ``key`` name the state; ``fields`` lists the failing field
    paths (dotted, ``"<root>"`` for the whole value).
    """

    def __init__(self, message: str, *, kvs: str, key: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.kvs = kvs
        self.key = key
        self.fields = fields


def kvs_label(kvs_name: str | None = None, kvs_id: str | None = None) -> str:
    """Return the ``<kvs>`` part of a state stream id: the name, ``id:<kvs_id>`` or ``default``."""
    if kvs_name is not None and kvs_id is not None:
        msg = "give persist_state_kvs_name or persist_state_kvs_id, not both"
        raise ValidationFailed(msg)
    if kvs_name is not None:
        check_id(kvs_name, "key-value store name")
        if kvs_name.startswith("id:"):
            msg = f"invalid key-value store name {kvs_name!r}: it must be non-empty and not start with 'id:'"
            raise ValidationFailed(msg)
        return kvs_name
    if kvs_id is not None:
        return f"id:{check_id(kvs_id, 'key-value store id')}"
    return DEFAULT_KVS


def state_stream_id(key: str, kvs_name: str | None = None, kvs_id: str | None = None) -> str:
    """Stream id ``state:<kvs>:<key>`` of ``key`` in the key-value store named or identified."""
    check_id(key, "persist_state_key")
    return f"{STREAM_PREFIX}{kvs_label(kvs_name, kvs_id)}:{key}"


class _StateEvent(DomainEvent):
    """An event of a keyed state; the first one of a stream also creates the aggregate."""

    kvs: str
    key: str
    value: Any
    type_name: str
    type_version: int = 1
    personal: list[str] = Field(default_factory=list)
    """Paths in ``value`` of the model's fields marked personal (sealed with the subject's key)."""
    subject: str | None = None
    """Path in ``value`` of the model's subject id (``None``: the subject is the stream)."""

    @model_serializer(mode="wrap")
    def _without_empty_marks(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave ``personal`` and ``subject`` out of a state with no personal field (as stored before)."""
        data: dict[str, Any] = handler(self)
        if not self.personal:
            data.pop("personal", None)
            data.pop("subject", None)
        return data

    def personal_marks(self) -> tuple[tuple[str, ...], str | None]:
        """The personal paths of this event and where its subject is (read by the store's mapper)."""
        where = None if self.subject is None else f"value.{self.subject}"
        return tuple(f"value.{path}" for path in self.personal), where

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:
            if self.originator_version != 1:
                name = type(self).__name__
                msg = f"{name} at version {self.originator_version} cannot start {self.originator_id!r}"
                raise ValidationFailed(msg)
            new = KeyedState.__new__(KeyedState)
            Aggregate.__init__(new, self.originator_id)
            new.init_fields(self.kvs, self.key)
            new.created_on = self.timestamp
            aggregate = new
        return super().mutate(aggregate)


class StatePersisted(_StateEvent):
    """The whole model was persisted: ``value`` is its JSON dump (by alias)."""

    TOPIC: ClassVar[str] = "phaselog.state.Persisted"

    def apply(self, aggregate: Any) -> None:
        """Make ``value`` the stored value."""
        aggregate.value = self.value
        aggregate.type_name = self.type_name
        aggregate.type_version = self.type_version
        aggregate.cleared = False
        aggregate.persists += 1


class StateReset(_StateEvent):
    """The state was reset: loading it gives the (caller's) default again.

    ``value`` records the default the state was reset to, for audit and read
    models; a later load uses the default of the loading code, as the
    original cleared the stored record.
    """

    TOPIC: ClassVar[str] = "phaselog.state.Reset"

    def apply(self, aggregate: Any) -> None:
        """Clear the stored value (remembering the default it was reset to)."""
        aggregate.value = self.value
        aggregate.type_name = self.type_name
        aggregate.type_version = self.type_version
        aggregate.cleared = True
        aggregate.resets += 1


def _marks(model: type[BaseModel] | None) -> dict[str, Any]:
    """The personal fields of ``model`` as a state event records them (nothing when it has none)."""
    if model is None or not personal_paths(model):
        return {}
    return {"personal": list(personal_paths(model)), "subject": subject_path(model)}


class KeyedState(Aggregate):
    """The value stored under one key of one key-value store."""

    TOPIC: ClassVar[str] = "phaselog.state.KeyedState"
    SNAPSHOTS: ClassVar[bool] = True

    kvs: str
    key: str
    value: Any
    type_name: str
    type_version: int
    cleared: bool
    persists: int
    resets: int

    def init_fields(self, kvs: str, key: str) -> None:
        """Set the attributes of a new stream (called by its first event)."""
        self.kvs = kvs
        self.key = key
        self.value = None
        self.type_name = ""
        self.type_version = 1
        self.cleared = True
        self.persists = 0
        self.resets = 0

    @classmethod
    def new(cls, kvs: str, key: str) -> KeyedState:
        """Return an unsaved, empty keyed state (its first event creates the stream)."""
        agg = cls.__new__(cls)
        Aggregate.__init__(agg, f"{STREAM_PREFIX}{kvs}:{key}")
        agg.init_fields(kvs, key)
        return agg

    @property
    def has_value(self) -> bool:
        """True when the last event is a persist (not a reset, not a new stream)."""
        return not self.cleared

    def stored_value(self) -> Any:
        """Return a deep copy of the last persisted JSON value (``None`` when cleared)."""
        return None if self.cleared else copy.deepcopy(self.value)

    def persist(
        self, value: Any, type_name: str, type_version: int, model: type[BaseModel] | None = None
    ) -> bool:
        """Record ``value`` unless it equals what is stored; return whether an event was triggered.

        ``model`` (the value's class) says which of its fields are personal.
        """
        if self.version > 0 and same_json(value, self.value) and type_version == self.type_version:
            return False
        marks = _marks(model)
        fields = {"kvs": self.kvs, "key": self.key, "type_name": type_name, "type_version": type_version}
        self.trigger(StatePersisted, value=value, **fields, **marks)
        return True

    def reset(
        self, default_value: Any, type_name: str, type_version: int, model: type[BaseModel] | None = None
    ) -> None:
        """Record a reset to ``default_value`` (always recorded, even when nothing changes)."""
        marks = _marks(model)
        fields = {"kvs": self.kvs, "key": self.key, "type_name": type_name, "type_version": type_version}
        self.trigger(StateReset, value=default_value, **fields, **marks)

    def snapshot_state(self) -> dict[str, Any]:
        """Return the whole state (snapshots are taken every ``snapshot_interval`` events)."""
        return {
            "kvs": self.kvs,
            "key": self.key,
            "value": self.value,
            "type_name": self.type_name,
            "type_version": self.type_version,
            "cleared": self.cleared,
            "persists": self.persists,
            "resets": self.resets,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`snapshot_state` output."""
        self.init_fields(str(state["kvs"]), str(state["key"]))
        self.value = state["value"]
        self.type_name = str(state["type_name"])
        self.type_version = int(state["type_version"])
        self.cleared = bool(state["cleared"])
        self.persists = int(state["persists"])
        self.resets = int(state["resets"])


def decode_state(agg: KeyedState | None, model: type[M], default: M) -> M:
    """The value ``agg`` stores, validated as ``model`` (upcast from older versions); ``default`` when none.

    Raises :class:`StateValidationFailed` (naming the key-value store, the key
    and the fields) for a value newer than ``model``, one without the upcast
    hook it needs, or one that does not validate.
    """
    if agg is None or not agg.has_value:
        return default.model_copy(deep=True)
    data = agg.stored_value()
    where = f"recoverable state {agg.key!r} in key-value store {agg.kvs!r}"
    target = int(getattr(model, "class_version", 1))
    version = agg.type_version
    if version > target:
        msg = (
            f"{where} was written by {agg.type_name} version {version}, "
            f"newer than {model.__name__} version {target}"
        )
        raise StateValidationFailed(msg, kvs=agg.kvs, key=agg.key)
    while version < target:
        hook = getattr(model, f"upcast_v{version}_v{version + 1}", None)
        if hook is None:
            hook_name = f"upcast_v{version}_v{version + 1}"
            msg = f"{where}: {model.__name__} has no {hook_name} for the stored value"
            raise StateValidationFailed(msg, kvs=agg.kvs, key=agg.key)
        upcasted = hook(data)
        data = data if upcasted is None else upcasted
        version += 1
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        fields = tuple(".".join(str(p) for p in err["loc"]) or "<root>" for err in errors)
        detail = "; ".join(f"field {f!r}: {err['msg']}" for f, err in zip(fields, errors, strict=True))
        msg = f"{where} does not validate as {model.__name__}: {detail}"
        raise StateValidationFailed(msg, kvs=agg.kvs, key=agg.key, fields=fields) from exc
