"""What the console's pages read from one store, and the pages of its overview.

:class:`Console` holds the store, the templates and what this process remembers
(the last ``audit verify``); the page groups of :mod:`.browse`, :mod:`.readmodels`
and :mod:`.api` read through it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from phaselog.adapters.audit.findings import describe
from phaselog.adapters.audit.history import VerifyReport, load_domain_modules, verify
from phaselog.adapters.serve.health import PROMETHEUS_CONTENT_TYPE, PrometheusMetrics, health
from phaselog.adapters.serve.templates import environment
from phaselog.adapters.store import Store
from phaselog.domain.encoding import dump_json
from phaselog.domain.errors import NotFound, PhaselogError, ValidationFailed
from phaselog.projections.readmodel import ReadModel

__all__ = ["Console", "Json", "Overview"]

log = logging.getLogger("phaselog.serve")


class Json(JSONResponse):
    """JSON through phaselog's encoder (non-finite floats, big ints, datetimes)."""

    def render(self, content: Any) -> bytes:
        """``content`` as JSON bytes."""
        return dump_json(content, fallback=str)


class Console:
    """What the pages show, read from one store; remembers the last verify of this process.

    ``actions`` allows the pages that write (retrying dead letters): only with a token.
    """

    def __init__(
        self, store: Store, metrics: PrometheusMetrics | None = None, *, actions: bool = False
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.actions = actions
        self.templates = environment()
        self.last_verify: VerifyReport | None = None
        self.verified_at: str | None = None
        self.verify_lock = threading.Lock()
        load_domain_modules()

    def page(self, name: str, title: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        """Render template ``name`` (``refresh=True`` offers the auto-refresh switch)."""
        values.setdefault("refresh", False)
        html = self.templates.get_template(name).render(
            title=title,
            store_url=self.store.url,
            read_only=bool(getattr(self.store, "read_only", False)),
            **values,
        )
        return HTMLResponse(html, status_code=status_code)

    def models(self) -> dict[str, ReadModel]:
        """The store's read models by name."""
        models: dict[str, ReadModel] = self.store.projections.models
        return models

    def model(self, name: str) -> ReadModel:
        """Read model ``name`` (``NotFound`` naming the known ones)."""
        try:
            model: ReadModel = self.store.projections[name]
        except ValidationFailed as exc:
            raise NotFound(str(exc)) from exc
        return model

    def counts(self, name: str) -> dict[str, int]:
        """Rows of read model ``name`` by its count column ({} when unreadable)."""
        try:
            return dict(self.model(name).counts())
        except PhaselogError as exc:
            log.warning("console: counts of %s unavailable: %s", name, exc)
            return {}

    def status(self) -> tuple[list[dict[str, Any]], str | None]:
        """``store.projections.status()`` and the error that kept it from being read, if any."""
        try:
            return list(self.store.projections.status()), None
        except PhaselogError as exc:
            return [], f"read-model status unavailable: {exc}"

    def status_of(self, name: str) -> dict[str, Any] | None:
        """The status row of read model ``name`` (``None`` when unreadable)."""
        rows, _ = self.status()
        return next((r for r in rows if r["name"] == name), None)

    def horizon(self) -> tuple[Any, str | None]:
        """``store.horizon()`` (``None`` for a store without one) and the error that kept it unread."""
        look = getattr(self.store, "horizon", None)
        if not callable(look):
            return None, None
        try:
            return look(), None
        except PhaselogError as exc:
            return None, f"commit horizon unavailable: {exc}"

    def check_actions(self) -> None:
        """Refuse a writing page unless the console was started with a token and ``--allow-actions``."""
        if not self.actions:
            msg = "this console allows no actions: start it with a token and --allow-actions"
            raise ValidationFailed(msg)


@dataclass(frozen=True)
class Overview:
    """``/`` (the horizon, counts, read models, audit), ``/verify``, ``/healthz`` and ``/metrics``."""

    console: Console

    def overview(self, _request: Request) -> Response:
        """GET /: the horizon (a stall named first of all), counts, read models, audit."""
        c = self.console
        horizon, horizon_error = c.horizon()
        status, error = c.status()
        return c.page(
            "overview.html",
            "Overview",
            refresh=True,
            plugins=c.counts("plugin_phases"),
            tasks=c.counts("task_statuses"),
            plans=c.counts("plan_runs"),
            horizon=horizon,
            horizon_error=horizon_error,
            status=status,
            status_error=error,
            verify=c.last_verify,
            verify_summary=describe(c.last_verify) if c.last_verify is not None else [],
            verified_at=c.verified_at,
        )

    def run_verify(self, _request: Request) -> Response:
        """POST /verify: run ``audit verify`` (it only reads), then show the overview."""
        c = self.console
        with c.verify_lock:
            c.last_verify = verify(c.store)
            c.verified_at = datetime.now(UTC).isoformat(timespec="seconds")
        return RedirectResponse("/", status_code=303)

    def healthz(self, _request: Request) -> Response:
        """GET /healthz: 200 while readers move; 503 when stalled past ``stall_unhealthy`` or unreachable."""
        code, body = health(self.console.store)
        return Json(body, status_code=code)

    def prometheus(self, _request: Request) -> Response:
        """GET /metrics: Prometheus text."""
        if self.console.metrics is None:
            return Json({"error": "metrics are not enabled"}, status_code=404)
        return Response(self.console.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)
