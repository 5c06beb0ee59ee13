"""Report rollups: computing them from the calls table, and the SQL both report paths share.

A call's figures are counted by the same SQL expressions whether a report reads the calls table
or a rollup, and sums are integers (talk time in microseconds, cost in billionths), so the two
paths agree exactly. Latencies go into DDSketch bins (the `ddsketch` library's logarithmic
mapping, 1 % relative accuracy): bins of any days and agents add up, and a percentile read from
them is within 1 % of the exact nearest-rank value.

The trigger of migration 0020 marks the hour of every changed call as stale in the same
transaction as the change. `refresh` recomputes each stale workspace-day from the calls table
(deleting its marks first, in the same transaction): recomputing is idempotent, so no crash or
second runner can count a call twice, and a report reads a stale hour from the calls table.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from ddsketch.mapping import LogarithmicMapping
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

logger = logging.getLogger(__name__)

HOUR_SECONDS = 3600
DAY_HOURS = 24
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
ZERO_BIN = -2_000_000_000  # figures of 0 ms (or less): the sketch's zero bucket
# The calls' columns a rollup keeps apart. Hand-offs' `final_agent_id` (migration 0021) would be
# added here, to `ReportRollup` and to the trigger's REPORTED_COLUMNS (a later migration).
DIMENSIONS = (
    "agent_id", "agent_version", "call_type", "call_direction", "status", "end_reason",
    "disposition", "batch_id", "campaign", "campaign_id",
)  # fmt: skip
LATENCY_DIMENSIONS = ("agent_id", "agent_version")
LATENCY_KINDS = ("first_response", "turn")
CALLS_CREATED_AT = '"calls"."created_at"'
SUM_COLUMNS = ("calls", "answered", "talked", "talk_micros", "costed", "cost_nanos")
REFRESH_DAYS = 50  # workspace-days one refresh pass recomputes


def is_postgres(client: BaseDBAsyncClient | None = None) -> bool:
    return (client or connections.get("default")).capabilities.dialect == "postgres"


def hour_sql(postgres: bool, column: str = '"created_at"') -> str:
    """A call's UTC hour, in whole hours since the epoch (the trigger's expression)."""
    if postgres:
        return f"FLOOR(EXTRACT(EPOCH FROM {column}) / 3600)::bigint"
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / 3600)"


def hour_of(instant: datetime) -> int:
    return int((instant - EPOCH).total_seconds() // HOUR_SECONDS)


def hour_start(hour: int) -> datetime:
    return EPOCH + timedelta(hours=hour)


def _cost_sql(postgres: bool) -> str:
    if postgres:
        return """("usage"::jsonb ->> 'cost')::float"""
    return """json_extract("usage", '$.cost')"""


def sum_sql(postgres: bool) -> str:
    """The six figures of a set of calls, each an integer both report paths add up alike."""
    integer = "bigint" if postgres else "INTEGER"
    talk = 'CASE WHEN "answered_at" IS NOT NULL THEN "duration_seconds" END'
    cost = _cost_sql(postgres)
    return (
        f'COUNT(*) AS calls, COUNT("answered_at") AS answered, COUNT({talk}) AS talked, '
        f"SUM(CAST(ROUND({talk} * 1000000) AS {integer})) AS talk_micros, "
        f"COUNT({cost}) AS costed, SUM(CAST(ROUND({cost} * 1000000000) AS {integer})) AS cost_nanos"
    )


def rollup_sum_sql() -> str:
    return ", ".join(f'SUM("{column}") AS {column}' for column in SUM_COLUMNS)


def latency_source(postgres: bool, kind: str) -> tuple[str, str]:
    """(the figure in ms, the FROM clause) of every turn's end-to-end latency, or the first's."""
    if kind == "first_response":
        if postgres:
            return """("latencies"::jsonb -> 0 ->> 'end_to_end_ms')::float""", '"calls"'
        return """json_extract("latencies", '$[0].end_to_end_ms')""", '"calls"'
    if postgres:
        return (
            "(turn.figures ->> 'end_to_end_ms')::float",
            '"calls" CROSS JOIN LATERAL jsonb_array_elements("latencies"::jsonb) AS turn(figures)',
        )
    return (
        "json_extract(turn.value, '$.end_to_end_ms')",
        '"calls", json_each("calls"."latencies") AS turn',
    )


def bin_sql(postgres: bool, ms: str, multiplier: str) -> str:
    """The DDSketch bin of `ms`: ceil(log_gamma(ms)), the library's logarithmic mapping."""
    integer = "integer" if postgres else "INTEGER"
    return (
        f"CASE WHEN {ms} > 0 THEN CAST(CEIL(LN({ms}) * {multiplier}) AS {integer}) "
        f"ELSE {ZERO_BIN} END"
    )


def bin_multiplier() -> float:
    """1 / ln(gamma): what `bin_sql` multiplies a figure's logarithm by."""
    import math

    return 1 / math.log(MAPPING.gamma)


def bin_value(key: int) -> float:
    return 0.0 if key == ZERO_BIN else float(MAPPING.value(key))


def percentile_ranks(samples: int) -> dict[str, int]:
    """Nearest rank of p50 and p95, as the calls-table path computes them."""
    return {"p50": (samples + 1) // 2, "p95": (95 * samples + 99) // 100}


def percentiles(bins: dict[int, int]) -> dict[str, float | int] | None:
    """Samples, p50 and p95 (ms) of merged bins; None when there are none."""
    samples = sum(bins.values())
    if not samples:
        return None
    ranks = percentile_ranks(samples)
    found: dict[str, float | int] = {"samples": samples}
    seen = 0
    for key in sorted(bins):
        seen += bins[key]
        for name, rank in ranks.items():
            if name not in found and seen >= rank:
                found[name] = bin_value(key)
    return {"samples": samples, "p50_ms": found["p50"], "p95_ms": found["p95"]}


class Params:
    """Numbered parameters for one statement ($n on PostgreSQL, ?n on SQLite; UUIDs as text)."""

    def __init__(self, postgres: bool, values: Iterable[object] = ()) -> None:
        self.postgres = postgres
        self.values: list[object] = list(values)

    def __call__(self, value: object) -> str:
        if isinstance(value, uuid.UUID) and not self.postgres:
            value = str(value)
        self.values.append(value)
        return f"${len(self.values)}" if self.postgres else f"?{len(self.values)}"


async def _recompute_day(workspace_id: uuid.UUID, day: int) -> bool:
    """Recompute one workspace-day's rollups and latency bins if any of its hours is stale."""
    first_hour = day * DAY_HOURS
    start, end = hour_start(first_hour), hour_start(first_hour + DAY_HOURS)
    async with in_transaction() as connection:
        postgres = is_postgres(connection)
        p = Params(postgres)
        claimed = await connection.execute_query_dict(
            f'DELETE FROM "report_stale_hours" WHERE "workspace_id" = {p(workspace_id)} '
            f'AND "hour" >= {p(first_hour)} AND "hour" < {p(first_hour + DAY_HOURS)} '
            'RETURNING "hour"',
            p.values,
        )
        if not claimed:  # another runner took it first
            return False
        p = Params(postgres)
        await connection.execute_query(
            f'DELETE FROM "report_rollups" WHERE "workspace_id" = {p(workspace_id)} '
            f'AND "hour" >= {p(first_hour)} AND "hour" < {p(first_hour + DAY_HOURS)}',
            p.values,
        )
        p = Params(postgres)
        dimensions = ", ".join(f'"{column}"' for column in DIMENSIONS)
        sums = ", ".join(f'"{column}"' for column in SUM_COLUMNS)
        hour = hour_sql(postgres)
        in_day = (
            f'"workspace_id" = {p(workspace_id)} AND "created_at" >= {p(start)} '
            f'AND "created_at" < {p(end)}'
        )
        await connection.execute_query(
            f'INSERT INTO "report_rollups" ("workspace_id", "hour", {dimensions}, {sums}) '
            f'SELECT "workspace_id", {hour}, {dimensions}, {sum_sql(postgres)} '
            f'FROM "calls" WHERE {in_day} GROUP BY "workspace_id", {hour}, {dimensions}',
            p.values,
        )
        p = Params(postgres)
        await connection.execute_query(
            f'DELETE FROM "report_latency_bins" WHERE "workspace_id" = {p(workspace_id)} '
            f'AND "hour" >= {p(first_hour)} AND "hour" < {p(first_hour + DAY_HOURS)}',
            p.values,
        )
        for kind in LATENCY_KINDS:
            p = Params(postgres)
            await connection.execute_query(
                latency_bins_insert(postgres, kind, p, workspace_id, start, end), p.values
            )
        # The day's bins: its hours' added up (one row per agent, kind and bin, not 24).
        p = Params(postgres)
        columns = ", ".join(f'"{column}"' for column in (*LATENCY_DIMENSIONS, "kind", "bin"))
        await connection.execute_query(
            f'INSERT INTO "report_latency_bins" ("workspace_id", "span", "hour", {columns}, '
            f'"count") SELECT "workspace_id", {DAY_HOURS}, {int(first_hour)}, {columns}, '
            f'SUM("count") FROM "report_latency_bins" WHERE "workspace_id" = {p(workspace_id)} '
            f'AND "span" = 1 AND "hour" >= {p(first_hour)} AND "hour" < '
            f'{p(first_hour + DAY_HOURS)} GROUP BY "workspace_id", {columns}',
            p.values,
        )
    return True


def latency_bins_sql(
    postgres: bool, kind: str, p: Params, where: str, by_hour: bool = False
) -> str:
    """Per workspace, agent and version (and UTC hour), how many figures of `kind` fell into
    each bin, of the calls `where`."""
    ms, source = latency_source(postgres, kind)
    keys = ["workspace_id", *LATENCY_DIMENSIONS]
    selected = [f'"calls"."{key}" AS {key}' for key in keys]
    if by_hour:
        keys.append("hour")
        selected.append(f"{hour_sql(postgres, CALLS_CREATED_AT)} AS hour")
    outer = ", ".join(keys)
    return (
        f"SELECT {outer}, {bin_sql(postgres, 'ms', p(bin_multiplier()))} AS bin, "
        f"COUNT(*) AS count FROM (SELECT {', '.join(selected)}, {ms} AS ms FROM {source} "
        f"WHERE {where}) AS figures WHERE ms IS NOT NULL GROUP BY {outer}, {len(keys) + 1}"
    )


def latency_bins_insert(
    postgres: bool,
    kind: str,
    p: Params,
    workspace_id: uuid.UUID,
    start: datetime,
    end: datetime,
) -> str:
    """The hourly bins of one kind, of a workspace's calls placed in `[start, end)`."""
    assert kind in LATENCY_KINDS
    columns = ", ".join(f'"{column}"' for column in LATENCY_DIMENSIONS)
    where = (
        f'"calls"."workspace_id" = {p(workspace_id)} AND "calls"."created_at" >= {p(start)} '
        f'AND "calls"."created_at" < {p(end)}'
    )
    select = latency_bins_sql(postgres, kind, p, where, by_hour=True)
    return (
        f'INSERT INTO "report_latency_bins" ("workspace_id", {columns}, "hour", "bin", "count", '
        f'"span", "kind") SELECT figures.*, 1, \'{kind}\' FROM ({select}) AS figures'
    )


async def refresh(limit: int = REFRESH_DAYS) -> int:
    """Recompute up to `limit` stale workspace-days; returns how many it recomputed."""
    rows = await connections.get("default").execute_query_dict(
        f'SELECT DISTINCT "workspace_id", "hour" / {DAY_HOURS} AS day FROM "report_stale_hours" '
        f"ORDER BY 2 LIMIT {int(limit)}"
    )
    done = 0
    for row in rows:
        workspace_id = row["workspace_id"]
        if not isinstance(workspace_id, uuid.UUID):
            workspace_id = uuid.UUID(str(workspace_id))
        done += await _recompute_day(workspace_id, int(row["day"]))
    return done


async def refresh_all(progress: Callable[[int], None] | None = None) -> int:
    """Recompute every stale workspace-day; returns how many."""
    total = 0
    while done := await refresh():
        total += done
        if progress:
            progress(total)
    return total


async def rebuild(resume: bool = False, progress: Callable[[int], None] | None = None) -> int:
    """Recompute every rollup from the calls table (idempotent; resumable with `resume`).

    Marks the hour of every call and of every rollup stale (one statement each), then
    recomputes them; an interrupted rebuild continues from its remaining marks.
    """
    client = connections.get("default")
    postgres = is_postgres(client)
    if not resume:
        for source, hour in (
            ('"calls"', hour_sql(postgres)),
            ('"report_rollups"', '"hour"'),
            ('"report_latency_bins"', '"hour"'),
        ):
            await client.execute_query(
                'INSERT INTO "report_stale_hours" ("workspace_id", "hour") '
                f'SELECT DISTINCT "workspace_id", {hour} FROM {source} '
                'WHERE TRUE ON CONFLICT ("workspace_id", "hour") DO NOTHING'
            )
    total = await refresh_all(progress)
    logger.info("report rollups rebuilt: %d workspace-days", total)
    return total
