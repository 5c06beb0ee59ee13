"""Benchmark: `GET /calls` filters at 1,000,000 call logs, CSV export, LiveKit webhook throughput.

Run by hand (needs PostgreSQL and Redis at their standard local ports):

    .venv/bin/python tests/bench/bench_calls.py [--rows 1000000]

It fills a separate database (`voxline_bench`) with call logs across 10 workspaces (rows built
from the model by `tests/bench/fill.py`, written with one COPY), then drives the real app
in-process (Quart's test client: no network hop) and prints latency percentiles, export rows/s
with peak memory, and webhook events/s. Nothing is asserted.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-bench-"))

from tortoise import connections  # noqa: E402

from control.models import Agent, Call, Workspace  # noqa: E402
from tests.bench.fill import copy_rows  # noqa: E402
from tests.bench.harness import admin_headers, bench_app  # noqa: E402
from tests.bench.samples import positive, require  # noqa: E402

DATABASE = "voxline_bench"
REDIS_URL = os.environ.get("VOXLINE_BENCH_REDIS", "redis://127.0.0.1:6379/14")
WORKSPACES = 10


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {p50:6.1f} ms   p95 {p95:6.1f} ms"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def call_rows(rows: int, agents: list[list[Agent]]):
    """Workspaces round-robin, 5 agents each, a spread of types, dispositions, batches and
    creation times over a year."""
    now = datetime.now(UTC)
    batches = [uuid.uuid5(uuid.NAMESPACE_OID, f"batch-{index}") for index in range(49)]
    dispositions = ("interested", "not_interested", "callback", "voicemail", None)
    for i in range(1, rows + 1):
        agent = agents[i % WORKSPACES][i % 5]
        yield {
            "workspace_id": agent.workspace_id,
            "agent_id": agent.id,
            "call_type": "web" if i % 5 == 0 else "phone",
            "call_direction": "inbound" if i % 3 == 0 else "outbound",
            "from_number": f"+1650555{i % 10000:04d}",
            "to_number": f"+1415555{i % 9999:04d}",
            "status": "completed",
            "end_reason": "user_hangup",
            "created_at": now - timedelta(minutes=i % 525_600),
            "duration_seconds": float(i % 600),
            "disposition": dispositions[i % 5],
            "batch_id": batches[i % 49] if i % 7 == 0 else None,
        }


async def fill(rows: int) -> list[Workspace]:
    workspaces = [
        await Workspace.create(name=f"Bench {index}", slug=f"bench-{index}")
        for index in range(WORKSPACES)
    ]
    agents = [
        [await Agent.create(workspace=workspace, agent_name=f"Agent {index}") for index in range(5)]
        for workspace in workspaces
    ]
    started = time.perf_counter()
    await copy_rows(Call, call_rows(rows, agents))
    # Fresh rows: set the visibility map as autovacuum would, so counts use index-only scans.
    await connections.get("default").execute_script("VACUUM ANALYZE calls")
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


async def main(rows: int, repeat: int, events: int) -> None:
    async with bench_app(DATABASE, REDIS_URL) as (settings, test_app, livekit):
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

        before = rss_mib()
        started = time.perf_counter()
        response = await client.get("/calls/export", headers=headers)
        count = 0
        async for chunk in response.response:
            count += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        require(count - 1, "GET /calls/export", "the workspace has no call logs")
        print(
            f"\nGET /calls/export: {count - 1:,} rows in {elapsed:.1f} s = "
            f"{(count - 1) / elapsed:,.0f} rows/s; peak RSS {before:.0f} -> {rss_mib():.0f} MiB"
        )

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
    parser.add_argument("--rows", type=positive, default=1_000_000)
    parser.add_argument("--repeat", type=positive, default=50)
    parser.add_argument("--events", type=positive, default=2000, help="LiveKit webhooks sent")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.repeat, arguments.events))
