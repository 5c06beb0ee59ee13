"""`/metrics`: this process's Prometheus metrics (every process's, in multiprocess mode)."""

from __future__ import annotations

from quart import Blueprint, Response, current_app

from control import metrics
from control.http import metrics as http_metrics
from control.http.openapi import document_body
from control.http.principal import public
from control.http.ratelimit import fail_open, per_minute

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
@per_minute(600)
@public
@fail_open
@document_body(200, "text/plain", description="Prometheus text exposition format")
async def process_metrics() -> Response:
    """Prometheus metrics of the control plane: requests per route template and status.

    Open unless `VOXLINE_METRICS_TOKEN` is set; then it needs that bearer token.
    """
    http_metrics.check_scrape_token(current_app.config["SETTINGS"].metrics_token)
    return http_metrics.exposition(metrics.process_registry())
