"""The four built-in read models, folding the plugin, task, plan and state events.

Each fold reads the stored JSON of the events it knows by topic and ignores
every other topic and every field it does not use, so new event fields or new
event types never break a projection (bump ``version`` when a fold changes;
the table is then rebuilt on the next start).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from phaselog.projections.base import EventData, Projection, Rows

__all__ = ["PlanRuns", "PluginPhases", "RecoverableStates", "TaskStatuses"]

TASK_STATE_NAMES = {0: "Unknown", 1: "Pending", 2: "Running", 3: "Completed", 4: "Failed", 6: "Canceled"}


def _suffix(stream_id: str, prefix: str) -> str:
    return stream_id.removeprefix(prefix)


def _touch(row: dict[str, Any], event: EventData) -> dict[str, Any]:
    row["updated_at"] = event.timestamp
    row["version"] = event.version
    return row


class PluginPhases(Projection):
    """One row per plugin: its phase, since when and why, retry attempts and state version."""

    name: ClassVar[str] = "plugin_phases"
    stream_prefix: ClassVar[str | None] = "plugin:"
    key: ClassVar[str] = "plugin_id"
    columns: ClassVar[Mapping[str, str]] = {
        "plugin_id": "text",
        "phase": "text",
        "since": "text",
        "reason": "text",
        "forced": "bool",
        "transitions": "int",
        "retry_attempts": "int",
        "state_version": "int",
        "state_written": "bool",
        "updated_at": "text",
        "version": "int",
    }
    count_by: ClassVar[str | None] = "phase"
    topics: ClassVar[frozenset[str] | None] = frozenset(
        {
            "phaselog.plugin.PluginCreated",
            "phaselog.plugin.PhaseChanged",
            "phaselog.plugin.PhaseForced",
            "phaselog.plugin.RetryAdvanced",
            "phaselog.plugin.RetryReset",
            "phaselog.plugin.StateWritten",
            "phaselog.plugin.StateCleared",
        }
    )

    def key_for(self, event: EventData) -> str:
        """The plugin id."""
        return str(event.data.get("plugin_id") or _suffix(event.stream_id, "plugin:"))

    def apply(self, rows: Rows, event: EventData) -> None:
        """Fold one plugin event."""
        d, kind = event.data, event.topic.rsplit(".", 1)[-1]
        plugin_id = self.key_for(event)
        row = rows.get(plugin_id) or {
            "plugin_id": plugin_id,
            "phase": None,
            "since": None,
            "reason": None,
            "forced": False,
            "transitions": 0,
            "retry_attempts": 0,
            "state_version": 0,
            "state_written": False,
        }
        if kind == "PluginCreated":
            row.update(phase=d.get("phase"), since=event.timestamp, reason="created", forced=False)
        elif kind in {"PhaseChanged", "PhaseForced"}:
            row.update(
                phase=d.get("to_phase"),
                since=event.timestamp,
                reason=d.get("reason"),
                forced=kind == "PhaseForced",
                transitions=int(row.get("transitions") or 0) + 1,
            )
        elif kind == "RetryAdvanced":
            row["retry_attempts"] = int(d.get("attempts") or 0)
        elif kind == "RetryReset":
            row["retry_attempts"] = 0
        elif kind == "StateWritten":
            row.update(state_version=int(d.get("state_version") or 0), state_written=True)
        elif kind == "StateCleared":
            row.update(state_version=0, state_written=True)
        rows.put(plugin_id, _touch(row, event))


class TaskStatuses(Projection):
    """One row per task (``<controller>:<task_id>``): state, progress, last log, owner."""

    name: ClassVar[str] = "task_statuses"
    stream_prefix: ClassVar[str | None] = "task:"
    key: ClassVar[str] = "task"
    alt_key: ClassVar[str | None] = "task_id"
    columns: ClassVar[Mapping[str, str]] = {
        "task": "text",
        "controller": "text",
        "task_id": "text",
        "run": "int",
        "state": "int",
        "state_name": "text",
        "progress_current": "int",
        "progress_total": "int",
        "last_log": "text",
        "last_log_level": "int",
        "log_count": "int",
        "owner": "text",
        "cancel_requested": "bool",
        "delivered": "bool",
        "updated_at": "text",
        "version": "int",
    }
    count_by: ClassVar[str | None] = "state_name"
    topics: ClassVar[frozenset[str] | None] = frozenset(
        {
            "phaselog.task.TaskLaunched",
            "phaselog.task.TaskRelaunched",
            "phaselog.task.TaskClaimed",
            "phaselog.task.TaskReleased",
            "phaselog.task.TaskStateChanged",
            "phaselog.task.TaskProgressed",
            "phaselog.task.TaskLogged",
            "phaselog.task.TaskCancelRequested",
            "phaselog.task.TaskCompletionDelivered",
        }
    )

    @staticmethod
    def _ids(event: EventData) -> tuple[str, str]:
        _, controller, task_id = [*event.stream_id.split(":", 2), "", ""][:3]
        d = event.data
        return str(d.get("controller") or controller), str(d.get("task_id") or task_id)

    def key_for(self, event: EventData) -> str:
        """``<controller>:<task_id>``."""
        return ":".join(self._ids(event))

    def apply(self, rows: Rows, event: EventData) -> None:
        """Fold one task event."""
        d, kind = event.data, event.topic.rsplit(".", 1)[-1]
        controller, task_id = self._ids(event)
        key = f"{controller}:{task_id}"
        row = rows.get(key) or {
            "task": key,
            "controller": controller,
            "task_id": task_id,
            "run": 1,
            "log_count": 0,
            "cancel_requested": False,
            "delivered": False,
        }
        if kind in {"TaskLaunched", "TaskRelaunched"}:
            row.update(
                run=int(d.get("run") or 1),
                state=1,
                owner=None,
                cancel_requested=False,
                delivered=False,
                progress_current=None,
                progress_total=None,
            )
            if kind == "TaskLaunched" or not d.get("keep_history"):
                row.update(last_log=None, last_log_level=None, log_count=0)
        elif kind == "TaskClaimed":
            row["owner"] = d.get("owner")
        elif kind == "TaskReleased":
            row["owner"] = None
        elif kind == "TaskStateChanged":
            row["state"] = int(d.get("state") or 0)
        elif kind == "TaskProgressed":
            row.update(progress_current=d.get("current"), progress_total=d.get("total"))
        elif kind == "TaskLogged":
            row.update(
                last_log=d.get("msg"),
                last_log_level=d.get("level"),
                log_count=int(row.get("log_count") or 0) + 1,
            )
        elif kind == "TaskCancelRequested":
            row["cancel_requested"] = True
        elif kind == "TaskCompletionDelivered":
            row["delivered"] = True
        state = row.get("state")
        row["state_name"] = None if state is None else TASK_STATE_NAMES.get(int(state), str(state))
        rows.put(key, _touch(row, event))


class PlanRuns(Projection):
    """One row per plan: its latest run's status, current step and errors."""

    name: ClassVar[str] = "plan_runs"
    stream_prefix: ClassVar[str | None] = "plan:"
    key: ClassVar[str] = "plan_id"
    columns: ClassVar[Mapping[str, str]] = {
        "plan_id": "text",
        "run": "int",
        "status": "text",
        "current_step": "text",
        "attempt": "int",
        "succeeded_steps": "json",
        "errors": "json",
        "resumes": "int",
        "started_at": "text",
        "finished_at": "text",
        "updated_at": "text",
        "version": "int",
    }
    count_by: ClassVar[str | None] = "status"
    topics: ClassVar[frozenset[str] | None] = None  # every phaselog.plan.* topic

    def handles(self, topic: str) -> bool:
        """Every plan event."""
        return topic.startswith("phaselog.plan.")

    def key_for(self, event: EventData) -> str:
        """The plan id."""
        return _suffix(event.stream_id, "plan:")

    def apply(self, rows: Rows, event: EventData) -> None:  # noqa: C901 - one branch per topic
        """Fold one plan event."""
        d, kind = event.data, event.topic.rsplit(".", 1)[-1]
        plan_id = self.key_for(event)
        row = rows.get(plan_id) or {
            "plan_id": plan_id,
            "run": 0,
            "status": "created",
            "succeeded_steps": [],
            "errors": [],
            "resumes": 0,
        }
        if kind == "RunStarted":
            row.update(
                run=int(d.get("run") or 0),
                status="running",
                current_step=None,
                attempt=None,
                succeeded_steps=[],
                errors=[],
                resumes=0,
                started_at=event.timestamp,
                finished_at=None,
            )
        elif kind == "RunResumed":
            row.update(status="running", resumes=int(row.get("resumes") or 0) + 1)
        elif kind == "AttemptStarted":
            row.update(current_step=d.get("step"), attempt=d.get("attempt"))
        elif kind == "StepSucceeded":
            row["succeeded_steps"] = [*(row.get("succeeded_steps") or []), d.get("step")]
        elif kind == "StepFailed":
            row["errors"] = [*(row.get("errors") or []), _error(d.get("step"), d.get("error"))]
        elif kind == "PauseStarted":
            row["status"] = "paused"
        elif kind == "PauseFinished":
            row["status"] = "running"
        elif kind == "CleanupPhaseStarted":
            row.update(status="cleanup", current_step=None, attempt=None)
        elif kind == "CleanupStarted":
            row["current_step"] = d.get("step")
        elif kind == "RunFinished":
            errors = [
                _error(e.get("step"), e.get("error")) for e in d.get("errors") or [] if isinstance(e, dict)
            ]
            row.update(
                status=d.get("status"),
                current_step=None,
                attempt=None,
                finished_at=event.timestamp,
                errors=errors or row.get("errors") or [],
            )
        rows.put(plan_id, _touch(row, event))


def _error(step: Any, error: Any) -> dict[str, Any]:
    info = error if isinstance(error, dict) else {}
    return {"step": step, "type": info.get("type"), "message": info.get("message")}


class RecoverableStates(Projection):
    """One row per persisted state (``<kvs>:<key>``): its current value JSON."""

    name: ClassVar[str] = "recoverable_states"
    stream_prefix: ClassVar[str | None] = "state:"
    key: ClassVar[str] = "id"
    alt_key: ClassVar[str | None] = "key"
    columns: ClassVar[Mapping[str, str]] = {
        "id": "text",
        "kvs": "text",
        "key": "text",
        "value": "json",
        "type_name": "text",
        "cleared": "bool",
        "persists": "int",
        "resets": "int",
        "updated_at": "text",
        "version": "int",
    }
    count_by: ClassVar[str | None] = "kvs"
    topics: ClassVar[frozenset[str] | None] = frozenset({"phaselog.state.Persisted", "phaselog.state.Reset"})

    def key_for(self, event: EventData) -> str:
        """``<kvs>:<key>``."""
        return _suffix(event.stream_id, "state:")

    def apply(self, rows: Rows, event: EventData) -> None:
        """Fold one persist or reset."""
        d = event.data
        ident = self.key_for(event)
        kvs, _, key = ident.rpartition(":")
        kvs, key = str(d.get("kvs") or kvs), str(d.get("key") or key)
        row = rows.get(ident) or {"id": ident, "kvs": kvs, "key": key, "persists": 0, "resets": 0}
        reset = event.topic.endswith(".Reset")
        row.update(value=d.get("value"), type_name=d.get("type_name"), cleared=reset)
        counter = "resets" if reset else "persists"
        row[counter] = int(row.get(counter) or 0) + 1
        rows.put(ident, _touch(row, event))
