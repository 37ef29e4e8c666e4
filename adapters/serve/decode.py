"""Events as the console shows them: stored JSON with plugin state, task states and log levels decoded."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from phaselog.domain.encoding import load_json
from phaselog.domain.errors import PhaselogError
from phaselog.domain.task_state import TaskState
from phaselog.projections.base import EventData

__all__ = ["Shown", "kind_of", "shown"]

_TIME_FIELDS = {"timestamp"}


@dataclass(frozen=True)
class Shown:
    """One event of a stream page: where it is, when, what, and its decoded fields."""

    position: int
    version: int
    topic: str
    name: str
    at: datetime | None
    fields: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (the API's timeline rows)."""
        return {
            "position": self.position,
            "version": self.version,
            "topic": self.topic,
            "timestamp": None if self.at is None else self.at.isoformat(),
            "data": self.fields,
        }


def kind_of(stream_id: str) -> str:
    """``plugin``, ``task``, ``plan``, ``state`` or ``other``, from the stream id's prefix."""
    kind = stream_id.partition(":")[0]
    return kind if kind in {"plugin", "task", "plan", "state"} else "other"


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _plugin_state(value: object) -> object:
    """A plugin's state bytes (base64 in the stored JSON) as JSON when they are JSON, else as text."""
    if not isinstance(value, str):
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    try:
        return load_json(raw)
    except (PhaselogError, ValueError, TypeError):
        return raw.decode("utf-8", errors="replace")


def _decoded(kind: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in _TIME_FIELDS}
    if kind == "plugin" and name == "StateWritten" and "data" in out:
        out["data"] = _plugin_state(out["data"])
    if kind == "task" and isinstance(out.get("metadata"), str):
        with contextlib.suppress(PhaselogError, ValueError, TypeError):
            out["metadata"] = load_json(out["metadata"])
    if kind == "task" and "state" in out:
        with contextlib.suppress(TypeError, ValueError):
            out["state"] = TaskState(int(out["state"])).name.lower()
    if kind == "task" and "level" in out:
        with contextlib.suppress(TypeError, ValueError):
            out["level"] = logging.getLevelName(int(out["level"]))
    return out


def shown(stream_id: str, events: list[EventData]) -> list[Shown]:
    """The events of ``stream_id`` (from :func:`phaselog.adapters.audit.history.timeline`) ready to show."""
    kind = kind_of(stream_id)
    rows = []
    for e in events:
        name = e.topic.rsplit(".", 1)[-1]
        rows.append(
            Shown(e.position, e.version, e.topic, name, _time(e.timestamp), _decoded(kind, name, e.data))
        )
    return rows
