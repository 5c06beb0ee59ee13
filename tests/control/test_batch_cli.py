"""`voxline batch upload` and `voxline batch status` against `voxline serve`, to completion."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from control.models import Batch, Role
from control.services.workspaces import create_api_key
from tests.conftest import make_user
from tests.control.batching import StandInWorker, csv_of, numbers, serve


async def voxline(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline", *args,
        env={**os.environ, **env, "COLUMNS": "120"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    return process.returncode, output.decode()


@pytest.mark.postgres_only(reason="the CLI's server and the test share the database")
async def test_upload_then_watch_to_completion_then_status(
    settings, client, line, livekit, tmp_path
):
    admin, _ = await make_user("admin@example.com", role=Role.ADMIN, workspace=line["workspace"])
    _, secret = await create_api_key(line["workspace"].id, admin, "cli", Role.DEVELOPER)
    leads = tmp_path / "leads.csv"
    leads.write_bytes(csv_of([f"{n},Person {i}" for i, n in enumerate(numbers(4))] + ["123,Bad"]))
    server = serve(settings, livekit, tmp_path / "serve.log")
    worker = StandInWorker(client, livekit, hold=0.2)
    server.start()
    try:
        await server.wait_until_up()
        worker.start()
        env = {"VOXLINE_API_URL": server.url, "VOXLINE_API_KEY": secret}
        code, output = await voxline(
            "batch", "upload", str(leads), "--agent", str(line["agent"].id),
            "--from", "+16505551234", "--calls-per-minute", "600", env=env,
        )  # fmt: skip
        assert code == 0, output + server.log_tail()
        assert "4 rows accepted, 1 rejected" in output and "line 6:" in output
        assert "completed" in output and "answered 4" in output
        batch = await Batch.get(workspace_id=line["workspace"].id)
        code, output = await voxline("batch", "status", str(batch.id), "--no-watch", env=env)
        assert code == 0 and f"batch {batch.id} completed: 100% done of 4 rows" in output
        code, output = await voxline(
            "batch", "status", "00000000-0000-0000-0000-000000000000", env=env
        )
        assert code != 0 and "BATCH_NOT_FOUND" in output
    finally:
        await worker.stop()
        server.stop()
