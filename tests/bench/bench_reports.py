"""Benchmark: the `/reports` routes at 1,000,000 call logs in PostgreSQL, and `/reports/workload`.

Run by hand (needs PostgreSQL and Redis at their standard local ports):

    .venv/bin/python tests/bench/bench_reports.py [--rows 1000000] [--repeat 30]

It fills a separate database (`voxline_bench_reports`) with call logs across 10 workspaces
(100,000 each at the default size), all placed within the last 30 days, so a 30-day report of
one workspace aggregates all 100,000 of its calls (the worst case for that range). Answered calls
carry three turns of latencies. The real app runs in-process (Quart's test client), and the
script prints p50/p95 per report, then `EXPLAIN (ANALYZE, BUFFERS)` of each SQL statement the
reports ran, so the plans and the indexes they use are visible. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-bench-"))

from tortoise import connections  # noqa: E402

from control.models import Workspace  # noqa: E402
from tests.bench.harness import admin_headers, bench_app  # noqa: E402

DATABASE = "voxline_bench_reports"
BASE_URL = os.environ.get("VOXLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = "redis://127.0.0.1:6379/13"
WORKSPACES = 10
AGENTS = 5


def nearest_rank(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-len(ordered) * int(fraction * 100) // 100) - 1)]


def percentiles(samples: list[float]) -> str:
    return f"p50 {nearest_rank(samples, 0.5):7.1f} ms   p95 {nearest_rank(samples, 0.95):7.1f} ms"



async def fill(rows: int) -> list[Workspace]:
    workspaces = [
        await Workspace.create(name=f"Bench {index}", slug=f"bench-{index:02d}")
        for index in range(WORKSPACES)
    ]
    connection = connections.get("default")
    for number, workspace in enumerate(workspaces):
        for index in range(AGENTS):
            await connection.execute_query(
                "INSERT INTO agents (id, workspace_id, agent_name, config, created_at, updated_at) "
                "VALUES ($1, $2, $3, '{}', now(), now())",
                [uuid.uuid4(), workspace.id, f"Agent {number}.{index}"],
            )
    started = time.perf_counter()
    # One statement: workspaces round-robin, 5 agents each; 4 in 5 calls answered, with three
    # turns of latencies; a spread of directions, types, statuses and dispositions; every call
    # within the last 30 days.
    await connection.execute_script(
        f"""
        CREATE TEMP TABLE bench_agents AS
            SELECT (row_number() OVER (ORDER BY w.slug, a.id) - 1) AS slot, a.id, a.workspace_id
            FROM agents a JOIN workspaces w ON w.id = a.workspace_id;
        INSERT INTO calls (id, workspace_id, agent_id, call_type, call_direction, status,
            end_reason, created_at, answered_at, ended_at, duration_seconds, disposition,
            batch_id, campaign, transcript, usage, latencies, extracted_data, dynamic_variables)
        SELECT md5(i::text || 'call')::uuid,
               a.workspace_id,
               a.id,
               CASE WHEN i % 5 = 0 THEN 'web' ELSE 'phone' END,
               CASE WHEN i % 3 = 0 THEN 'inbound' ELSE 'outbound' END,
               CASE WHEN i % 5 = 4 THEN 'no_answer' ELSE 'completed' END,
               CASE WHEN i % 5 = 4 THEN NULL ELSE 'user_hangup' END,
               t.created_at,
               CASE WHEN i % 5 = 4 THEN NULL ELSE t.created_at + interval '5 seconds' END,
               t.created_at + interval '5 seconds' + (i % 600) * interval '1 second',
               CASE WHEN i % 5 = 4 THEN NULL ELSE (i % 600)::float END,
               (ARRAY['interested','not_interested','callback','voicemail',NULL])[1 + i % 5],
               CASE WHEN i % 7 = 0 THEN md5((i % 49)::text || 'batch')::uuid END,
               CASE WHEN i % 11 = 0 THEN 'fall-' || (i % 3) END,
               '[]', jsonb_build_object('cost', (i % 100) / 1000.0),
               CASE WHEN i % 5 = 4 THEN '[]'::jsonb ELSE jsonb_build_array(
                   jsonb_build_object('turn', 1, 'end_to_end_ms', 300 + i % 900),
                   jsonb_build_object('turn', 2, 'end_to_end_ms', 250 + i % 700),
                   jsonb_build_object('turn', 3, 'end_to_end_ms', 200 + i % 1300)) END,
               '{{}}', '{{}}'
        FROM generate_series(1, {rows}) AS i
        CROSS JOIN LATERAL (
            SELECT now() - (i % 2592000) * interval '1 second' AS created_at
        ) t
        JOIN bench_agents a
          ON a.slot = (i % {WORKSPACES}) * {AGENTS} + (i / {WORKSPACES}) % {AGENTS};
        """
    )
    await connection.execute_script("VACUUM ANALYZE calls")
    print(f"filled {rows:,} call logs in {time.perf_counter() - started:.0f} s")
    return workspaces


async def timed(client, path: str, headers: dict, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(path, headers=headers)
        await response.get_data()
        assert response.status_code == 200, (path, response.status_code)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


class StatementLog:
    """Records the SQL the reports send (tortoise's client, wrapped for this script only)."""

    def __init__(self) -> None:
        self.client = connections.get("default")
        self.original = self.client.execute_query_dict
        self.statements: list[tuple[str, list]] = []

    async def _record(self, sql: str, values: list | None = None):
        self.statements.append((sql, list(values or [])))
        return await self.original(sql, values)

    def __enter__(self) -> StatementLog:
        self.client.execute_query_dict = self._record
        return self

    def __exit__(self, *_: object) -> None:
        self.client.execute_query_dict = self.original


async def explain(sql: str, values: list) -> str:
    rows = await connections.get("default").execute_query_dict(
        f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", values
    )
    return "\n".join("    " + row["QUERY PLAN"] for row in rows)


async def main(rows: int, repeat: int) -> None:
    async with bench_app(DATABASE, REDIS_URL) as (settings, test_app, livekit):
        workspaces = await fill(rows)
        workspace = workspaces[3]
        headers = await admin_headers(settings, workspace)
        client = test_app.test_client()
        in_range = (
            await connections.get("default").execute_query_dict(
                "SELECT count(*) AS n FROM calls WHERE workspace_id = $1 "
                "AND created_at >= now() - interval '30 days'",
                [workspace.id],
            )
        )[0]["n"]
        agent_id = (
            await connections.get("default").execute_query_dict(
                "SELECT id FROM agents WHERE workspace_id = $1 ORDER BY id LIMIT 1",
                [workspace.id],
            )
        )[0]["id"]
        reports = {
            "dashboard (UTC)": "/reports/dashboard",
            "dashboard (Europe/Paris)": "/reports/dashboard?timezone=Europe/Paris",
            "call-summary by day": "/reports/call-summary?group_by=day&timezone=America/New_York",
            "call-summary by agent": "/reports/call-summary?group_by=agent",
            "call-summary by status": "/reports/call-summary?group_by=status",
            "call-summary, one agent": f"/reports/call-summary?group_by=day&agent_id={agent_id}",
            "disposition-summary": "/reports/disposition-summary",
            "disposition, campaign": "/reports/disposition-summary?campaign=fall-1",
            "workload (public)": "/reports/workload",
        }
        print(
            f"\n/reports on {rows:,} calls; one workspace of {WORKSPACES} with {in_range:,} calls "
            f"in the 30-day default range ({repeat} requests each):"
        )
        for label, path in reports.items():
            await timed(client, path, headers, 2)  # warm up
            print(f"  {label:28s} {percentiles(await timed(client, path, headers, repeat))}")

        print("\nPlans (EXPLAIN ANALYZE) of the statements one dashboard request runs:")
        with StatementLog() as log:
            await client.get("/reports/dashboard?timezone=Europe/Paris", headers=headers)
        for sql, values in log.statements:
            if 'FROM "calls"' not in sql:
                continue
            print(f"\n  {sql[:160]}...")
            print(await explain(sql, values))
        indexes = await connections.get("default").execute_query_dict(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'calls' ORDER BY indexname"
        )
        print("\nIndexes on calls:")
        for index in indexes:
            print(f"  {index['indexdef']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.repeat))
