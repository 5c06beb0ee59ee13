"""`/internal`: call specs for workers (by call, agent and dialled number) and call reports."""

import uuid

import pytest

from control.models import Call, PhoneNumber, Role
from control.services import calls as call_service
from control.services.agents import create_agent
from runtime.spec import CallSpec
from tests.conftest import make_user

SERVICE = {"Authorization": "Bearer test-service-token"}


@pytest.fixture
async def agent(db, settings):
    _, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    # The workspace holds the number (as /phonenumbers/sip_trunk records it), so it routes.
    await PhoneNumber.create(
        workspace_id=workspace.id,
        phone_number="+16505551234",
        source="sip_trunk",
        provider="sip",
        inbound_trunk_id="ST_inbound",
        dispatch_rule_id="SDR_rule",
    )
    return await create_agent(
        settings,
        workspace.id,
        {
            "agent_name": "Front desk",
            "phone_number": "+16505551234",
            "system_prompt": "Help {{customer_name}}.",
            "first_message": "Hi {{customer_name}}!",
            "custom_functions": [
                {
                    "name": "crm",
                    "url": "https://crm.example.com/x",
                    "headers": {"Authorization": "Bearer secret-value-1234"},
                }
            ],
        },
    )


async def test_internal_routes_need_the_service_token(client, agent):
    call = await call_service.create_call(agent, direction="web")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await client.get(f"/internal/calls/{call.id}/spec", headers=headers)
        assert response.status_code == 401
    response = await client.post(f"/internal/calls/{call.id}/report", json={"status": "completed"})
    assert response.status_code == 401
    assert (await Call.get(id=call.id)).status == "queued"


async def test_spec_by_call_carries_everything_the_worker_needs(client, agent):
    call = await call_service.create_call(
        agent,
        direction="outbound",
        from_number="+16505551234",
        to_number="+14155559876",
        dynamic_variables={"customer_name": "John"},
    )
    response = await client.get(f"/internal/calls/{call.id}/spec", headers=SERVICE)
    assert response.status_code == 200
    spec = CallSpec.from_dict(await response.get_json())
    assert spec.call_id == str(call.id) and spec.direction == "outbound"
    assert spec.dynamic_variables == {"customer_name": "John"}
    assert spec.agent.system_prompt == "Help {{customer_name}}."
    assert spec.agent.custom_functions[0].headers == {"Authorization": "Bearer secret-value-1234"}
    assert spec.agent.stt_model == "nova-3" and spec.agent.knowledge_ready is False


async def test_spec_by_agent_and_by_number_open_call_logs(client, agent):
    by_agent = await client.post(
        f"/internal/agents/{agent.id}/calls", json={"direction": "web"}, headers=SERVICE
    )
    assert by_agent.status_code == 201
    web = await Call.get(id=(await by_agent.get_json())["call_id"])
    assert (web.call_type, web.call_direction) == ("web", "inbound")

    by_number = await client.post(
        "/internal/numbers/+16505551234/calls",
        json={"from_number": "+14155550000"},
        headers=SERVICE,
    )
    assert by_number.status_code == 201
    inbound = await Call.get(id=(await by_number.get_json())["call_id"])
    assert (inbound.call_type, inbound.call_direction, inbound.to_number) == (
        "phone",
        "inbound",
        "+16505551234",
    )

    unknown = await client.post("/internal/numbers/+19995550000/calls", json={}, headers=SERVICE)
    assert unknown.status_code == 404
    bad = await client.post("/internal/numbers/12345/calls", json={}, headers=SERVICE)
    assert bad.status_code == 400
    missing = await client.post(f"/internal/agents/{uuid.uuid4()}/calls", json={}, headers=SERVICE)
    assert missing.status_code == 404


async def test_report_is_stored_on_the_call_log(client, agent):
    call = await call_service.create_call(agent, direction="web")
    report = {
        "status": "completed",
        "end_reason": "user_hangup",
        "started_at": "2026-11-28T10:00:00+00:00",
        "answered_at": "2026-11-28T10:00:01+00:00",
        "ended_at": "2026-11-28T10:01:31+00:00",
        "transcript": [
            {"role": "assistant", "text": "Hi!", "started_at": "2026-11-28T10:00:01+00:00"},
            {"role": "user", "text": "Bye", "started_at": "2026-11-28T10:01:00+00:00"},
        ],
        "usage": {
            "llm_prompt_tokens": 120,
            "llm_completion_tokens": 30,
            "stt_seconds": 12.5,
            "tts_characters": 80,
        },
        "latencies": [
            {
                "turn": 1,
                "end_of_utterance_ms": 300,
                "llm_ttft_ms": 250,
                "tts_ttfb_ms": 120,
                "end_to_end_ms": 700,
            }
        ],
    }
    response = await client.post(f"/internal/calls/{call.id}/report", json=report, headers=SERVICE)
    assert response.status_code == 200
    stored = await Call.get(id=call.id)
    assert stored.status == "completed" and stored.end_reason == "user_hangup"
    assert stored.duration_seconds == 90
    assert stored.transcript[1]["text"] == "Bye" and stored.usage["tts_characters"] == 80
    bad = await client.post(
        f"/internal/calls/{call.id}/report", json={"status": "exploded"}, headers=SERVICE
    )
    assert bad.status_code == 400
    assert (await Call.get(id=call.id)).status == "completed"
