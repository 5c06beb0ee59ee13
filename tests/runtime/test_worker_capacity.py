"""The worker's process model: several calls per process, admission by measured load, and the
event loop's lag exported as a metric that moves when the loop is blocked."""

from __future__ import annotations

import os
import subprocess
import sys

from livekit.agents import JobExecutorType

from runtime import metrics
from runtime.config import RuntimeSettings
from runtime.worker import WorkerLoad, worker_options
from tests.promtools import promtool_check, sample

BLOCKED_LOOP = """
import asyncio, time
from runtime.metrics import LoopLagMonitor

async def main():
    monitor = LoopLagMonitor(interval=0.01).start()
    await monitor.next_sample()
    time.sleep(0.2)  # a blocking call on the event loop, on purpose
    await monitor.next_sample()
    assert monitor.recent_max > 0
    monitor.stop()

asyncio.run(main())
"""


def test_loop_lag_metric_exists_and_moves_when_the_loop_is_blocked(tmp_path):
    before = metrics.exposition(str(tmp_path)).decode()
    promtool_check(before)
    assert sample(before, "voxline_event_loop_lag_seconds_count") == 0
    assert sample(before, "voxline_turn_predictions_late_total") == 0

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", BLOCKED_LOOP], env=env, check=True, timeout=60)

    after = metrics.exposition(str(tmp_path)).decode()
    promtool_check(after)
    assert sample(after, "voxline_event_loop_lag_seconds_count") >= 2
    assert sample(after, "voxline_event_loop_lag_seconds_sum") > 0
    # the blocked wake-up was at least 100 ms late: it is not in the 0.1 s bucket
    assert sample(after, "voxline_event_loop_lag_seconds_bucket", le="+Inf") > sample(
        after, "voxline_event_loop_lag_seconds_bucket", le="0.1"
    )


def test_the_worker_runs_calls_in_threads_and_admits_by_load(monkeypatch):
    monkeypatch.setenv("MAX_AGENT_SESSIONS", "4")
    options = worker_options(RuntimeSettings())
    assert options.job_executor_type == JobExecutorType.THREAD
    assert isinstance(options.load_fnc, WorkerLoad)
    assert options.load_fnc.max_sessions == 4
    # MAX_AGENT_SESSIONS stays a hard cap: at it, the worker is full whatever the CPU says
    assert options.load_fnc.load(4) >= options.load_threshold
    assert options.load_fnc.load(2) >= 0.5
