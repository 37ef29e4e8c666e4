"""The console's JSON API: the same readers as the pages (:mod:`.browse`, :mod:`.readmodels`), as JSON.

A paged answer says where the next page starts in its body (``next``) or, for the
list of stream heads, in a ``Link: <…>; rel="next"`` header.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from phaselog.adapters.serve.browse import heads_page, log_page, state_page, stream_view
from phaselog.adapters.serve.console import Console, Json
from phaselog.adapters.serve.decode import kind_of
from phaselog.adapters.serve.readmodels import dead_letters, rows_page
from phaselog.adapters.serve.search import Query, whole_number

__all__ = ["Api"]


@dataclass(frozen=True)
class Api:
    """The JSON routes: streams (one stream, its states), events, read models and dead letters."""

    console: Console

    def streams(self, request: Request) -> Response:
        """GET /api/streams?kind=K&q=PREFIX&open=1&after=ID&limit=N: stream heads, a page at a time."""
        query = Query.of(request.query_params)
        heads, next_after = heads_page(self.console, query)
        headers = (
            {"Link": f'<{request.url.path}{query.link(after=next_after)}>; rel="next"'} if next_after else {}
        )
        return Json([{**h._asdict(), "kind": kind_of(h.stream_id)} for h in heads], headers=headers)

    def stream(self, request: Request) -> Response:
        """GET /api/streams/{id}?after=V: the decoded timeline (only versions after ``V`` when given)."""
        text = request.query_params.get("after")
        after = whole_number("after", text, "a version") if text else None
        view = stream_view(self.console, str(request.path_params["stream_id"]), after=after)
        body: dict[str, object] = {
            "stream_id": view.stream_id,
            "kind": view.kind,
            "events": [e.as_dict() for e in view.events],
        }
        if after is None:
            body["failure"] = None if view.failure is None else view.failure.__dict__
            body["steps"] = [s.__dict__ for s in view.steps]
        return Json(body)

    def state(self, request: Request) -> Response:
        """GET /api/streams/{id}/at/{version}: the state after that event and what it changed."""
        found = state_page(
            self.console, str(request.path_params["stream_id"]), int(request.path_params["version"])
        )
        return Json(
            {
                **found.state.__dict__,
                "event": found.event.as_dict(),
                "changes": [c.__dict__ for c in found.changes],
            }
        )

    def events(self, request: Request) -> Response:
        """GET /api/events?since=T&until=T&type=NAME&after=POSITION&limit=N: a page of the log."""
        found = log_page(self.console, Query.of(request.query_params))
        return Json(
            {
                "events": [{**e._asdict(), "timestamp": e.timestamp} for e in found.rows],
                "start": found.start,
                "stop": found.stop,
                "head": found.head,
                "next": found.next_after,
            }
        )

    def projection(self, request: Request) -> Response:
        """GET /api/projections/{name}?COLUMN=VALUE&after=KEY&limit=N: status, counts and a page of rows."""
        name = str(request.path_params["name"])
        found = rows_page(self.console, name, request.query_params)
        return Json(
            {
                "name": name,
                "status": self.console.status_of(name),
                "counts": found.model.counts(),
                "rows": found.rows,
                "next": found.next_after,
            }
        )

    def errors(self, request: Request) -> Response:
        """GET /api/errors?model=NAME: the dead letters, oldest first."""
        return Json(dead_letters(self.console, request.query_params.get("model") or None))
