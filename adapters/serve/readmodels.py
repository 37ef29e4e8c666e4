"""Read-model pages: every model's status, one model's rows (filtered, paged by key), the dead letters.

Retrying dead letters is the one page that writes: it answers only when the console
was started with a token and ``--allow-actions`` (:meth:`.Console.check_actions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from phaselog.adapters.serve.console import Console
from phaselog.adapters.serve.search import page_size
from phaselog.domain.errors import ValidationFailed
from phaselog.projections.readmodel import ReadModel

__all__ = ["LETTERS_SHOWN", "ModelPages", "RowsPage", "dead_letters", "rows_page"]

LETTERS_SHOWN = 200
"""Dead letters listed on one page (the count says how many more there are)."""
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _filter_value(kind: str, column: str, text: str) -> Any:
    """A filter's text as its column's kind (``ValidationFailed`` when it cannot be one)."""
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValidationFailed(f"{column} is a number, not {text!r}") from None
    if kind == "bool":
        if text.lower() not in _TRUE | _FALSE:
            raise ValidationFailed(f"{column} is true or false, not {text!r}")
        return text.lower() in _TRUE
    return text


@dataclass(frozen=True)
class RowsPage:
    """One page of a read model's rows, the filters that chose them and where the next page starts."""

    model: ReadModel
    rows: list[dict[str, Any]]
    filters: dict[str, Any]
    after: str | None
    next_after: str | None
    limit: int

    def link(self, **changed: object) -> str:
        """The query string of this page's filters with ``changed`` values."""
        values: dict[str, object] = {
            **self.filters,
            "limit": "" if self.limit == page_size({}) else self.limit,
        }
        values.update(changed)
        return "?" + urlencode(
            {
                k: str(v).lower() if isinstance(v, bool) else v
                for k, v in values.items()
                if v not in {None, ""}
            }
        )


def rows_page(console: Console, name: str, params: Mapping[str, str]) -> RowsPage:
    """The rows of ``name`` whose columns equal the query's (any column), by key from ``after``."""
    model = console.model(name)
    p = model.projection
    filters = {k: _filter_value(p.columns[k], k, v) for k, v in params.items() if k in p.columns}
    limit = page_size(params)
    after = params.get("after") or None
    rows = model.page(after=after, limit=limit + 1, **filters)
    more = len(rows) > limit
    rows = rows[:limit]
    return RowsPage(model, rows, filters, after, str(rows[-1][p.key]) if more and rows else None, limit)


def dead_letters(console: Console, name: str | None) -> list[dict[str, Any]]:
    """The dead letters of read model ``name`` (of every one when ``None``), oldest first."""
    if name is not None:
        console.model(name)  # ValidationFailed names the known ones
    letters: list[dict[str, Any]] = console.store.projections.errors(name)
    return letters


@dataclass(frozen=True)
class ModelPages:
    """``/projections``, ``/projections/{name}``, ``/errors`` and ``POST /errors/retry``."""

    console: Console

    def projections(self, _request: Request) -> Response:
        """GET /projections: each read model's position, lag, rows, dead letters and state."""
        status, error = self.console.status()
        return self.console.page(
            "projections.html", "Read models", refresh=True, status=status, status_error=error
        )

    def projection(self, request: Request) -> Response:
        """GET /projections/{name}?COLUMN=VALUE&after=KEY&limit=N: counts to drill into, then rows."""
        name = str(request.path_params["name"])
        found = rows_page(self.console, name, request.query_params)
        p = found.model.projection
        return self.console.page(
            "projection.html",
            name,
            refresh=True,
            model=name,
            row=self.console.status_of(name),
            columns=list(p.columns),
            key=p.key,
            prefix=p.stream_prefix,
            count_by=p.count_by,
            counts=self.console.counts(name) if p.count_by else {},
            filters=found.filters,
            rows=found.rows,
            api_query=found.link(after=found.after),
            first=found.link() if found.after else None,
            next=found.link(after=found.next_after) if found.next_after else None,
        )

    def errors(self, request: Request) -> Response:
        """GET /errors?model=NAME: the dead letters (and a retry button when actions are allowed)."""
        model = request.query_params.get("model") or None
        letters = dead_letters(self.console, model)
        retried = request.query_params.get("retried")
        return self.console.page(
            "errors.html",
            "Dead letters",
            refresh=True,
            letters=letters[:LETTERS_SHOWN],
            hidden=max(0, len(letters) - LETTERS_SHOWN),
            model=model,
            models=list(self.console.models()),
            actions=self.console.actions,
            retried=None if retried is None else int(retried),
        )

    def retry(self, request: Request) -> Response:
        """POST /errors/retry?model=NAME: re-fold the dead letters (token and ``--allow-actions`` only)."""
        self.console.check_actions()
        model = request.query_params.get("model") or None
        if model is not None:
            self.console.model(model)
        done = self.console.store.projections.retry_errors(model)
        query = urlencode({k: v for k, v in {"model": model, "retried": done}.items() if v is not None})
        return RedirectResponse(f"/errors?{query}", status_code=303)
