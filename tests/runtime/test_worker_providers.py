"""A call's providers through the whole path: credentials set with the API, carried in the call
spec to the worker, sent to the vendor's stand-in; and a call without them failing fast."""

from __future__ import annotations

import pytest

from control.models import Call, Role
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user
from tests.fakes.livekit_server import no_caller
from tests.runtime.test_worker import AGENT_NUMBER, TRUNK_BODY, outbound_job, web_job


@pytest.fixture
async def claude_line(client, settings, livekit, monkeypatch):
    """An admin's number with an outbound trunk and an agent on Anthropic, speaking offline."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    user, workspace = await make_user("admin@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, user)
    trunk = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=headers)
    assert trunk.status_code == 201
    agent = await create_agent(
        settings,
        workspace.id,
        {
            "agent_name": "Claude",
            "phone_number": AGENT_NUMBER,
            "LLM_provider": "anthropic",
            "first_message": "Hello from Claude.",
            "allow_web_calls": True,
        },
    )
    return {"headers": headers, "workspace": workspace, "agent": agent}


async def test_an_outbound_call_without_credentials_fails_fast_and_never_dials(
    client, claude_line, livekit, livekit_api, control_plane, new_runner
):
    job = await outbound_job(client, claude_line, livekit)
    runner = new_runner()

    with pytest.raises(Exception, match="provider_not_configured"):
        await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None)
    await runner.finish("error")

    assert livekit.calls("CreateSIPParticipant") == []  # nobody's phone rang
    call = await Call.get(id=job.call_id)
    assert (call.status, call.end_reason) == ("failed", "provider_not_configured")
    assert "(anthropic)" in call.error and "ANTHROPIC_API_KEY" in call.error


async def test_the_workspace_key_set_with_the_api_reaches_the_vendor_on_a_call(
    client, settings, claude_line, scripted_anthropic, livekit, livekit_api, new_runner
):
    workspace = claude_line["workspace"]
    response = await client.put(
        f"/workspaces/{workspace.id}/providers/anthropic",
        json={"api_key": "sk-ant-from-the-workspace"},
        headers=claude_line["headers"],
    )
    assert response.status_code == 200
    scripted_anthropic.on("table", "Booked for two.")
    job = await web_job(client, livekit)
    runner = new_runner()

    assert await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None) is None
    await runner.agent.greeting
    await runner.session.run(user_input="A table for two, please.")
    await runner.session.aclose()
    await runner.finish("room closed")

    assert set(scripted_anthropic.api_keys) == {"sk-ant-from-the-workspace"}
    call = await Call.get(id=job.call_id)
    assert call.status == "completed"
    said = [turn["text"] for turn in call.transcript if turn["role"] == "assistant"]
    assert said == ["Hello from Claude.", "Booked for two."]


async def test_a_fallback_takes_over_when_the_primary_fails_mid_call(
    client, settings, claude_line, scripted_anthropic, scripted_llm, livekit, livekit_api,
    new_runner, monkeypatch,
):  # fmt: skip
    monkeypatch.setenv("ANTHROPIC_API_KEY", "platform-anthropic")
    monkeypatch.setenv("GROQ_API_KEY", "platform-groq")
    monkeypatch.setenv("VOXLINE_GROQ_URL", scripted_llm.base_url)
    agent = claude_line["agent"]
    response = await client.put(
        f"/agents/{agent.id}",
        json={"LLM_fallbacks": [{"provider": "groq", "model": "llama-3.1-8b-instant"}]},
        headers=claude_line["headers"],
    )
    assert response.status_code == 200, await response.get_json()
    scripted_anthropic.on("table", "Booked for two.")
    scripted_llm.on("time", "Seven o'clock, from the fallback.")
    job = await web_job(client, livekit)
    runner = new_runner()
    await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None)
    await runner.agent.greeting

    await runner.session.run(user_input="A table for two, please.")
    scripted_anthropic.fail_with.extend([529] * 20)  # Anthropic is overloaded from now on
    await runner.session.run(user_input="What time?")
    await runner.session.aclose()
    await runner.finish("room closed")

    call = await Call.get(id=job.call_id)
    said = [turn["text"] for turn in call.transcript if turn["role"] == "assistant"]
    assert said == ["Hello from Claude.", "Booked for two.", "Seven o'clock, from the fallback."]
    assert [row["llm_provider"] for row in call.latencies] == ["anthropic", "groq"]
    assert scripted_llm.authorizations == ["Bearer platform-groq"]
    assert set(scripted_anthropic.api_keys) == {"platform-anthropic"}


async def test_fallbacks_are_checked_at_save(client, claude_line):
    agent = claude_line["agent"]
    for fallbacks in (
        [{"provider": "skynet"}],
        [{"provider": "anthropic"}],  # the primary again
        [{"provider": "groq"}, {"provider": "openai"}, {"provider": "together"}],  # over 2
    ):
        response = await client.put(
            f"/agents/{agent.id}", json={"LLM_fallbacks": fallbacks}, headers=claude_line["headers"]
        )
        assert response.status_code == 400, fallbacks
