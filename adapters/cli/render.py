"""Tables the CLI prints: a stream's timeline with decoded values, the read models' rows, the horizon.

Values are decoded for people (and for ``--json``): a plugin's state bytes as
the JSON they hold, task states and log levels by name, metadata text as JSON.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from phaselog.adapters.cli.common import short
from phaselog.adapters.store import Store
from phaselog.domain.task_state import TaskState
from phaselog.projections.base import EventData
from phaselog.runtime.horizon import Horizon

__all__ = [
    "decode_data",
    "decode_state",
    "event_row",
    "render_horizon",
    "render_projections",
    "render_timeline",
]

# The columns worth a glance per read model, as (column, heading); the last one takes the rest of the
# line. Other read models show their first five columns; --json shows everything.
GLANCE_COLUMNS = {
    "plugin_phases": (
        ("plugin_id", "plugin"),
        ("phase", "phase"),
        ("transitions", "moves"),
        ("reason", "reason"),
    ),
    "task_statuses": (
        ("task", "task"),
        ("state_name", "state"),
        ("progress_current", "done"),
        ("progress_total", "of"),
        ("last_log", "last log"),
    ),
    "plan_runs": (("plan_id", "plan"), ("status", "status"), ("errors", "errors")),
    "recoverable_states": (("id", "state"), ("persists", "writes"), ("value", "value")),
}
_FIXED_MAX = 28  # widest a column other than the last may get
_DETAILS_MIN = 20  # a timeline's details keep at least this many characters


def _json_text(text: str) -> Any:
    """``text`` parsed as JSON when it is a JSON object or array, else ``text`` itself."""
    if text[:1] not in {"{", "["}:
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _state_bytes(encoded: str) -> Any:
    """A plugin state as stored (base64): the JSON it holds, else its text, else the base64 unchanged."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return encoded
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return encoded


def decode_data(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    """An event's stored fields decoded for reading (see the module docstring)."""
    out = dict(data)
    if topic.startswith("phaselog.plugin.") and isinstance(out.get("data"), str):
        out["data"] = _state_bytes(out["data"])
    if topic.startswith("phaselog.task."):
        state = out.get("state")
        if isinstance(state, int) and not isinstance(state, bool):
            with contextlib.suppress(ValueError):  # a state this version does not know: keep the number
                out["state"] = TaskState(state).name
        level = out.get("level")
        if isinstance(level, int) and not isinstance(level, bool):
            out["level"] = logging.getLevelName(level)
        if isinstance(out.get("metadata"), str):
            out["metadata"] = _json_text(out["metadata"])
    return out


def decode_state(aggregate: str, state: dict[str, Any]) -> dict[str, Any]:
    """An aggregate's snapshot state decoded like its events (a plugin's state bytes as JSON, ...)."""
    out = dict(state)
    inner = out.get("state")
    if aggregate == "PluginAggregate" and isinstance(inner, dict) and isinstance(inner.get("data"), str):
        out["state"] = {**inner, "data": _state_bytes(inner["data"])}
    if aggregate == "TaskAggregate":
        out = decode_data("phaselog.task.", out)
    return out


def event_row(event: EventData) -> dict[str, Any]:
    """One timeline entry as JSON-ready data (``data`` decoded, without the repeated timestamp)."""
    return {
        "position": event.position,
        "stream_id": event.stream_id,
        "version": event.version,
        "topic": event.topic,
        "timestamp": event.timestamp,
        "data": decode_data(event.topic, {k: v for k, v in event.data.items() if k != "timestamp"}),
    }


def render_timeline(  # noqa: PLR0913 - the renderer's options, all keyword-only
    store: Store,
    stream_id: str,
    console: Console,
    *,
    events: Sequence[EventData] | None = None,
    wide: bool = False,
    more: int = 0,
) -> None:
    """Print one stream's events: position, version, time, event, details (cut to fit unless ``wide``)."""
    from phaselog.adapters.audit.history import timeline  # noqa: PLC0415 - audit imports the projections

    shown = timeline(store, stream_id) if events is None else events
    rows = [event_row(e) for e in shown]
    cells = [
        (
            str(r["position"]),
            str(r["version"]),
            (r["timestamp"] or "") if wide else (r["timestamp"] or "")[11:23],
            r["topic"].removeprefix("phaselog."),
            short(r["data"], None),
        )
        for r in rows
    ]
    if wide:  # one heading line per event, then its details in full (the terminal wraps them)
        console.print(f"[bold]timeline of {stream_id}[/]", soft_wrap=True)
        for pos, ver, stamp, topic, details in cells:
            console.print(f"#{pos} v{ver} {stamp} [bold]{topic}[/]", soft_wrap=True)
            console.print(f"    {details}", soft_wrap=True, markup=False)
        if more:
            console.print(f"{more} more event(s): use --limit, --since/--until or --json", soft_wrap=True)
        return
    table = Table(title=f"timeline of {stream_id}", title_justify="left", expand=True)
    widths = [max([len(name), *(len(c[i]) for c in cells)]) for i, name in enumerate(("pos", "ver", "time"))]
    # a row: five cells of padding and borders (3 each, plus 1); on a narrow terminal the event name
    # is cut (with an ellipsis) so that the details keep _DETAILS_MIN characters
    room = console.width - sum(widths) - 16 - _DETAILS_MIN
    event_width = max(5, min(room, max([5, *(len(c[3]) for c in cells)])))
    for name, width in zip(("pos", "ver", "time"), widths, strict=True):
        table.add_column(name, justify="left" if name == "time" else "right", no_wrap=True, width=width)
    table.add_column("event", no_wrap=True, overflow="ellipsis", width=event_width)
    table.add_column("details", ratio=1, no_wrap=True, overflow="ellipsis", min_width=_DETAILS_MIN)
    for cell in cells:
        table.add_row(*cell)
    if more:
        table.caption = f"{more} more event(s): use --limit, --since/--until or --json"
        table.caption_justify = "left"
    console.print(table)


def render_projections(store: Store, console: Console, *, limit: int = 8, since: str | None = None) -> None:
    """Catch the read models up, then print each one's rows (those updated at or after ``since``).

    At most ``limit`` rows per table, with a line saying how many more there are.
    """
    projections = store.projections
    projections.catch_up()
    for model in projections.models.values():
        p = model.projection
        rows = model.list()
        if since is not None and "updated_at" in p.columns:
            rows = [r for r in rows if str(r.get("updated_at") or "") >= since]
        columns = GLANCE_COLUMNS.get(p.name) or tuple(
            (c, c) for c in tuple(c for c in p.columns if c != "version")[:5]
        )
        scope = "this run" if since is not None else "all"
        table = Table(title=f"{p.name}: {len(rows)} row(s) ({scope})", title_justify="left", expand=True)
        cells = [
            [short(row[c], None) if row.get(c) is not None else "" for c, _ in columns]
            for row in rows[:limit]
        ]
        for i, (_, heading) in enumerate(columns):
            if i == len(columns) - 1:
                table.add_column(heading, ratio=1, no_wrap=True, overflow="ellipsis")
            else:
                width = min(_FIXED_MAX, max([len(heading), *(len(c[i]) for c in cells)]))
                table.add_column(
                    heading, min_width=width, max_width=_FIXED_MAX, no_wrap=True, overflow="ellipsis"
                )
        for cell in cells:
            table.add_row(*cell)
        if len(rows) > limit:
            table.caption = f"… {len(rows) - limit} more (phaselog projections status; --json for all)"
            table.caption_justify = "left"
        console.print(table)


def render_horizon(horizon: Horizon, console: Console) -> None:
    """The commit horizon in one line; a stall below it, named with what to end (``describe()``)."""
    line = Text(f"horizon: readers at position {horizon.position} of {horizon.head}")
    line.append(
        f", {horizon.held_back} committed event(s) held back", style="yellow" if horizon.held_back else ""
    )
    if horizon.in_flight:
        line.append(f", {len(horizon.in_flight)} append(s) in flight for up to {horizon.lag_seconds:.1f} s")
    console.print(line)
    stall = horizon.stall
    if stall is None:
        return
    level = "DEGRADED" if horizon.unhealthy else "STALLED"
    style = "bold red" if horizon.unhealthy else "bold yellow"
    console.print(Text(f"{level}: ", style=style) + Text(stall.describe()))
