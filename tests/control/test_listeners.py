"""The service token outside development, and `/internal` on a listener of its own."""

import os
import subprocess
import sys

import httpx
import pytest
from pydantic import ValidationError

from control.config import Settings
from runtime.config import RuntimeSettings
from tests.conftest import free_port
from tests.servers import SERVICE_TOKEN, ControlPlaneProcess


@pytest.mark.parametrize("env", ["test", "production"])
def test_the_default_service_token_is_refused_outside_development(env):
    with pytest.raises(ValidationError, match="VOXLINE_SERVICE_TOKEN"):
        Settings(env=env, service_token="change-me")
    with pytest.raises(ValidationError, match="VOXLINE_SERVICE_TOKEN"):
        RuntimeSettings(env=env)
    assert Settings(env="development").service_token == "change-me"
    assert RuntimeSettings(env="development").service_token == "change-me"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_do_not_start_with_the_default_token(command, tmp_path):
    env = {**os.environ, "VOXLINE_ENV": "test", "VOXLINE_DATA_DIR": str(tmp_path)}
    env.pop("VOXLINE_SERVICE_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "voxline", command, "--port", str(free_port())]
        if command == "serve"
        else [sys.executable, "-m", "voxline", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "VOXLINE_SERVICE_TOKEN" in done.stderr


@pytest.fixture
async def split_server(settings, db, tmp_path):
    internal_port = free_port()
    server = ControlPlaneProcess(
        settings, tmp_path / "serve.log", args=("--internal-port", str(internal_port))
    )
    server.start()
    try:
        await server.wait_until_up()
        yield server.url, f"http://127.0.0.1:{internal_port}"
    finally:
        server.stop()


async def test_internal_port_keeps_internal_off_the_public_listener(split_server):
    public, internal = split_server
    token = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(100):  # the internal listener answers once the app has started
            try:
                if (await http.get(f"{internal}/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        hidden = await http.get(f"{public}/internal/demo-agent", headers=token)
        assert hidden.status_code == 404
        assert hidden.json()["code"] == "NOT_FOUND"
        assert (await http.get(f"{public}/health")).status_code == 200
        assert (await http.get(f"{public}/openapi.json")).status_code == 200

        assert (await http.get(f"{internal}/internal/demo-agent")).status_code == 401
        assert (await http.get(f"{internal}/health")).status_code == 200
        assert (await http.get(f"{internal}/agents")).status_code == 404
        assert (await http.get(f"{internal}/openapi.json")).status_code == 404
