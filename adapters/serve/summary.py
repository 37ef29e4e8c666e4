"""What a stream page says first: the failure of a plan run or a task, and a plan run's steps.

Sans-I/O: everything here reads the events of one stream as :func:`~.decode.shown` gives them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from phaselog.adapters.serve.decode import Shown

__all__ = ["Failure", "StepRow", "failure", "plan_steps", "tone"]

_BAD = frozenset({"failed", "buildfailed", "timed_out", "error", "critical", "halted", "tampered"})
_WARN = frozenset({"cancelled", "canceled", "abandoned", "interrupted", "degraded", "recovering", "warning"})
_OK = frozenset({"succeeded", "completed", "running", "installed", "ok", "moving", "cleaned up"})


def tone(value: object) -> str:
    """The colour class of a status as the console shows it: ``bad``, ``warn``, ``ok`` or ``""``."""
    text = str(getattr(value, "value", value)).lower()
    if text in _BAD or text.startswith("cleanup failed"):
        return "bad"
    if text in _WARN:
        return "warn"
    return "ok" if text in _OK else ""


def _error(value: object) -> str:
    """``Type: message`` of a recorded error (a mapping with ``type`` and ``message``)."""
    if isinstance(value, Mapping):
        return f"{value.get('type', 'Error')}: {value.get('message', '')}"
    return str(value)


@dataclass(frozen=True)
class Failure:
    """The summary header of a failed (or cancelled) plan run or task."""

    title: str
    tone: str
    at: datetime | None
    version: int
    error: str
    causes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepRow:
    """One step of a plan run: how it ended (``never run`` when it was not reached)."""

    name: str
    status: str
    attempts: int = 0
    error: str | None = None
    cleanup: str | None = None


def _last_run(events: Sequence[Shown]) -> tuple[int | None, list[Shown]]:
    started = [e for e in events if e.name == "RunStarted"]
    if not started:
        return None, []
    run = started[-1].fields.get("run")
    return run, [e for e in events if e.fields.get("run") == run]


def _plan_failure(events: Sequence[Shown]) -> Failure | None:
    run, mine = _last_run(events)
    finished = [e for e in mine if e.name == "RunFinished"]
    if not finished or finished[-1].fields.get("status") == "succeeded":
        return None
    end = finished[-1]
    status = str(end.fields.get("status"))
    errors = [f"{e.get('step')}: {_error(e.get('error'))}" for e in end.fields.get("errors") or []]
    causes = [
        f"{e.fields.get('step')} {e.fields.get('hook')} hook, attempt {e.fields.get('attempt')}: "
        + _error(e.fields.get("error"))
        for e in mine
        if e.name == "HookFailed"
    ]
    causes += [
        f"{e.fields.get('step')}: {e.fields.get('hook')} abandoned ({e.fields.get('reason')})"
        for e in mine
        if e.name == "HookAbandoned"
    ]
    causes += [
        f"cleanup of {e.get('step')}: {_error(e.get('error'))}"
        for e in end.fields.get("cleanup_errors") or []
    ]
    error = "; ".join(errors) or status.replace("_", " ")
    return Failure(f"Run {run} {status.replace('_', ' ')}", tone(status), end.at, end.version, error, causes)


def _task_failure(events: Sequence[Shown]) -> Failure | None:
    states = [e for e in events if e.name == "TaskStateChanged"]
    if not states or str(states[-1].fields.get("state")) not in {"failed", "canceled"}:
        return None
    end = states[-1]
    run, state = end.fields.get("run"), str(end.fields.get("state"))
    logs = [e for e in events if e.name == "TaskLogged" and e.fields.get("run") == run]
    errors = [e for e in logs if str(e.fields.get("level")) in {"ERROR", "CRITICAL"}]
    error = str(errors[-1].fields.get("msg")) if errors else f"the task was {state}"
    causes = [f"{e.fields.get('level')}: {e.fields.get('msg')}" for e in logs[-3:] if e not in errors[-1:]]
    return Failure(f"Task {state} (run {run})", tone(state), end.at, end.version, error, causes)


def failure(kind: str, events: Sequence[Shown]) -> Failure | None:
    """The failure a page of ``kind`` shows first: the last plan run's or the task's, if it failed."""
    if kind == "plan":
        return _plan_failure(events)
    if kind == "task":
        return _task_failure(events)
    return None


def plan_steps(events: Sequence[Shown]) -> list[StepRow]:
    """The steps of the last run of a plan in its layout's order, the ones never reached included."""
    _, mine = _last_run(events)
    if not mine:
        return []
    layout: list[Any] = mine[0].fields.get("layout") or []
    names = [
        str(item.get("name")) for item in layout if isinstance(item, Mapping) and item.get("kind") == "step"
    ]
    attempts: dict[str, int] = {}
    status: dict[str, str] = {}
    errors: dict[str, str] = {}
    cleanup: dict[str, str] = {}
    for e in mine:
        step = str(e.fields.get("step"))
        if e.name == "AttemptStarted":
            attempts[step] = max(attempts.get(step, 0), int(e.fields.get("attempt") or 0))
            status[step] = "running"
        elif e.name == "StepSucceeded":
            status[step] = "succeeded"
        elif e.name == "StepFailed":
            status[step], errors[step] = "failed", _error(e.fields.get("error"))
        elif e.name == "HookAbandoned":
            status[step] = "abandoned"
        elif e.name == "CleanupFinished":
            failed = e.fields.get("error")
            cleanup[step] = f"cleanup failed: {_error(failed)}" if failed else "cleaned up"
        elif e.name == "CleanupAbandoned":
            cleanup[step] = "cleanup abandoned"
    return [
        StepRow(n, status.get(n, "never run"), attempts.get(n, 0), errors.get(n), cleanup.get(n))
        for n in names
    ]
