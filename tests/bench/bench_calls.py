"""Benchmark: `GET /calls` filters at 1,000,000 call logs, CSV export, LiveKit webhook throughput.

Run by hand (needs PostgreSQL and Redis at their standard local ports):

    .venv/bin/python tests/bench/bench_calls.py [--rows 1000000]

It fills a separate database (`voxline_bench`) with call logs across 10 workspaces using
PostgreSQL's generate_series, then drives the real app in-process (Quart's test client: no
network hop) and prints latency percentiles, export rows/s with peak memory, and webhook
events/s. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
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

DATABASE = "voxline_bench"
BASE_URL = os.environ.get("VOXLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
WORKSPACES = 10


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {p50:6.1f} ms   p95 {p95:6.1f} ms"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024



async def fill(rows: int) -> list[Workspace]:
    workspaces = [
        await Workspace.create(name=f"Bench {index}", slug=f"bench-{index}")
        for index in range(WORKSPACES)
    ]
    connection = connections.get("default")
    agent_rows = []
    for workspace in workspaces:
        for index in range(5):
            agent_rows.append((uuid.uuid4(), workspace.id, f"Agent {index}"))
    for agent_id, workspace_id, name in agent_rows:
        await connection.execute_query(
            "INSERT INTO agents (id, workspace_id, agent_name, config, created_at, updated_at) "
            "VALUES ($1, $2, $3, '{}', now(), now())",
            [agent_id, workspace_id, name],
        )
    started = time.perf_counter()
    # One statement: workspaces round-robin, 5 agents each, a spread of types, dispositions,
    # batches and creation times over a year.
    await connection.execute_script(
        f"""
        INSERT INTO calls (id, workspace_id, agent_id, call_type, call_direction, from_number,
            to_number, status, end_reason, created_at, duration_seconds, disposition, batch_id,
            transcript, usage, latencies, extracted_data, dynamic_variables)
        SELECT md5(i::text || 'call')::uuid,
               w.id,
               a.id,
               CASE WHEN i % 5 = 0 THEN 'web' ELSE 'phone' END,
               CASE WHEN i % 3 = 0 THEN 'inbound' ELSE 'outbound' END,
               '+1650555' || lpad((i % 10000)::text, 4, '0'),
               '+1415555' || lpad((i % 9999)::text, 4, '0'),
               'completed', 'user_hangup',
               now() - (i % 525600) * interval '1 minute',
               (i % 600)::float,
               (ARRAY['interested','not_interested','callback','voicemail',NULL])[1 + i % 5],
               CASE WHEN i % 7 = 0 THEN md5((i % 49)::text || 'batch')::uuid END,
               '[]', '{{}}', '[]', '{{}}', '{{}}'
        FROM generate_series(1, {rows}) AS i
        JOIN LATERAL (
            SELECT id FROM workspaces ORDER BY slug OFFSET (i % {WORKSPACES}) LIMIT 1
        ) w ON true
        JOIN LATERAL (
            SELECT id FROM agents WHERE workspace_id = w.id ORDER BY id OFFSET (i % 5) LIMIT 1
        ) a ON true;
        """
    )
    # Fresh rows: set the visibility map as autovacuum would, so counts use index-only scans.
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


async def main(rows: int, repeat: int) -> None:
    async with bench_app(DATABASE, "redis://127.0.0.1:6379/14") as (settings, test_app, livekit):
        workspaces = await fill(rows)
        workspace = workspaces[3]
        headers = await admin_headers(settings, workspace)
        client = test_app.test_client()
        agent_id = (
            await connections.get("default").execute_query_dict(
                "SELECT id FROM agents WHERE workspace_id = $1 LIMIT 1", [workspace.id]
            )
        )[0]["id"]
        batch_id = (
            await connections.get("default").execute_query_dict(
                "SELECT batch_id FROM calls WHERE workspace_id = $1 AND batch_id IS NOT NULL "
                "LIMIT 1",
                [workspace.id],
            )
        )[0]["batch_id"]
        queries = {
            "no filter": "/calls",
            "call_type=web": "/calls?call_type=web",
            "call_direction=inbound": "/calls?call_direction=inbound",
            "agent_id": f"/calls?agent_id={agent_id}",
            "disposition": "/calls?disposition=callback",
            "date range (30 days)": (
                "/calls?start_datetime=2026-09-01T00:00:00Z&end_datetime=2026-10-01T00:00:00Z"
            ),
            "batch_id": f"/calls?batch_id={batch_id}",
            "page 40 of 100": "/calls?page=40&page_size=100",
        }
        print(
            f"\nGET /calls on {rows:,} rows, one workspace of {WORKSPACES} "
            f"({repeat} requests each):"
        )
        for label, path in queries.items():
            await timed(client, path, headers, 2)  # warm up
            print(f"  {label:24s} {percentiles(await timed(client, path, headers, repeat))}")

        export_rows = min(100_000, rows // WORKSPACES)
        before = rss_mib()
        started = time.perf_counter()
        response = await client.get("/calls/export", headers=headers)
        count = 0
        async for chunk in response.response:
            count += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        print(
            f"\nGET /calls/export: {count - 1:,} rows in {elapsed:.1f} s = "
            f"{(count - 1) / elapsed:,.0f} rows/s; peak RSS {before:.0f} -> {rss_mib():.0f} MiB"
        )
        del export_rows

        events = 2000
        bodies = []
        for index in range(events):
            kind = "room_started" if index % 2 == 0 else "room_finished"
            bodies.append(livekit.webhook(kind, room_name=f"bench-{index // 2}"))
        started = time.perf_counter()
        for body, auth in bodies:
            response = await client.post(
                "/webhook/livekit", data=body, headers={"Authorization": auth}
            )
            assert response.status_code == 200
        elapsed = time.perf_counter() - started
        print(
            f"\nPOST /webhook/livekit: {events} events in {elapsed:.2f} s = "
            f"{events / elapsed:,.0f} events/s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.repeat))
