"""The control plane's HTTP side of its metrics: timing each request, and serving `/metrics`."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from quart import Quart, Response, g, request

from control.http.errors import APIError
from control.metrics import UNMATCHED, http_request_duration, http_requests
from voxline.common.metrics_http import scrape_allowed


def route_template() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def instrument(app: Quart) -> None:
    """Count and time every request of `app` by method, route template and status."""
    # The counter and histogram of each (method, route, status), looked up once: `labels()` on
    # every request cost as much as counting it.
    series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    @app.before_request
    async def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    async def observe(response: Response) -> Response:
        started = g.get("metrics_started")
        labels = (request.method, route_template(), response.status_code)
        found = series.get(labels)
        if found is None:
            method, route, status = labels
            found = series[labels] = (
                http_requests.labels(method, route, str(status)),
                http_request_duration.labels(method, route),
            )
        requests, duration = found
        requests.inc()
        if started is not None:
            duration.observe(time.perf_counter() - started)
        return response


def check_scrape_token(token: str | None) -> None:
    """When a metrics token is configured, the scrape must carry it as a bearer token."""
    if not scrape_allowed(request.headers.get("Authorization", ""), token):
        raise APIError(
            401,
            "METRICS_TOKEN_REQUIRED",
            "This endpoint needs the metrics bearer token (VOXLINE_METRICS_TOKEN).",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


def exposition(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
