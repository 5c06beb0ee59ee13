"""Call reports: totals, groups, dispositions and latency percentiles, computed in SQL.

Every figure is an aggregate the database computes over the workspace's calls (the WHERE clause
of `call_logs.filtered_calls`, so reports and the call list agree on what a filter means); no
call log is loaded into Python. A call belongs to the day of its `created_at` in the requested
IANA time zone: PostgreSQL buckets with `AT TIME ZONE`; SQLite, which has no time-zone
database, compares with the UTC instants of the local midnights, computed here and passed in.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from tortoise import connections

from control.errors import Invalid
from control.models import Agent, Workspace
from control.services import capacity
from control.services.call_logs import MAX_RANGE, CallFilters, _parameterized_sql, filtered_calls

DEFAULT_RANGE = timedelta(days=30)
NO_VALUE = "none"  # the bucket of calls with no disposition (or no end reason yet)
GROUP_COLUMNS = {
    "agent": '"agent_id"',
    "direction": '"call_direction"',
    "type": '"call_type"',
    "status": '"status"',
    "end_reason": f"""COALESCE("end_reason", '{NO_VALUE}')""",
    "disposition": f"""COALESCE("disposition", '{NO_VALUE}')""",
}
GROUPS = ("day", *GROUP_COLUMNS)
# Talk time: answered to ended. Calls never answered have none, and don't lower the average.
TALK_SECONDS = 'CASE WHEN "answered_at" IS NOT NULL THEN "duration_seconds" END'
# Nearest rank: the value at rank ceil(p * n), in integer arithmetic both databases share.
NEAREST_RANK = {"p50": "(n + 1) / 2", "p95": "(95 * n + 99) / 100"}
PERCENTILES = {"p50": 0.5, "p95": 0.95}


@dataclass(frozen=True)
class ReportScope:
    """Which calls a report counts: the call-list filters over a closed range, and a time zone."""

    filters: CallFilters
    timezone: ZoneInfo

    @property
    def start(self) -> datetime:
        assert self.filters.start is not None
        return self.filters.start

    @property
    def end(self) -> datetime:
        assert self.filters.end is not None
        return self.filters.end


def scope(filters: CallFilters, timezone: str = "UTC", now: datetime | None = None) -> ReportScope:
    """The report's calls: `filters` with the range closed (the last 30 days when open).

    Args:
        filters: the call-list filters; `start`/`end` may be missing.
        timezone: an IANA name (validated by the caller), for day buckets.
        now: the end of an open range (the current time when None).

    Raises:
        Invalid: `RANGE_TOO_LONG` for a range over `MAX_RANGE`.
    """
    end = filters.end or now or datetime.now(UTC)
    start = filters.start or end - DEFAULT_RANGE
    if end - start > MAX_RANGE:
        raise Invalid(
            "RANGE_TOO_LONG",
            f"A report covers at most {MAX_RANGE.days} days; narrow start_datetime and "
            "end_datetime (or start_date and end_date).",
        )
    return ReportScope(replace(filters, start=start, end=end), ZoneInfo(timezone))


def _is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


class _Sql:
    """A statement over the scoped calls: their WHERE clause and parameters, plus ours."""

    def __init__(self, workspace_id: uuid.UUID, report: ReportScope) -> None:
        query = filtered_calls(workspace_id, report.filters).order_by().values_list("id")
        sql, params = _parameterized_sql(query)
        where = sql.split(' FROM "calls"', 1)[1]
        self.params: list[Any] = list(params)
        self.postgres = _is_postgres()
        if not self.postgres:
            # Numbered, as PostgreSQL's are: our parameters may come before the WHERE clause.
            numbers = itertools.count(1)
            where = re.sub(r"\?", lambda _: f"?{next(numbers)}", where)
        self.where = where

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}" if self.postgres else f"?{len(self.params)}"

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        return await connections.get("default").execute_query_dict(sql, self.params)


def _day_starts(report: ReportScope) -> list[date]:
    """Every local day the range touches, in order."""
    first = report.start.astimezone(report.timezone).date()
    last = report.end.astimezone(report.timezone).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _day_expression(statement: _Sql, report: ReportScope) -> str:
    """The call's local day as `YYYY-MM-DD`."""
    if statement.postgres:
        zone = statement.param(report.timezone.key)
        return f"""to_char("created_at" AT TIME ZONE {zone}, 'YYYY-MM-DD')"""
    # Later midnights first: the first boundary a call is not before names its day.
    days = _day_starts(report)
    cases = " ".join(
        f'WHEN "created_at" >= {statement.param(_local_midnight(day, report.timezone))} '
        f"THEN '{day.isoformat()}'"
        for day in reversed(days[1:])
    )
    first = days[0].isoformat()
    return f"CASE {cases} ELSE '{first}' END" if cases else f"'{first}'"


def _cost_expression(postgres: bool) -> str:
    if postgres:
        return """("usage"::jsonb ->> 'cost')::float"""
    return """json_extract("usage", '$.cost')"""


async def _groups(workspace_id: uuid.UUID, report: ReportScope, group_by: str) -> list[dict]:
    statement = _Sql(workspace_id, report)
    key = _day_expression(statement, report) if group_by == "day" else GROUP_COLUMNS[group_by]
    rows = await statement.rows(
        f'SELECT {key} AS bucket, COUNT(*) AS calls, COUNT("answered_at") AS answered, '
        f"SUM({TALK_SECONDS}) AS total_duration, AVG({TALK_SECONDS}) AS average_duration "
        f'FROM "calls"{statement.where} GROUP BY 1 ORDER BY 1'
    )
    groups = [
        _figures(row, key=None if row["bucket"] is None else str(row["bucket"])) for row in rows
    ]
    if group_by == "day":  # every day of the range, quiet ones as zeros
        counted = {group["key"]: group for group in groups}
        groups = [
            counted.get(day.isoformat()) or _figures({}, key=day.isoformat())
            for day in _day_starts(report)
        ]
    return groups


def _figures(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    total = row.get("total_duration")
    average = row.get("average_duration")
    return {
        **extra,
        "calls": int(row.get("calls") or 0),
        "answered": int(row.get("answered") or 0),
        "total_duration_seconds": round(float(total), 3) if total is not None else 0.0,
        "average_duration_seconds": round(float(average), 3) if average is not None else None,
    }


async def totals(workspace_id: uuid.UUID, report: ReportScope) -> dict[str, Any]:
    """Calls, answered calls, talk time (total and average) and cost where known."""
    statement = _Sql(workspace_id, report)
    cost = _cost_expression(statement.postgres)
    [row] = await statement.rows(
        f'SELECT COUNT(*) AS calls, COUNT("answered_at") AS answered, '
        f"SUM({TALK_SECONDS}) AS total_duration, AVG({TALK_SECONDS}) AS average_duration, "
        f"SUM({cost}) AS cost, COUNT({cost}) AS costed "
        f'FROM "calls"{statement.where}'
    )
    figures = _figures(row)
    figures["cost"] = round(float(row["cost"]), 6) if row["costed"] else None
    return figures


async def _agent_names(workspace_id: uuid.UUID, agent_ids: list[str]) -> dict[str, str]:
    ids = [agent_id for agent_id in agent_ids if agent_id and agent_id != NO_VALUE]
    if not ids:
        return {}
    rows = await Agent.filter(workspace_id=workspace_id, id__in=ids).values_list("id", "agent_name")
    return {str(agent_id): name for agent_id, name in rows}


async def call_summary(
    workspace_id: uuid.UUID, report: ReportScope, group_by: str
) -> dict[str, Any]:
    """Counts and talk time per `group_by` (one of `GROUPS`), with the totals."""
    groups, figures = await asyncio.gather(
        _groups(workspace_id, report, group_by), totals(workspace_id, report)
    )
    if group_by == "agent":
        names = await _agent_names(workspace_id, [group["key"] for group in groups])
        for group in groups:
            group["agent_name"] = names.get(group["key"] or "")
    return {"totals": figures, "groups": groups}


async def disposition_summary(workspace_id: uuid.UUID, report: ReportScope) -> dict[str, Any]:
    """Counts and percentages of all calls per disposition (`none` for calls without one)."""
    groups = await _groups(workspace_id, report, "disposition")
    total = sum(group["calls"] for group in groups)
    dispositions = [
        {
            "disposition": group["key"],
            "calls": group["calls"],
            "percentage": round(100 * group["calls"] / total, 2) if total else 0.0,
        }
        for group in sorted(groups, key=lambda group: (-group["calls"], group["key"]))
    ]
    return {"total": total, "dispositions": dispositions}


def _latency_values(statement: _Sql, kind: str) -> str:
    """`(agent_id, ms)` of the scoped calls: every turn's end-to-end latency, or the first's."""
    if kind == "first_response":
        if statement.postgres:
            ms = """("latencies"::jsonb -> 0 ->> 'end_to_end_ms')::float"""
        else:
            ms = """json_extract("latencies", '$[0].end_to_end_ms')"""
        return f'SELECT "agent_id" AS agent_id, {ms} AS ms FROM "calls"{statement.where}'
    if statement.postgres:
        return (
            "SELECT \"agent_id\" AS agent_id, (turn.figures ->> 'end_to_end_ms')::float AS ms "
            'FROM "calls" CROSS JOIN LATERAL jsonb_array_elements("latencies"::jsonb) '
            f"AS turn(figures){statement.where}"
        )
    return (
        "SELECT \"agent_id\" AS agent_id, json_extract(turn.value, '$.end_to_end_ms') AS ms "
        f'FROM "calls", json_each("calls"."latencies") AS turn{statement.where}'
    )


def _nearest_rank_sql(statement: _Sql, values: str) -> str:
    """Per agent: the sample count and the p50/p95 of `values` by nearest rank."""
    if statement.postgres:
        # percentile_disc(p) is the first value whose rank is at least p * n: the nearest rank.
        picks = ", ".join(
            f"percentile_disc({fraction}) WITHIN GROUP (ORDER BY ms) AS {name}"
            for name, fraction in PERCENTILES.items()
        )
        return (
            f"SELECT agent_id, COUNT(*) AS n, {picks} "
            f"FROM ({values}) AS figures WHERE ms IS NOT NULL GROUP BY agent_id"
        )
    picks = ", ".join(
        f"MAX(CASE WHEN nth = {rank} THEN ms END) AS {name}" for name, rank in NEAREST_RANK.items()
    )
    return (
        f"SELECT agent_id, n, {picks} FROM ("
        "  SELECT agent_id, ms, ROW_NUMBER() OVER (PARTITION BY agent_id ORDER BY ms) AS nth,"
        "    COUNT(*) OVER (PARTITION BY agent_id) AS n"
        f"  FROM ({values}) AS figures WHERE ms IS NOT NULL"
        ") AS ranked GROUP BY agent_id, n"
    )


async def latency_percentiles(workspace_id: uuid.UUID, report: ReportScope) -> list[dict[str, Any]]:
    """Per agent, p50/p95 (nearest rank) of the first response and of every turn, in ms.

    The first response is the first answered turn's end-to-end latency (end of the caller's
    speech to the agent's first audio); turn latency is that figure over all turns.
    """

    async def percentiles(kind: str) -> list[dict[str, Any]]:
        statement = _Sql(workspace_id, report)
        return await statement.rows(_nearest_rank_sql(statement, _latency_values(statement, kind)))

    kinds = ("first_response", "turn")
    per_agent: dict[str | None, dict[str, Any]] = {}
    for kind, rows in zip(kinds, await asyncio.gather(*map(percentiles, kinds)), strict=True):
        for row in rows:
            agent_id = None if row["agent_id"] is None else str(row["agent_id"])
            entry = per_agent.setdefault(
                agent_id, {"agent_id": agent_id, "first_response": None, "turn": None}
            )
            entry[kind] = {
                "samples": int(row["n"]),
                "p50_ms": float(row["p50"]),
                "p95_ms": float(row["p95"]),
            }
    names = await _agent_names(workspace_id, [agent_id for agent_id in per_agent if agent_id])
    return [
        {**entry, "agent_name": names.get(agent_id or "")}
        for agent_id, entry in sorted(per_agent.items(), key=lambda item: item[0] or "")
    ]


async def active_calls(redis: Redis, workspace_id: uuid.UUID, platform_size: int) -> dict:
    """Calls holding a capacity slot now, against the workspace's and the platform's limits."""
    workspace = await Workspace.get(id=workspace_id)
    return {
        "workspace": {
            "active": await capacity.in_use(redis, capacity.WORKSPACE_KEY.format(workspace_id)),
            "capacity": workspace.max_concurrent_calls,
        },
        "platform": {"active": await capacity.in_use(redis), "capacity": platform_size},
    }


async def dashboard(
    redis: Redis, workspace_id: uuid.UUID, report: ReportScope, platform_size: int
) -> dict[str, Any]:
    """Everything `/reports/dashboard` shows for the range (its statements run concurrently)."""
    totals_, active, per_day, per_agent, per_disposition, latency = await asyncio.gather(
        totals(workspace_id, report),
        active_calls(redis, workspace_id, platform_size),
        _groups(workspace_id, report, "day"),
        _groups(workspace_id, report, "agent"),
        _groups(workspace_id, report, "disposition"),
        latency_percentiles(workspace_id, report),
    )
    names = await _agent_names(workspace_id, [group["key"] for group in per_agent])
    for group in per_agent:
        group["agent_name"] = names.get(group["key"] or "")
    return {
        "totals": totals_,
        "active_calls": active,
        "per_day": per_day,
        "per_agent": per_agent,
        "per_disposition": per_disposition,
        "latency": latency,
    }
