"""The console's searches: query parameters read once (sans-I/O; times: :mod:`phaselog.runtime.log_time`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from phaselog.adapters.cli.times import parse_moment
from phaselog.domain.errors import ValidationFailed

__all__ = ["KINDS", "PAGE_SIZE", "Query", "page_size", "stream_prefix", "topics_named", "whole_number"]

PAGE_SIZE = 50
"""Rows per page unless ``limit`` says otherwise (at most :data:`_MAX_PAGE`)."""
_MAX_PAGE = 500
KINDS = ("plugin", "task", "plan", "state")
"""The kinds of stream a search can be narrowed to (the prefix before the first ``:``)."""


def whole_number(name: str, text: str, meaning: str = "a whole number") -> int:
    """Query parameter ``name`` read as an int (``ValidationFailed``: "NAME must be MEANING, not TEXT")."""
    try:
        return int(text)
    except ValueError:
        raise ValidationFailed(f"{name} must be {meaning}, not {text!r}") from None


def page_size(params: Mapping[str, str]) -> int:
    """``limit`` from the query (1..500), :data:`PAGE_SIZE` when absent."""
    size = whole_number("limit", params.get("limit") or str(PAGE_SIZE))
    if not 1 <= size <= _MAX_PAGE:
        raise ValidationFailed(f"limit must be between 1 and {_MAX_PAGE}, not {size}")
    return size


def stream_prefix(kind: str, text: str) -> str:
    """The stream-id prefix a search means: ``text`` within ``kind`` (``text`` alone may name the kind)."""
    if kind and kind not in KINDS:
        raise ValidationFailed(f"no stream kind {kind!r}; kinds: {', '.join(KINDS)}")
    if not kind or text.startswith(f"{kind}:"):
        return text
    return f"{kind}:{text}"


def topics_named(text: str, known: Iterable[str]) -> list[str]:
    """The topics an event-type search means: ``text`` itself when dotted, else every known ``*.text``."""
    name = text.strip()
    if not name:
        return []
    if "." in name:
        return [name]
    found = sorted(t for t in known if t.rsplit(".", 1)[-1] == name)
    if not found:
        names = ", ".join(sorted({t.rsplit(".", 1)[-1] for t in known}))
        raise ValidationFailed(f"no event type {name!r}; types: {names}")
    return found


@dataclass(frozen=True)
class Query:
    """The search of a list page, as its query string gave it (with the text to show back)."""

    kind: str = ""
    text: str = ""
    open_only: bool = False
    since: datetime | None = None
    until: datetime | None = None
    topic: str = ""
    after: str | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Query:
        """The search a query string asks (``kind``, ``q`` or ``prefix``, ``open``, ``since``, ``type``…)."""
        return cls(
            kind=params.get("kind", ""),
            text=params.get("q", params.get("prefix", "")),
            open_only=params.get("open", "") not in {"", "0", "false"},
            since=_moment(params.get("since", "")),
            until=_moment(params.get("until", "")),
            topic=params.get("type", ""),
            after=params.get("after") or None,
            limit=page_size(params),
        )

    @property
    def prefix(self) -> str:
        """The stream-id prefix searched."""
        return stream_prefix(self.kind, self.text)

    def link(self, **changed: object) -> str:
        """The query string of this search with ``changed`` values (``None`` drops a parameter)."""
        values: dict[str, object] = {
            "kind": self.kind,
            "q": self.text,
            "open": "1" if self.open_only else "",
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "type": self.topic,
            "limit": "" if self.limit == PAGE_SIZE else self.limit,
        }
        values.update(changed)
        return "?" + urlencode({k: v for k, v in values.items() if v not in {None, ""}})


def _moment(text: str) -> datetime | None:
    """A time as the CLI reads it (ISO-8601, ``1h``, ``30m``, ``yesterday``…), ``None`` when empty."""
    if not text.strip():
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
