"""Call reports: totals, groups, dispositions and latency percentiles, computed in SQL.

Every figure is an aggregate the database computes over the workspace's calls (the WHERE clause
of `call_logs.filtered_calls`, so reports and the call list agree on what a filter means); no
call log is loaded into Python. A call belongs to the day of its `created_at` in the requested
IANA time zone: PostgreSQL buckets with `AT TIME ZONE`; SQLite, which has no time-zone
database, compares with the UTC instants of the local midnights, computed here and passed in.

With rollups (`with_rollups`), the whole fresh hours of the range come from `report_rollups`
(a rollup hour's day is its start's in the zone) and only the rest from the calls table; both
parts sum the same integers, so the figures are the calls table's own. Latency percentiles then
come from merged DDSketch bins (`report_rollups`), within its relative accuracy.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from tortoise import connections

from control.errors import Invalid
from control.models import Agent, Workspace
from control.services import capacity
from control.services import report_rollups as rollups
from control.services.call_logs import (
    MAX_RANGE,
    SLUG_LENGTH,
    CallFilters,
    _parameterized_sql,
    filtered_calls,
)

DEFAULT_RANGE = timedelta(days=30)
NO_VALUE = "none"  # the bucket of calls with no disposition (or no end reason yet)
GROUP_COLUMNS = {
    "agent": '"agent_id"',  # the agent that answered
    # the agent speaking when the call ended (a hand-off's last); the answering one before
    "final_agent": 'COALESCE("final_agent_id", "agent_id")',
    "agent_version": '"agent_version"',
    "direction": '"call_direction"',
    "type": '"call_type"',
    "status": '"status"',
    "end_reason": f"""COALESCE("end_reason", '{NO_VALUE}')""",
    "disposition": f"""COALESCE("disposition", '{NO_VALUE}')""",
}
GROUPS = ("day", *GROUP_COLUMNS)
# Nearest rank: the value at rank ceil(p * n), in integer arithmetic both databases share.
NEAREST_RANK = {"p50": "(n + 1) / 2", "p95": "(95 * n + 99) / 100"}
PERCENTILES = {"p50": 0.5, "p95": 0.95}


@dataclass(frozen=True)
class ReportScope:
    """Which calls a report counts: the call-list filters over a closed range, and a time zone."""

    filters: CallFilters
    timezone: ZoneInfo
    # The workspace's stale hours in range when the report reads rollups (`with_rollups`);
    # None: it reads the calls table alone.
    stale_hours: frozenset[int] | None = None

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


# The rollup table holds these filters as columns of the same name (`report_rollups`); a report
# with any other filter (a field added to `CallFilters` later) reads the calls table throughout.
ROLLUP_EQUALITY_FILTERS = (
    "call_type", "call_direction", "agent_id", "disposition", "batch_id", "agent_version",
)  # fmt: skip
# Groups a rollup can answer (its columns are named as the calls'); others read the calls table.
ROLLUP_GROUPS = frozenset({"day", "agent", "agent_version", "direction", "type", "status",
                           "end_reason", "disposition"})  # fmt: skip


async def with_rollups(workspace_id: uuid.UUID, report: ReportScope) -> ReportScope:
    """The report, reading rollups for every whole hour whose calls have not changed since."""
    p = rollups.Params(_is_postgres())
    rows = await connections.get("default").execute_query_dict(
        f'SELECT "hour" FROM "report_stale_hours" WHERE "workspace_id" = {p(workspace_id)} '
        f'AND "hour" >= {p(rollups.hour_of(report.start))} '
        f'AND "hour" <= {p(rollups.hour_of(report.end))}',
        p.values,
    )
    return replace(report, stale_hours=frozenset(int(row["hour"]) for row in rows))


Range = tuple[datetime | None, datetime | None]  # [since, until); None: the scope's own bound


def _split(
    report: ReportScope,
    unit: int,
    forced: frozenset[int] = frozenset(),
    window: Range = (None, None),
) -> tuple[list[tuple[int, int]], list[Range]]:
    """Which units (`unit` hours each) of `window` a rollup answers, and which instants of it
    the calls table must.

    Returns:
        Spans `[first, last)` of fresh units wholly in the window, and the rest of the window as
        ranges of the calls' `created_at`.
    """
    stale = report.stale_hours
    if stale is None:
        return [], [window]
    seconds = unit * rollups.HOUR_SECONDS
    since, until = window
    start = ((since or report.start) - rollups.EPOCH).total_seconds()
    end = ((until or report.end) - rollups.EPOCH).total_seconds()
    first, last = int(-(-start // seconds)), int(end // seconds)
    fresh = [
        index
        for index in range(first, last)
        if index not in forced
        and not any(hour in stale for hour in range(index * unit, (index + 1) * unit))
    ]
    spans: list[tuple[int, int]] = []
    for index in fresh:
        if spans and spans[-1][1] == index:
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    raw: list[Range] = []
    cursor = since
    for span_first, span_last in spans:
        boundary = rollups.hour_start(span_first * unit)
        if boundary > (cursor or report.start):
            raw.append((cursor, boundary))
        cursor = rollups.hour_start(span_last * unit)
    if cursor is None or cursor < (until or report.end) or (until is None and cursor == report.end):
        raw.append((cursor, until))
    return spans, raw


def _raw_ranges(statement: _Sql, ranges: list[Range]) -> str:
    """` AND (...)`: the calls' created_at within any of `ranges` (empty: all of the scope)."""
    clauses = []
    for since, until in ranges:
        bounds = []
        if since is not None:
            bounds.append(f'"created_at" >= {statement.param(since)}')
        if until is not None:
            bounds.append(f'"created_at" < {statement.param(until)}')
        if not bounds:
            return ""
        clauses.append("(" + " AND ".join(bounds) + ")")
    return " AND (" + " OR ".join(clauses) + ")" if clauses else " AND FALSE"


def _rollup_where(
    p: rollups.Params,
    workspace_id: uuid.UUID,
    report: ReportScope,
    allowed: tuple[str, ...] = ROLLUP_EQUALITY_FILTERS,
) -> str | None:
    """The rollup rows of the report's filters (before the hours), or None if one has no column."""
    clauses = [f'"workspace_id" = {p(workspace_id)}']
    for name, value in asdict(report.filters).items():
        if value is None or name in ("start", "end"):
            continue
        if name in allowed:
            clauses.append(f'"{name}" = {p(value)}')
        elif name == "campaign" and allowed is ROLLUP_EQUALITY_FILTERS:
            clauses.append(_campaign_clause(p, workspace_id, value))
        else:
            return None
    return " AND ".join(clauses)


def _campaign_clause(p: rollups.Params, workspace_id: uuid.UUID, campaign: str) -> str:
    """`call_logs._campaign_filter` on the rollup columns: a campaign's id or slug, or a label."""
    label = f'"campaign" = {p(campaign)}'
    try:
        return f'("campaign_id" = {p(uuid.UUID(campaign))} OR {label})'
    except ValueError:
        pass
    if len(campaign) > SLUG_LENGTH:
        return label
    return (
        f'("campaign_id" IN (SELECT "id" FROM "campaigns" WHERE "workspace_id" = '
        f'{p(workspace_id)} AND "slug" = {p(campaign)}) OR {label})'
    )


def _spans_sql(p: rollups.Params, column: str, spans: list[tuple[int, int]]) -> str:
    return " OR ".join(
        f'("{column}" >= {p(first)} AND "{column}" < {p(last)})' for first, last in spans
    )


def _misaligned_midnight_hours(report: ReportScope) -> frozenset[int]:
    """Hours a local midnight falls inside (zones off UTC by a part of an hour): read whole."""
    hours = set()
    for day in _day_starts(report):
        midnight = _local_midnight(day, report.timezone)
        if (midnight - rollups.EPOCH).total_seconds() % rollups.HOUR_SECONDS:
            hours.add(rollups.hour_of(midnight))
    return frozenset(hours)


def _add(into: dict[str, int], row: dict[str, Any]) -> None:
    for column in rollups.SUM_COLUMNS:
        into[column] = into.get(column, 0) + int(row.get(column) or 0)


async def _sums(
    workspace_id: uuid.UUID, report: ReportScope, group_by: str | None
) -> dict[str | None, dict[str, int]]:
    """The integer sums per bucket of `group_by` (None: one bucket), rollups plus calls."""
    postgres = _is_postgres()
    day = group_by == "day"
    forced = _misaligned_midnight_hours(report) if day else frozenset()
    p = rollups.Params(postgres)
    where = _rollup_where(p, workspace_id, report)
    spans, raw = _split(report, 1, forced)
    if where is None or (group_by is not None and group_by not in ROLLUP_GROUPS):
        spans, raw = [], [(None, None)]
    statement = _Sql(workspace_id, report)
    if day:
        key = _day_expression(statement, report)
    else:
        key = GROUP_COLUMNS[group_by] if group_by else "NULL"
    ranges = _raw_ranges(statement, raw)
    queries = [
        statement.rows(
            f"SELECT {key} AS bucket, {rollups.sum_sql(postgres)} "
            f'FROM "calls"{statement.where}{ranges} GROUP BY 1'
        )
    ]
    if spans:
        rollup_key = '"hour"' if day else key
        queries.append(
            connections.get("default").execute_query_dict(
                f"SELECT {rollup_key} AS bucket, {rollups.rollup_sum_sql()} "
                f'FROM "report_rollups" WHERE {where} AND ({_spans_sql(p, "hour", spans)}) '
                "GROUP BY 1",
                p.values,
            )
        )
    results = await asyncio.gather(*queries)
    buckets: dict[str | None, dict[str, int]] = {}
    for part, rows in enumerate(results):
        for row in rows:
            bucket = row["bucket"]
            if part == 1 and day:  # an hour of a rollup: its day in the report's zone
                start = rollups.hour_start(int(bucket))
                bucket = start.astimezone(report.timezone).date().isoformat()
            _add(buckets.setdefault(None if bucket is None else str(bucket), {}), row)
    return buckets


def _grouping_sets_sql(keys: list[str], sums: str, source: str) -> str:
    """One PostgreSQL statement grouping `source` by each of `keys` apart (one scan for all)."""
    selected = ", ".join(
        f"{key} AS b{index}, GROUPING({key}) AS g{index}" for index, key in enumerate(keys)
    )
    sets = ", ".join(f"({key})" for key in keys)
    return f"SELECT {selected}, {sums} FROM {source} GROUP BY GROUPING SETS ({sets})"


async def _sums_by(
    workspace_id: uuid.UUID, report: ReportScope, group_bys: tuple[str, ...]
) -> list[dict[str | None, dict[str, int]]]:
    """`_sums` of each of `group_bys`; on PostgreSQL in one scan of each table (grouping sets)."""
    postgres = _is_postgres()
    if not postgres or len(group_bys) == 1 or not ROLLUP_GROUPS.issuperset(group_bys):
        return list(
            await asyncio.gather(*(_sums(workspace_id, report, group) for group in group_bys))
        )
    day = "day" in group_bys
    p = rollups.Params(postgres)
    where = _rollup_where(p, workspace_id, report)
    spans, raw = _split(report, 1, _misaligned_midnight_hours(report) if day else frozenset())
    if where is None:
        spans, raw = [], [(None, None)]
    statement = _Sql(workspace_id, report)
    raw_keys = [
        _day_expression(statement, report) if group == "day" else GROUP_COLUMNS[group]
        for group in group_bys
    ]
    source = f'"calls"{statement.where}{_raw_ranges(statement, raw)}'
    queries = [statement.rows(_grouping_sets_sql(raw_keys, rollups.sum_sql(postgres), source))]
    if spans:
        keys = ['"hour"' if group == "day" else GROUP_COLUMNS[group] for group in group_bys]
        source = f'"report_rollups" WHERE {where} AND ({_spans_sql(p, "hour", spans)})'
        queries.append(
            connections.get("default").execute_query_dict(
                _grouping_sets_sql(keys, rollups.rollup_sum_sql(), source), p.values
            )
        )
    results: list[dict[str | None, dict[str, int]]] = [{} for _ in group_bys]
    for part, rows in enumerate(await asyncio.gather(*queries)):
        for row in rows:
            index = next(i for i in range(len(group_bys)) if row[f"g{i}"] == 0)
            bucket = row[f"b{index}"]
            if part == 1 and group_bys[index] == "day":
                start = rollups.hour_start(int(bucket))
                bucket = start.astimezone(report.timezone).date().isoformat()
            _add(results[index].setdefault(None if bucket is None else str(bucket), {}), row)
    return results


async def _groups(workspace_id: uuid.UUID, report: ReportScope, group_by: str) -> list[dict]:
    return (await _groups_and_totals(workspace_id, report, group_by))[0]


async def _groups_and_totals(
    workspace_id: uuid.UUID, report: ReportScope, group_by: str
) -> tuple[list[dict], dict[str, Any]]:
    """The groups of `group_by`, and the totals: their sums added up (each call is in one
    group, and the sums are integers, so this is the totals' own aggregate)."""
    return _shape(report, group_by, await _sums(workspace_id, report, group_by))


def _shape(
    report: ReportScope, group_by: str, sums: dict[str | None, dict[str, int]]
) -> tuple[list[dict], dict[str, Any]]:
    whole: dict[str, int] = {}
    for figures in sums.values():
        _add(whole, figures)
    groups = [
        _figures(figures, key=key)
        for key, figures in sorted(sums.items(), key=lambda item: (item[0] is None, item[0]))
        if figures.get("calls")
    ]
    if group_by == "day":  # every day of the range, quiet ones as zeros
        counted = {group["key"]: group for group in groups}
        groups = [
            counted.get(day.isoformat()) or _figures({}, key=day.isoformat())
            for day in _day_starts(report)
        ]
    return groups, _totals(whole)


def _figures(sums: dict[str, int], **extra: Any) -> dict[str, Any]:
    talked = sums.get("talked") or 0
    talk_micros = sums.get("talk_micros") or 0
    return {
        **extra,
        "calls": sums.get("calls") or 0,
        "answered": sums.get("answered") or 0,
        "total_duration_seconds": round(talk_micros / 1_000_000, 3),
        "average_duration_seconds": round(talk_micros / talked / 1_000_000, 3) if talked else None,
    }


async def totals(workspace_id: uuid.UUID, report: ReportScope) -> dict[str, Any]:
    """Calls, answered calls, talk time (total and average) and cost where known."""
    return _totals((await _sums(workspace_id, report, None)).get(None, {}))


def _totals(sums: dict[str, int]) -> dict[str, Any]:
    figures = _figures(sums)
    figures["cost"] = round((sums.get("cost_nanos") or 0) / 1e9, 6) if sums.get("costed") else None
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
    groups, figures = await _groups_and_totals(workspace_id, report, group_by)
    if group_by in ("agent", "final_agent"):
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
    ms, source = rollups.latency_source(statement.postgres, kind)
    return f'SELECT "agent_id" AS agent_id, {ms} AS ms FROM {source}{statement.where}'


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


async def _latency_bins(
    workspace_id: uuid.UUID, report: ReportScope
) -> dict[tuple[str | None, str], dict[int, int]]:
    """Per agent and kind, the DDSketch bins of the scope: whole fresh UTC days from the bins
    table, the rest from the calls table (the same bins, computed in the same SQL)."""
    postgres = _is_postgres()
    day_spans, outside_days = _split(report, rollups.DAY_HOURS)
    hour_spans: list[tuple[int, int]] = []
    raw: list[Range] = []
    for window in outside_days:  # the ends, and days with a stale hour: their fresh hours
        spans, rest = _split(report, 1, window=window)
        hour_spans += spans
        raw += rest
    p = rollups.Params(postgres)
    where = _rollup_where(p, workspace_id, report, rollups.LATENCY_DIMENSIONS)
    if where is None:
        day_spans, hour_spans, raw = [], [], [(None, None)]
    queries = []
    for kind in rollups.LATENCY_KINDS:
        statement = _Sql(workspace_id, report)
        ranges = _raw_ranges(statement, raw)
        calls_where = statement.where.removeprefix(" WHERE ") + ranges
        params = rollups.Params(postgres, statement.params)
        bins = rollups.latency_bins_sql(postgres, kind, params, calls_where)
        queries.append(_kind_rows(kind, bins, params.values))
    hours = [(first * rollups.DAY_HOURS, last * rollups.DAY_HOURS, 24) for first, last in day_spans]
    hours += [(first, last, 1) for first, last in hour_spans]
    if hours and where is not None:
        spans_sql = " OR ".join(
            f'("span" = {span} AND "hour" >= {p(first)} AND "hour" < {p(last)})'
            for first, last, span in hours
        )
        queries.append(
            connections.get("default").execute_query_dict(
                'SELECT "agent_id", "kind", "bin", SUM("count") AS count '
                f'FROM "report_latency_bins" WHERE {where} AND ({spans_sql}) '
                'GROUP BY "agent_id", "kind", "bin"',
                p.values,
            )
        )
    merged: dict[tuple[str | None, str], dict[int, int]] = {}
    for rows in await asyncio.gather(*queries):
        for row in rows:
            agent_id = None if row["agent_id"] is None else str(row["agent_id"])
            bins_of = merged.setdefault((agent_id, row["kind"]), {})
            bins_of[int(row["bin"])] = bins_of.get(int(row["bin"]), 0) + int(row["count"])
    return merged


async def _kind_rows(kind: str, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    rows = await connections.get("default").execute_query_dict(sql, params)
    return [{**row, "kind": kind} for row in rows]


async def latency_percentiles(workspace_id: uuid.UUID, report: ReportScope) -> list[dict[str, Any]]:
    """Per agent, p50/p95 (nearest rank) of the first response and of every turn, in ms.

    The first response is the first answered turn's end-to-end latency (end of the caller's
    speech to the agent's first audio); turn latency is that figure over all turns.
    """

    async def percentiles(kind: str) -> list[dict[str, Any]]:
        statement = _Sql(workspace_id, report)
        return await statement.rows(_nearest_rank_sql(statement, _latency_values(statement, kind)))

    kinds = rollups.LATENCY_KINDS
    per_agent: dict[str | None, dict[str, Any]] = {}

    def entry(agent_id: object) -> dict[str, Any]:
        key = None if agent_id is None else str(agent_id)
        return per_agent.setdefault(key, {"agent_id": key, "first_response": None, "turn": None})

    if report.stale_hours is not None:
        for (agent_id, kind), bins in (await _latency_bins(workspace_id, report)).items():
            entry(agent_id)[kind] = rollups.percentiles(bins)
    else:
        for kind, rows in zip(kinds, await asyncio.gather(*map(percentiles, kinds)), strict=True):
            for row in rows:
                entry(row["agent_id"])[kind] = {
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
    kinds = ("day", "agent", "disposition")
    active, sums, latency = await asyncio.gather(
        active_calls(redis, workspace_id, platform_size),
        _sums_by(workspace_id, report, kinds),
        latency_percentiles(workspace_id, report),
    )
    (per_day, _), (per_agent, _), (per_disposition, totals_) = (
        _shape(report, group_by, figures) for group_by, figures in zip(kinds, sums, strict=True)
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
