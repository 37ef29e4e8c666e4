"""The console's pages: Jinja2 templates kept as Python strings (no package data, no JS build step)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

from phaselog.adapters.serve.summary import tone
from phaselog.adapters.serve.templates.base import BASE, ERROR, PAGER, SCRIPT
from phaselog.adapters.serve.templates.models import ERRORS, PROJECTION, PROJECTIONS
from phaselog.adapters.serve.templates.overview import COUNTS, HORIZON, OVERVIEW
from phaselog.adapters.serve.templates.streams import EVENTS, STATE, STREAM, STREAMS
from phaselog.domain.encoding import dump_json

__all__ = ["brief", "environment"]

BRIEF = 120
"""Characters of an event's data the list of events shows."""


def brief(data: Mapping[str, Any]) -> str:
    """An event's fields as one short line of JSON (without its time), cut at :data:`BRIEF` characters."""
    text = dump_json({k: v for k, v in data.items() if k != "timestamp"}, fallback=str).decode()
    return text if len(text) <= BRIEF else text[: BRIEF - 1] + "…"


def environment() -> jinja2.Environment:
    """The templates, HTML-escaped by default; ``tone`` colours a status (ok, warn, bad)."""
    loader = jinja2.DictLoader(
        {
            "base.html": BASE,
            "counts.html": COUNTS,
            "horizon.html": HORIZON,
            "pager.html": PAGER,
            "overview.html": OVERVIEW,
            "streams.html": STREAMS,
            "events.html": EVENTS,
            "stream.html": STREAM,
            "state.html": STATE,
            "projections.html": PROJECTIONS,
            "projection.html": PROJECTION,
            "errors.html": ERRORS,
            "error.html": ERROR,
        }
    )
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["tone"] = tone
    env.filters["brief"] = brief
    env.globals["script"] = SCRIPT
    return env
