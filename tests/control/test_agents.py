"""`/agents` configuration: the API.md body, defaults, merge updates, validation and secrets."""

import copy
import uuid

import pytest

from control.models import Agent, Role
from tests.conftest import auth_headers, make_user

API_MD_BODY = {
    "phone_number": "+16505551234",
    "LLM_provider": "open ai",
    "LLM_model": "gpt-4o",
    "STT_provider": "deepgram",
    "TTS_provider": "openai",
    "agent_name": "Sales Agent",
    "system_prompt": "You are a helpful sales assistant...",
    "first_message": "Hello! How can I help you today?",
    "temperature": 0.7,
    "max_tokens": 1024,
    "max_call_duration": 300,
    "custom_functions": [
        {
            "name": "check_inventory",
            "description": "Check product availability",
            "url": "https://api.example.com/inventory",
            "method": "POST",
            "parameters": {},
        }
    ],
}


@pytest.fixture
async def developer(db, settings):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    return auth_headers(settings, user), workspace


async def create(client, headers, **changes):
    body = {**copy.deepcopy(API_MD_BODY), **changes}
    return await client.post("/agents", json=body, headers=headers)


async def test_create_accepts_the_api_md_body_and_normalises(client, developer):
    headers, workspace = developer
    response = await create(client, headers)
    assert response.status_code == 201, await response.get_json()
    agent = await response.get_json()
    assert agent["LLM_provider"] == "openai"
    assert agent["STT_model"] == "nova-3"  # default filled in from the catalogue
    assert agent["TTS_voice"] == "alloy"
    assert agent["interruptible"] is True and agent["recording_enabled"] is False
    function = agent["custom_functions"][0]
    assert function["parameters"] == {"type": "object", "properties": {}, "required": []}
    assert function["timeout"] == 10
    assert (await Agent.get(id=agent["id"])).workspace_id == workspace.id


@pytest.mark.parametrize("spelling", ["openai", "OpenAI", "open ai", "Open-AI"])
async def test_provider_spellings_are_one_provider(client, developer, spelling):
    response = await create(client, developer[0], LLM_provider=spelling, phone_number=None)
    assert response.status_code == 201
    assert (await response.get_json())["LLM_provider"] == "openai"


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"LLM_provider": "skynet"}, "allowed: anthropic, azure,"),
        ({"LLM_model": "gpt-99"}, "gpt-4o"),
        ({"STT_provider": "whisperer"}, "deepgram"),
        ({"TTS_voice": "darth"}, "alloy"),
        ({"phone_number": "6505551234"}, "E.164"),
        ({"temperature": 3}, "temperature"),
        ({"max_call_duration": -5}, "max_call_duration"),
        ({"surprise": True}, "surprise"),
        # PostgreSQL cannot store NUL: refused (400), never failed at the insert (500)
        ({"agent_name": "Sales\x00Agent"}, "NUL"),
        ({"end_call_phrases": ["goodbye\x00"]}, "NUL"),
    ],
)
async def test_bad_configuration_is_a_400_that_says_what_is_allowed(
    client, developer, changes, needle
):
    response = await create(client, developer[0], **changes)
    assert response.status_code == 400
    body = await response.get_json()
    assert body["code"] == "VALIDATION_ERROR"
    assert needle in body["detail"] or any(
        needle in e["field"] or needle in e["message"] for e in body["errors"]
    )
    assert await Agent.all().count() == 0


async def test_openai_compatible_base_url_accepts_any_model(client, developer):
    response = await create(
        client,
        developer[0],
        LLM_base_url="http://ollama.internal:11434/v1",
        LLM_model="llama3.1:8b",
        phone_number=None,
    )
    assert response.status_code == 201
    assert (await response.get_json())["LLM_model"] == "llama3.1:8b"


@pytest.mark.parametrize(
    "function, needle",
    [
        ({"name": "has space", "url": "https://api.example.com"}, "name"),
        ({"name": "end_call", "url": "https://api.example.com"}, "reserved"),
        ({"name": "f", "url": "https://api.example.com", "method": "TRACE"}, "method"),
        ({"name": "f", "url": "ftp://api.example.com"}, "scheme"),
        ({"name": "f", "url": "http://127.0.0.1:8080/admin"}, "private"),
        ({"name": "f", "url": "http://169.254.169.254/latest/meta-data"}, "private"),
        ({"name": "f", "url": "http://[::1]/"}, "private"),
        ({"name": "f", "url": "http://localhost/"}, "private"),
        ({"name": "f", "url": "https://api.example.com", "timeout": 600}, "timeout"),
        (
            {
                "name": "f",
                "url": "https://api.example.com",
                "parameters": {"x": {"type": "banana"}},
            },
            "banana",
        ),
    ],
)
async def test_custom_function_rules(client, developer, function, needle):
    response = await create(client, developer[0], custom_functions=[function], phone_number=None)
    assert response.status_code == 400, await response.get_json()
    assert needle in (await response.get_data(as_text=True))
    assert await Agent.all().count() == 0


async def test_duplicate_function_names_are_refused(client, developer):
    functions = [
        {"name": "f", "url": "https://a.example.com"},
        {"name": "f", "url": "https://b.example.com"},
    ]
    response = await create(client, developer[0], custom_functions=functions)
    assert response.status_code == 400
    assert "unique" in (await response.get_json())["detail"]


async def test_flat_parameters_are_stored_as_json_schema(client, developer):
    function = {
        "name": "book",
        "url": "https://api.example.com/book",
        "method": "GET",
        "parameters": {
            "date": {"type": "string", "description": "ISO date"},
            "party": {"type": "integer", "description": "people"},
        },
    }
    agent = await (await create(client, developer[0], custom_functions=[function])).get_json()
    schema = agent["custom_functions"][0]["parameters"]
    assert schema["type"] == "object"
    assert schema["properties"]["party"] == {"type": "integer", "description": "people"}
    assert sorted(schema["required"]) == ["date", "party"]


async def test_headers_are_encrypted_at_rest_and_masked_on_read(client, developer):
    secret = "Bearer sk-live-abcdef123456"
    function = {
        "name": "crm",
        "url": "https://crm.example.com/lookup",
        "headers": {"Authorization": secret},
    }
    created = await (await create(client, developer[0], custom_functions=[function])).get_json()
    assert created["custom_functions"][0]["headers"]["Authorization"] == "****3456"
    stored = await Agent.get(id=created["id"])
    raw = stored.config["custom_functions"][0]["headers"]["Authorization"]
    assert secret not in raw and "sk-live" not in str(stored.config)
    fetched = await (await client.get(f"/agents/{created['id']}", headers=developer[0])).get_data(
        as_text=True
    )
    assert "sk-live" not in fetched
    # Sending the masked value back keeps the secret; a new value replaces it.
    masked = created["custom_functions"][0]
    put = await client.put(
        f"/agents/{created['id']}", json={"custom_functions": [masked]}, headers=developer[0]
    )
    assert put.status_code == 200
    from control.services.agents import plain_config

    kept = plain_config(client.app.config["SETTINGS"], await Agent.get(id=created["id"]))
    assert kept["custom_functions"][0]["headers"]["Authorization"] == secret


async def test_put_merges_fields_left_out(client, developer):
    created = await (await create(client, developer[0])).get_json()
    response = await client.put(
        f"/agents/{created['id']}",
        json={"temperature": 0.2, "first_message": "Hi {{customer_name}}"},
        headers=developer[0],
    )
    assert response.status_code == 200
    updated = await response.get_json()
    assert updated["temperature"] == 0.2
    assert updated["first_message"] == "Hi {{customer_name}}"
    assert updated["system_prompt"] == API_MD_BODY["system_prompt"]
    assert updated["phone_number"] == "+16505551234"
    assert len(updated["custom_functions"]) == 1


async def test_put_provider_change_takes_the_new_default_model(client, developer):
    created = await (await create(client, developer[0])).get_json()
    response = await client.put(
        f"/agents/{created['id']}",
        json={"STT_provider": "local", "TTS_provider": "local", "LLM_provider": "local"},
        headers=developer[0],
    )
    assert response.status_code == 200, await response.get_json()
    updated = await response.get_json()
    assert updated["STT_model"] == "tiny.en" and updated["LLM_model"] == "SmolLM2-135M-Instruct"


async def test_put_invalid_leaves_the_agent_unchanged(client, developer):
    created = await (await create(client, developer[0])).get_json()
    response = await client.put(
        f"/agents/{created['id']}",
        json={"temperature": 9, "agent_name": "Changed"},
        headers=developer[0],
    )
    assert response.status_code == 400
    assert (await Agent.get(id=created["id"])).agent_name == "Sales Agent"


async def test_a_number_no_workspace_registered_is_accepted_but_inert(client, developer, settings):
    # The API.md body names a number before any is registered: it is kept, and routes nothing.
    created = await create(client, developer[0])
    assert created.status_code == 201
    body = await created.get_json()
    assert body["phone_number"] == "+16505551234"
    assert body["phone_number_status"] == "not_registered"
    assert "/phonenumbers/sip_trunk" in body["phone_number_warning"]
    assert (await Agent.get(id=body["id"])).phone_number is None
    # Naming a number claims nothing: another workspace may name it too.
    other_user, _ = await make_user("other@example.com", role=Role.ADMIN)
    assert (await create(client, auth_headers(settings, other_user))).status_code == 201
    unnumbered = await (await create(client, developer[0], phone_number=None)).get_json()
    assert unnumbered["phone_number_status"] is None


async def test_web_calls_are_off_by_default_and_get_a_key_when_allowed(client, developer):
    created = await (await create(client, developer[0])).get_json()
    assert created["allow_web_calls"] is False and "web_call_public_key" not in created
    forged = await create(client, developer[0], web_call_public_key="wpk_mine", phone_number=None)
    assert forged.status_code == 400  # read-only
    allowed = await client.put(
        f"/agents/{created['id']}",
        json={"allow_web_calls": True, "web_call_origins": ["https://Shop.example.com/"]},
        headers=developer[0],
    )
    assert allowed.status_code == 200, await allowed.get_json()
    body = await allowed.get_json()
    key = body["web_call_public_key"]
    assert key.startswith("wpk_") and body["web_call_origins"] == ["https://shop.example.com"]
    kept = await client.put(
        f"/agents/{created['id']}", json={"temperature": 0.3}, headers=developer[0]
    )
    assert (await kept.get_json())["web_call_public_key"] == key
    assert (
        await client.put(
            f"/agents/{created['id']}",
            json={"web_call_public_key": "wpk_mine"},
            headers=developer[0],
        )
    ).status_code == 400
    bad_origin = await client.put(
        f"/agents/{created['id']}",
        json={"web_call_origins": ["https://shop.example.com/path"]},
        headers=developer[0],
    )
    assert bad_origin.status_code == 400


async def test_list_get_delete_and_pagination(client, developer):
    for index in range(3):
        await create(
            client, developer[0], agent_name=f"A{index}", phone_number=f"+1650555000{index}"
        )
    listed = await (await client.get("/agents?page_size=2", headers=developer[0])).get_json()
    assert listed["total"] == 3 and len(listed["items"]) == 2 and listed["has_next"] is True
    assert listed["items"][0]["agent_name"] == "A2"  # newest first
    agent_id = listed["items"][0]["id"]
    assert (await client.delete(f"/agents/{agent_id}", headers=developer[0])).status_code == 204
    assert (await client.get(f"/agents/{agent_id}", headers=developer[0])).status_code == 404
    assert (await client.get(f"/agents/{uuid.uuid4()}", headers=developer[0])).status_code == 404


async def test_agent_routes_role_matrix(client, settings, db):
    """Reads need member; writes (agents, knowledge files) need developer; keys follow roles."""
    from control.services.workspaces import create_api_key

    admin, workspace = await make_user("admin@example.com", role=Role.ADMIN)
    developer, _ = await make_user("d@example.com", role=Role.DEVELOPER, workspace=workspace)
    member, _ = await make_user("m@example.com", role=Role.MEMBER, workspace=workspace)
    _, dev_key = await create_api_key(workspace.id, admin, "dev", Role.DEVELOPER)
    _, member_key = await create_api_key(workspace.id, admin, "member", Role.MEMBER)
    callers = {
        "admin": (auth_headers(settings, admin), True),
        "developer": (auth_headers(settings, developer), True),
        "developer_key": ({"X-API-Key": dev_key}, True),
        "member": (auth_headers(settings, member), False),
        "member_key": ({"X-API-Key": member_key}, False),
    }
    for name, (headers, writes) in callers.items():
        created = await client.post("/agents", json={"agent_name": f"by {name}"}, headers=headers)
        assert (created.status_code == 201) == writes, name
        assert (await client.get("/agents", headers=headers)).status_code == 200, name
    agent_id = (await Agent.filter(workspace_id=workspace.id).first()).id
    for name, (headers, writes) in callers.items():
        assert (await client.get(f"/agents/{agent_id}", headers=headers)).status_code == 200
        assert (await client.get(f"/agents/{agent_id}/files", headers=headers)).status_code == 200
        put = await client.put(f"/agents/{agent_id}", json={"temperature": 0.5}, headers=headers)
        assert (put.status_code == 200) == writes, name
        upload = await client.post(f"/agents/{agent_id}/upload", headers=headers)
        assert upload.status_code == (400 if writes else 403), name  # 400: no files sent
        query = await client.post(f"/agents/{agent_id}/query", json={"query": "x"}, headers=headers)
        assert query.status_code == 409, name  # allowed for every role; nothing indexed yet
    assert (
        await client.delete(f"/agents/{agent_id}", headers=callers["member"][0])
    ).status_code == 403
    assert (
        await client.delete(f"/agents/{agent_id}", headers=callers["developer_key"][0])
    ).status_code == 204


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/v1",
        "http://127.0.0.1:11434/v1",
        "http://10.0.0.5/v1",
        "file:///etc/passwd",
    ],
)
async def test_a_private_or_metadata_llm_base_url_is_refused_at_save(client, developer, base_url):
    response = await create(client, developer[0], LLM_base_url=base_url, LLM_model="x")
    assert response.status_code == 400
    body = await response.get_json()
    assert "LLM_base_url" in body["detail"]
    assert await Agent.all().count() == 0


async def test_llm_api_key_is_write_only_and_masked_on_read(client, developer):
    created = await create(
        client,
        developer[0],
        LLM_base_url="https://llm.example.com/v1",
        LLM_model="llama3.1:8b",
        LLM_api_key="sk-agent-own-12345678",
    )
    assert created.status_code == 201, await created.get_json()
    agent = await created.get_json()
    assert agent["LLM_api_key"] == "****5678"
    stored = await Agent.get(id=agent["id"])
    assert "sk-agent-own" not in str(stored.config)
    fetched = await client.get(f"/agents/{agent['id']}", headers=developer[0])
    assert "sk-agent-own" not in await fetched.get_data(as_text=True)
    # the masked value sent back keeps the key; the same host keeps it too
    put = await client.put(
        f"/agents/{agent['id']}",
        json={"LLM_api_key": "****5678", "LLM_base_url": "https://llm.example.com/v2"},
        headers=developer[0],
    )
    assert put.status_code == 200, await put.get_json()
    from control.services.agents import plain_config

    kept = plain_config(client.app.config["SETTINGS"], await Agent.get(id=agent["id"]))
    assert kept["LLM_api_key"] == "sk-agent-own-12345678"


async def test_the_stored_llm_key_does_not_follow_a_new_llm_host(client, developer):
    created = await (
        await create(
            client,
            developer[0],
            LLM_base_url="https://llm.example.com/v1",
            LLM_model="llama3.1:8b",
            LLM_api_key="sk-agent-own-12345678",
        )
    ).get_json()
    url = f"/agents/{created['id']}"
    for body in (
        {"LLM_base_url": "https://attacker.example.net/v1"},
        {"LLM_base_url": "https://attacker.example.net/v1", "LLM_api_key": "****5678"},
    ):
        moved = await client.put(url, json=body, headers=developer[0])
        assert moved.status_code == 400
        assert "LLM_api_key" in (await moved.get_json())["detail"]
    fresh = await client.put(
        url,
        json={"LLM_base_url": "https://other.example.net/v1", "LLM_api_key": "sk-new-key-000000"},
        headers=developer[0],
    )
    assert fresh.status_code == 200 and (await fresh.get_json())["LLM_api_key"] == "****0000"


async def test_a_masked_header_does_not_follow_its_function_to_a_new_host(client, developer):
    function = {
        "name": "crm",
        "url": "https://crm.example.com/lookup",
        "headers": {"Authorization": "Bearer sk-live-abcdef123456"},
    }
    created = await (await create(client, developer[0], custom_functions=[function])).get_json()
    url = f"/agents/{created['id']}"
    masked = created["custom_functions"][0]
    moved = {**masked, "url": "https://attacker.example.net/collect"}
    response = await client.put(url, json={"custom_functions": [moved]}, headers=developer[0])
    assert response.status_code == 400
    body = await response.get_json()
    assert "Authorization" in body["detail"] and "again" in body["detail"]
    from control.services.agents import plain_config

    settings = client.app.config["SETTINGS"]
    stored = plain_config(settings, await Agent.get(id=created["id"]))
    assert stored["custom_functions"][0]["url"] == "https://crm.example.com/lookup"
    # the same host keeps it; a value sent in full goes anywhere
    same_host = {**masked, "url": "https://crm.example.com/v2/lookup"}
    response = await client.put(url, json={"custom_functions": [same_host]}, headers=developer[0])
    assert response.status_code == 200
    resent = {**moved, "headers": {"Authorization": "Bearer sk-other-999999"}}
    response = await client.put(url, json={"custom_functions": [resent]}, headers=developer[0])
    assert response.status_code == 200
