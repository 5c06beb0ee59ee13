"""Secrets at rest: several encryption keys, `voxline rotate-keys`, and secrets no key reads."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from control.models import Agent, AgentVersion, PhoneNumber, Role, WebhookEndpoint
from control.security import decrypt_secret, encrypt_secret
from control.services.agents import create_agent, plain_config
from control.services.calls import create_call
from control.services.webhooks import set_endpoint
from tests.conftest import TEST_DATA_DIR, auth_headers, make_user

SERVICE = {"Authorization": "Bearer test-service-token"}
ROOT = Path(__file__).resolve().parents[2]
NEW_KEY = "a-brand-new-encryption-key-" + "n" * 16

AGENT = {
    "agent_name": "Crm",
    "LLM_base_url": "https://llm.example.com/v1",
    "LLM_model": "llama3.1:8b",
    "LLM_api_key": "sk-agent-own-12345678",
    "custom_functions": [
        {
            "name": "crm",
            "url": "https://crm.example.com/lookup",
            "headers": {"Authorization": "Bearer sk-live-abcdef123456"},
        }
    ],
}


@pytest.fixture
def other_key(client, settings):
    """The app running with a key that wrote none of the stored secrets; restored after."""
    client.app.config["SETTINGS"] = settings.model_copy(
        update={"encryption_key": "a-key-that-wrote-nothing-" + "x" * 16}
    )
    yield client.app.config["SETTINGS"]
    client.app.config["SETTINGS"] = settings


async def test_older_keys_still_read_and_rotate_keys_moves_everything_to_the_newest(db, settings):
    _, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(settings, workspace.id, AGENT)
    _, signing_secret = await set_endpoint(settings, workspace.id, "https://hooks.example.com/x")
    number = await PhoneNumber.create(
        workspace_id=workspace.id,
        phone_number="+16505551234",
        source="sip_trunk",
        provider="sip",
        inbound_trunk_id="ST_in",
        dispatch_rule_id="SDR_1",
        auth_password_encrypted=encrypt_secret(settings, "sip-password-1"),
    )
    both = settings.model_copy(update={"encryption_keys": f"{NEW_KEY}, {settings.encryption_key}"})
    newest_only = settings.model_copy(update={"encryption_keys": NEW_KEY})
    assert plain_config(both, agent)["LLM_api_key"] == "sk-agent-own-12345678"

    env = {
        **os.environ,
        "VOXLINE_ENV": "test",
        "VOXLINE_SERVICE_TOKEN": "test-service-token",
        "VOXLINE_DATA_DIR": TEST_DATA_DIR,
        "VOXLINE_DATABASE_URL": settings.database_url,
        "VOXLINE_ENCRYPTION_KEYS": both.encryption_keys,
    }
    rotate = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "voxline", "rotate-keys"),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(rotate.communicate(), 120)
    assert rotate.returncode == 0, stderr.decode()
    # the agent's two, their copies in its version 1, the webhook's and the SIP password
    assert "Re-encrypted 6 stored secret(s)" in stdout.decode()

    stored = await Agent.get(id=agent.id)
    for version in (None, await AgentVersion.get(agent_id=agent.id, number=1)):
        config = plain_config(newest_only, stored, version=version)
        assert config["LLM_api_key"] == "sk-agent-own-12345678"
        assert config["custom_functions"][0]["headers"]["Authorization"].endswith("123456")
    endpoint = await WebhookEndpoint.get(workspace_id=workspace.id)
    assert decrypt_secret(newest_only, endpoint.secret_encrypted) == signing_secret
    number = await PhoneNumber.get(id=number.id)
    assert decrypt_secret(newest_only, number.auth_password_encrypted) == "sip-password-1"


async def test_a_secret_no_key_reads_shows_as_null_and_the_call_fails_clearly(
    client, db, settings, other_key
):
    user, workspace = await make_user("admin@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, user)
    agent = await create_agent(settings, workspace.id, AGENT)  # written with the old key
    await set_endpoint(settings, workspace.id, "https://hooks.example.com/x")

    listed = await client.get("/agents", headers=headers)
    assert listed.status_code == 200
    shown = await client.get(f"/agents/{agent.id}", headers=headers)
    assert shown.status_code == 200
    body = await shown.get_json()
    assert body["LLM_api_key"] is None
    assert body["custom_functions"][0]["headers"] == {"Authorization": None}
    assert sorted(body["unreadable_secrets"]) == [
        "LLM_api_key",
        "custom_functions.crm.headers.Authorization",
    ]
    webhook = await client.get("/webhook/endpoint", headers=headers)
    assert webhook.status_code == 200
    assert (await webhook.get_json())["secret_readable"] is False

    chat = await client.post(
        "/chats", json={"agent_id": str(agent.id), "message": "hello"}, headers=headers
    )
    assert chat.status_code == 409
    detail = (await chat.get_json())["detail"]
    assert "cannot be decrypted" in detail and "Authorization" in detail

    call = await create_call(agent, direction="web")
    spec = await client.get(f"/internal/calls/{call.id}/spec", headers=SERVICE)
    assert spec.status_code == 409

    # an unrelated change keeps the unreadable secrets as they are
    put = await client.put(f"/agents/{agent.id}", json={"temperature": 0.3}, headers=headers)
    assert put.status_code == 200, await put.get_json()
    assert plain_config(settings, await Agent.get(id=agent.id))["LLM_api_key"] == (
        "sk-agent-own-12345678"
    )
    # setting it again makes it readable
    put = await client.put(
        f"/agents/{agent.id}", json={"LLM_api_key": "sk-fresh-key-99999999"}, headers=headers
    )
    assert (await put.get_json())["LLM_api_key"] == "****9999"
