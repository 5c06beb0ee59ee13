"""Benchmark: the `/reports` routes at 1,000,000 call logs in PostgreSQL, and `/reports/workload`.

Run by hand (needs PostgreSQL and Redis at their standard local ports):

    .venv/bin/python tests/bench/bench_reports.py [--rows 1000000] [--repeat 30]

It fills a separate database (`voxline_bench_reports`) with call logs across 10 workspaces
(100,000 each at the default size), all placed within the last 30 days, so a 30-day report of
one workspace aggregates all 100,000 of its calls (the worst case for that range). Answered calls
carry three turns of latencies. The real app runs in-process (Quart's test client), and the
script prints p50/p95 per report, then `EXPLAIN (ANALYZE, BUFFERS)` of each SQL statement the
reports ran, so the plans and the indexes they use are visible. Nothing is asserted.

Reports read the hourly rollups (`voxline reports rebuild` runs once after the fill, timed); each
report's line is that path, and the line under it is the same report reading the calls table
alone, measured in the same run, with the ratio of the two p95s. The machine's load average is
printed at the start and the end (the 2-core machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-bench-"))

from tortoise import connections  # noqa: E402

from control.models import Agent, Call, ReportLatencyBin, ReportRollup, Workspace  # noqa: E402
from control.services import report_rollups  # noqa: E402
from tests.bench.fill import copy_rows  # noqa: E402
from tests.bench.harness import admin_headers, bench_app  # noqa: E402
from tests.bench.samples import positive  # noqa: E402

DATABASE = "voxline_bench_reports"
REDIS_URL = os.environ.get("VOXLINE_BENCH_REDIS", "redis://127.0.0.1:6379/13")
WORKSPACES = 10
AGENTS = 5


def nearest_rank(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-len(ordered) * int(fraction * 100) // 100) - 1)]


def percentiles(samples: list[float]) -> str:
    return f"p50 {nearest_rank(samples, 0.5):7.1f} ms   p95 {nearest_rank(samples, 0.95):7.1f} ms"


def call_rows(rows: int, agents: list[list[Agent]]):
    """Workspaces round-robin, 5 agents each; 4 in 5 calls answered, with three turns of
    latencies; a spread of directions, types, statuses and dispositions; every call within the
    last 30 days."""
    now = datetime.now(UTC)
    batches = [uuid.uuid5(uuid.NAMESPACE_OID, f"batch-{index}") for index in range(49)]
    dispositions = ("interested", "not_interested", "callback", "voicemail", None)
    for i in range(1, rows + 1):
        agent = agents[i % WORKSPACES][(i // WORKSPACES) % AGENTS]
        answered = i % 5 != 4
        created_at = now - timedelta(seconds=i % 2_592_000)
        yield {
            "workspace_id": agent.workspace_id,
            "agent_id": agent.id,
            "call_type": "web" if i % 5 == 0 else "phone",
            "call_direction": "inbound" if i % 3 == 0 else "outbound",
            "status": "completed" if answered else "no_answer",
            "end_reason": "user_hangup" if answered else None,
            "created_at": created_at,
            "answered_at": created_at + timedelta(seconds=5) if answered else None,
            "ended_at": created_at + timedelta(seconds=5 + i % 600),
            "duration_seconds": float(i % 600) if answered else None,
            "disposition": dispositions[i % 5],
            "batch_id": batches[i % 49] if i % 7 == 0 else None,
            "campaign": f"fall-{i % 3}" if i % 11 == 0 else None,
            "usage": {"cost": (i % 100) / 1000},
            "latencies": [
                {"turn": 1, "end_to_end_ms": 300 + i % 900},
                {"turn": 2, "end_to_end_ms": 250 + i % 700},
                {"turn": 3, "end_to_end_ms": 200 + i % 1300},
            ]
            if answered
            else [],
        }


async def fill(rows: int) -> list[Workspace]:
    workspaces = [
        await Workspace.create(name=f"Bench {index}", slug=f"bench-{index:02d}")
        for index in range(WORKSPACES)
    ]
    agents = [
        [
            await Agent.create(workspace=workspace, agent_name=f"Agent {number}.{index}")
            for index in range(AGENTS)
        ]
        for number, workspace in enumerate(workspaces)
    ]
    started = time.perf_counter()
    await copy_rows(Call, call_rows(rows, agents))
    await connections.get("default").execute_script("VACUUM ANALYZE calls")
    print(f"filled {rows:,} call logs in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    days = await report_rollups.rebuild()
    for table in ("report_rollups", "report_latency_bins"):
        await connections.get("default").execute_script(f"VACUUM ANALYZE {table}")
    print(
        f"rollups rebuilt in {time.perf_counter() - started:.1f} s: {days:,} workspace-days, "
        f"{await ReportRollup.all().count():,} rollup rows, "
        f"{await ReportLatencyBin.all().count():,} latency bin rows; {load()}"
    )
    return workspaces


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


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
    print(f"{os.cpu_count()} cores; {load()}")
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
            settings.report_rollups = True
            await timed(client, path, headers, 2)  # warm up
            rolled = await timed(client, path, headers, repeat)
            print(f"  {label:28s} {percentiles(rolled)}")
            settings.report_rollups = False
            await timed(client, path, headers, 1)
            calls = await timed(client, path, headers, repeat)
            ratio = nearest_rank(rolled, 0.95) / nearest_rank(calls, 0.95)
            print(f"    calls table alone: {percentiles(calls)}; rollups/calls p95 {ratio:.3f}")
        settings.report_rollups = True
        print(f"after the requests: {load()}")

        print("\nPlans (EXPLAIN ANALYZE) of the statements one dashboard request runs:")
        with StatementLog() as log:
            await client.get("/reports/dashboard?timezone=Europe/Paris", headers=headers)
        for sql, values in log.statements:
            if not any(table in sql for table in ('FROM "calls"', 'FROM "report_')):
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
    parser.add_argument("--rows", type=positive, default=1_000_000)
    parser.add_argument("--repeat", type=positive, default=30)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.repeat))
