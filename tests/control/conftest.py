"""Fixtures of the control-plane tests: a workspace's phone line to call from."""

import pytest

from control.models import Role
from control.services.agents import create_agent
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
