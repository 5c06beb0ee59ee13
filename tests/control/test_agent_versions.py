"""Agent versions: what makes one, drafts, publish, restore, rollback, splits and tenancy."""

import json
import uuid

import pytest

from control import models
from control.models import Agent, AgentVersion, Role, WebhookDelivery
from control.services.webhooks import set_endpoint
from tests.conftest import auth_headers, make_user
from tests.control.test_migrations import migrate, new_workspace, scratch_url, sql  # noqa: F401

BODY = {
    "agent_name": "Sales",
    "system_prompt": "You sell things.",
    "first_message": "Hello!",
    "custom_functions": [
        {
            "name": "check_stock",
            "url": "https://api.example.com/stock",
            "headers": {"Authorization": "Bearer s3cret-token"},
        }
    ],
}


@pytest.fixture
async def developer(db, settings):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    return auth_headers(settings, user), workspace


async def new_agent(client, headers, **fields) -> dict:
    response = await client.post("/agents", json={**BODY, **fields}, headers=headers)
    assert response.status_code == 201, await response.get_json()
    return await response.get_json()


async def save(client, headers, agent_id, **changes) -> dict:
    response = await client.put(f"/agents/{agent_id}", json=changes, headers=headers)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def versions(client, headers, agent_id) -> list[dict]:
    response = await client.get(f"/agents/{agent_id}/versions", headers=headers)
    assert response.status_code == 200, await response.get_json()
    return (await response.get_json())["items"]


async def test_a_new_agent_starts_at_version_1_published(client, developer):
    headers, _ = developer
    agent = await new_agent(client, headers, version_note="first cut")
    assert (agent["latest_version"], agent["published_version"], agent["draft"]) == (1, 1, False)
    assert agent["auto_publish"] is True and agent["require_passing_tests"] is False
    (only,) = await versions(client, headers, agent["id"])
    assert only["version"] == 1 and only["published"] and only["latest"]
    assert only["version_note"] == "first cut" and only["created_by"] == "dev@example.com"


async def test_only_a_change_to_what_a_call_does_makes_a_version(client, developer):
    headers, _ = developer
    agent = await new_agent(client, headers)
    shown = await save(client, headers, agent["id"])  # nothing sent
    # the whole agent sent back as shown (secret masked): still no real change
    echoed = {k: shown[k] for k in ("system_prompt", "first_message", "custom_functions")}
    await save(client, headers, agent["id"], **echoed)
    await save(client, headers, agent["id"], agent_name="Sales (renamed)")
    await save(client, headers, agent["id"], auto_publish=True, require_passing_tests=False)
    assert [v["version"] for v in await versions(client, headers, agent["id"])] == [1]

    changed = await save(client, headers, agent["id"], system_prompt="You sell better things.")
    assert (changed["latest_version"], changed["published_version"]) == (2, 2)
    listed = await versions(client, headers, agent["id"])
    assert [v["version"] for v in listed] == [2, 1]  # newest first
    assert [v["published"] for v in listed] == [True, False]


async def test_a_version_shows_its_configuration_as_it_was_with_secrets_masked(client, developer):
    headers, _ = developer
    agent = await new_agent(client, headers)
    await save(client, headers, agent["id"], system_prompt="Second prompt.", agent_name="Renamed")
    response = await client.get(f"/agents/{agent['id']}/versions/1", headers=headers)
    assert response.status_code == 200
    first = await response.get_json()
    assert first["config"]["system_prompt"] == "You sell things."
    header = first["config"]["custom_functions"][0]["headers"]["Authorization"]
    assert "s3cret-token" not in header and header.endswith("oken")
    assert "agent_name" not in first["config"] and "auto_publish" not in first["config"]
    missing = await client.get(f"/agents/{agent['id']}/versions/9", headers=headers)
    assert missing.status_code == 404
    assert (await missing.get_json())["code"] == "VERSION_NOT_FOUND"


async def test_drafts_publish_restore_and_rollback(client, developer, settings):
    headers, workspace = developer
    await set_endpoint(settings, workspace.id, "https://hooks.example.com/voxline")
    agent = await new_agent(client, headers)
    agent_id = agent["id"]
    draft = await save(client, headers, agent_id, auto_publish=False, system_prompt="Draft prompt.")
    assert (draft["latest_version"], draft["published_version"], draft["draft"]) == (2, 1, True)
    assert draft["system_prompt"] == "Draft prompt."  # the agent shows its latest settings

    published = await client.post(
        f"/agents/{agent_id}/publish", json={"version": 2}, headers=headers
    )
    assert published.status_code == 200, await published.get_json()
    assert (await published.get_json())["published_version"] == 2
    events = await WebhookDelivery.filter(event_type="agent.version_published").order_by(
        "created_at"
    )
    assert [event.payload["data"]["version"] for event in events] == [1, 2]  # created, published
    assert events[-1].payload["data"]["agent_id"] == agent_id

    rollback = await client.post(
        f"/agents/{agent_id}/publish", json={"version": 1}, headers=headers
    )
    assert (await rollback.get_json())["published_version"] == 1

    restored = await client.post(f"/agents/{agent_id}/versions/1/restore", headers=headers)
    assert restored.status_code == 201, await restored.get_json()
    body = await restored.get_json()
    assert body["version"] == 3 and body["version_note"] == "Restored from version 1"
    assert body["published"] is False  # auto_publish is off: a draft
    now = await (await client.get(f"/agents/{agent_id}", headers=headers)).get_json()
    assert now["system_prompt"] == "You sell things." and now["published_version"] == 1
    third = await (await client.get(f"/agents/{agent_id}/versions/3", headers=headers)).get_json()
    assert third["config"]["system_prompt"] == "You sell things."

    missing = await client.post(f"/agents/{agent_id}/publish", json={"version": 7}, headers=headers)
    assert missing.status_code == 404
    assert await AgentVersion.filter(agent_id=agent_id).count() == 3


async def test_publishing_can_require_a_passing_run_of_that_version(client, developer):
    headers, workspace = developer
    agent = await new_agent(client, headers, require_passing_tests=True)
    agent_id = agent["id"]
    draft = await save(client, headers, agent_id, system_prompt="Needs tests.")
    # a version nobody tested is never published by a save, auto_publish or not
    assert (draft["latest_version"], draft["published_version"]) == (2, 1)

    async def publish():
        return await client.post(
            f"/agents/{agent_id}/publish", json={"version": 2}, headers=headers
        )

    refused = await publish()
    assert refused.status_code == 409
    assert (await refused.get_json())["code"] == "TESTS_NOT_PASSED"

    async def run(version, status):
        await models.TestRun.create(
            workspace_id=workspace.id, agent_id=agent_id, agent_version=version, status=status
        )

    await run(1, models.TestRunStatus.PASSED)  # another version's pass does not count
    await run(2, models.TestRunStatus.FAILED)
    assert (await publish()).status_code == 409
    await run(2, models.TestRunStatus.PASSED)
    await run(2, models.TestRunStatus.CANCELLED)  # not completed: the pass stands
    accepted = await publish()
    assert accepted.status_code == 200, await accepted.get_json()
    assert (await Agent.get(id=agent_id)).published_version == 2


@pytest.mark.parametrize(
    "split, code",
    [
        ([{"version": 1, "weight": 60}, {"version": 2, "weight": 30}], "VALIDATION_ERROR"),
        ([{"version": 1, "weight": 50}, {"version": 1, "weight": 50}], "VALIDATION_ERROR"),
        ([{"version": 1, "weight": 50}, {"version": 5, "weight": 50}], "VERSION_NOT_FOUND"),
        ([{"version": 1, "weight": 20}] * 6, "VALIDATION_ERROR"),
        ([{"version": 1, "weight": 50.5}, {"version": 2, "weight": 49.5}], "VALIDATION_ERROR"),
    ],
)
async def test_a_traffic_split_is_checked(client, developer, split, code):
    headers, _ = developer
    agent = await new_agent(client, headers)
    await save(client, headers, agent["id"], system_prompt="Second.")
    response = await client.put(
        f"/agents/{agent['id']}", json={"traffic_split": split}, headers=headers
    )
    assert response.status_code == 400
    assert (await response.get_json())["code"] == code
    stored = await Agent.get(id=agent["id"])
    assert stored.traffic_split is None and stored.latest_version == 2


async def test_a_split_is_the_agents_not_a_version(client, developer):
    headers, _ = developer
    agent = await new_agent(client, headers)
    await save(client, headers, agent["id"], system_prompt="Second.")
    split = [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}]
    saved = await save(client, headers, agent["id"], traffic_split=split)
    assert saved["traffic_split"] == split and saved["latest_version"] == 2
    listed = await versions(client, headers, agent["id"])
    assert [v["split_weight"] for v in listed] == [20, 80]
    cleared = await save(client, headers, agent["id"], traffic_split=None)
    assert cleared["traffic_split"] is None


async def test_members_read_versions_but_cannot_publish_or_restore(client, developer, settings):
    headers, workspace = developer
    agent = await new_agent(client, headers)
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=workspace)
    as_member = auth_headers(settings, member)
    assert len(await versions(client, as_member, agent["id"])) == 1
    publish = await client.post(
        f"/agents/{agent['id']}/publish", json={"version": 1}, headers=as_member
    )
    restore = await client.post(f"/agents/{agent['id']}/versions/1/restore", headers=as_member)
    assert (publish.status_code, restore.status_code) == (403, 403)


async def test_another_workspace_can_read_publish_or_restore_none_of_it(
    client, developer, settings
):
    headers, _ = developer
    agent = await new_agent(client, headers)
    outsider, _ = await make_user("other@example.com", role=Role.ADMIN)
    theirs = auth_headers(settings, outsider)
    agent_id = agent["id"]
    answers = [
        await client.get(f"/agents/{agent_id}/versions", headers=theirs),
        await client.get(f"/agents/{agent_id}/versions/1", headers=theirs),
        await client.post(f"/agents/{agent_id}/versions/1/restore", headers=theirs),
        await client.post(f"/agents/{agent_id}/publish", json={"version": 1}, headers=theirs),
    ]
    assert [answer.status_code for answer in answers] == [404] * 4
    assert await AgentVersion.filter(agent_id=agent_id).count() == 1


async def test_0018_gives_each_agent_saved_before_versions_its_version_1(scratch_url):  # noqa: F811
    await migrate(scratch_url, "0017_agent_tests")
    workspace, agent_id = await new_workspace(scratch_url), uuid.uuid4()
    config = {"system_prompt": "Old prompt.", "phone_number": "+16505551234", "temperature": 0.4}
    await sql(
        scratch_url,
        'INSERT INTO "agents" ("id", "workspace_id", "agent_name", "config", "created_at", '
        "\"updated_at\") VALUES ($1, $2, 'Old', $3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        agent_id,
        workspace,
        json.dumps(config),
    )

    await migrate(scratch_url)

    (agent,) = await sql(scratch_url, 'SELECT "published_version", "latest_version" FROM "agents"')
    assert agent == (1, 1)
    ((number, stored),) = await sql(scratch_url, 'SELECT "number", "config" FROM "agent_versions"')
    assert number == 1
    assert json.loads(stored) == {"system_prompt": "Old prompt.", "temperature": 0.4}
