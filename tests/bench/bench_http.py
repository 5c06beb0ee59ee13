"""Requests per second of `voxline serve`: `GET /health` and signed LiveKit webhooks, with `wrk`.

    .venv/bin/python -m tests.bench.bench_http [--workers 1 2] [--seconds 10] [--connections 8]

Needs `wrk`: `make bench-tools` installs it (the Debian package; on macOS: `brew install wrk`);
without it the bench says so and exits 1, as it does when a run had no request answered. It
starts `voxline serve` (as the tests do, `tests/servers.py`) on its own PostgreSQL database
(`VOXLINE_BENCH_PG`) and a Redis database (`VOXLINE_BENCH_REDIS`, flushed first), once per
`--workers` value, and runs `wrk` (1 thread, 8 connections) against:

- `/health`, each request from another client address (`X-Forwarded-For` behind a trusted proxy),
  so the per-address rate limit is checked on every request but does not refuse them;
- `POST /webhook/livekit`, `room_started` events signed with the LiveKit key and secret, each
  with its own event id (pre-signed bodies, sent in turn by a wrk Lua script); afterwards the
  Redis room count must equal the events LiveKit would count: every answered event once, none
  twice.

It prints requests/s, p50/p99 latency, non-2xx answers and the load average of the machine.
In the same run it measures an empty Quart route served the same way (`tests/bench/empty_quart.py`,
one process) and prints each figure as a ratio to it, which holds better from one machine (or
load) to another than requests/s do; with one process, also as requests per server CPU second
against the empty route's, which holds best on a machine that other work keeps busy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from redis.asyncio import Redis

from control.config import Settings
from control.services.livekit_events import ACTIVE_CALLS_KEY
from tests.bench.harness import recreate_database
from tests.bench.samples import positive, require
from tests.conftest import free_port
from tests.fakes.livekit_server import FakeLiveKit
from tests.servers import ControlPlaneProcess

DATABASE = "voxline_bench_http"
REDIS_URL = os.environ.get("VOXLINE_BENCH_REDIS", "redis://127.0.0.1:6379/10")
PG_URL = os.environ.get("VOXLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")

# Every request from its own address: the per-address limit is checked, never reached.
HEALTH_LUA = """
local n = 0
request = function()
  n = n + 1
  local address = string.format("10.%d.%d.%d", (n / 65536) % 256, (n / 256) % 256, n % 256)
  return wrk.format("GET", "/health", {["X-Forwarded-For"] = address})
end
"""

# The pre-signed events in turn; `done` prints how many went out and how LiveKit's view of them
# ended (answered, refused, or counted as a duplicate by the control plane).
WEBHOOK_LUA = """
events = dofile("%(events)s")
available = #events
sent, ok, failed, duplicates = 0, 0, 0, 0
request = function()
  sent = sent + 1
  local event = events[((sent - 1) %% #events) + 1]
  return wrk.format("POST", "/webhook/livekit",
    {["Authorization"] = event[1], ["Content-Type"] = "application/webhook+json"}, event[2])
end
response = function(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if string.find(body, '"duplicate":true', 1, true) then duplicates = duplicates + 1 end
  else
    failed = failed + 1
  end
end
threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local totals = {sent = 0, ok = 0, failed = 0, duplicates = 0, available = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
  end
  io.write(string.format("EVENTS sent=%%d ok=%%d failed=%%d duplicates=%%d available=%%d\\n",
    totals.sent, totals.ok, totals.failed, totals.duplicates, totals.available))
end
"""


EMPTY_LUA = """
request = function() return wrk.format("GET", "/empty") end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string literal


def write_events(path: Path, count: int) -> None:
    """`count` signed `room_started` events, each with its own id and room, as a Lua table."""
    livekit = FakeLiveKit()
    run = uuid.uuid4().hex[:8]
    lines = ["return {"]
    for number in range(count):
        body, signature = livekit.webhook(
            "room_started", room_name=f"bench-{run}-{number}", event_id=f"EV_{run}_{number}"
        )
        lines.append(f"{{{_lua_string(signature)}, {_lua_string(body)}}},")
    lines.append("}")
    path.write_text("\n".join(lines))


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_seconds(pid: int | None) -> float | None:
    """The CPU time process `pid` has used (user and system), where /proc tells it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, seconds: int, connections: int, pid: int | None = None) -> dict:
    """wrk's figures; with the server's `pid`, also its CPU time per answered request."""
    cpu_before = cpu_seconds(pid)
    output = subprocess.run(
        [
            *("wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu_after = cpu_seconds(pid)
    figures: dict = {"load": load_average(), "cpu_s": None}
    if cpu_before is not None and cpu_after is not None:
        figures["cpu_s"] = cpu_after - cpu_before
    requests = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    figures["rps"] = float(rps.group(1)) if rps else 0.0
    for percentile in ("50", "99"):
        found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if found is None:  # no latency without an answered request: `show` stops first
            figures[f"p{percentile}_ms"] = None
            continue
        value, unit = float(found.group(1)), found.group(2)
        figures[f"p{percentile}_ms"] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    figures["answered"] = (int(requests.group(1)) if requests else 0) - figures["non_2xx"]
    errors = re.search(r"Socket errors: (.*)", output)
    figures["socket_errors"] = errors.group(1) if errors else "none"
    events = re.search(
        r"EVENTS sent=(\d+) ok=(\d+) failed=(\d+) duplicates=(\d+) available=(\d+)", output
    )
    if events:
        figures["events"] = dict(
            zip(
                ("sent", "ok", "failed", "duplicates", "available"),
                map(int, events.groups()),
                strict=True,
            )
        )
    return figures


def empty_route(seconds: int, connections: int, work: Path) -> dict:
    """wrk against an empty Quart route in its own process (`tests/bench/empty_quart.py`)."""
    port = free_port()
    with (work / "empty.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.empty_quart", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/empty", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("bench_http: the empty Quart app did not start") from None
                time.sleep(0.2)
        script = work / "empty.lua"
        script.write_text(EMPTY_LUA)
        run_wrk(url, script, 2, connections)  # warm-up
        return run_wrk(url, script, seconds, connections, process.pid)
    finally:
        process.terminate()
        process.wait(10)


def cpu_per_request(figures: dict) -> str:
    """The server's CPU time per answered request (where /proc tells it), in microseconds."""
    if figures["cpu_s"] is None or not figures["answered"]:
        return "n/a"
    return f"{figures['cpu_s'] / figures['answered'] * 1e6:.0f} us"


def show_ratio(label: str, figures: dict, empty: dict) -> None:
    """req/s as a share of the empty route's, and the server's CPU time per request (less
    sensitive to what else the machine runs than req/s are)."""
    print(
        f"{label:<28} {figures['rps'] / empty['rps']:>8.2f} of the empty route's req/s  "
        f"(empty {empty['rps']:.0f} req/s, load {empty['load']}); server CPU a request "
        f"{cpu_per_request(figures)} (empty {cpu_per_request(empty)})",
        flush=True,
    )


def show_cpu_ratio(label: str, figures: dict, empty: dict) -> None:
    """The empty route's server CPU time per request over this route's: the share of the empty
    route's rate that the same CPU serves, which other work on the machine moves less than it
    moves req/s (printed where /proc tells the CPU times)."""
    if not (figures["cpu_s"] and figures["answered"] and empty["cpu_s"] and empty["answered"]):
        return
    share = (empty["cpu_s"] / empty["answered"]) / (figures["cpu_s"] / figures["answered"])
    print(f"{label:<28} {share:>8.2f} of the empty route's requests per server CPU second")


def show(label: str, figures: dict) -> None:
    require(figures["answered"], label, "no request was answered with a 2xx")
    print(
        f"{label:<28} {figures['rps']:>8.0f} req/s  p50 {figures['p50_ms']:6.2f} ms  "
        f"p99 {figures['p99_ms']:6.2f} ms  non-2xx {figures['non_2xx']}  "
        f"socket errors: {figures['socket_errors']}  load {figures['load']}",
        flush=True,
    )


async def bench(workers: int, seconds: int, connections: int, work: Path) -> None:
    await recreate_database(DATABASE)
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.flushdb()
    settings = Settings(
        env="test",
        database_url=f"{PG_URL.replace('postgresql://', 'postgres://')}/{DATABASE}",
        redis_url=REDIS_URL,
        jwt_secret="bench-secret-" + "x" * 40,
        service_token="bench-service-token",
    )
    livekit = FakeLiveKit()
    server = ControlPlaneProcess(
        settings,
        work / f"serve-{workers}.log",
        args=("--workers", str(workers)) if workers != 1 else (),
        VOXLINE_TRUSTED_PROXIES="127.0.0.1/32",
        VOXLINE_LOG_LEVEL="WARNING",
        LIVEKIT_URL="http://127.0.0.1:9",
        LIVEKIT_API_KEY=livekit.api_key,
        LIVEKIT_API_SECRET=livekit.api_secret,
    )
    server.start()
    try:
        await server.wait_until_up()
        # One process serves (no --workers): its CPU time is the server's.
        pid = server.process.pid if workers == 1 and server.process is not None else None
        health_lua = work / "health.lua"
        health_lua.write_text(HEALTH_LUA)
        run_wrk(server.url, health_lua, 2, connections)  # warm-up
        health = run_wrk(server.url, health_lua, seconds, connections, pid)
        show(f"workers={workers} GET /health", health)

        webhook_lua = work / "webhook.lua"
        webhook_lua.write_text(WEBHOOK_LUA % {"events": work / "events.lua"})
        figures = run_wrk(server.url, webhook_lua, seconds, connections, pid)
        show(f"workers={workers} POST /webhook/livekit", figures)
        events = figures["events"]
        counted = int(await redis.get(ACTIVE_CALLS_KEY) or 0)
        # An event whose answer wrk did not wait for (cut at the end of the run) may have been
        # applied: the count lies between the answered events and the events sent.
        once = (
            events["sent"] <= events["available"]
            and events["duplicates"] == 0
            and events["failed"] == 0
            and events["ok"] <= counted <= events["sent"]
        )
        print(
            f"{'':<28} events sent {events['sent']}, answered 200 {events['ok']}, refused "
            f"{events['failed']}, answered as duplicates {events['duplicates']}; "
            f"room count in Redis {counted}: {'each counted once' if once else 'MISMATCH'}",
            flush=True,
        )
        empty = empty_route(seconds, connections, work)
        show("GET empty Quart route", empty)
        show_ratio(f"workers={workers} GET /health", health, empty)
        show_ratio(f"workers={workers} POST /webhook/livekit", figures, empty)
        show_cpu_ratio(f"workers={workers} GET /health", health, empty)
        show_cpu_ratio(f"workers={workers} POST /webhook/livekit", figures, empty)
    finally:
        server.stop()
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=positive, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=positive, default=10)
    parser.add_argument("--connections", type=positive, default=8)
    parser.add_argument("--events", type=positive, default=30_000, help="pre-signed webhook events")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "bench_http: wrk is not installed; install it with: make bench-tools "
            "(the Debian package; on macOS: brew install wrk)",
            file=sys.stderr,
        )
        return 1
    with tempfile.TemporaryDirectory(prefix="voxline-bench-http-") as directory:
        work = Path(directory)
        write_events(work / "events.lua", args.events)
        print(f"wrk -t1 -c{args.connections} -d{args.seconds}s; {os.cpu_count()} cores")
        for workers in args.workers:
            asyncio.run(bench(workers, args.seconds, args.connections, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
