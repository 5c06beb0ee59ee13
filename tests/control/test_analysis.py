"""Post-call analysis: the agent's LLM fills summary, disposition, sentiment and data points."""

import pytest

from control import jobs
from control.models import Call, Role, WebhookDelivery
from control.services import analysis
from control.services import calls as call_service
from control.services.agents import create_agent
from control.services.webhooks import set_endpoint
from tests.conftest import make_user

SERVICE = {"Authorization": "Bearer test-service-token"}
REPORT = {
    "status": "completed",
    "end_reason": "user_hangup",
    "transcript": [
        {"role": "assistant", "text": "Hello, Acme Solar.", "started_at": None},
        {"role": "user", "text": "I want panels, my budget is 9000 dollars.", "started_at": None},
    ],
}


@pytest.fixture
def loopback(settings):
    """The scripted LLM listens on loopback: private URLs allowed (at save and at call time)."""
    return settings.model_copy(update={"allow_private_urls": True})


async def analysed(call_id, settings, redis):
    """The call once the background jobs have run (analysis is a job the report queued)."""
    await jobs.drain(jobs.JobContext(settings, redis))
    call = await Call.get(id=call_id)
    assert call.summary or call.disposition, "no analysis stored"
    return call


async def test_completed_call_is_analysed_and_fires_call_analyzed(
    client, db, loopback, redis, scripted_llm
):
    scripted_llm.on(
        "Analyse this call",
        '{"summary": "Caller wants solar panels.", "disposition": "interested", '
        '"sentiment": "positive", "budget": 9000, "success": true}',
    )
    _, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(
        loopback,
        workspace.id,
        {
            "agent_name": "Solar",
            "LLM_base_url": scripted_llm.base_url,
            "LLM_model": "scripted",
            "post_call_analysis": {
                "dispositions": [
                    {"name": "interested", "description": "wants a quote"},
                    {"name": "not_interested"},
                ],
                "data_points": [{"name": "budget", "type": "number", "description": "in USD"}],
                "success_evaluation": "the caller asked for a quote",
            },
        },
    )
    await set_endpoint(loopback, workspace.id, "https://hooks.example.com/x")
    call = await call_service.create_call(agent, direction="web")
    response = await client.post(f"/internal/calls/{call.id}/report", json=REPORT, headers=SERVICE)
    assert response.status_code == 200
    call = await analysed(call.id, loopback, redis)
    assert call.summary == "Caller wants solar panels."
    assert (call.disposition, call.sentiment) == ("interested", "positive")
    assert call.extracted_data == {"budget": 9000, "success": True}
    prompt = scripted_llm.requests[-1]["messages"]
    assert "disposition" in str(prompt[0]["content"]) and "budget" in str(prompt[0]["content"])
    assert "9000 dollars" in str(prompt[-1]["content"])
    events = await WebhookDelivery.filter(event_type="call_analyzed").values_list(
        "payload", flat=True
    )
    assert events[0]["data"]["disposition"] == "interested"


async def test_a_disposition_outside_the_list_is_not_stored(
    client, db, loopback, redis, scripted_llm
):
    scripted_llm.on("Analyse this call", '{"summary": "Short call.", "disposition": "on_mars"}')
    _, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(
        loopback,
        workspace.id,
        {
            "agent_name": "Solar",
            "LLM_base_url": scripted_llm.base_url,
            "LLM_model": "scripted",
            "post_call_analysis": {"dispositions": [{"name": "interested"}]},
        },
    )
    call = await call_service.create_call(agent, direction="web")
    await client.post(f"/internal/calls/{call.id}/report", json=REPORT, headers=SERVICE)
    call = await analysed(call.id, loopback, redis)
    assert call.summary == "Short call." and call.disposition is None


@pytest.mark.parametrize(
    "own_key, received", [(None, None), ("sk-agent-own", "Bearer sk-agent-own")]
)
async def test_analysis_never_sends_the_platform_key_to_an_agents_endpoint(
    client, db, loopback, redis, scripted_llm, monkeypatch, own_key, received
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform-secret")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    scripted_llm.on("Analyse this call", '{"summary": "Short call."}')
    _, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    fields = {"LLM_base_url": scripted_llm.base_url, "LLM_model": "scripted"}
    if own_key:
        fields["LLM_api_key"] = own_key
    agent = await create_agent(loopback, workspace.id, {"agent_name": "Solar", **fields})
    assert own_key is None or agent.config["LLM_api_key"] != own_key  # encrypted at rest
    call = await call_service.create_call(agent, direction="web")
    await client.post(f"/internal/calls/{call.id}/report", json=REPORT, headers=SERVICE)
    call = await analysed(call.id, loopback, redis)
    assert call.summary == "Short call."
    assert scripted_llm.authorizations == [received]


ANALYSIS_CONFIG = {
    "summary": True,
    "sentiment": True,
    "dispositions": [{"name": "interested"}, {"name": "not_interested"}],
    "data_points": [{"name": "budget", "type": "number", "description": "in USD"}],
}


def test_the_reply_schema_holds_the_analysis_to_the_allowed_values():
    schema = analysis.reply_schema(ANALYSIS_CONFIG)
    assert schema["required"] == ["summary", "disposition", "sentiment", "budget"]
    assert schema["properties"]["disposition"] == {"enum": ["interested", "not_interested"]}
    assert schema["properties"]["sentiment"] == {"enum": ["positive", "neutral", "negative"]}
    assert schema["properties"]["budget"] == {"type": "number"}


async def test_the_local_llm_fills_summary_and_disposition(client, db, settings, redis):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra) is not installed")
    _, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(
        settings,
        workspace.id,
        {"agent_name": "Solar", "LLM_provider": "local", "post_call_analysis": ANALYSIS_CONFIG},
    )
    call = await call_service.create_call(agent, direction="web")
    await client.post(f"/internal/calls/{call.id}/report", json=REPORT, headers=SERVICE)
    call = await analysed(call.id, settings, redis)
    # Whatever the tiny model thinks, its decoding was held to the schema: the values are valid.
    assert call.summary
    assert call.disposition in ("interested", "not_interested")
    assert call.sentiment in ("positive", "neutral", "negative")
    assert isinstance(call.extracted_data.get("budget"), int | float)
