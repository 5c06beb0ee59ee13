"""`voxline serve --workers N`: N processes on one port, whose `/metrics` adds up all of them."""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from control.commands import _workers_of
from tests.servers import ControlPlaneProcess


def processes_counting(directory: Path) -> int:
    """How many processes keep counters in the multiprocess directory (one file each)."""
    return len(list(directory.glob("counter_*.db")))


def health_requests_counted(exposition: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if (
                sample.name == "voxline_http_requests_total"
                and sample.labels.get("route") == "/health"
                and sample.labels.get("status") == "200"
            ):
                return sample.value
    return 0.0


async def test_two_workers_answer_on_one_port_and_metrics_add_up(settings, db, tmp_path):
    server = ControlPlaneProcess(settings, tmp_path / "serve.log", args=("--workers", "2"))
    server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server.start()
    try:
        await server.wait_until_up()
        announced = re.search(r"metrics of all of them in (\S+)", server.log_tail())
        assert announced is not None, server.log_tail()
        metrics_directory = Path(announced.group(1))
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            before = health_requests_counted((await http.get("/metrics")).text)
        sent = 0
        # A new connection per request, several at once, until both processes have answered
        # (each keeps its counters in its own file of the metrics directory).
        for _ in range(50):
            limits = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=limits) as http:
                answers = await asyncio.gather(*(http.get("/health") for _ in range(8)))
            assert [answer.status_code for answer in answers] == [200] * 8
            sent += len(answers)
            if processes_counting(metrics_directory) >= 2:
                break
        assert processes_counting(metrics_directory) == 2, server.log_tail()
        for _ in range(4):  # whichever process answers the scrape counts every process's requests
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                after = health_requests_counted((await http.get("/metrics")).text)
            assert after - before == sent
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_tail()
    assert processes_counting(metrics_directory) == 0, "the temporary metrics directory is removed"
    with pytest.raises(OSError):  # no worker outlived the stop
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_workers_come_from_the_flag_else_voxline_workers(monkeypatch):
    monkeypatch.setenv("VOXLINE_WORKERS", "3")
    assert _workers_of(argparse.Namespace(workers=None)) == 3
    assert _workers_of(argparse.Namespace(workers=2)) == 2
    monkeypatch.delenv("VOXLINE_WORKERS")
    assert _workers_of(argparse.Namespace(workers=None)) == 1
    for wrong in ("0", "two", "-1"):
        monkeypatch.setenv("VOXLINE_WORKERS", wrong)
        with pytest.raises(SystemExit, match="VOXLINE_WORKERS"):
            _workers_of(argparse.Namespace(workers=None))
