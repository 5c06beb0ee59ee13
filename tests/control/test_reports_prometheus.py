"""A real Prometheus scrapes `voxline serve` and `voxline worker`; every dashboard panel has data.

The control plane and the worker (no LiveKit: it serves its metrics anyway) run as child
processes; Prometheus runs from Debian's package with a generated config, scraping every second,
under `timeout` so it stops by itself even if this test is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from control.models import Call, Role
from control.services.agents import create_agent
from tests.conftest import free_port, make_user
from tests.promtools import INSTALL_HINT
from tests.servers import SERVICE_TOKEN, ControlPlaneProcess, stop_process

DASHBOARD = Path(__file__).parents[2] / ".deploy" / "grafana" / "dashboards" / "voxline.json"
DEADLINE_SECONDS = 120.0
PROMETHEUS_LIFETIME_SECONDS = 600  # `timeout` stops it by then whatever happens to this test


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def prometheus_config(control: str, worker: str, jobs: str) -> dict:
    def job(name: str, target: str, path: str) -> dict:
        return {"job_name": name, "metrics_path": path, "static_configs": [{"targets": [target]}]}

    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            job("voxline-control", control, "/reports/workload"),
            job("voxline-control-metrics", control, "/metrics"),
            job("voxline-worker", worker, "/metrics"),
            job("voxline-jobs", jobs, "/metrics"),
        ],
    }


class Child:
    """A child process with its output in a log file, stopped (and reaped) at the end."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        stop_process(self.process)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


async def query_until_found(http: httpx.AsyncClient, expr: str, deadline: float) -> list[dict]:
    """The first non-empty result of an instant query, polled until `deadline`."""
    loop = asyncio.get_running_loop()
    while True:
        response = await http.get("/api/v1/query", params={"query": expr})
        assert response.status_code == 200, response.text
        result = response.json()["data"]["result"]
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.5)


@pytest.fixture
def prometheus_binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus and promtool, INSTALL_HINT
    return prometheus, promtool


async def test_prometheus_scrapes_every_process_and_feeds_every_panel(
    settings, db, tmp_path, prometheus_binaries
):
    prometheus, promtool = prometheus_binaries
    # A live call, so the per-agent sessions panel has a series (agents appear while they talk).
    _, workspace = await make_user("owner@example.com", role=Role.ADMIN)
    agent = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    await Call.create(
        workspace_id=workspace.id,
        agent=agent,
        call_type="phone",
        call_direction="outbound",
        status="in_progress",
    )
    control = ControlPlaneProcess(settings, tmp_path / "serve.log")
    worker_port, jobs_port, prometheus_port = free_port(), free_port(), free_port()
    worker_env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("LIVEKIT_")},
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker-metrics"),
        "VOXLINE_METRICS_HOST": "127.0.0.1",
        "VOXLINE_METRICS_PORT": str(worker_port),
        "VOXLINE_API_URL": control.url,
        "VOXLINE_SERVICE_TOKEN": SERVICE_TOKEN,
        "VOXLINE_DATA_DIR": str(tmp_path / "worker-data"),
        "VOXLINE_ENV": "test",
    }
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            prometheus_config(
                f"127.0.0.1:{control.port}", f"127.0.0.1:{worker_port}", f"127.0.0.1:{jobs_port}"
            )
        )
    )
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    children: list[Child] = []
    control.start()
    try:
        children.append(
            Child([sys.executable, "-m", "voxline", "worker"], tmp_path / "worker.log", worker_env)
        )
        children.append(
            Child(
                [sys.executable, "-m", "voxline", "jobs", f"--metrics-port={jobs_port}"],
                tmp_path / "jobs.log",
                control.env,
            )
        )
        children.append(
            Child(
                [
                    "timeout", str(PROMETHEUS_LIFETIME_SECONDS), prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                tmp_path / "prometheus.log",
            )
        )  # fmt: skip
        await control.wait_until_up()
        deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
        base = f"http://127.0.0.1:{prometheus_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            while True:  # Prometheus itself answering
                try:
                    if (await http.get("/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, children[2].tail()
                await asyncio.sleep(0.25)

            jobs = ("voxline-control", "voxline-control-metrics", "voxline-worker", "voxline-jobs")
            for job in jobs:
                up = await query_until_found(http, f'up{{job="{job}"}} == 1', deadline)
                logs = "\n".join(child.tail() for child in children[:2])
                assert up, f"{job} is not up:\n{logs}\n{control.log_tail()}"
            # The jobs process ran the reaper, and says so.
            reaped = await query_until_found(
                http,
                'voxline_jobs_total{job="voxline-jobs",kind="reap_calls",outcome="done"}',
                deadline,
            )
            assert reaped, children[1].tail()
            # The worker's labelled series exist before any call.
            latency = await query_until_found(
                http,
                'voxline_turn_latency_seconds_count{job="voxline-worker",stage="end_to_end",'
                'provider="openai"}',
                deadline,
            )
            assert [float(series["value"][1]) for series in latency] == [0.0]
            empty = [
                expr
                for expr in dashboard_queries()
                if not await query_until_found(http, expr, deadline)
            ]
            assert empty == [], f"dashboard queries with no series: {empty}"
    finally:
        for child in children:
            child.stop()
        control.stop()
