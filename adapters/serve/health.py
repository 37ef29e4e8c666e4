"""Health and Prometheus metrics for any phaselog process: the console and ``projections run``.

:class:`PrometheusMetrics` binds phaselog's instruments (:mod:`phaselog.runtime.telemetry`)
to an OpenTelemetry SDK meter provider read by the Prometheus exporter, with a
registry of its own (so two in one process never mix). It needs ``phaselog[otel]``.
:func:`metrics_server` serves ``/healthz`` and ``/metrics`` with the standard
library's HTTP server, for a runner that has no web console.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import orjson

from phaselog.domain.errors import PhaselogError
from phaselog.runtime import telemetry

__all__ = [
    "METRICS_HOST_ENV",
    "PROMETHEUS_CONTENT_TYPE",
    "MetricsServer",
    "PrometheusMetrics",
    "health",
    "metrics_server",
]

log = logging.getLogger("phaselog.serve")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_HOST_ENV = "PHASELOG_METRICS_HOST"


def health(store: Any) -> tuple[int, dict[str, Any]]:
    """``/healthz``: ``(200, facts)`` while readers of the global order move, else ``(503, the reason)``.

    ``"ok"`` (200) carries the head ``position`` and the ``horizon``
    (:meth:`~phaselog.runtime.horizon.Horizon.as_dict`; a stall younger than
    ``stall_unhealthy`` is named there and still answers 200). ``"degraded"`` (503):
    an append in flight has held readers back past ``stall_unhealthy``; ``stall``
    names it and ``reason`` says what to end. ``"unavailable"`` (503): the store did
    not answer. Only PostgreSQL can stall; a store without a horizon answers as before.
    """
    try:
        position = store.max_position()
        look = getattr(store, "horizon", None)
        horizon = look() if callable(look) else None
    except PhaselogError as exc:
        return 503, {"status": "unavailable", "store": str(store.url), "error": str(exc)}
    body: dict[str, Any] = {"status": "ok", "store": str(store.url), "position": position}
    if horizon is None:
        return 200, body
    body["horizon"] = horizon.as_dict()
    if not horizon.unhealthy:
        return 200, body
    body.update(status="degraded", stall=horizon.stall.as_dict(), reason=horizon.describe())
    return 503, body


class PrometheusMetrics:
    """phaselog's metrics as Prometheus text, for one observed store (and its read models)."""

    def __init__(self, store: Any, projections: Any = None) -> None:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
            from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
            from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
            from prometheus_client import CollectorRegistry  # noqa: PLC0415
        except ImportError as exc:
            msg = f"metrics need the OpenTelemetry SDK: pip install 'phaselog[otel]' ({exc})"
            raise PhaselogError(msg) from exc
        self.registry = CollectorRegistry()
        # Samples carry their own labels only (no otel_scope_* on each), and target_info names
        # the service: $OTEL_SERVICE_NAME, else "phaselog" (never "unknown_service:python3").
        reader = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "phaselog"})
        self._provider = MeterProvider(metric_readers=[reader], resource=resource)
        telemetry.bind(meter_provider=self._provider)
        self._forget = telemetry.observe(store, projections)
        self._closed = False

    def render(self) -> bytes:
        """The current metrics in Prometheus' text format."""
        from prometheus_client import generate_latest  # noqa: PLC0415

        return bytes(generate_latest(self.registry))

    def close(self) -> None:
        """Stop observing the store and give phaselog's instruments back to the global providers."""
        if self._closed:
            return
        self._closed = True
        self._forget()
        telemetry.bind()
        self._provider.shutdown()


class MetricsServer(http.server.ThreadingHTTPServer):
    """``GET /healthz`` and ``GET /metrics`` for one store, served from a daemon thread."""

    daemon_threads = True

    def __init__(self, store: Any, metrics: PrometheusMetrics, address: tuple[str, int]) -> None:
        self.store = store
        self.metrics = metrics
        super().__init__(address, _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="phaselog-metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        """Answer /healthz and /metrics; 404 for anything else."""
        if self.path.split("?", 1)[0] == "/healthz":
            status, body = health(self.server.store)
            self._send(status, "application/json", orjson.dumps(body))
        elif self.path.split("?", 1)[0] == "/metrics":
            self._send(200, PROMETHEUS_CONTENT_TYPE, self.server.metrics.render())
        else:
            self._send(404, "application/json", b'{"error":"not found"}')

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Requests go to phaselog's logger at debug level, not to stderr."""
        log.debug("metrics: %s", format % args)


@contextlib.contextmanager
def metrics_server(
    store: Any, port: int | None, *, host: str | None = None, projections: Any = None
) -> Iterator[MetricsServer | None]:
    """Serve ``/healthz`` and ``/metrics`` for ``store`` on ``host:port`` while the block runs.

    ``port=None`` serves nothing (and needs no extra); port 0 picks a free port. ``host``
    defaults to ``$PHASELOG_METRICS_HOST``, else 127.0.0.1 (a container sets ``0.0.0.0``).
    """
    if port is None:
        yield None
        return
    host = host or os.environ.get(METRICS_HOST_ENV) or "127.0.0.1"
    metrics = PrometheusMetrics(store, projections)
    try:
        try:
            server = MetricsServer(store, metrics, (host, port))
        except OSError as exc:
            raise PhaselogError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        server.start()
        log.info("serving /healthz and /metrics on http://%s:%d", host, server.port)
        try:
            yield server
        finally:
            server.stop()
    finally:
        metrics.close()
