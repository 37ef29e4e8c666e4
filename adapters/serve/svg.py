"""Timelines drawn as inline SVG: phases of a plugin, attempts of a plan, progress of a task.

Time runs left to right; events that happen within the same instant are still
kept apart by a minimum gap, so every event has its own place. Every drawn
event is an element with class ``mark`` (plus what it is: ``transition``,
``attempt``, ``pause``, ``cleanup``, ``progress``, ``state``, ...) carrying a
``<title>`` tooltip and its global position in ``data-position``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from phaselog.adapters.serve.decode import Shown, kind_of
from phaselog.domain.plugin import PluginPhase

__all__ = ["timeline_svg"]

WIDTH = 960
LEFT = 130  # room for lane labels
RIGHT = 20
TOP = 26
LANE = 26
MIN_GAP = 14.0
PHASES = [p.value for p in PluginPhase]


def _q(value: object) -> str:
    return escape(str(value), quote=True)


def _xs(events: Sequence[Shown]) -> list[float]:
    """One x per event: proportional to time, at least :data:`MIN_GAP` apart, fitted to the width."""
    span = WIDTH - LEFT - RIGHT
    if not events:
        return []
    start = events[0].at
    raw = [0.0 if e.at is None or start is None else max(0.0, (e.at - start).total_seconds()) for e in events]
    total = max(raw)
    xs: list[float] = []
    for i, t in enumerate(raw):
        x = t / total * span if total > 0 else 0.0
        xs.append(max(x, xs[-1] + MIN_GAP) if i else x)
    if xs[-1] > span:
        scale = span / xs[-1]
        xs = [x * scale for x in xs]
    if total == 0 and len(xs) > 1:
        xs = [i * span / (len(xs) - 1) for i in range(len(xs))]
    return [LEFT + x for x in xs]


def _tip(e: Shown, text: str) -> str:
    when = "" if e.at is None else e.at.isoformat(timespec="milliseconds")
    return f"<title>#{e.position} v{e.version} {_q(e.name)}: {_q(text)} {_q(when)}</title>"


@dataclass
class _Canvas:
    lanes: list[str]
    events: Sequence[Shown]
    xs: list[float]
    body: list[str] = field(default_factory=list)
    extra: int = 0  # extra height below the lanes

    def y(self, lane: str) -> float:
        return TOP + self.lanes.index(lane) * LANE + LANE / 2

    @property
    def height(self) -> int:
        return int(TOP + len(self.lanes) * LANE + self.extra + 30)

    def bar(self, lane: str, span: tuple[float, float], cls: str, began: Shown, text: str) -> None:
        """A bar from ``span[0]`` to ``span[1]`` in ``lane`` for what started with event ``began``."""
        x0, x1 = span
        y = self.y(lane) - 8
        self.body.append(
            f'<rect class="mark {cls}" data-position="{began.position}" x="{x0:.1f}" y="{y:.1f}" '
            f'width="{max(6.0, x1 - x0):.1f}" height="16" rx="3">{_tip(began, text)}</rect>'
        )

    def render(self, label: str) -> str:
        rows = []
        for i, lane in enumerate(self.lanes):
            y = TOP + i * LANE
            rows.append(
                f'<rect class="lane" x="{LEFT}" y="{y}" width="{WIDTH - LEFT - RIGHT}" height="{LANE}"/>'
                f'<text class="lane-label" x="{LEFT - 8}" y="{y + LANE / 2 + 4}" '
                f'text-anchor="end">{_q(lane)}</text>'
            )
        axis = ""
        if self.events:
            first, last = self.events[0], self.events[-1]
            y = self.height - 10
            for e, x, anchor in ((first, self.xs[0], "start"), (last, self.xs[-1], "end")):
                stamp = "" if e.at is None else e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
                axis += f'<text class="axis" x="{x:.1f}" y="{y}" text-anchor="{anchor}">{_q(stamp)}</text>'
        return (
            f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_q(label)}" '
            f'viewBox="0 0 {WIDTH} {self.height}" width="{WIDTH}" height="{self.height}">'
            + "".join(rows)
            + "".join(self.body)
            + axis
            + "</svg>"
        )


def _plugin(events: Sequence[Shown]) -> _Canvas:
    seen = {str(e.fields.get(k)) for e in events for k in ("phase", "from_phase", "to_phase")}
    lanes = [p for p in PHASES if p in seen] or ["(none)"]
    c = _Canvas(lanes, events, _xs(events), extra=12)
    path: list[str] = []
    phase: str | None = None
    for e, x in zip(events, c.xs, strict=True):
        if e.name == "PluginCreated":
            phase = str(e.fields.get("phase"))
            path.append(f"M{x:.1f},{c.y(phase):.1f}")
            c.body.append(
                f'<circle class="mark start" data-position="{e.position}" cx="{x:.1f}" '
                f'cy="{c.y(phase):.1f}" r="5">{_tip(e, phase)}</circle>'
            )
        elif e.name in {"PhaseChanged", "PhaseForced"} and phase is not None:
            to = str(e.fields.get("to_phase"))
            path.append(f"H{x:.1f}V{c.y(to):.1f}")
            forced = e.name == "PhaseForced"
            cls = "mark transition forced" if forced else "mark transition"
            text = f"{e.fields.get('from_phase')} → {to}: {e.fields.get('reason', '')}"
            y = c.y(to)
            shape = (
                f'<rect class="{cls}" data-position="{e.position}" x="{x - 5:.1f}" y="{y - 5:.1f}" '
                f'width="10" height="10" transform="rotate(45 {x:.1f} {y:.1f})">'
                if forced
                else f'<circle class="{cls}" data-position="{e.position}" cx="{x:.1f}" cy="{y:.1f}" r="5">'
            )
            c.body.append(shape + _tip(e, text) + ("</rect>" if forced else "</circle>"))
            phase = to
        else:
            kind = "retry" if e.name.startswith("Retry") else "state" if e.name == "StateWritten" else "other"
            y = TOP + len(lanes) * LANE
            c.body.append(
                f'<line class="mark tick {kind}" data-position="{e.position}" x1="{x:.1f}" y1="{y + 2}" '
                f'x2="{x:.1f}" y2="{y + 12}">{_tip(e, kind)}</line>'
            )
    if path:
        end = c.xs[-1] if c.xs else LEFT
        c.body.insert(0, f'<path class="phase-line" d="{"".join(path)}H{end:.1f}"/>')
    return c


_ATTEMPT_ENDS = {
    "HookFailed": "failed",
    "HookAbandoned": "abandoned",
    "StepSucceeded": "succeeded",
    "AttemptInterrupted": "interrupted",
}


_RUN_LINES = {
    "RunStarted": "run",
    "RunResumed": "run resumed",
    "RunFinished": "run finished",
    "CleanupPhaseStarted": "run cleanup-phase",
}
_OPENS = {"AttemptStarted": "attempt", "PauseStarted": "pause", "CleanupStarted": "cleanup"}
_CLOSES = {
    **dict.fromkeys(_ATTEMPT_ENDS, "attempt"),
    "PauseFinished": "pause",
    "CleanupFinished": "cleanup",
    "CleanupAbandoned": "cleanup",
}


def _plan_close(c: _Canvas, e: Shown, span: tuple[float, float], began: Shown) -> None:
    step = str(e.fields.get("step", ""))
    if e.name in _ATTEMPT_ENDS:
        outcome = _ATTEMPT_ENDS[e.name]
        c.bar(
            step,
            span,
            f"attempt {outcome}",
            began,
            f"{step} attempt {began.fields.get('attempt')}: {outcome}",
        )
    elif e.name == "PauseFinished":
        cut = " (interrupted)" if e.fields.get("interrupted") else ""
        c.bar("pauses", span, "pause", began, "pause" + cut)
    else:
        bad = e.name == "CleanupAbandoned" or e.fields.get("error") not in {None, "None"}
        c.bar(
            step,
            span,
            "cleanup failed" if bad else "cleanup",
            began,
            f"cleanup of {step}" + (": failed" * bad),
        )


def _plan(events: Sequence[Shown]) -> _Canvas:
    steps: list[str] = []
    for e in events:
        step = e.fields.get("step")
        if step is not None and str(step) not in steps:
            steps.append(str(step))
    pauses = any(e.name.startswith("Pause") for e in events)
    c = _Canvas(steps + (["pauses"] if pauses else []) or ["(no steps)"], events, _xs(events))
    open_: dict[tuple[str, str], tuple[float, Shown]] = {}
    for e, x in zip(events, c.xs, strict=True):
        key = str(e.fields.get("index" if e.name.startswith("Pause") else "step", ""))
        if e.name in _OPENS:
            open_[(_OPENS[e.name], key)] = (x, e)
        elif e.name in _CLOSES and (_CLOSES[e.name], key) in open_:
            x0, began = open_.pop((_CLOSES[e.name], key))
            _plan_close(c, e, (x0, x), began)
        elif e.name in _RUN_LINES:
            label = f"run {e.fields.get('run', '')} " + str(
                e.fields.get("status", e.fields.get("outcome", ""))
            )
            c.body.append(
                f'<line class="mark {_RUN_LINES[e.name]}" data-position="{e.position}" x1="{x:.1f}" '
                f'y1="{TOP - 6}" x2="{x:.1f}" y2="{TOP + len(c.lanes) * LANE}">{_tip(e, label)}</line>'
            )
    last = c.xs[-1] if c.xs else LEFT
    for (what, step), (x0, began) in open_.items():  # still open at the end of the stream
        if what != "pause":
            c.bar(step, (x0, last), f"{what} unfinished", began, f"{step} {what}: unfinished")
    return c


def _task(events: Sequence[Shown]) -> _Canvas:
    c = _Canvas(["state", "progress", "", " ", "log"], events, _xs(events))  # progress: 3 lanes tall
    top, bottom = c.y("progress") - 8, c.y("progress") + 2 * LANE + 8
    points: list[str] = []
    for e, x in zip(events, c.xs, strict=True):
        if e.name in {"TaskLaunched", "TaskRelaunched"} and not e.fields.get("keep_progress"):
            points.append(f"{x:.1f},{bottom:.1f}")  # a run starts at 0 %
        if e.name == "TaskProgressed":
            total = float(e.fields.get("total") or 0)
            done = float(e.fields.get("current") or 0)
            share = min(1.0, done / total) if total > 0 else 0.0
            y = bottom - share * (bottom - top)
            points.append(f"{x:.1f},{y:.1f}")
            c.body.append(
                f'<circle class="mark progress" data-position="{e.position}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
                f"{_tip(e, f'{done:g}/{total:g}')}</circle>"
            )
        elif e.name in {"TaskLaunched", "TaskRelaunched", "TaskStateChanged", "TaskCancelRequested"}:
            state = {
                "TaskLaunched": "pending",
                "TaskRelaunched": "relaunched",
                "TaskCancelRequested": "cancel",
            }
            label = str(e.fields.get("state", state.get(e.name, "")))
            y = c.y("state")
            c.body.append(
                f'<circle class="mark state {_q(label)}" data-position="{e.position}" cx="{x:.1f}" '
                f'cy="{y:.1f}" r="6">{_tip(e, label)}</circle>'
                f'<text class="mark-label" x="{x:.1f}" y="{y - 9:.1f}" text-anchor="middle">'
                f"{_q(label)}</text>"
            )
        elif e.name == "TaskLogged":
            level = str(e.fields.get("level", "")).lower()
            tip = _tip(e, str(e.fields.get("msg", "")))
            y = c.y("log")
            c.body.append(
                f'<line class="mark tick log {_q(level)}" data-position="{e.position}" x1="{x:.1f}" '
                f'y1="{y - 8:.1f}" x2="{x:.1f}" y2="{y + 8:.1f}">{tip}</line>'
            )
    if points:
        c.body.insert(0, f'<polyline class="progress-line" points="{" ".join(points)}"/>')
    for percent, y in (("100 %", top), ("0 %", bottom)):
        c.body.append(
            f'<text class="axis" x="{WIDTH - RIGHT - 2}" y="{y + 4:.1f}" text-anchor="end">{percent}</text>'
        )
    return c


def _generic(events: Sequence[Shown]) -> _Canvas:
    c = _Canvas(["events"], events, _xs(events))
    for e, x in zip(events, c.xs, strict=True):
        c.body.append(
            f'<circle class="mark event" data-position="{e.position}" cx="{x:.1f}" cy="{c.y("events"):.1f}" '
            f'r="5">{_tip(e, e.name)}</circle>'
        )
    return c


def timeline_svg(stream_id: str, events: Sequence[Shown]) -> str:
    """The picture of one stream's history (an ``<svg>`` element, escaped, ready to inline)."""
    draw = {"plugin": _plugin, "plan": _plan, "task": _task}.get(kind_of(stream_id), _generic)
    return draw(events).render(f"timeline of {stream_id}")
