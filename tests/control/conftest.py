"""Fixtures of the control-plane tests: a workspace's phone line to call from."""

import pytest

from control.models import Role
from control.services.agents import create_agent
from telephony.config import get_settings as get_telephony_settings
from tests.conftest import auth_headers, make_user

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
