"""Benchmark: a 100,000-row batch upload (time, memory) and the dialer's cost per dispatched call.

Run by hand (needs PostgreSQL and Redis at their standard local ports):

    .venv/bin/python tests/bench/bench_batch.py [--rows 100000] [--due 1000]

Uploads go through the real app in-process (Quart's test client). The CSV parser's own peak
memory is measured with tracemalloc at two file sizes, to show it stays flat in file size. The
dialer is ticked with a simulated clock against the LiveKit stand-in (on its own thread): the
control plane's CPU is the main thread's CPU time (`time.thread_time`), which leaves out the
stand-in, PostgreSQL and Redis. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-bench-"))


import phonenumbers  # noqa: E402

from control.dialing import csv_reader, dialer  # noqa: E402
from control.models import Batch  # noqa: E402
from control.security import utcnow  # noqa: E402
from runtime.spec.phone import normalise_number  # noqa: E402
from tests.bench.harness import AGENT_NUMBER, admin_headers, bench_app, calling_line  # noqa: E402
from tests.bench.samples import positive, require  # noqa: E402
from tests.control.batching import multipart  # noqa: E402

DATABASE = "voxline_bench_batch"
REDIS_URL = os.environ.get("VOXLINE_BENCH_REDIS", "redis://127.0.0.1:6379/13")


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def csv_bytes(rows: int) -> bytes:
    lines = ["phone_number,name,plan,note"]
    lines += [
        f"+1415{200 + index // 10_000:03d}{index % 10_000:04d},Person {index},gold,=note {index}"
        for index in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def parser_peak_kib(rows: int) -> float:
    """The CSV reader's peak Python memory over a file of `rows` rows on disk."""
    with tempfile.TemporaryFile() as file:
        file.write(csv_bytes(rows))
        file.seek(0)
        tracemalloc.start()
        accepted = sum(
            1
            for row in csv_reader.read_rows(file, None, csv_reader.Limits(10**7, 10**10))
            if isinstance(row, csv_reader.Row)
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert accepted == rows, accepted
    return peak / 1024


def number_check_us(numbers: int) -> tuple[float, float]:
    """Microseconds a number: `normalise_number` (E.164 fast path) and `phonenumbers` alone."""
    texts = [f"+1415{200 + index // 10_000:03d}{index % 10_000:04d}" for index in range(numbers)]
    started = time.perf_counter()
    for text in texts:
        normalise_number(text, None)
    fast = time.perf_counter() - started
    started = time.perf_counter()
    for text in texts:
        parsed = phonenumbers.parse(text, None)
        assert phonenumbers.is_valid_number(parsed)
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    library = time.perf_counter() - started
    return 1e6 * fast / numbers, 1e6 * library / numbers


async def main(rows: int, due: int) -> None:
    print("CSV reader alone (tracemalloc peak):")
    for size in (rows // 10, rows):
        print(f"  {size:>8,} rows: {parser_peak_kib(size):8.0f} KiB")
    fast, library = number_check_us(min(rows, 20_000))
    print(
        f"E.164 check: {fast:.1f} us a number (fast path), {library:.1f} us by phonenumbers alone "
        f"({library / fast:.1f}x); load {' '.join(f'{value:.2f}' for value in os.getloadavg())}"
    )

    app = bench_app(DATABASE, REDIS_URL, max_agent_sessions=due * 2)
    async with app as (settings, test_app, livekit):
        telephony = test_app.app.config["TELEPHONY"]
        await test_app.app.extensions["redis"].flushdb()
        workspace, agent = await calling_line(settings)
        headers = await admin_headers(settings, workspace)
        client = test_app.test_client()

        fields = {
            "name": "bench",
            "agent_id": str(agent.id),
            "agent_phone_number": AGENT_NUMBER,
            "calls_per_minute": 600,
        }
        print(f"\nPOST /batch/upload (PostgreSQL); peak RSS before: {rss_mib():.0f} MiB")
        for size in (rows // 10, rows):
            body, content_type = multipart(fields, csv_bytes(size))
            started = time.perf_counter()
            response = await client.post(
                "/batch/upload", data=body, headers={**headers, "Content-Type": content_type}
            )
            elapsed = time.perf_counter() - started
            answer = await response.get_json()
            assert response.status_code == 201, answer
            print(
                f"  {size:>8,} rows ({len(body) / 1e6:.1f} MB): {elapsed:5.2f} s "
                f"= {size / elapsed:,.0f} rows/s; accepted {answer['accepted']:,}; "
                f"peak RSS now {rss_mib():.0f} MiB"
            )
        # Only the dialer's batch below may run.
        await Batch.all().update(status="paused")

        body, content_type = multipart({**fields, "name": "dialer"}, csv_bytes(due))
        response = await client.post(
            "/batch/upload", data=body, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == 201
        redis = test_app.app.extensions["redis"]
        now = utcnow()
        dispatched = ticks = 0
        cpu = wall = 0.0
        while dispatched < due and ticks < due:
            cpu_started, wall_started = time.thread_time(), time.perf_counter()
            dispatched += await dialer.tick(settings, telephony, redis, now=now)
            cpu += time.thread_time() - cpu_started
            wall += time.perf_counter() - wall_started
            ticks += 1
            now += timedelta(seconds=1)
        require(dispatched, f"dialer over {due:,} due items", "the dialer dispatched no call")
        print(
            f"\ndialer: {dispatched:,} calls dispatched from {due:,} due items in {ticks} ticks "
            f"(600 a minute: 10 a tick)\n"
            f"  control-plane CPU {1000 * cpu / dispatched:.2f} ms per call "
            f"(wall {1000 * wall / dispatched:.2f} ms per call, LiveKit stand-in included); "
            f"LiveKit saw {len(livekit.dispatches):,} dispatches"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive, default=100_000)
    parser.add_argument("--due", type=positive, default=1000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.due))
