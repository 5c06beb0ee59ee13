"""Agent hand-offs through the platform: settings checked at save (same workspace only), the
reachable agents carried in the call spec, the call log's hand-offs and final agent, their
`agent_handoff` events, reports by answering and final agent (the spoken simulated call is
in test_handoff_simulated.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from control.models import Role, WebhookDelivery
from control.services.agents import create_agent
from control.services.webhooks import set_endpoint
from runtime.spec import CallReport
from tests.conftest import auth_headers, make_user

SERVICE = {"Authorization": "Bearer test-service-token"}


@pytest.fixture
async def team(db, settings) -> dict[str, Any]:
    """A developer's workspace with three agents (front desk, sales, billing) and an agent of
    another workspace."""
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agents = {
        name: await create_agent(settings, workspace.id, {"agent_name": name})
        for name in ("front", "sales", "billing")
    }
    _, elsewhere = await make_user("other@example.com", role=Role.DEVELOPER)
    stranger = await create_agent(settings, elsewhere.id, {"agent_name": "stranger"})
    return {
        "headers": auth_headers(settings, user),
        "workspace": workspace,
        "stranger": stranger,
        **agents,
    }


async def _put(client, team, agent_name: str, **fields: Any):
    return await client.put(f"/agents/{team[agent_name].id}", json=fields, headers=team["headers"])


def _to(agent, **fields: Any) -> dict[str, Any]:
    return {"agent_id": str(agent.id), **fields}


@pytest.mark.parametrize(
    ("destinations", "field"),
    [
        (lambda t: [_to(t["stranger"], name="x")], "handoff_destinations.0.agent_id"),
        (lambda t: [_to(t["front"], name="me")], "handoff_destinations.0.agent_id"),
        (lambda t: [{"agent_id": str(uuid.uuid4())}], "handoff_destinations.0.agent_id"),
        (lambda t: [{"agent_id": "not-an-id"}], "handoff_destinations.0.agent_id"),
        (lambda t: [_to(t["sales"], carry="everything")], "handoff_destinations.0.carry"),
        (lambda t: [_to(t["sales"], name="Sales Team")], "handoff_destinations.0.name"),
    ],
    ids=["another-workspace", "itself", "missing", "not-an-id", "bad-carry", "bad-name"],
)
async def test_bad_handoff_destinations_are_a_400_naming_the_field(
    client, team, destinations, field
):
    response = await _put(client, team, "front", handoff_destinations=destinations(team))
    assert response.status_code == 400
    body = await response.get_json()
    assert [error["field"] for error in body["errors"]] == [field], body
    assert "stranger" not in str(body)  # another workspace's agent is not described


async def test_bad_max_handoffs_and_duplicate_names_are_refused(client, team):
    response = await _put(client, team, "front", max_handoffs=-1)
    assert response.status_code == 400
    assert [e["field"] for e in (await response.get_json())["errors"]] == ["max_handoffs"]
    twice = [_to(team["sales"], name="sales"), _to(team["billing"], name="sales")]
    assert (await _put(client, team, "front", handoff_destinations=twice)).status_code == 400


async def test_handoff_settings_are_kept_and_every_reachable_agent_reaches_the_call_spec(
    client, team
):
    front = await _put(
        client,
        team,
        "front",
        handoff_destinations=[_to(team["sales"], description="Plans", carry="summary")],
        max_handoffs=2,
    )
    assert front.status_code == 200, await front.get_json()
    body = await front.get_json()
    assert body["handoff_destinations"] == [
        {
            "agent_id": str(team["sales"].id),
            "name": "agent_1",
            "description": "Plans",
            "carry": "summary",
            "greet_on_handoff": False,
        }
    ]
    assert body["max_handoffs"] == 2
    # sales hands on to billing, and back to the front desk
    chain = [_to(team["billing"], name="billing", greet_on_handoff=True), _to(team["front"])]
    assert (await _put(client, team, "sales", handoff_destinations=chain)).status_code == 200
    opened = await client.post(
        f"/internal/agents/{team['front'].id}/calls", json={"direction": "web"}, headers=SERVICE
    )
    call_id = (await opened.get_json())["call_id"]
    spec = await (await client.get(f"/internal/calls/{call_id}/spec", headers=SERVICE)).get_json()
    assert spec["agent"]["max_handoffs"] == 2
    assert spec["agent"]["handoff_destinations"][0]["carry"] == "summary"
    reachable = spec["handoff_agents"]
    assert sorted(reachable) == sorted([str(team["sales"].id), str(team["billing"].id)])
    assert reachable[str(team["sales"].id)]["name"] == "sales"
    assert reachable[str(team["sales"].id)]["handoff_destinations"][0]["greet_on_handoff"]


async def test_reported_handoffs_are_logged_fire_agent_handoff_once_and_count_in_reports(
    client, team, settings
):
    await set_endpoint(settings, team["workspace"].id, "https://hooks.example.com/x")
    front, sales = str(team["front"].id), str(team["sales"].id)
    call_ids = []
    for _ in range(2):
        opened = await client.post(
            f"/internal/agents/{front}/calls", json={"direction": "web"}, headers=SERVICE
        )
        call_ids.append((await opened.get_json())["call_id"])
    handoffs = [
        {
            "from_agent_id": front,
            "to_agent_id": sales,
            "name": "sales",
            "at": "2026-01-05T10:00:00+00:00",
            "reason": "wants a plan",
        }
    ]
    report = CallReport(
        call_id=call_ids[0], status="completed", handoffs=handoffs, final_agent_id=sales
    ).to_dict()
    for _ in range(2):  # a report sent twice fires nothing twice
        sent = await client.post(
            f"/internal/calls/{call_ids[0]}/report", json=report, headers=SERVICE
        )
        assert sent.status_code == 200
    plain = CallReport(call_id=call_ids[1], status="completed").to_dict()
    await client.post(f"/internal/calls/{call_ids[1]}/report", json=plain, headers=SERVICE)

    detail = await (await client.get(f"/calls/{call_ids[0]}", headers=team["headers"])).get_json()
    assert detail["handoffs"] == handoffs
    assert (detail["agent_id"], detail["final_agent_id"]) == (front, sales)
    other = await (await client.get(f"/calls/{call_ids[1]}", headers=team["headers"])).get_json()
    assert other["final_agent_id"] == front  # nobody took over
    events = await WebhookDelivery.filter(
        workspace_id=team["workspace"].id, event_type="agent_handoff"
    )
    assert len(events) == 1
    assert events[0].payload["data"]["to_agent_id"] == sales
    assert events[0].payload["data"]["call_id"] == call_ids[0]

    async def summary(group_by: str) -> dict[str, int]:
        response = await client.get(
            f"/reports/call-summary?group_by={group_by}", headers=team["headers"]
        )
        assert response.status_code == 200, await response.get_json()
        return {g["key"]: g["calls"] for g in (await response.get_json())["groups"]}

    assert await summary("agent") == {front: 2}  # the agent that answered
    assert await summary("final_agent") == {front: 1, sales: 1}
    # a report naming no agent id is refused
    bad = CallReport(
        call_id=call_ids[0], status="completed", handoffs=[{**handoffs[0], "to_agent_id": "x"}]
    ).to_dict()
    refused = await client.post(f"/internal/calls/{call_ids[0]}/report", json=bad, headers=SERVICE)
    assert refused.status_code == 400
