"""Fixtures of the control-plane tests: a workspace's phone line to call from, and a real
local endpoint behind an agent's custom function (`inventory_api`, `check_inventory`)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from control.models import Role
from control.services.agents import create_agent
from telephony.config import get_settings as get_telephony_settings
from tests.conftest import auth_headers, free_port, make_user

TRUNK_BODY = {
    "sip_address": "sip.example.com",
    "phone_number": "+16505551234",
    "provider": "vonage",
}


@pytest.fixture
async def line(db, settings, livekit, client):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    headers = auth_headers(settings, user)
    assert (
        await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=headers)
    ).status_code == 201
    agent = await create_agent(
        settings, workspace.id, {"agent_name": "Caller", "phone_number": "+16505551234"}
    )
    livekit.reset()
    return {"headers": headers, "agent": agent, "workspace": workspace}


@pytest.fixture
def jobs_reach_livekit(livekit, monkeypatch):
    """The job queue reads LiveKit's address from the environment, as `voxline serve` does:
    point it at the stand-in for this test."""
    for name, value in {
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
        "VOXLINE_AGENT_NAME": "voxline-test-agent",
    }.items():
        monkeypatch.setenv(name, value)
    get_telephony_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_telephony_settings.cache_clear()


@pytest.fixture(scope="module")
def inventory_api():
    """A real local HTTP endpoint behind the agent's custom function: its URL, and the requests
    it received (body and `X-Api-Token`)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"body": body, "auth": self.headers.get("X-Api-Token")})
            payload = json.dumps({"sku": body.get("sku"), "in_stock": 7}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/inventory", received
    server.shutdown()


def check_inventory(url: str, **extra) -> dict:
    """The `check_inventory` custom function (a product code in, stock out) calling `url`."""
    return {
        "name": "check_inventory",
        "description": "Check stock of a product",
        "url": url,
        "method": "POST",
        "parameters": {"sku": {"type": "string", "description": "product code"}},
        **extra,
    }
