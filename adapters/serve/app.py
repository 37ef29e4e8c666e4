"""``phaselog serve``: a web console and JSON API over one store (Starlette, served by uvicorn).

Pages (server-rendered; a small script only for auto-refresh and the live tail):
``/`` (a stalled commit horizon named first; counts by plugin phase, task state and
plan status that drill down to their rows; read models; the audit), ``/streams``
(search by id and kind, keyset pages), ``/events`` (the log by time and type),
``/streams/{id}`` (a failure header, a plan's steps, the timeline picture, the
events, live), ``/streams/{id}/at/{version}`` (the state after an event and what
it changed), ``/projections`` and ``/projections/{name}`` (rows, filtered and
paged), ``/errors`` (dead letters). The API answers the same under ``/api/``,
plus ``/healthz`` and ``/metrics`` (Prometheus text). It only reads, except
``POST /errors/retry``, which needs a token and ``allow_actions``.

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
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from phaselog.adapters.serve.api import Api
from phaselog.adapters.serve.browse import StreamPages
from phaselog.adapters.serve.console import Console, Json, Overview
from phaselog.adapters.serve.health import PrometheusMetrics
from phaselog.adapters.serve.readmodels import ModelPages
from phaselog.adapters.store import Store, open_store
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


def _errors(console: Console) -> dict[Any, Callable[[Request, Exception], Response]]:
    def handler(status_code: int) -> Callable[[Request, Exception], Response]:
        def handle(request: Request, exc: Exception) -> Response:
            if request.url.path.startswith("/api/"):
                return Json({"error": str(exc)}, status_code=status_code)
            return console.page(
                "error.html", str(status_code), status_code, code=status_code, message=str(exc)
            )

        return handle

    return {NotFound: handler(404), ValidationFailed: handler(400), PhaselogError: handler(503)}


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
        return Json(
            {"error": "a bearer token is required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    return check


def create_app(
    store: Store,
    *,
    token: str | None = None,
    metrics: PrometheusMetrics | None = None,
    allow_actions: bool = False,
) -> Starlette:
    """The console's ASGI application over ``store`` (open it read-only: :func:`open_read_only`).

    ``allow_actions`` lets ``POST /errors/retry`` re-fold dead letters: it needs a ``token``
    (``ValidationFailed`` without one) and a store opened for writing.
    """
    if allow_actions and not token:
        msg = f"actions need a token: set ${TOKEN_ENV} to allow them"
        raise ValidationFailed(msg)
    console = Console(store, metrics, actions=allow_actions)
    home, pages, models, api = Overview(console), StreamPages(console), ModelPages(console), Api(console)
    routes = [
        Route("/", home.overview),
        Route("/verify", home.run_verify, methods=["POST"]),
        Route("/healthz", home.healthz),
        Route("/metrics", home.prometheus),
        Route("/streams", pages.streams),
        Route("/events", pages.events),
        Route("/streams/{stream_id:path}/at/{version:int}", pages.state),
        Route("/streams/{stream_id:path}", pages.stream),
        Route("/projections", models.projections),
        Route("/projections/{name}", models.projection),
        Route("/errors", models.errors),
        Route("/errors/retry", models.retry, methods=["POST"]),
        Route("/api/streams", api.streams),
        Route("/api/events", api.events),
        Route("/api/errors", api.errors),
        Route("/api/streams/{stream_id:path}/at/{version:int}", api.state),
        Route("/api/streams/{stream_id:path}", api.stream),
        Route("/api/projections/{name}", api.projection),
    ]
    middleware = [Middleware(BaseHTTPMiddleware, dispatch=_auth(token))] if token else []
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=_errors(console))
    app.state.console = console
    return app


class ConsoleServer:
    """uvicorn serving :func:`create_app` (in a background thread, or in front for ``phaselog serve``)."""

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        allow_actions: bool = False,
    ) -> None:
        self.app = create_app(store, token=token, allow_actions=allow_actions)
        self.metrics = PrometheusMetrics(store)
        self.app.state.console.metrics = self.metrics
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
