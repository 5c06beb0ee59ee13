"""The worker's `/metrics`: served without LiveKit, known series at zero, accepted by promtool."""

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest

from runtime import metrics
from runtime.config import RuntimeSettings
from runtime.spec import PROVIDERS
from runtime.worker import run_worker
from tests.conftest import free_port
from tests.promtools import promtool_check, sample
from tests.runtime.test_metrics import JOB, REPORT

DEADLINE_SECONDS = 30.0


async def scrape_when_up(url: str, **headers: str) -> httpx.Response:
    """Poll until the endpoint answers (generous deadline), then return its answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            try:
                return await http.get(url, headers=headers)
            except httpx.TransportError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)


def test_known_series_exist_at_zero_before_any_call(tmp_path):
    text = metrics.exposition(str(tmp_path)).decode()
    promtool_check(text)
    latency = "voxline_turn_latency_seconds_count"
    for stage, kind in metrics.STAGE_PROVIDER_KIND.items():
        for provider in (*PROVIDERS[kind], "other"):
            assert sample(text, latency, stage=stage, provider=provider) == 0, (stage, provider)
    assert sample(text, "voxline_active_sessions") == 0


def test_zeros_never_hide_observed_figures(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", JOB, json.dumps(REPORT)], env=env, check=True)
    text = metrics.exposition(str(tmp_path)).decode()
    promtool_check(text)
    latency = "voxline_turn_latency_seconds"
    assert sample(text, f"{latency}_count", stage="llm_ttft", provider="openai") == 1
    assert sample(text, f"{latency}_sum", stage="llm_ttft", provider="openai") == 0.25
    assert sample(text, f"{latency}_count", stage="llm_ttft", provider="local") == 0
    assert sample(text, "voxline_tool_calls_total", tool="crm", outcome="error") == 1


async def test_worker_serves_metrics_without_livekit(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVEKIT_URL", raising=False)
    port = free_port()
    settings = RuntimeSettings(
        metrics_host="127.0.0.1",
        metrics_port=port,
        metrics_token="worker-scrape-token",
        outbox_dir=tmp_path / "outbox",
    )
    worker = asyncio.create_task(run_worker(settings, retry_seconds=0.05))
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        refused = await scrape_when_up(url)
        assert refused.status_code == 401
        response = await scrape_when_up(url, Authorization="Bearer worker-scrape-token")
        assert response.status_code == 200
        promtool_check(response.text)
        assert (
            sample(
                response.text,
                "voxline_turn_latency_seconds_count",
                stage="end_to_end",
                provider="openai",
            )
            is not None
        )
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
