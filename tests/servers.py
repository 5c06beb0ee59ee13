"""`voxline serve` in a child process: for tests that kill, restart or outlive the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from control.config import Settings
from tests.conftest import TEST_DATA_DIR, free_port

SERVICE_TOKEN = "test-service-token"


def stop_process(process: subprocess.Popen) -> None:
    """Terminates a child process and reaps it, resuming it first (a test may have paused it
    with SIGSTOP) and killing it if it outlives 15 seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


class ControlPlaneProcess:
    """`voxline serve` in a child process, on a fixed port, that a test may kill and restart."""

    def __init__(
        self, settings: Settings, log: Path, *, args: tuple[str, ...] = (), **env: str
    ) -> None:
        """`env` adds or overrides `VOXLINE_*` variables (e.g. faster reaper settings); `args`
        are more `voxline serve` options."""
        self.port = free_port()
        self.args = args
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **os.environ,
            "VOXLINE_DATABASE_URL": settings.database_url,
            "VOXLINE_REDIS_URL": settings.redis_url,
            "VOXLINE_DATA_DIR": TEST_DATA_DIR,
            "VOXLINE_SERVICE_TOKEN": SERVICE_TOKEN,
            "VOXLINE_BACKGROUND_WORKERS": "false",
            "VOXLINE_ENV": "test",
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "voxline", "serve", "--port", str(self.port)),
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_until_up(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.log_tail()
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
        raise AssertionError(f"voxline serve did not come up:\n{self.log_tail()}")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown hooks, no goodbyes
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
