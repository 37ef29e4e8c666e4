"""``phaselog serve``: a read-only web console and JSON API over one store (Starlette, served by uvicorn).

Pages (server-rendered, no JavaScript): ``/`` (a stalled commit horizon named
first, with what to end; the horizon; counts by plugin phase, task state and
plan status; read-model lag and errors; the last ``audit verify`` and a button
to run it), ``/streams`` and ``/streams/{id}`` (the stream's timeline as an SVG
picture and its decoded events). API: ``/healthz``, ``/metrics`` (Prometheus
text), ``/api/streams``, ``/api/streams/{id}``, ``/api/projections/{name}``.

With a token (``PHASELOG_SERVE_TOKEN``) every route but ``/healthz`` needs
``Authorization: Bearer <token>``; a browser may open ``/?token=<token>`` once,
which sets a cookie.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from phaselog.adapters.audit.findings import describe
from phaselog.adapters.audit.history import VerifyReport, load_domain_modules, timeline, verify
from phaselog.adapters.serve.decode import kind_of, shown
from phaselog.adapters.serve.health import PROMETHEUS_CONTENT_TYPE, PrometheusMetrics, health
from phaselog.adapters.serve.svg import timeline_svg
from phaselog.adapters.serve.templates import environment
from phaselog.adapters.store import Store, open_store
from phaselog.domain.encoding import dump_json
from phaselog.domain.errors import NotFound, PhaselogError, ValidationFailed

__all__ = ["TOKEN_ENV", "Console", "ConsoleServer", "create_app", "open_read_only"]

log = logging.getLogger("phaselog.serve")

TOKEN_ENV = "PHASELOG_SERVE_TOKEN"  # noqa: S105 - the name of the variable, not a secret
_COOKIE = "phaselog_token"
_OPEN = frozenset({"/healthz"})


def open_read_only(url: str | None) -> Store:
    """Open ``url`` read-only when this phaselog's ``open_store`` can (``read_only=True``), else normally."""
    if "read_only" in inspect.signature(open_store).parameters:
        opener: Any = open_store
        store: Store = opener(url, read_only=True)
        return store
    log.warning("open_store has no read_only option here: the console opens %s normally (it only reads)", url)
    return open_store(url)


class _Json(JSONResponse):
    """JSON through phaselog's encoder (non-finite floats, big ints, datetimes)."""

    def render(self, content: Any) -> bytes:
        return dump_json(content, fallback=str)


class Console:
    """What the pages show, read from one store; remembers the last verify of this process."""

    def __init__(self, store: Store, metrics: PrometheusMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.templates = environment()
        self.last_verify: VerifyReport | None = None
        self.verified_at: str | None = None
        self._verify_lock = threading.Lock()
        load_domain_modules()

    def page(self, name: str, title: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        """Render template ``name``."""
        html = self.templates.get_template(name).render(
            title=title,
            store_url=self.store.url,
            read_only=bool(getattr(self.store, "read_only", False)),
            **values,
        )
        return HTMLResponse(html, status_code=status_code)

    def counts(self, name: str) -> dict[str, int]:
        """Rows of read model ``name`` by its count column ({} when unreadable)."""
        try:
            return dict(self.store.projections[name].counts())
        except PhaselogError as exc:
            log.warning("console: counts of %s unavailable: %s", name, exc)
            return {}

    def status(self) -> tuple[list[dict[str, Any]], str | None]:
        """``store.projections.status()`` and the error that kept it from being read, if any."""
        try:
            return list(self.store.projections.status()), None
        except PhaselogError as exc:
            return [], f"read-model status unavailable: {exc}"

    def horizon(self) -> tuple[Any, str | None]:
        """``store.horizon()`` (``None`` for a store without one) and the error that kept it unread."""
        look = getattr(self.store, "horizon", None)
        if not callable(look):
            return None, None
        try:
            return look(), None
        except PhaselogError as exc:
            return None, f"commit horizon unavailable: {exc}"

    # -- pages ----------------------------------------------------------------------------------------
    def overview(self, _request: Request) -> Response:
        """GET /: the horizon (a stall named first of all), counts, read models, audit."""
        horizon, horizon_error = self.horizon()
        status, error = self.status()
        return self.page(
            "overview.html",
            "Overview",
            plugins=self.counts("plugin_phases"),
            tasks=self.counts("task_statuses"),
            plans=self.counts("plan_runs"),
            horizon=horizon,
            horizon_error=horizon_error,
            status=status,
            status_error=error,
            verify=self.last_verify,
            verify_summary=describe(self.last_verify) if self.last_verify is not None else [],
            verified_at=self.verified_at,
        )

    def run_verify(self, _request: Request) -> Response:
        """POST /verify: run ``audit verify`` (it only reads), then show the overview."""
        with self._verify_lock:
            self.last_verify = verify(self.store)
            self.verified_at = datetime.now(UTC).isoformat(timespec="seconds")
        return RedirectResponse("/", status_code=303)

    def streams(self, request: Request) -> Response:
        """GET /streams?prefix=P."""
        prefix = request.query_params.get("prefix", "")
        return self.page("streams.html", "Streams", heads=self.store.stream_heads(prefix), prefix=prefix)

    def stream(self, request: Request) -> Response:
        """GET /streams/{id}: the timeline picture and the decoded events."""
        stream_id = str(request.path_params["stream_id"])
        events = shown(stream_id, timeline(self.store, stream_id))
        svg = timeline_svg(stream_id, events)
        return self.page(
            "stream.html", stream_id, stream_id=stream_id, kind=kind_of(stream_id), events=events, svg=svg
        )

    # -- API ------------------------------------------------------------------------------------------
    def healthz(self, _request: Request) -> Response:
        """GET /healthz: 200 while readers move; 503 when stalled past ``stall_unhealthy`` or unreachable."""
        code, body = health(self.store)
        return _Json(body, status_code=code)

    def prometheus(self, _request: Request) -> Response:
        """GET /metrics: Prometheus text."""
        if self.metrics is None:
            return _Json({"error": "metrics are not enabled"}, status_code=404)
        return Response(self.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    def api_streams(self, request: Request) -> Response:
        """GET /api/streams?prefix=P: the stream heads."""
        prefix = request.query_params.get("prefix", "")
        heads = self.store.stream_heads(prefix)
        return _Json([{**h._asdict(), "kind": kind_of(h.stream_id)} for h in heads])

    def api_stream(self, request: Request) -> Response:
        """GET /api/streams/{id}: the decoded timeline."""
        stream_id = str(request.path_params["stream_id"])
        events = shown(stream_id, timeline(self.store, stream_id))
        return _Json(
            {"stream_id": stream_id, "kind": kind_of(stream_id), "events": [e.as_dict() for e in events]}
        )

    def api_projection(self, request: Request) -> Response:
        """GET /api/projections/{name}: its status row, counts and rows."""
        name = str(request.path_params["name"])
        model = self.store.projections[name]  # ValidationFailed names the known ones
        (row,) = [r for r in self.store.projections.status() if r["name"] == name]
        return _Json({"name": name, "status": row, "counts": model.counts(), "rows": model.list()})


def _errors(console: Console) -> dict[Any, Callable[[Request, Exception], Response]]:
    def handler(status_code: int) -> Callable[[Request, Exception], Response]:
        def handle(request: Request, exc: Exception) -> Response:
            if request.url.path.startswith("/api/"):
                return _Json({"error": str(exc)}, status_code=status_code)
            return console.page(
                "error.html", str(status_code), status_code, code=status_code, message=str(exc)
            )

        return handle

    return {NotFound: handler(404), ValidationFailed: handler(404), PhaselogError: handler(503)}


def _auth(token: str) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path in _OPEN:
            return await call_next(request)
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
            return response
        header = request.headers.get("authorization", "")
        offered = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        offered = offered or request.cookies.get(_COOKIE)
        if offered is not None and hmac.compare_digest(offered.encode(), token.encode()):
            return await call_next(request)
        return _Json(
            {"error": "a bearer token is required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    return check


def create_app(
    store: Store, *, token: str | None = None, metrics: PrometheusMetrics | None = None
) -> Starlette:
    """The console's ASGI application over ``store`` (open it read-only: :func:`open_read_only`)."""
    console = Console(store, metrics)
    routes = [
        Route("/", console.overview),
        Route("/verify", console.run_verify, methods=["POST"]),
        Route("/streams", console.streams),
        Route("/streams/{stream_id:path}", console.stream),
        Route("/healthz", console.healthz),
        Route("/metrics", console.prometheus),
        Route("/api/streams", console.api_streams),
        Route("/api/streams/{stream_id:path}", console.api_stream),
        Route("/api/projections/{name}", console.api_projection),
    ]
    middleware = [Middleware(BaseHTTPMiddleware, dispatch=_auth(token))] if token else []
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=_errors(console))
    app.state.console = console
    return app


class ConsoleServer:
    """uvicorn serving :func:`create_app` (in a background thread, or in front for ``phaselog serve``)."""

    def __init__(
        self, store: Store, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None
    ) -> None:
        self.metrics = PrometheusMetrics(store)
        self.app = create_app(store, token=token, metrics=self.metrics)
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port bound (after :meth:`start`; useful with port 0)."""
        (server,) = self.server.servers
        return int(server.sockets[0].getsockname()[1])

    def run(self) -> None:
        """Serve in this thread until interrupted."""
        try:
            self.server.run()
        finally:
            self.metrics.close()

    def start(self, timeout: float = 10.0) -> None:
        """Serve in a background thread; return once it listens (``PhaselogError`` after ``timeout``)."""
        self._thread = threading.Thread(target=self.server.run, name="phaselog-serve", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self.server.started or not self._thread.is_alive():
                break
            deadline.wait(0.02)
        if not self.server.started:
            self.stop()
            raise PhaselogError("the console did not start listening")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for it (bounded), release the metrics."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.metrics.close()
