"""The control plane's HTTP side of its metrics: timing each request, and serving `/metrics`."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Quart, Response, g, request

from control.http.errors import APIError
from control.metrics import UNMATCHED, http_request_duration, http_requests
from voxline.common.metrics_http import scrape_allowed


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
