"""Personal data in events and state models: what is marked, whose it is, and what is left after erasure.

Mark a field ``Annotated[str, Personal()]`` and the store keeps its value encrypted
with the key of one data subject; mark another field ``Annotated[str, SubjectId()]``
to say whose (without one, the subject is the stream's own id). Erasing the subject
destroys its key: every reader then sees a :class:`Redacted` marker in place of the
value. A marked field accepts a ``Redacted`` marker as its value, so an event or a
state written before an erasure still loads after it.

Subject ids are stored in the clear beside each encrypted value: make them opaque
identifiers (``user-7f3a…``, a UUID), never personal data themselves.

Only the top level and nested models are searched for marks (``profile.email``);
a mark inside a list or a dict of models is not seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["REDACTED_KEY", "Personal", "Redacted", "SubjectId", "personal_paths", "subject_path"]

REDACTED_KEY = "$redacted"
"""The key of the JSON object that stands for an erased value (``{"$redacted": SUBJECT}``)."""


@dataclass(frozen=True)
class Redacted:
    """What is left of a personal value after its subject was erased: whose it was, never what."""

    subject: str

    def as_json(self) -> dict[str, str]:
        """The marker as readers of JSON see it (timeline, export, read models, console)."""
        return {REDACTED_KEY: self.subject}

    def __str__(self) -> str:
        return f"[redacted: {self.subject}]"


def _as_redacted(value: Any) -> Redacted:
    if isinstance(value, Redacted):
        return value
    return Redacted(str(value[REDACTED_KEY]))


def _is_marker(value: Any) -> bool:
    return isinstance(value, Redacted) or (isinstance(value, Mapping) and set(value) == {REDACTED_KEY})


@dataclass(frozen=True)
class Personal:
    """Marks a field as personal data: stored encrypted with its subject's key, redacted once erased."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """The field's own schema, or a :class:`Redacted` marker (an object or its JSON form)."""
        marker = core_schema.no_info_plain_validator_function(_as_redacted)
        redacted = core_schema.chain_schema(
            [core_schema.no_info_plain_validator_function(_check_marker), marker],
        )
        return core_schema.union_schema(
            [redacted, handler(source)],
            serialization=core_schema.plain_serializer_function_ser_schema(_serialise, when_used="always"),
        )


def _check_marker(value: Any) -> Any:
    if not _is_marker(value):
        raise ValueError("not a redacted marker")
    return value


def _serialise(value: Any) -> Any:
    return value.as_json() if isinstance(value, Redacted) else value


@dataclass(frozen=True)
class SubjectId:
    """Marks the field whose value is the data subject of the record's personal fields."""


def _marks(field: Any, kind: type) -> bool:
    return any(isinstance(m, kind) for m in field.metadata)


@cache
def personal_paths(model: type[BaseModel]) -> tuple[str, ...]:
    """The dotted paths of the fields marked :class:`Personal` in ``model`` and its nested models."""
    found: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if _marks(field, Personal):
            found.append(key)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found += [f"{key}.{inner}" for inner in personal_paths(field.annotation)]
    return tuple(found)


@cache
def subject_path(model: type[BaseModel]) -> str | None:
    """The dotted path of the field marked :class:`SubjectId` in ``model`` (or a nested model), if any."""
    for name, field in model.model_fields.items():
        key = field.alias or name
        if _marks(field, SubjectId):
            return key
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            inner = subject_path(field.annotation)
            if inner is not None:
                return f"{key}.{inner}"
    return None
