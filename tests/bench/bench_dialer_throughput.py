"""Dispatches a second the campaign dialer sustains: `voxline serve` processes and a worker fleet.

    .venv/bin/python -m tests.bench.bench_dialer_throughput [--prospects 100000] [--seconds 60]
        [--processes 2] [--capacity 500] [--campaigns 5] [--warmup 10]

The platform as deployed, on its own PostgreSQL database (`VOXLINE_BENCH_PG`) and a Redis
database (`VOXLINE_BENCH_REDIS`, flushed first): `--processes` `voxline serve` processes
(`tests/servers.py`) with their background jobs on, so the periodic `dial_campaigns` job runs in
whichever takes its slot, and `VOXLINE_MAX_AGENT_SESSIONS` = `--capacity`. The campaigns are
created through the API (inactive), their prospects bulk-loaded with one COPY
(`tests/bench/fill.py`) and the campaigns then switched on through the API. Nothing is
injected: the prospects are in UTC and the campaigns' calling window runs from an hour before
the start to three hours after it. Each campaign dials `call_ratio` 1 × the free sessions, has
no `max_active_calls`, and ticks every 2 s (the least allowed), so the platform's capacity is the
limit in play. A campaign dials at most 200 calls a tick; several campaigns (5 by default) keep
that ceiling well above what the capacity allows.

The LiveKit stand-in (`tests/fakes/livekit_server.py`) hands every agent dispatch to a simulated
worker fleet in this process, as LiveKit hands a job to a worker, and the callee answers at once:
the fleet takes the call as a worker does, through the real internal HTTP API of one of the
processes in turn (`runtime.control_client.ControlPlane`: it asks for the call's spec, which
joins the call), and posts the call's final report (completed) after a random 1-5 s, which
frees its capacity slot. After `--seconds` the campaigns are switched off through the API; a tick
running then still dials what it claimed (up to 200 prospects a campaign), and the bench waits
for those calls to end too before it reads the results from the database.

Printed, one figure a line: the dispatches a second over the steady part (after `--warmup`
seconds of ramp-up; per 5 s window, median and min; counted at the stand-in), the peak of calls
in flight (dispatched and not yet reported, as the fleet sees them: a lower bound of the slots
held, so more than the capacity means the limit broke), numbers dialed twice (a prospect with
more calls to its number in its campaign than its attempts, and call ids dispatched twice at
LiveKit; both must be 0), attempts past `max_number_calls`, the campaign tick over the whole run
(the `dial_campaigns` job in the processes' `/metrics` histogram: p50/p95 interpolated in its
coarse buckets, dispatches a tick, tick time a dispatch, the share of the processes' time spent
ticking; the tick at 1 M prospects without a dialing load is `bench_campaigns.py`'s), the CPU
time per dispatched call of each `voxline serve` process, of PostgreSQL (the bench database's
backends, and the server's own processes), of Redis and of this process (stand-in and fleet),
read from /proc, the load average before and after, and what bounds the rate, with the
evidence. Nothing is asserted on timing; it exits 1 when nothing was dispatched, a number was
dialed twice or a limit broke.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from google.protobuf.message import Message
from livekit import api as lk
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from tortoise import connections

from control.config import Settings
from control.db import apply_migrations, close_db, init_db
from control.dialing.campaign_dialer import MAX_DIALS_PER_TICK
from control.dialing.campaigns import LIMITS
from control.models import Prospect, ProspectStatus
from control.services.calls import LIVE_STATUSES
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane, ControlPlaneError
from runtime.spec import CallReport, CallStatus, EndReason
from tests.bench.bench_http import cpu_seconds, load_average
from tests.bench.fill import copy_rows
from tests.bench.harness import (
    AGENT_NUMBER,
    BASE_URL,
    admin_headers,
    calling_line,
    recreate_database,
)
from tests.bench.samples import positive, require
from tests.fakes.livekit_server import FakeLiveKit
from tests.servers import SERVICE_TOKEN, ControlPlaneProcess

DATABASE = "voxline_bench_dialer"
REDIS_URL = os.environ.get("VOXLINE_BENCH_REDIS", "redis://127.0.0.1:6379/12")

WINDOW_SECONDS = 5.0
CALL_SECONDS = (1.0, 5.0)  # how long an answered call lasts, uniformly
MAX_NUMBER_CALLS = 3
DIALER_INTERVAL = LIMITS["dialer_interval"][0]  # the least a campaign may have
AT_CAPACITY_SHARE = 0.95  # in flight at this share of the capacity counts as "at capacity"
DRAIN_SECONDS = 90.0  # a tick running when the campaigns stop goes on dialing what it claimed
REPORT_TRIES = 3
TICK_JOB = "dial_campaigns"

#: A job-duration histogram: cumulative count by upper bound, sum, count.
Histogram = tuple[dict[float, float], float, float]


# -- the LiveKit stand-in and the worker fleet ------------------------------------------------


class AnsweringLiveKit(FakeLiveKit):
    """The LiveKit stand-in, handing each agent dispatch to `on_dispatch` on the fleet's loop,
    as LiveKit hands a job to an agent worker."""

    def __init__(self, on_dispatch: Callable[[str, str, float], None]) -> None:
        super().__init__()
        self._fleet_loop = asyncio.get_running_loop()
        self._on_dispatch = on_dispatch

    def _create_dispatch(self, request: lk.CreateAgentDispatchRequest) -> Message:
        dispatch = super()._create_dispatch(request)
        self._fleet_loop.call_soon_threadsafe(
            self._on_dispatch, request.room, request.metadata, time.monotonic()
        )
        return dispatch


@dataclass
class Fleet:
    """Agent workers: each dispatched call is joined at once, then reported completed after a
    random 1-5 s, through the internal API of the processes in turn."""

    workers: list[ControlPlane]
    dispatched_at: list[float] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    holds: list[float] = field(default_factory=list)  # dispatch to report, seconds
    joins: list[float] = field(default_factory=list)  # the join's round trip, seconds
    reports: list[float] = field(default_factory=list)  # the report's round trip, seconds
    duplicates: int = 0  # call ids LiveKit was asked to dispatch more than once
    errors: Counter[str] = field(default_factory=Counter)  # by step and code
    first_errors: dict[str, str] = field(default_factory=dict)
    reported: int = 0
    _seen: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def on_dispatch(self, room: str, metadata: str, at: float) -> None:
        call_id = json.loads(metadata or "{}").get("call_id") or room.removeprefix("call-")
        self.dispatched_at.append(at)
        if call_id in self._seen:
            self.duplicates += 1
            return
        self._seen.add(call_id)
        # From the dispatch (after the call took its slot) to the report being sent (before
        # the slot is freed): the calls counted here hold a slot each.
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        worker = self.workers[next(self._turn) % len(self.workers)]
        task = asyncio.create_task(self._take_call(worker, call_id, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_call(self, worker: ControlPlane, call_id: str, dispatched: float) -> None:
        step, counted = "join", True
        try:
            asked = time.monotonic()
            await worker.call_spec(call_id)  # a worker's join: the call's spec, the slot kept
            self.joins.append(time.monotonic() - asked)
            answered = datetime.now(UTC).isoformat()
            await asyncio.sleep(random.uniform(*CALL_SECONDS))
            report = CallReport(
                call_id=call_id,
                status=CallStatus.COMPLETED,
                end_reason=EndReason.USER_HANGUP,
                started_at=answered,
                answered_at=answered,
                ended_at=datetime.now(UTC).isoformat(),
            )
            self.in_flight -= 1
            step, counted = "report", False
            self.holds.append(time.monotonic() - dispatched)
            await self._report(worker, report)
            self.reports.append(time.monotonic() - self.holds[-1] - dispatched)
        except ControlPlaneError as error:
            code = f"{step} {error.code or error.status or 'unreachable'}"
            self.errors[code] += 1
            self.first_errors.setdefault(code, str(error)[:300])
        finally:
            if counted:
                self.in_flight -= 1

    async def _report(self, worker: ControlPlane, report: CallReport) -> None:
        """Posts the report, again after a failure that may pass (the worker's outbox does)."""
        for attempt in range(1, REPORT_TRIES + 1):
            try:
                await worker.report(report)
                self.reported += 1
                return
            except ControlPlaneError as error:
                if not error.retryable or attempt == REPORT_TRIES:
                    raise
                await asyncio.sleep(attempt)

    async def drain(self, seconds: float) -> bool:
        """Waits for the calls in flight to end; False if some outlived `seconds`."""
        deadline = time.monotonic() + seconds
        quiet_since = time.monotonic()
        dispatched = len(self.dispatched_at)
        while time.monotonic() < deadline:
            if len(self.dispatched_at) != dispatched:  # a tick still dialing
                dispatched, quiet_since = len(self.dispatched_at), time.monotonic()
            if not self._tasks and time.monotonic() - quiet_since > DIALER_INTERVAL + 1:
                return True
            await asyncio.sleep(0.2)
        return False


# -- CPU time from /proc ----------------------------------------------------------------------


#: (pid, command name, title) of the processes a CPU meter may look for.
Processes = list[tuple[int, str, str]]
SERVER_NAMES = ("postgres", "redis-server")


def servers_running() -> Processes:
    """The PostgreSQL and Redis processes /proc shows (nothing when they run elsewhere)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            if name not in SERVER_NAMES:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        found.append((int(entry.name), name, title))
    return found


def postgres_backends(database: str) -> Callable[[Processes], list[int]]:
    """The PostgreSQL backends serving `database` (their titles name it)."""
    return lambda processes: [
        pid for pid, name, title in processes if name == "postgres" and database in title.split()
    ]


def postgres_server(processes: Processes) -> list[int]:
    """PostgreSQL's own processes (checkpointer, WAL writer, ...): no client in their title."""
    return [
        pid
        for pid, name, title in processes
        if name == "postgres" and "(" not in title and "[local]" not in title
    ]


def redis_servers(processes: Processes) -> list[int]:
    return [pid for pid, name, _ in processes if name == "redis-server"]


class CpuMeter:
    """The CPU time a changing set of processes used since `start`, sampled as they come and go
    (a process born after the start counts from its birth, one gone keeps its last sample)."""

    def __init__(self, find: Callable[[Processes], Iterable[int]]) -> None:
        self._find = find
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}

    @classmethod
    def of(cls, pid: int) -> CpuMeter:
        """The meter of one process."""
        return cls(lambda _: [pid])

    def start(self, processes: Processes) -> None:
        self._first.clear()
        self._last.clear()
        for pid in self._find(processes):
            if (cpu := cpu_seconds(pid)) is not None:
                self._first[pid] = self._last[pid] = cpu

    def sample(self, processes: Processes) -> None:
        for pid in self._find(processes):
            if (cpu := cpu_seconds(pid)) is not None:
                self._first.setdefault(pid, 0.0)
                self._last[pid] = cpu

    def used(self) -> float | None:
        """CPU seconds since the start; None when /proc showed none of the processes."""
        if not self._last:
            return None
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


def machine_busy() -> float:
    """The CPU seconds the machine was busy since boot, every core, from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait
    total = sum(ticks[:8])  # guest time is already in user time
    return (total - idle) / os.sysconf("SC_CLK_TCK")


# -- the campaign tick, from /metrics ---------------------------------------------------------


def tick_histogram(exposition: str) -> Histogram:
    """The `dial_campaigns` job's duration histogram in a Prometheus exposition."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for family in text_string_to_metric_families(exposition):
        if family.name != "voxline_job_duration_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("kind") != TICK_JOB:
                continue
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return buckets, total, count


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's `histogram_quantile`: linear within the bucket the quantile falls in."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = quantile * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower_bound  # past the last finite bucket: its bound, as Prometheus
            share = (rank - lower_count) / max(buckets[bound] - lower_count, 1e-12)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, buckets[bound]
    return None


async def scrape(client: httpx.AsyncClient, servers: list[ControlPlaneProcess]) -> Histogram:
    """Every process's `dial_campaigns` histogram, added up."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for server in servers:
        response = await client.get(f"{server.url}/metrics")
        response.raise_for_status()
        found, found_total, found_count = tick_histogram(response.text)
        for bound, value in found.items():
            buckets[bound] = buckets.get(bound, 0.0) + value
        total += found_total
        count += found_count
    return buckets, total, count


# -- setting up -------------------------------------------------------------------------------


def prospect_rows(campaigns: list[dict[str, Any]], count: int, now: datetime):
    """`count` new prospects shared out between the campaigns, each number its own, in UTC."""
    for number in range(count):
        campaign = campaigns[number % len(campaigns)]
        yield {
            "campaign_id": uuid.UUID(campaign["id"]),
            "workspace_id": uuid.UUID(campaign["workspace_id"]),
            "phone_number": f"+1212{2_000_000 + number}",
            "name": f"Person {number}",
            "timezones": ["UTC"],
            "variables": {"plan": "gold"},
            "status": ProspectStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,  # as an upload leaves them
            "created_at": now,
        }


def calling_window(now: datetime) -> tuple[str, str]:
    """From an hour before `now` to three hours after, in UTC, kept within `now`'s day (the API
    takes no window across midnight)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    earliest = max(now - timedelta(hours=1), midnight)
    latest = min(now + timedelta(hours=3), midnight + timedelta(hours=23, minutes=59))
    return earliest.strftime("%H:%M"), latest.strftime("%H:%M")


def settings_for_bench() -> Settings:
    return Settings(
        env="test",
        database_url=f"{BASE_URL.replace('postgresql://', 'postgres://')}/{DATABASE}",
        redis_url=REDIS_URL,
        jwt_secret="bench-secret-" + "x" * 40,
        service_token=SERVICE_TOKEN,
    )


async def create_campaigns(
    api: httpx.AsyncClient, url: str, agent_id: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The campaigns, through the API, switched off until their prospects are in."""
    earliest, latest = calling_window(datetime.now(UTC))
    created = []
    for index in range(args.campaigns):
        response = await api.post(
            f"{url}/api/v/campaign/",
            json={
                "name": f"Throughput {index}",
                "agent_id": agent_id,
                "agent_phone_number": AGENT_NUMBER,
                "active": False,
                "call_ratio": 1.0,
                "dialer_interval": DIALER_INTERVAL,
                "max_active_calls": 0,
                "max_number_calls": MAX_NUMBER_CALLS,
                "earliest_prospect_time": earliest,
                "latest_prospect_time": latest,
            },
        )
        if response.status_code != 201:
            raise SystemExit(f"bench_dialer_throughput: creating a campaign: {response.text}")
        created.append(response.json())
    return created


async def switch_campaigns(
    api: httpx.AsyncClient, url: str, campaigns: list[dict[str, Any]], active: bool
) -> None:
    for campaign in campaigns:
        response = await api.patch(
            f"{url}/api/v/campaign/{campaign['slug']}/", json={"active": active}
        )
        response.raise_for_status()


# -- the checks -------------------------------------------------------------------------------


async def query_one(sql: str) -> dict[str, Any]:
    return (await connections.get("default").execute_query_dict(sql))[0]


async def results() -> dict[str, Any]:
    """What the database says after the run (every campaign call, by what became of it)."""
    live = ", ".join(f"'{status}'" for status in LIVE_STATUSES)
    calls = await query_one(
        "SELECT count(*) AS calls, "
        "count(*) FILTER (WHERE status = 'completed') AS completed, "
        f"count(*) FILTER (WHERE status IN ({live})) AS live "
        "FROM calls WHERE campaign_id IS NOT NULL"
    )
    # A prospect is dialed twice when its campaign has more calls to its number than it has
    # attempts (each attempt is one call; numbers are unique, so any extra call is a redial).
    redialed = await query_one(
        "SELECT count(*) AS prospects, coalesce(sum(c.calls - p.attempts), 0) AS extra_calls "
        "FROM prospects p JOIN (SELECT campaign_id, to_number, count(*) AS calls FROM calls "
        "WHERE campaign_id IS NOT NULL GROUP BY campaign_id, to_number) c "
        "ON c.campaign_id = p.campaign_id AND c.to_number = p.phone_number "
        "WHERE c.calls > p.attempts"
    )
    prospects = await query_one(
        "SELECT count(*) FILTER (WHERE attempts > "
        f"{MAX_NUMBER_CALLS}) AS over_attempts, "
        "count(*) FILTER (WHERE status IN ('pending', 'retrying')) AS waiting "
        "FROM prospects"
    )
    return {**calls, **redialed, **prospects}


def windows(times: list[float], start: float, end: float) -> list[float]:
    """Dispatches a second in each whole `WINDOW_SECONDS` of [start, end) (one shorter window
    when the span is less than one)."""
    length = min(WINDOW_SECONDS, end - start)
    count = max(int((end - start) // length), 1) if length > 0 else 0
    rates = []
    for index in range(count):
        low = start + index * length
        rates.append(sum(1 for at in times if low <= at < low + length) / length)
    return rates


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Meters:
    """The CPU meters of every part, started together at the start of the steady part."""

    parts: dict[str, CpuMeter]
    machine: float = 0.0

    @classmethod
    def of(cls, servers: list[ControlPlaneProcess]) -> Meters:
        processes = {
            f"control plane {number} (pid {server.process.pid})": CpuMeter.of(server.process.pid)
            for number, server in enumerate(servers, 1)
            if server.process is not None
        }
        return cls(
            {
                **processes,
                f"PostgreSQL backends of {DATABASE}": CpuMeter(postgres_backends(DATABASE)),
                "PostgreSQL server processes (shared)": CpuMeter(postgres_server),
                "redis-server (shared)": CpuMeter(redis_servers),
                "bench process (LiveKit stand-in and worker fleet)": CpuMeter.of(os.getpid()),
            }
        )

    def start(self) -> None:
        processes = servers_running()
        for meter in self.parts.values():
            meter.start(processes)
        self.machine = machine_busy()

    def sample(self) -> None:
        processes = servers_running()
        for meter in self.parts.values():
            meter.sample(processes)

    def used(self) -> dict[str, float | None]:
        return {name: meter.used() for name, meter in self.parts.items()}

    def machine_used(self) -> float:
        return machine_busy() - self.machine


@dataclass(frozen=True)
class Steady:
    """What the steady part of the run saw (after the ramp-up, until the campaigns stop)."""

    start: float
    end: float
    in_flight: list[int]  # calls in flight, every half second
    cpu: dict[str, float | None]  # CPU seconds of each part
    machine_cpu: float  # CPU seconds the machine was busy, every process

    @property
    def wall(self) -> float:
        return self.end - self.start


async def observe(
    args: argparse.Namespace, fleet: Fleet, servers: list[ControlPlaneProcess]
) -> tuple[float, Steady]:
    """Watches the run from `--warmup` s after the campaigns started to `--seconds`; returns
    when it began (monotonic) and what the steady part saw."""
    began = time.monotonic()
    await asyncio.sleep(args.warmup)
    meters = Meters.of(servers)
    meters.start()
    start = time.monotonic()
    in_flight: list[int] = []
    for sample in itertools.count():
        if time.monotonic() >= began + args.seconds:
            break
        in_flight.append(fleet.in_flight)
        if sample % 4 == 0:  # every 2 s: the backends live as long as the pools
            meters.sample()
        await asyncio.sleep(0.5)
    meters.sample()
    return began, Steady(start, time.monotonic(), in_flight, meters.used(), meters.machine_used())


async def bench(args: argparse.Namespace, work: Path) -> int:
    settings = settings_for_bench()
    await recreate_database(DATABASE)
    await apply_migrations(settings)
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.flushdb()
    await redis.aclose()
    await init_db(settings)
    workspace, agent = await calling_line(settings)
    headers = await admin_headers(settings, workspace)

    workers: list[ControlPlane] = []  # one a process, added once they are up
    fleet = Fleet(workers)
    livekit = AnsweringLiveKit(fleet.on_dispatch)
    livekit.start()
    servers = [
        ControlPlaneProcess(
            settings,
            work / f"serve-{number}.log",
            VOXLINE_BACKGROUND_WORKERS="true",
            VOXLINE_WORKERS="1",
            VOXLINE_JWT_SECRET=settings.jwt_secret,
            VOXLINE_MAX_AGENT_SESSIONS=str(args.capacity),
            VOXLINE_LOG_LEVEL="WARNING",
            LIVEKIT_URL=livekit.url,
            LIVEKIT_API_KEY=livekit.api_key,
            LIVEKIT_API_SECRET=livekit.api_secret,
        )
        for number in range(1, args.processes + 1)
    ]
    load_before = load_average()
    try:
        for server in servers:
            server.start()
        for server in servers:
            await server.wait_until_up()
        workers += [
            ControlPlane(
                RuntimeSettings(env="test", api_url=server.url, service_token=SERVICE_TOKEN)
            )
            for server in servers
        ]
        async with httpx.AsyncClient(headers=headers, timeout=30) as api:
            campaigns = await create_campaigns(api, servers[0].url, str(agent.id), args)
            await load_prospects(campaigns, args)
            await switch_campaigns(api, servers[0].url, campaigns, active=True)
            began, steady = await observe(args, fleet, servers)
            await switch_campaigns(api, servers[0].url, campaigns, active=False)
            drained = await fleet.drain(DRAIN_SECONDS)
            ticks = await scrape(api, servers)
        found = await results()
        loads = (load_before, load_average())
        return report(args, fleet, steady, began, ticks, found, drained, loads)
    finally:
        for worker in workers:
            await worker.aclose()
        for server in servers:
            server.stop()
        livekit.stop()
        await close_db()


async def load_prospects(campaigns: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The campaigns' prospects in one COPY; then the run's setup, printed."""
    started = time.perf_counter()
    rows = prospect_rows(campaigns, args.prospects, datetime.now(UTC))
    loaded = await copy_rows(Prospect, rows)
    await connections.get("default").execute_script("VACUUM ANALYZE prospects")
    print(
        f"prospects loaded: {loaded:,} in {len(campaigns)} campaigns "
        f"(COPY, then VACUUM ANALYZE, in {time.perf_counter() - started:.1f} s)"
    )
    print(f"processes: {args.processes} (voxline serve, background jobs on)")
    print(f"capacity: {args.capacity} agent sessions (VOXLINE_MAX_AGENT_SESSIONS)")
    ceiling = len(campaigns) * MAX_DIALS_PER_TICK / DIALER_INTERVAL
    print(
        f"campaigns: call_ratio 1, dialer_interval {DIALER_INTERVAL} s, no max_active_calls; "
        f"their own ceiling {ceiling:.0f} dispatches/s ({MAX_DIALS_PER_TICK} a tick each)"
    )
    print(
        f"run: {args.seconds} s of dialing, the first {args.warmup} s ramp-up; calls last "
        f"{CALL_SECONDS[0]:.0f}-{CALL_SECONDS[1]:.0f} s; {os.cpu_count()} cores",
        flush=True,
    )


def report(
    args: argparse.Namespace,
    fleet: Fleet,
    steady: Steady,
    began: float,
    ticks: Histogram,
    found: dict[str, Any],
    drained: bool,
    loads: tuple[str, str],
) -> int:
    """Prints the figures (see the module); returns the exit status."""
    times = fleet.dispatched_at
    require(times, "the dialer", "no call was dispatched; see the serve logs")
    counted = [at for at in times if steady.start <= at < steady.end]
    print(f"dispatches: {len(times):,} in all, {len(counted):,} in the steady {steady.wall:.0f} s")
    require(counted, "the steady part", "no dispatch after the ramp-up; run longer")
    rates = windows(times, steady.start, steady.end)
    rate = len(counted) / steady.wall
    plural = "s" if len(rates) != 1 else ""
    print(
        f"dispatches per second sustained: median {statistics.median(rates):.1f}, min "
        f"{min(rates):.1f} ({len(rates)} window{plural} of {steady.wall / len(rates):.0f} s); "
        f"mean {rate:.1f}"
    )
    held = fleet.peak <= args.capacity
    print(
        f"peak concurrent calls: {fleet.peak} (capacity {args.capacity}: "
        f"{'held' if held else 'BROKEN'})"
    )
    full = sum(1 for count in steady.in_flight if count >= AT_CAPACITY_SHARE * args.capacity)
    at_capacity = full / max(len(steady.in_flight), 1)
    hold = statistics.mean(fleet.holds) if fleet.holds else 0.0
    capacity_rate = args.capacity / hold if hold else 0.0
    print(
        f"calls in flight: median {statistics.median(steady.in_flight or [0]):.0f}; at "
        f"{AT_CAPACITY_SHARE:.0%} of capacity or more in {at_capacity:.0%} of the steady "
        f"samples; mean slot hold (dispatch to report) {hold:.2f} s, so the capacity allows "
        f"{capacity_rate:.0f} dispatches/s"
    )
    print(f"join round trip: {spread(fleet.joins)}; report round trip: {spread(fleet.reports)}")
    twice = int(found["prospects"]) + fleet.duplicates
    print(
        f"numbers dialed twice: {twice} (prospects dialed more often than their attempts: "
        f"{found['prospects']}, with {found['extra_calls']} extra calls; call ids dispatched "
        f"twice at LiveKit: {fleet.duplicates})"
    )
    print(f"attempts past max_number_calls ({MAX_NUMBER_CALLS}): {found['over_attempts']}")
    errors = ", ".join(f"{code} {n}" for code, n in fleet.errors.most_common()) or "none"
    print(
        f"calls: {found['calls']:,} in the database, {found['completed']:,} completed, "
        f"{found['live']} still live after the drain{'' if drained else ' (it timed out)'}; "
        f"reports taken {fleet.reported:,}; fleet errors: {errors}; prospects still waiting "
        f"{found['waiting']:,}"
    )
    for code, text in fleet.first_errors.items():
        print(f"  first {code}: {text}")
    # Every tick ended by now: their time over the whole run, against every dispatch.
    dialing = max(times) - began
    tick_ms, ticking = tick_figures(ticks, len(times), dialing, args.processes)
    cores = {name: cpu / steady.wall for name, cpu in steady.cpu.items() if cpu is not None}
    for name, cpu in steady.cpu.items():
        per_call = "n/a" if cpu is None else f"{1000 * cpu / len(counted):.2f} ms"
        share = "" if cpu is None else f" ({cores[name]:.2f} cores)"
        print(f"CPU a dispatched call, {name}: {per_call}{share}")
    machine_cores = steady.machine_cpu / steady.wall
    print(
        f"machine: {machine_cores:.2f} of {os.cpu_count()} cores busy (every process, other "
        "users' too)"
    )
    print(f"load average before: {loads[0]}")
    print(f"load average after: {loads[1]}")
    evidence = Evidence(
        rate=rate,
        capacity_share=at_capacity,
        capacity_rate=capacity_rate,
        processes=args.processes,
        ticking=ticking,
        tick_ms_a_dispatch=tick_ms,
        cores=cores,
        machine_cores=machine_cores,
    )
    print(f"bounded by: {bound(evidence)}")
    failures = []
    if twice:
        failures.append(f"{twice} numbers dialed twice")
    if not held:
        failures.append(f"{fleet.peak} calls at once past the capacity of {args.capacity}")
    if found["over_attempts"]:
        failures.append(f"{found['over_attempts']} prospects past {MAX_NUMBER_CALLS} attempts")
    if failures:
        print(f"FAILED: {'; '.join(failures)}", flush=True)
        return 1
    return 0


def spread(seconds: list[float]) -> str:
    """Median, p95 and max of round trips, in ms."""
    if not seconds:
        return "none"
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    median, most = statistics.median(ordered), ordered[-1]
    return f"median {1000 * median:.0f} ms, p95 {1000 * p95:.0f} ms, max {1000 * most:.0f} ms"


def tick_figures(
    ticks: Histogram, dispatches: int, dialing: float, processes: int
) -> tuple[float | None, float]:
    """Prints the campaign tick's figures over the whole run; returns its time a dispatched
    call (ms; None without a tick) and the share of the processes' time spent ticking."""
    buckets, total, count = ticks
    if count <= 0:
        print("campaign tick (dial_campaigns job): no tick ended")
        return None, 0.0
    p50, p95 = histogram_quantile(0.5, buckets), histogram_quantile(0.95, buckets)
    finite = ", ".join(f"{1000 * bound:g}" for bound in sorted(buckets) if bound != float("inf"))
    ticking = total / (processes * dialing)
    print(
        f"campaign tick (dial_campaigns job, every process, the whole run): {count:.0f} ticks, "
        f"mean {1000 * total / count:.0f} ms, p50 ~{1000 * (p50 or 0):.0f} ms p95 "
        f"~{1000 * (p95 or 0):.0f} ms (interpolated in the /metrics buckets {finite} ms); "
        f"{dispatches / count:.1f} dispatches a tick, {1000 * total / dispatches:.1f} ms of tick "
        f"a dispatch; the processes ticking {ticking:.0%} of the time; the tick at 1 M "
        "prospects (no dialing load): bench_campaigns.py"
    )
    return 1000 * total / dispatches, ticking


@dataclass(frozen=True)
class Evidence:
    """What the run shows about its bound."""

    rate: float  # dispatches a second sustained (mean of the steady part)
    capacity_share: float  # of the steady samples with calls in flight at capacity
    capacity_rate: float  # capacity / mean slot hold: what the capacity allows a second
    processes: int
    ticking: float  # of the processes' time spent in the dial_campaigns job
    tick_ms_a_dispatch: float | None  # tick time per dispatched call
    cores: dict[str, float]  # cores each part used
    machine_cores: float  # cores busy on the machine, every process


def bound(evidence: Evidence) -> str:
    """What held the rate down, with the figures that say so."""
    cores = evidence.cores
    used = ", ".join(f"{name} {value:.2f}" for name, value in cores.items())
    available = os.cpu_count() or 1
    caveat = ""
    bench_cores = next((value for name, value in cores.items() if "bench" in name), 0.0)
    if bench_cores >= 0.85:  # one event loop and the stand-in's thread, under one GIL
        caveat = f" (the bench process itself used {bench_cores:.2f} of a core: it may lag)"
    if evidence.capacity_share >= 0.5:
        return (
            f"the platform capacity: calls in flight at {AT_CAPACITY_SHARE:.0%} of it or more "
            f"in {evidence.capacity_share:.0%} of the samples; capacity / mean slot hold = "
            f"{evidence.capacity_rate:.0f}/s, {evidence.rate:.0f}/s sustained{caveat}"
        )
    idle = (
        f"the capacity idle (in flight at {AT_CAPACITY_SHARE:.0%} of it in "
        f"{evidence.capacity_share:.0%} of the samples)"
    )
    if evidence.ticking < 0.8 or evidence.tick_ms_a_dispatch is None:
        return (
            f"the dialer's pace: {idle} while the processes ticked {evidence.ticking:.0%} of "
            f"the time; a campaign ticks every {DIALER_INTERVAL} s (dialer_interval) and the "
            "job starts once a second at most (dialer_tick_seconds, jobs_poll_seconds), so a "
            f"freed slot waits for the next tick; cores used: {used}{caveat}"
        )
    most = evidence.processes * 1000 / evidence.tick_ms_a_dispatch
    dispatching = (
        f"the processes ticked {evidence.ticking:.0%} of the time, each tick dispatching its "
        f"calls one after another at {evidence.tick_ms_a_dispatch:.0f} ms a call (so "
        f"{evidence.processes} processes ticking all the time dispatch {most:.0f}/s at most), "
        f"{idle}"
    )
    servers = {name: value for name, value in cores.items() if name.startswith("control plane")}
    busiest = max(servers, key=servers.__getitem__, default=None)
    if busiest is not None and servers[busiest] >= 0.85:
        return (
            f"the dispatch path's CPU: {dispatching}; {busiest} used {servers[busiest]:.2f} of "
            f"its one core; cores used: {used}{caveat}"
        )
    if evidence.machine_cores >= 0.9 * available:
        # The bench's own parts (not the shared servers): their CPU a dispatch, and what the
        # machine's cores would allow at that cost.
        own = sum(value for name, value in cores.items() if "shared" not in name)
        own_ms = 1000 * own / evidence.rate
        return (
            f"the dispatch path's waits on a busy machine: {dispatching}; "
            f"{evidence.machine_cores:.2f} of {available} cores busy (other processes' too; "
            f"this run's own {own:.2f}, {own_ms:.0f} ms of CPU a dispatch, so {available} "
            f"cores allow {1000 * available / own_ms:.0f}/s at most), so each round trip to "
            f"PostgreSQL, Redis and LiveKit waits for a core; cores used: {used}{caveat}"
        )
    return (
        f"the dispatch path's round trips: {dispatching}; no CPU saturated "
        f"({evidence.machine_cores:.2f} of {available} cores busy): each call waits on "
        f"PostgreSQL, Redis and LiveKit in turn; cores used: {used}{caveat}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prospects", type=positive, default=100_000)
    parser.add_argument("--seconds", type=positive, default=60, help="of dialing")
    parser.add_argument("--processes", type=positive, default=2, help="voxline serve processes")
    parser.add_argument("--capacity", type=positive, default=500, help="agent sessions")
    parser.add_argument("--campaigns", type=positive, default=5)
    parser.add_argument("--warmup", type=int, default=10, help="seconds of ramp-up not counted")
    args = parser.parse_args()
    if args.warmup >= args.seconds:
        parser.error("--warmup must be shorter than --seconds")
    with TemporaryDirectory(prefix="voxline-bench-dialer-") as directory:
        try:
            return asyncio.run(bench(args, Path(directory)))
        except BaseException:
            for log in sorted(Path(directory).glob("serve-*.log")):
                tail = log.read_text(errors="replace")[-2000:]
                print(f"--- {log.name} (tail)\n{tail}", file=sys.stderr)
            raise


if __name__ == "__main__":
    sys.exit(main())
