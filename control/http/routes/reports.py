"""`/reports`: the dashboard, call and disposition summaries, and the workload for Prometheus."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, field_validator
from quart import Blueprint, Response, current_app
from quart_schema import validate_querystring, validate_response

from control.http import metrics as http_metrics
from control.http.openapi import document_body
from control.http.principal import current_principal, public, require_role
from control.http.ratelimit import per_minute
from control.http.routes.calls import CallFilterQuery
from control.http.schemas import IsoTime
from control.models import Role
from control.services import reports as report_service
from control.services import workload

blueprint = Blueprint("reports", __name__, url_prefix="/reports")


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


class ReportQuery(CallFilterQuery):
    """The call list's filters and date aliases, a `campaign`, and the `timezone` of day buckets.

    With no range, the last 30 days.
    """

    timezone: str = Field(default="UTC", max_length=64)
    campaign: str | None = Field(default=None, max_length=100)

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        if value != "UTC" and value not in _time_zones():
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Paris")
        return value

    def scope(self) -> report_service.ReportScope:
        filters = replace(self.filters(), campaign=self.campaign)
        return report_service.scope(filters, self.timezone)


class CallSummaryQuery(ReportQuery):
    group_by: Literal[
        "day",
        "agent",
        "final_agent",
        "agent_version",
        "direction",
        "type",
        "status",
        "end_reason",
    ] = "day"


class RangeOut(BaseModel):
    start: IsoTime
    end: IsoTime
    timezone: str


class FiguresOut(BaseModel):
    calls: int
    answered: int
    total_duration_seconds: float
    average_duration_seconds: float | None


class TotalsOut(FiguresOut):
    cost: float | None


class GroupOut(FiguresOut):
    key: str | None
    agent_name: str | None = None


class SlotsOut(BaseModel):
    active: int
    capacity: int | None


class ActiveCallsOut(BaseModel):
    workspace: SlotsOut
    platform: SlotsOut


class PercentilesOut(BaseModel):
    samples: int
    p50_ms: float
    p95_ms: float


class AgentLatencyOut(BaseModel):
    agent_id: str | None
    agent_name: str | None
    first_response: PercentilesOut | None
    turn: PercentilesOut | None


class DashboardOut(BaseModel):
    range: RangeOut
    totals: TotalsOut
    active_calls: ActiveCallsOut
    per_day: list[GroupOut]
    per_agent: list[GroupOut]
    per_disposition: list[GroupOut]
    latency: list[AgentLatencyOut]


class CallSummaryReportOut(BaseModel):
    range: RangeOut
    group_by: str
    totals: TotalsOut
    groups: list[GroupOut]


class DispositionCountOut(BaseModel):
    disposition: str
    calls: int
    percentage: float


class DispositionSummaryOut(BaseModel):
    range: RangeOut
    total: int
    dispositions: list[DispositionCountOut]


async def _scope(query_args: ReportQuery) -> report_service.ReportScope:
    """The report's calls; with rollups on, which of its hours the rollups answer."""
    scope = query_args.scope()
    if current_app.config["SETTINGS"].report_rollups:
        scope = await report_service.with_rollups(current_principal().workspace_id, scope)
    return scope


def _range(scope: report_service.ReportScope) -> dict:
    return {"start": scope.start, "end": scope.end, "timezone": scope.timezone.key}


@blueprint.get("/dashboard")
@require_role(Role.MEMBER)
@validate_querystring(ReportQuery)
@validate_response(DashboardOut)
async def dashboard(query_args: ReportQuery) -> dict:
    """Totals, active calls against capacity, calls per day, agent and disposition, latency.

    Same date parameters as `GET /calls` (last 30 days by default); days in `timezone`.
    """
    scope = await _scope(query_args)
    figures = await report_service.dashboard(
        current_app.extensions["redis"],
        current_principal().workspace_id,
        scope,
        current_app.config["SETTINGS"].max_agent_sessions,
    )
    return {"range": _range(scope), **figures}


@blueprint.get("/call-summary")
@require_role(Role.MEMBER)
@validate_querystring(CallSummaryQuery)
@validate_response(CallSummaryReportOut)
async def call_summary(query_args: CallSummaryQuery) -> dict:
    """Counts and talk time by day, agent, agent version, direction, type, status or end reason.

    Filterable by agent, agent version, batch and campaign; same date parameters as `GET /calls`.
    """
    scope = await _scope(query_args)
    summary = await report_service.call_summary(
        current_principal().workspace_id, scope, query_args.group_by
    )
    return {"range": _range(scope), "group_by": query_args.group_by, **summary}


@blueprint.get("/disposition-summary")
@require_role(Role.MEMBER)
@validate_querystring(ReportQuery)
@validate_response(DispositionSummaryOut)
async def disposition_summary(query_args: ReportQuery) -> dict:
    """Counts and percentages per disposition (`none`: calls without one).

    Filterable by agent, agent version (one version's dispositions), batch and campaign; same
    date parameters as `GET /calls`.
    """
    scope = await _scope(query_args)
    summary = await report_service.disposition_summary(current_principal().workspace_id, scope)
    return {"range": _range(scope), **summary}


@blueprint.get("/workload")
@per_minute(600)
@public
@document_body(200, "text/plain", description="Prometheus text exposition format")
async def workload_metrics() -> Response:
    """The platform's workload in Prometheus text format (no workspace names or personal data).

    Active calls and capacity, sessions per agent id, dialer and job queues, webhook failures.
    """
    settings = current_app.config["SETTINGS"]
    http_metrics.check_scrape_token(settings.metrics_token)
    registry = await workload.registry(current_app.extensions["redis"], settings.max_agent_sessions)
    return http_metrics.exposition(registry)
