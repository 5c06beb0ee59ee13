"""Prometheus metrics of the control plane: HTTP requests per route template, and the exposition.

Labels stay bounded: the route is the URL rule's template (`/calls/<uuid:call_id>`), never the
raw path, and a request no rule matched is counted under `unmatched`.
"""

from __future__ import annotations

import hmac
import os
import time

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from quart import Quart, Response, g, request

from control.http.errors import APIError

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


def route_template() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def instrument(app: Quart) -> None:
    """Count and time every request of `app` by method, route template and status."""

    @app.before_request
    async def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    async def observe(response: Response) -> Response:
        started = g.get("metrics_started")
        route = route_template()
        http_requests.labels(request.method, route, str(response.status_code)).inc()
        if started is not None:
            http_request_duration.labels(request.method, route).observe(
                time.perf_counter() - started
            )
        return response


def scrape_allowed(authorization: str, token: str | None) -> bool:
    """Whether an `Authorization` header may scrape: any when no token is set, else the bearer."""
    if not token:
        return True
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode())


def check_scrape_token(token: str | None) -> None:
    """When a metrics token is configured, the scrape must carry it as a bearer token."""
    if not scrape_allowed(request.headers.get("Authorization", ""), token):
        raise APIError(
            401,
            "METRICS_TOKEN_REQUIRED",
            "This endpoint needs the metrics bearer token (VOXLINE_METRICS_TOKEN).",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every process's when they share PROMETHEUS_MULTIPROC_DIR."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


async def serve_process_metrics(host: str, port: int, token: str | None) -> web.AppRunner:
    """`/metrics` for a process with no API of its own (`voxline jobs`)."""

    async def scrape(request: web.Request) -> web.Response:
        if not scrape_allowed(request.headers.get("Authorization", ""), token):
            return web.Response(status=401, text="metrics token required\n")
        body = generate_latest(process_registry())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    application = web.Application()
    application.router.add_get("/metrics", scrape)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
