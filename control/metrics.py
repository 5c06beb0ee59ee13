"""Prometheus metrics of the control plane: HTTP requests per route template, background jobs.

Labels stay bounded: the route is the URL rule's template (`/calls/<uuid:call_id>`), never the
raw path, and a request no rule matched is counted under `unmatched`.
"""

from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from voxline.common.metrics_http import serve_metrics

# `_created` series double every counter's series and no panel reads them.
disable_created_metrics()

UNMATCHED = "unmatched"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

http_requests = Counter(
    "voxline_http_requests_total",
    "HTTP requests answered by the control plane",
    ["method", "route", "status"],
)
http_request_duration = Histogram(
    "voxline_http_request_duration_seconds",
    "Time to answer an HTTP request of the control plane",
    ["method", "route"],
    buckets=REQUEST_BUCKETS,
)


jobs_run = Counter(
    "voxline_jobs_total",
    "Background job runs by kind and outcome (done, retry, failed)",
    ["kind", "outcome"],
)
job_duration = Histogram(
    "voxline_job_duration_seconds",
    "Time a background job ran, whatever its outcome",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
)


def observe_job(kind: str, outcome: str, seconds: float) -> None:
    """Count one run of a job; `kind` must be a registered kind (or `unknown`)."""
    jobs_run.labels(kind, outcome).inc()
    job_duration.labels(kind).observe(seconds)


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every process's when they share PROMETHEUS_MULTIPROC_DIR."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


async def serve_process_metrics(host: str, port: int, token: str | None) -> web.AppRunner:
    """`/metrics` for a process with no API of its own (`voxline jobs`)."""
    return await serve_metrics(host, port, lambda: generate_latest(process_registry()), token=token)
