"""What the stream pages read: pages of streams and of the log, one stream, its state at an event.

Each reader returns plain values that both the HTML pages (:class:`StreamPages`)
and the JSON API (:mod:`.api`) show, so a search means the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from phaselog.adapters.audit.history import AsOf, as_of, log_time_of, timeline
from phaselog.adapters.serve.console import Console
from phaselog.adapters.serve.decode import Shown, kind_of, shown
from phaselog.adapters.serve.diff import Change, changes
from phaselog.adapters.serve.search import KINDS, Query, topics_named, whole_number
from phaselog.adapters.serve.summary import Failure, StepRow, failure, plan_steps
from phaselog.adapters.serve.svg import timeline_svg
from phaselog.domain.errors import NotFound
from phaselog.projections.base import EventData, event_data
from phaselog.runtime.log_time import position_at
from phaselog.runtime.ports import StreamHead

__all__ = [
    "LogPage",
    "StatePage",
    "StreamPages",
    "StreamView",
    "heads_page",
    "log_page",
    "state_page",
    "stream_view",
]


def heads_page(console: Console, query: Query) -> tuple[list[StreamHead], str | None]:
    """One page of stream heads and the id the next page starts after (``None`` on the last page)."""
    heads = console.store.stream_heads(
        query.prefix, open_only=query.open_only, after=query.after, limit=query.limit + 1
    )
    more = len(heads) > query.limit
    heads = heads[: query.limit]
    return heads, heads[-1].stream_id if more and heads else None


@dataclass(frozen=True)
class LogPage:
    """One page of the global log: its events, the window searched and where the next page starts."""

    rows: list[EventData]
    start: int
    stop: int | None
    head: int
    next_after: int | None


def _known_topics(console: Console) -> set[str]:
    return {t for m in console.models().values() for t in (m.projection.topics or ())}


def log_page(console: Console, query: Query) -> LogPage:
    """The events from ``since`` to ``until`` (found by bisecting positions), of ``type`` if given."""
    store = console.store
    mapper = store.app.mapper
    head = store.max_position()
    time_of = log_time_of(store)

    start = 1 if query.since is None else position_at(query.since, head, time_of)
    stop = None if query.until is None else position_at(query.until, head, time_of, after=True) - 1
    if query.after is not None:
        start = max(start, whole_number("after", query.after, "a position") + 1)
    topics = topics_named(query.topic, _known_topics(console))
    if (stop is not None and stop < start) or start > head:
        return LogPage([], start, stop, head, None)
    found = store.records(start, query.limit + 1, stop=stop, topics=topics)
    rows = [event_data(mapper, r) for r in found[: query.limit]]
    more = len(found) > query.limit
    return LogPage(rows, start, stop, head, rows[-1].position if more and rows else None)


@dataclass(frozen=True)
class StreamView:
    """One stream as its page shows it: its events, the failure it ended in, a plan's steps."""

    stream_id: str
    kind: str
    events: list[Shown]
    failure: Failure | None
    steps: list[StepRow] = field(default_factory=list)


def stream_view(console: Console, stream_id: str, *, after: int | None = None) -> StreamView:
    """The events of ``stream_id`` (after version ``after`` if given), with its failure and steps."""
    kind = kind_of(stream_id)
    events = shown(stream_id, timeline(console.store, stream_id))
    if after is not None:
        return StreamView(stream_id, kind, [e for e in events if e.version > after], None)
    steps = plan_steps(events) if kind == "plan" else []
    return StreamView(stream_id, kind, events, failure(kind, events), steps)


@dataclass(frozen=True)
class StatePage:
    """A stream's state after one of its events, the event, and what it changed."""

    state: AsOf
    event: Shown
    last: int
    changes: list[Change]


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the aggregate's bookkeeping (``_id``, ``_version``, ``_modified_on``…)."""
    return {k: v for k, v in state.items() if not k.startswith("_")}


def state_page(console: Console, stream_id: str, version: int) -> StatePage:
    """``stream_id`` as it was after version ``version``, and the difference from the version before."""
    events = shown(stream_id, timeline(console.store, stream_id))
    if not 1 <= version <= events[-1].version:
        raise NotFound(f"{stream_id!r} has versions 1..{events[-1].version}, not {version}")
    now = as_of(console.store, stream_id, version=version)
    before = as_of(console.store, stream_id, version=version - 1).state if version > 1 else None
    state = AsOf(now.stream_id, now.version, now.timestamp, now.aggregate, _public(now.state))
    found = changes(None if before is None else _public(before), state.state)
    return StatePage(state, events[version - 1], events[-1].version, found)


@dataclass(frozen=True)
class StreamPages:
    """``/streams`` (search, pages), ``/events`` (time and type), ``/streams/{id}`` and its states."""

    console: Console

    def streams(self, request: Request) -> Response:
        """GET /streams?kind=K&q=ID-PREFIX&open=1&after=ID&limit=N."""
        query = Query.of(request.query_params)
        heads, next_after = heads_page(self.console, query)
        return self.console.page(
            "streams.html",
            "Streams",
            refresh=True,
            heads=heads,
            query=query,
            kinds=KINDS,
            first=query.link() if query.after else None,
            next=query.link(after=next_after) if next_after else None,
        )

    def events(self, request: Request) -> Response:
        """GET /events?since=T&until=T&type=NAME&after=POSITION&limit=N."""
        params = request.query_params
        query = Query.of(params)
        found = log_page(self.console, query)
        return self.console.page(
            "events.html",
            "Events",
            refresh=True,
            rows=found.rows,
            query=query,
            since=params.get("since", ""),
            until=params.get("until", ""),
            start=found.start,
            stop=found.stop,
            head=found.head,
            types=sorted(_known_topics(self.console)),
            first=query.link(since=params.get("since"), until=params.get("until")) if query.after else None,
            next=query.link(after=found.next_after) if found.next_after else None,
        )

    def stream(self, request: Request) -> Response:
        """GET /streams/{id}: the failure first, a plan's steps, the timeline picture, the events."""
        view = stream_view(self.console, str(request.path_params["stream_id"]))
        return self.console.page(
            "stream.html",
            view.stream_id,
            stream_id=view.stream_id,
            kind=view.kind,
            events=view.events,
            failure=view.failure,
            steps=view.steps,
            svg=timeline_svg(view.stream_id, view.events),
        )

    def state(self, request: Request) -> Response:
        """GET /streams/{id}/at/{version}: the state after that event and what the event changed."""
        stream_id = str(request.path_params["stream_id"])
        found = state_page(self.console, stream_id, int(request.path_params["version"]))
        return self.console.page(
            "state.html",
            f"{stream_id} at {found.state.version}",
            stream_id=stream_id,
            state=found.state,
            event=found.event,
            last=found.last,
            changes=found.changes,
        )
