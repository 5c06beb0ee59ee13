"""Which agent version each call, chat and test run runs, read from what the worker receives;
A/B splits by call id; reports per version."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest

from control.dialing import campaign_dialer
from control.models import Agent, Call, Role
from control.security import utcnow
from control.services import agent_versions
from control.services.calls import create_call
from tests.conftest import auth_headers, make_user, scripted_agent_config
from tests.control.batching import phone_csv, tick, upload
from tests.control.campaign_dialing import add_prospects, new_campaign, prospect
from tests.control.test_agent_tests import OPENING_HOURS, add_case, run_to_end, shop  # noqa: F401

SERVICE = {"Authorization": "Bearer test-service-token"}
AGENT_NUMBER = "+16505551234"
PUBLISHED, DRAFT = "You run the published script.", "You run the draft script."


async def save(client, line, **changes) -> dict:
    response = await client.put(
        f"/agents/{line['agent'].id}", json=changes, headers=line["headers"]
    )
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def spec_of(client, call_id: str) -> dict:
    """The call spec a worker gets for the call: the agent part."""
    response = await client.get(f"/internal/calls/{call_id}/spec", headers=SERVICE)
    assert response.status_code == 200, await response.get_json()
    return (await response.get_json())["agent"]


async def outbound(client, line, to: str = "+14155559876") -> str:
    body = {"agent_phone_number": AGENT_NUMBER, "phone_number_to_dial": to}
    response = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
    assert response.status_code == 201, await response.get_json()
    return (await response.get_json())["call_id"]


async def every_kind_of_call(
    client, line, settings, telephony_settings, redis, web_key, round_: int
) -> dict:
    """One call of each kind, as each reaches a worker: kind -> (call id, the agent's spec)."""
    specs = {}
    call_id = await outbound(client, line, to=f"+1415555987{round_}")
    specs["outbound"] = (call_id, await spec_of(client, call_id))

    inbound = await client.post(
        f"/internal/numbers/{AGENT_NUMBER}/calls", json={"from_number": "+14155550000"},
        headers=SERVICE,
    )  # fmt: skip
    assert inbound.status_code == 201, await inbound.get_json()
    body = await inbound.get_json()
    specs["inbound"] = (body["call_id"], body["agent"])

    token = await client.get(
        "/calls/generate-token",
        query_string={"phone": AGENT_NUMBER, "id": "browser-1", "public_key": web_key},
    )
    assert token.status_code == 200, await token.get_json()
    call_id = (await token.get_json())["call_id"]
    specs["web"] = (call_id, await spec_of(client, call_id))

    uploaded = await upload(client, line, phone_csv(1, start=round_), calls_per_minute=600)
    assert uploaded.status_code == 201, await uploaded.get_json()
    batch_id = (await uploaded.get_json())["id"]
    assert await tick(settings, telephony_settings, redis) == 1
    call = await Call.get(batch_id=batch_id)
    specs["batch"] = (str(call.id), await spec_of(client, str(call.id)))

    campaign = await new_campaign(line, name=f"Offers {uuid.uuid4().hex[:6]}")
    await add_prospects([prospect(campaign, f"+1212200000{round_}")])
    noon = (utcnow() + timedelta(days=1)).replace(hour=17, minute=0, second=0, microsecond=0)
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=noon) == 1
    call = await Call.get(campaign_id=campaign.id)
    specs["campaign"] = (str(call.id), await spec_of(client, str(call.id)))
    return specs


async def test_a_draft_reaches_no_call_of_any_kind_until_it_is_published(
    client, line, settings, telephony_settings, redis, livekit
):
    roomy = settings.model_copy(update={"max_agent_sessions": 50})  # 11 calls stay live
    client.app.config["SETTINGS"] = roomy
    try:
        shown = await save(client, line, system_prompt=PUBLISHED, allow_web_calls=True)
        assert (shown["latest_version"], shown["published_version"]) == (2, 2)
        draft = await save(client, line, auto_publish=False, system_prompt=DRAFT)
        assert (draft["latest_version"], draft["published_version"], draft["draft"]) == (3, 2, True)
        web_key = draft["web_call_public_key"]

        before = await every_kind_of_call(
            client, line, roomy, telephony_settings, redis, web_key, 1
        )
        for kind, (call_id, agent) in before.items():
            assert (agent["system_prompt"], agent["agent_version"]) == (PUBLISHED, 2), kind
            assert (await Call.get(id=call_id)).agent_version == 2, kind

        published = await client.post(
            f"/agents/{line['agent'].id}/publish", json={"version": 3}, headers=line["headers"]
        )
        assert published.status_code == 200, await published.get_json()
        after = await every_kind_of_call(client, line, roomy, telephony_settings, redis, web_key, 2)
        for kind, (_, agent) in after.items():
            assert (agent["system_prompt"], agent["agent_version"]) == (DRAFT, 3), kind

        rollback = await client.post(
            f"/agents/{line['agent'].id}/publish", json={"version": 2}, headers=line["headers"]
        )
        assert rollback.status_code == 200
        call_id = await outbound(client, line, to="+14155559879")
        assert (await spec_of(client, call_id))["system_prompt"] == PUBLISHED

        detail = await client.get(f"/calls/{call_id}", headers=line["headers"])
        assert (await detail.get_json())["agent_version"] == 2
        for version, count in ((2, 6), (3, 5)):
            listed = await client.get(
                "/calls", query_string={"agent_version": version}, headers=line["headers"]
            )
            body = await listed.get_json()
            assert body["total"] == count
            assert {item["agent_version"] for item in body["items"]} == {version}
    finally:
        client.app.config["SETTINGS"] = settings


@pytest.fixture
async def chat_agent(client, settings, scripted_llm, db):
    client.app.config["SETTINGS"] = settings.model_copy(update={"allow_private_urls": True})
    user, _ = await make_user("dev@example.com", role=Role.DEVELOPER)
    headers = auth_headers(settings, user)
    body = scripted_agent_config(
        scripted_llm, agent_name="Chatty", system_prompt=PUBLISHED, auto_publish=False
    )
    created = await client.post("/agents", json=body, headers=headers)
    assert created.status_code == 201, await created.get_json()
    agent_id = (await created.get_json())["id"]
    changed = await client.put(
        f"/agents/{agent_id}", json={"system_prompt": DRAFT}, headers=headers
    )
    assert (await changed.get_json())["latest_version"] == 2
    yield {"id": agent_id, "headers": headers}
    client.app.config["SETTINGS"] = settings


async def test_chats_run_the_latest_version_unless_told_otherwise(client, chat_agent, scripted_llm):
    scripted_llm.on("hello", "Hi there.")

    async def chat(**fields):
        response = await client.post(
            "/chats",
            json={"agent_id": chat_agent["id"], "message": "hello", **fields},
            headers=chat_agent["headers"],
        )
        body = await response.get_json()
        assert response.status_code == 200, body
        return body, str(scripted_llm.requests[-1]["messages"][0]["content"])

    latest, system = await chat()
    assert latest["agent_version"] == 2 and DRAFT in system
    first, system = await chat(version=1)
    assert first["agent_version"] == 1 and PUBLISHED in system
    missing = await client.post(
        "/chats",
        json={"agent_id": chat_agent["id"], "message": "hello", "version": 9},
        headers=chat_agent["headers"],
    )
    assert missing.status_code == 404
    assert (await missing.get_json())["code"] == "VERSION_NOT_FOUND"


async def test_a_test_run_tests_its_version_and_its_pass_lets_that_version_publish(
    client,
    shop,  # noqa: F811
    scripted_llm,
):
    agent_id, headers = shop["id"], shop["headers"]
    changed = await client.put(
        f"/agents/{agent_id}",
        json={"require_passing_tests": True, "system_prompt": "You are the new Acme assistant."},
        headers=headers,
    )
    assert (await changed.get_json())["published_version"] == 1  # tests first
    await add_case(client, shop, {"name": "hours", "turns": [OPENING_HOURS]})

    async def publish(version):
        return await client.post(
            f"/agents/{agent_id}/publish", json={"version": version}, headers=headers
        )

    refused = await publish(2)
    assert refused.status_code == 409
    assert (await refused.get_json())["code"] == "TESTS_NOT_PASSED"

    first = await run_to_end(client, shop, version=1)
    assert (first["status"], first["agent_version"]) == ("passed", 1)
    assert "You are the assistant of Acme Shop." in str(scripted_llm.requests[-1]["messages"])
    assert (await publish(2)).status_code == 409  # version 1's pass is not version 2's

    scripted_llm.reset()  # version 2 now answers nothing about opening hours: it fails
    failed = await run_to_end(client, shop)
    assert (failed["status"], failed["agent_version"]) == ("failed", 2)
    assert "You are the new Acme assistant." in str(scripted_llm.requests[-1]["messages"])
    assert (await publish(2)).status_code == 409

    scripted_llm.on("opening hours", "We are open 9 to 5 every day.")
    passed = await run_to_end(client, shop)
    assert (passed["status"], passed["agent_version"]) == ("passed", 2)
    accepted = await publish(2)
    assert accepted.status_code == 200, await accepted.get_json()
    assert (await accepted.get_json())["published_version"] == 2


def split_call_ids(count: int) -> list[uuid.UUID]:
    """Fixed call ids: the split is a function of the id, so the test always sees the same."""
    namespace = uuid.UUID("0b7c1a52-33d4-4f0e-9a51-2f8de8a7c001")
    return [uuid.uuid5(namespace, str(index)) for index in range(count)]


async def test_an_80_20_split_picks_by_call_id_and_reports_count_each_version(client, line):
    headers = line["headers"]
    await save(client, line, system_prompt="Version B.")
    split = [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}]
    await save(client, line, traffic_split=split, auto_publish=False)
    agent = await Agent.get(id=line["agent"].id)

    call_ids = split_call_ids(1000)
    for call_id in call_ids:  # each new call of every kind is made here
        await create_call(agent, direction="outbound", to_number="+14155559876", call_id=call_id)
    picked = Counter(await Call.filter(agent_id=agent.id).values_list("agent_version", flat=True))
    assert 750 <= picked[1] <= 850 and 150 <= picked[2] <= 250, picked
    recorded = dict(await Call.filter(agent_id=agent.id).values_list("id", "agent_version"))
    # a retried dial (the same call id) lands on the same version, however often it is picked
    assert all(agent_versions.pick(agent, call_id) == recorded[call_id] for call_id in call_ids)
    assert all(agent_versions.pick(agent, call_ids[0]) == recorded[call_ids[0]] for _ in range(50))

    answered = [call_id for call_id in call_ids[:100] if recorded[call_id] == 2][:5]
    await Call.filter(id__in=answered).update(
        status="completed", answered_at=utcnow(), duration_seconds=30.0, disposition="sold"
    )
    summary = await client.get(
        "/reports/call-summary", query_string={"group_by": "agent_version"}, headers=headers
    )
    assert summary.status_code == 200, await summary.get_json()
    groups = {group["key"]: group for group in (await summary.get_json())["groups"]}
    assert (groups["1"]["calls"], groups["2"]["calls"]) == (picked[1], picked[2])
    assert groups["2"]["answered"] == len(answered) and groups["1"]["answered"] == 0

    only_b = await client.get(
        "/reports/call-summary", query_string={"agent_version": 2}, headers=headers
    )
    assert (await only_b.get_json())["totals"]["calls"] == picked[2]
    dispositions = await client.get(
        "/reports/disposition-summary", query_string={"agent_version": 2}, headers=headers
    )
    counted = {
        row["disposition"]: row["calls"] for row in (await dispositions.get_json())["dispositions"]
    }
    assert counted == {"sold": len(answered), "none": picked[2] - len(answered)}
