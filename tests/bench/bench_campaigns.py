"""Benchmark: the campaign dialer's tick over 1,000,000 prospects in 50 campaigns (PostgreSQL).

Run by hand (needs PostgreSQL and Redis at their standard local ports):

    .venv/bin/python tests/bench/bench_campaigns.py [--prospects 1000000] [--campaigns 50]

The prospects are bulk-loaded (rows built from the model by `tests/bench/fill.py`, written
with one COPY) in a steady state: most pending and due, some retrying, finished or waiting for
a callback, and the Indian quarter outside its window (pushed to its next opening, as earlier
ticks would have left it). The clock is injected: noon in New York, so the US is inside its
window. The job ticks once a second and each campaign every `dialer_interval` (10 s), so a
tick handles about a tenth of the campaigns. Calls are dispatched to the LiveKit stand-in and
ended in bulk between ticks.

Printed: per tick, the wall time and the number of SQL statements (counted from tortoise's
query log) in three states of the platform's 100 agent sessions: steady (two calls end each
second, so a tick dials about two), full (no call ends: the tick settles, recovers and looks at
its campaigns, and dials nothing) and a burst (every call ends before each tick); and the
`EXPLAIN (ANALYZE, BUFFERS)` of the due-prospect query. The control plane's CPU per tick is
its thread's CPU time (`time.thread_time`: PostgreSQL, Redis and the stand-in left out), which
a busy machine inflates less than the wall time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-bench-"))

from tortoise import connections  # noqa: E402

from control.dialing import campaign_dialer  # noqa: E402
from control.models import Call, Campaign, Prospect, ProspectStatus  # noqa: E402
from control.security import utcnow  # noqa: E402
from control.services import calls as call_service  # noqa: E402
from tests.bench.fill import copy_rows  # noqa: E402
from tests.bench.harness import AGENT_NUMBER, bench_app, calling_line  # noqa: E402
from tests.bench.samples import positive  # noqa: E402
from tests.control.campaign_dialing import release_slots  # noqa: E402
from tests.statements import QUERY_LOG, QueryCounter  # noqa: E402

DATABASE = "voxline_bench_campaigns"
REDIS_URL = os.environ.get("VOXLINE_BENCH_REDIS", "redis://127.0.0.1:6379/2")

# Of every eight rows: two in New York, one in Chicago, one in Denver, two in Los Angeles, two
# in India. Statuses by a hash of the row; India's due time is its next opening.
AREAS = ("212", "212", "312", "303", "415", "415")
ZONES = (
    "America/New_York", "America/New_York", "America/Chicago", "America/Denver",
    "America/Los_Angeles", "America/Los_Angeles",
)  # fmt: skip


def steady_status(g: int) -> ProspectStatus:
    share = (g * 7919) % 100
    if share < 55:
        return ProspectStatus.PENDING
    if share < 65:
        return ProspectStatus.RETRYING
    if share < 85:
        return ProspectStatus.COMPLETED
    if share < 97:
        return ProspectStatus.FAILED
    return ProspectStatus.CALLBACK if share < 98 else ProspectStatus.DNC


def prospect_rows(campaigns: list[Campaign], per_campaign: int, start, india_opens):
    """Each campaign's prospects as earlier ticks would have left them (see the module)."""
    waiting = (ProspectStatus.PENDING, ProspectStatus.RETRYING, ProspectStatus.CALLBACK)
    for n, campaign in enumerate(campaigns):
        for g in range(per_campaign):
            status = steady_status(g)
            india = g % 8 >= 6
            number = n * per_campaign + g
            if status not in waiting:
                next_attempt_at = None
            elif india:
                next_attempt_at = india_opens
            elif status == ProspectStatus.PENDING:
                next_attempt_at = start - timedelta(minutes=g % 5000)
            else:
                next_attempt_at = start + timedelta(minutes=g % 120 - 60)
            yield {
                "campaign_id": campaign.id,
                "workspace_id": campaign.workspace_id,
                "phone_number": f"+9198{number:08d}"
                if india
                else f"+1{AREAS[g % 8]}{2000000 + number}",
                "name": f"Person {g}",
                "timezones": ["Asia/Calcutta"] if india else [ZONES[g % 8]],
                "variables": {"plan": "gold"},
                "priority": 5 if g % 3 == 0 else 0,
                "status": status,
                "attempts": {
                    ProspectStatus.PENDING: 0,
                    ProspectStatus.FAILED: 3,
                    ProspectStatus.RETRYING: 1 + g % 2,
                }.get(status, 1),
                "next_attempt_at": next_attempt_at,
                "last_called_at": None
                if status == ProspectStatus.PENDING
                else start - timedelta(days=1 + g % 20),
                "created_at": start - timedelta(days=g % 80),
            }


async def end_calls(redis, count: int | None = None) -> int:
    """The stand-in workers: the `count` oldest calls in progress end, answered (every one
    when `count` is None), in one UPDATE."""
    live = Call.filter(status__in=call_service.LIVE_STATUSES).order_by("created_at")
    ending = await (live if count is None else live.limit(count)).values_list("id", flat=True)
    if ending:
        await Call.filter(id__in=ending).update(
            status="completed", end_reason="user_hangup", ended_at=utcnow()
        )
        await release_slots(redis, ending)
    return len(ending)


def summary(label: str, samples: list[float], queries: list[int], dials: list[int]) -> None:
    ms = sorted(1000 * sample for sample in samples)
    print(
        f"  {label}: {len(ms)} ticks; time per tick median {statistics.median(ms):.1f} ms, "
        f"p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms, max {ms[-1]:.1f} ms; "
        f"queries per tick median {statistics.median(queries):.0f}, max {max(queries)}; "
        f"dials per tick median {statistics.median(dials):.0f}"
    )


async def main(prospects: int, campaign_count: int, ticks: int) -> None:
    per_campaign = prospects // campaign_count
    app = bench_app(DATABASE, REDIS_URL, max_agent_sessions=100)
    async with app as (settings, test_app, livekit):
        telephony = test_app.app.config["TELEPHONY"]
        redis = test_app.app.extensions["redis"]
        await redis.flushdb()
        workspace, agent = await calling_line(settings)
        # Noon in New York tomorrow; 22:30 in India, which opens at 09:00 (03:30 UTC).
        start = (utcnow() + timedelta(days=1)).replace(hour=17, minute=0, second=0, microsecond=0)
        india_opens = start.replace(hour=3, minute=30) + timedelta(days=1)
        for index in range(campaign_count):
            await Campaign.create(
                workspace=workspace,
                agent=agent,
                name=f"Campaign {index}",
                slug=f"campaign-{index}",
                agent_phone_number=AGENT_NUMBER,
                max_number_calls=3,
                # Staggered: a tenth of the campaigns is due each second.
                next_dial_at=start + timedelta(seconds=index % 10),
            )
        connection = connections.get("default")
        started = time.perf_counter()
        campaigns = await Campaign.all().order_by("created_at")
        await copy_rows(Prospect, prospect_rows(campaigns, per_campaign, start, india_opens))
        await connection.execute_script("VACUUM ANALYZE prospects")
        loaded = await connection.execute_query_dict("SELECT count(*) AS n FROM prospects")
        print(
            f"loaded {loaded[0]['n']:,} prospects in {campaign_count} campaigns "
            f"({per_campaign:,} each) in {time.perf_counter() - started:.1f} s "
            f"(COPY, then VACUUM ANALYZE)"
        )
        sizes = await connection.execute_query_dict(
            "SELECT pg_size_pretty(pg_relation_size('prospects')) AS heap, "
            "pg_size_pretty(pg_relation_size('idx_prospects_due')) AS due_index"
        )
        print(f"  table {sizes[0]['heap']}, due-prospect index {sizes[0]['due_index']}")

        counter = QueryCounter()
        query_log = logging.getLogger(QUERY_LOG)
        query_log.setLevel(logging.DEBUG)
        query_log.addHandler(counter)
        query_log.propagate = False

        cpu: list[float] = []

        async def measure(now) -> tuple[float, int, int]:
            counter.count = 0
            began, cpu_began = time.perf_counter(), time.thread_time()
            dialed = await campaign_dialer.tick(settings, telephony, redis, now=now)
            cpu.append(time.thread_time() - cpu_began)
            return time.perf_counter() - began, counter.count, dialed

        async def phase(label: str, now, ending: int | None, hold: bool = False):
            samples, queries, dials = [], [], []
            cpu.clear()
            for _ in range(ticks):
                if ending != 0:
                    await end_calls(redis, ending)
                elapsed, count, dialed = await measure(now)
                samples.append(elapsed)
                queries.append(count)
                dials.append(dialed)
                now += timedelta(seconds=1)
            summary(label, samples, queries, dials)
            print(f"    control-plane CPU per tick median {1000 * statistics.median(cpu):.1f} ms")
            if sum(dials):
                per_dial = 1000 * sum(samples) / sum(dials)
                print(
                    f"    ({per_dial:.1f} ms of tick time per dispatched call, stand-in included)"
                )
            return now

        now = start
        for _ in range(10):  # warm-up: every campaign ticks once and fills the capacity
            await measure(now)
            now += timedelta(seconds=1)
        print(f"\n{ticks} ticks in each state, one simulated second apart:")
        # 100 sessions, calls of about a minute: a couple of sessions free up each second.
        now = await phase("steady state (2 calls end a second)", now, ending=2)
        now = await phase("capacity full (no call ends)", now, ending=0)
        now = await phase("burst (every call ends before each tick)", now, ending=None)
        query_log.removeHandler(counter)

        campaign = await Campaign.get(slug="campaign-0")
        due = campaign_dialer.due_prospects(campaign.id, ProspectStatus.PENDING, now, 40)
        plan = await connection.execute_query_dict(
            "EXPLAIN (ANALYZE, BUFFERS) " + due.sql(params_inline=True)
        )
        print("\nEXPLAIN (ANALYZE, BUFFERS) of the due-prospect query (pending; one of three):")
        for row in plan:
            print("  " + row["QUERY PLAN"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prospects", type=positive, default=1_000_000)
    parser.add_argument("--campaigns", type=positive, default=50)
    parser.add_argument("--ticks", type=positive, default=30)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.prospects, arguments.campaigns, arguments.ticks))
