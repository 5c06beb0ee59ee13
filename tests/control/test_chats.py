"""`/chats`: the agent's brain in text, with a custom function, a knowledge passage and history."""

import json

import pytest

from control import jobs
from control.models import ChatMessage, Role
from tests.conftest import auth_headers, make_user, scripted_agent_config
from tests.control.conftest import check_inventory
from tests.control.test_knowledge_api import upload, wait_until_settled
from tests.fakes.openai_server import tool_call


@pytest.fixture
async def chat_agent(client, settings, scripted_llm, inventory_api, db):
    # Loopback endpoints (the scripted LLM, the inventory API) need private URLs allowed.
    client.app.config["SETTINGS"] = settings.model_copy(update={"allow_private_urls": True})
    user, _ = await make_user("dev@example.com", role=Role.DEVELOPER)
    outsider, _ = await make_user("outsider@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, user)
    body = scripted_agent_config(
        scripted_llm,
        agent_name="Shop assistant",
        system_prompt="You are the assistant of Acme Shop. Customer: {{customer_name}}.",
        custom_functions=[
            check_inventory(inventory_api[0], headers={"X-Api-Token": "tok-123456789"})
        ],
    )
    created = await client.post("/agents", json=body, headers=headers)
    assert created.status_code == 201, await created.get_json()
    yield {
        "id": (await created.get_json())["id"],
        "dev": headers,
        "outsider": auth_headers(settings, outsider),
    }
    client.app.config["SETTINGS"] = settings


async def test_chat_uses_the_prompt_a_custom_function_and_keeps_history(
    client, chat_agent, scripted_llm, inventory_api
):
    scripted_llm.on("in stock", tool_call("check_inventory", sku="A-100"))
    scripted_llm.on_tool("check_inventory", "Yes: {tool_output}")
    scripted_llm.on("hello", "Hello! How can I help?")
    first = await client.post(
        "/chats",
        json={
            "agent_id": chat_agent["id"],
            "message": "hello",
            "dynamic_variables": {"customer_name": "Ada"},
        },
        headers=chat_agent["dev"],
    )
    assert first.status_code == 200, await first.get_json()
    body = await first.get_json()
    assert body["reply"] == "Hello! How can I help?" and body["session_id"]
    system = scripted_llm.requests[-1]["messages"][0]
    assert "Acme Shop" in str(system["content"]) and "Ada" in str(system["content"])

    second = await client.post(
        "/chats",
        json={
            "agent_id": chat_agent["id"],
            "message": "Is A-100 in stock?",
            "session_id": body["session_id"],
        },
        headers=chat_agent["dev"],
    )
    reply = await second.get_json()
    assert second.status_code == 200, reply
    assert reply["tool_calls"][0]["name"] == "check_inventory"
    assert '"in_stock": 7' in reply["reply"] or "in_stock" in reply["reply"]
    assert inventory_api[1][-1] == {"body": {"sku": "A-100"}, "auth": "tok-123456789"}
    # the second turn saw the first one
    contents = [str(m.get("content")) for m in scripted_llm.requests[-2]["messages"]]
    assert any("Hello! How can I help?" in c for c in contents)

    listed = await (
        await client.get(f"/chats?session_id={body['session_id']}", headers=chat_agent["dev"])
    ).get_json()
    assert listed["total"] == 4
    assert [m["role"] for m in listed["items"]] == ["assistant", "user", "assistant", "user"]
    other = await (await client.get("/chats", headers=chat_agent["outsider"])).get_json()
    assert other["total"] == 0


async def test_chat_answers_from_the_knowledge_base(
    client, chat_agent, scripted_llm, settings, redis
):
    await upload(
        client,
        chat_agent,
        [("returns.md", b"# Returns\n\nItems can be returned within 45 days for a full refund.")],
    )
    jobs_context = jobs.JobContext(settings, redis)
    await wait_until_settled(
        client, {**chat_agent, "member": chat_agent["dev"], "jobs": jobs_context}
    )
    scripted_llm.on("return", tool_call("lookup_knowledge", query="return window"))
    scripted_llm.on_tool("lookup_knowledge", "From our policy: {tool_output}")
    response = await client.post(
        "/chats",
        json={"agent_id": chat_agent["id"], "message": "How long do I have to return things?"},
        headers=chat_agent["dev"],
    )
    body = await response.get_json()
    assert response.status_code == 200, body
    assert body["sources"] and body["sources"][0]["file_name"] == "returns.md"
    assert "45 days" in body["reply"]


async def test_chat_with_another_workspaces_agent_is_404(client, chat_agent):
    response = await client.post(
        "/chats",
        json={"agent_id": chat_agent["id"], "message": "hi"},
        headers=chat_agent["outsider"],
    )
    assert response.status_code == 404
    assert await ChatMessage.all().count() == 0


async def test_a_custom_function_is_tried_once_with_sample_arguments(
    client, settings, chat_agent, inventory_api
):
    path = f"/agents/{chat_agent['id']}/functions/check_inventory/test"
    tried = await client.post(path, json={"arguments": {"sku": "B-7"}}, headers=chat_agent["dev"])
    body = await tried.get_json()
    assert tried.status_code == 200, body
    assert body["ok"] is True and json.loads(body["response"]) == {"sku": "B-7", "in_stock": 7}
    # the stored secret header went with it, as on a call
    assert inventory_api[1][-1] == {"body": {"sku": "B-7"}, "auth": "tok-123456789"}

    missing = await client.post(
        f"/agents/{chat_agent['id']}/functions/nope/test", json={}, headers=chat_agent["dev"]
    )
    assert missing.status_code == 404
    assert (await missing.get_json())["code"] == "FUNCTION_NOT_FOUND"
    # another workspace's agent is not there; a member may not trigger outbound requests
    assert (await client.post(path, json={}, headers=chat_agent["outsider"])).status_code == 404
    member, _ = await make_user("member@example.com", role=Role.MEMBER)
    as_member = await client.post(path, json={}, headers=auth_headers(settings, member))
    assert as_member.status_code == 403


async def test_a_tried_function_that_fails_says_what_the_llm_would_hear(
    client, settings, chat_agent
):
    # Without private URLs allowed, the loopback endpoint is refused by the SSRF check.
    client.app.config["SETTINGS"] = settings
    path = f"/agents/{chat_agent['id']}/functions/check_inventory/test"
    tried = await client.post(path, json={"arguments": {"sku": "B-7"}}, headers=chat_agent["dev"])
    body = await tried.get_json()
    assert tried.status_code == 200 and body["ok"] is False and body["response"] is None
    assert "not allowed to call its address" in body["error"]
