"""``phaselog serve`` (a read-only web console and JSON API) and a runner's health and metrics.

This package's modules import Starlette only in :mod:`phaselog.adapters.serve.app`
(``phaselog[serve]``); :mod:`phaselog.adapters.serve.health` needs only ``phaselog[otel]``.
"""

from phaselog.adapters.serve.health import (
    METRICS_HOST_ENV,
    PROMETHEUS_CONTENT_TYPE,
    MetricsServer,
    PrometheusMetrics,
    health,
    metrics_server,
)

__all__ = [
    "METRICS_HOST_ENV",
    "PROMETHEUS_CONTENT_TYPE",
    "MetricsServer",
    "PrometheusMetrics",
    "health",
    "metrics_server",
]
