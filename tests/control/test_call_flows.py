"""Outbound calls, web-call tokens and LiveKit webhooks, up to the LiveKit boundary (stand-in)."""

import asyncio
import json

import jwt
import pytest
from livekit import api as lk

from control.config import Settings
from control.models import Call, PhoneNumber, Role, WebhookDelivery
from control.services.calls import finish_call
from control.services.livekit_events import ACTIVE_CALLS_KEY
from control.services.webhooks import set_endpoint
from control.services.workspaces import create_api_key
from tests.conftest import TEST_AGENT_NAME, auth_headers, make_user


async def test_outbound_call_queues_a_call_and_dispatches_the_agent(client, line, livekit):
    body = {
        "agent_phone_number": "+16505551234",
        "phone_number_to_dial": "+14155559876",
        "dynamic_variables": {"customer_name": "John", "appointment_date": "2026-02-15"},
    }
    response = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
    assert response.status_code == 201, await response.get_json()
    result = await response.get_json()
    call = await Call.get(id=result["call_id"])
    assert (call.status, call.call_direction, call.to_number) == (
        "queued",
        "outbound",
        "+14155559876",
    )
    assert call.dynamic_variables["customer_name"] == "John"
    dispatch = next(iter(livekit.dispatches.values()))
    assert dispatch.agent_name == TEST_AGENT_NAME and dispatch.room == call.room_name
    assert json.loads(dispatch.metadata)["call_id"] == str(call.id)
    spec = await client.get(
        f"/internal/calls/{call.id}/spec", headers={"Authorization": "Bearer test-service-token"}
    )
    number = await PhoneNumber.get(phone_number="+16505551234")
    assert number.outbound_trunk_id.startswith("ST_")
    assert (await spec.get_json())["sip_trunk_id"] == number.outbound_trunk_id


async def test_members_and_member_api_keys_cannot_place_calls(client, line, livekit, settings):
    workspace = line["workspace"]
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=workspace)
    admin, _ = await make_user("admin@example.com", role=Role.ADMIN, workspace=workspace)
    _, member_secret = await create_api_key(workspace.id, admin, "read-only", Role.MEMBER)
    _, developer_secret = await create_api_key(workspace.id, admin, "server", Role.DEVELOPER)
    body = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155559876"}
    for headers in (auth_headers(settings, member), {"X-API-Key": member_secret}):
        refused = await client.post("/calls/outbound_call", json=body, headers=headers)
        assert refused.status_code == 403
        assert (await refused.get_json())["code"] == "INSUFFICIENT_ROLE"
    assert await Call.all().count() == 0 and livekit.dispatches == {}
    for headers in (auth_headers(settings, admin), {"X-API-Key": developer_secret}):
        placed = await client.post("/calls/outbound_call", json=body, headers=headers)
        assert placed.status_code == 201, await placed.get_json()
    assert len(livekit.dispatches) == 2


@pytest.mark.parametrize(
    "body, status",
    [
        ({"agent_phone_number": "+19995550000", "phone_number_to_dial": "+14155559876"}, 404),
        ({"agent_phone_number": "+16505551234", "phone_number_to_dial": "4155559876"}, 400),
        ({"agent_phone_number": "+16505551234", "phone_number_to_dial": "+16505551234"}, 400),
    ],
)
async def test_outbound_call_bad_input(client, line, livekit, body, status):
    response = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
    assert response.status_code == status
    assert await Call.all().count() == 0 and livekit.dispatches == {}


async def test_outbound_call_refused_at_capacity(client, line, livekit, redis, settings):
    body = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155559876"}
    for _ in range(settings.max_agent_sessions):
        response = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
        assert response.status_code == 201
    refused = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
    assert refused.status_code == 429
    assert (await refused.get_json())["code"] == "AT_CAPACITY"
    assert "platform" in (await refused.get_json())["detail"]
    assert await Call.all().count() == settings.max_agent_sessions  # nothing half-written


async def test_dispatch_failure_marks_the_call_failed(client, line, livekit):
    livekit.fail("CreateDispatch")
    body = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155559876"}
    response = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
    assert response.status_code == 502
    call = await Call.get()
    assert call.status == "failed" and "dispatch failed" in call.error


TOKEN_URL = "/calls/generate-token"
AGENT = "+16505551234"


async def allow_web_calls(client, line, **changes) -> str:
    response = await client.put(
        f"/agents/{line['agent'].id}",
        json={"allow_web_calls": True, **changes},
        headers=line["headers"],
    )
    assert response.status_code == 200, await response.get_json()
    return (await response.get_json())["web_call_public_key"]


async def test_generate_token_is_room_scoped_and_dispatches(
    client, line, livekit, telephony_settings
):
    key = await allow_web_calls(client, line)
    response = await client.get(
        TOKEN_URL, query_string={"phone": AGENT, "id": "browser-1", "public_key": key}
    )
    assert response.status_code == 200, await response.get_json()
    body = await response.get_json()
    claims = jwt.decode(
        body["token"],
        telephony_settings.livekit_api_secret,
        algorithms=["HS256"],
        options={"verify_aud": False},
    )
    assert claims["video"] == {"roomJoin": True, "room": body["room_name"]} or (
        claims["video"]["room"] == body["room_name"]
        and claims["video"]["roomJoin"]
        and not claims["video"].get("roomAdmin")
    )
    assert claims["exp"] - claims["nbf"] <= 600
    assert body["url"] == telephony_settings.livekit_url
    assert next(iter(livekit.dispatches.values())).room == body["room_name"]
    call = await Call.get(id=body["call_id"])
    assert call.call_type == "web"


async def forbidden(client, query, **headers) -> None:
    response = await client.get(TOKEN_URL, query_string=query, headers=headers)
    assert response.status_code == 403, (query, await response.get_json())
    assert (await response.get_json())["code"] == "WEB_CALL_FORBIDDEN"


async def test_generate_token_needs_the_agents_key_and_origin(client, line, livekit):
    # Web calls are off by default: the agent has no key, and nothing answers without one.
    await forbidden(client, {"phone": AGENT})
    await forbidden(client, {"phone": "+19995550000"})
    assert (await client.get(TOKEN_URL, query_string={"phone": "12"})).status_code == 400
    key = await allow_web_calls(client, line, web_call_origins=["https://shop.example.com"])
    await forbidden(client, {"phone": AGENT})
    await forbidden(client, {"phone": AGENT, "public_key": key[:-1] + "x"})
    await forbidden(client, {"phone": "+19995550000", "public_key": key})
    await forbidden(client, {"phone": AGENT, "public_key": key})  # no Origin
    await forbidden(client, {"phone": AGENT, "public_key": key}, Origin="https://evil.example")
    assert livekit.dispatches == {} and await Call.all().count() == 0
    allowed = await client.get(
        TOKEN_URL,
        query_string={"phone": AGENT, "public_key": key},
        headers={"Origin": "https://shop.example.com"},
    )
    assert allowed.status_code == 200, await allowed.get_json()

    rotated = await client.post(
        f"/agents/{line['agent'].id}/web-call-key/rotate", headers=line["headers"]
    )
    assert rotated.status_code == 200
    new_key = (await rotated.get_json())["web_call_public_key"]
    assert new_key != key
    origin = {"Origin": "https://shop.example.com"}
    await forbidden(client, {"phone": AGENT, "public_key": key}, **origin)
    assert (
        await client.get(
            TOKEN_URL, query_string={"phone": AGENT, "public_key": new_key}, headers=origin
        )
    ).status_code == 200
    await client.put(
        f"/agents/{line['agent'].id}", json={"allow_web_calls": False}, headers=line["headers"]
    )
    await forbidden(client, {"phone": AGENT, "public_key": new_key}, **origin)
    assert len(livekit.dispatches) == 2


async def test_web_calls_have_per_workspace_quotas(client, line, livekit, settings, monkeypatch):
    quotas = {"web_calls_max_concurrent": 2, "web_calls_per_hour": 3}
    monkeypatch.setitem(
        client.app.config, "SETTINGS", Settings(**{**settings.model_dump(), **quotas})
    )
    query = {"phone": AGENT, "public_key": await allow_web_calls(client, line)}
    started = [await client.get(TOKEN_URL, query_string=query) for _ in range(2)]
    assert [response.status_code for response in started] == [200, 200]
    full = await client.get(TOKEN_URL, query_string=query)
    assert full.status_code == 429 and "web calls" in (await full.get_json())["detail"]
    # A finished call frees its slot, but the hour's quota stays used.
    for response in started:
        call = await Call.get(id=(await response.get_json())["call_id"])
        await finish_call(client.app.extensions["redis"], call, status="completed")
    assert (await client.get(TOKEN_URL, query_string=query)).status_code == 200
    over = await client.get(TOKEN_URL, query_string=query)
    assert over.status_code == 429
    assert (await over.get_json())["code"] == "WEB_CALL_QUOTA"
    assert len(livekit.dispatches) == 3


async def test_generate_token_is_rate_limited(client, line):
    statuses = [
        (await client.get(TOKEN_URL, query_string={"phone": "+19995550000"})).status_code
        for _ in range(25)
    ]
    assert statuses[0] == 403 and 429 in statuses


async def post_webhook(client, livekit, event, **kwargs):
    body, auth = livekit.webhook(event, **kwargs)
    return await client.post(
        "/webhook/livekit",
        data=body,
        headers={"Authorization": auth, "Content-Type": "application/webhook+json"},
    )


async def test_livekit_webhook_counts_rooms_once_and_never_below_zero(client, db, livekit, redis):
    assert (
        await post_webhook(client, livekit, "room_started", room_name="r1", event_id="EV_1")
    ).status_code == 200
    await post_webhook(client, livekit, "room_started", room_name="r1", event_id="EV_1")  # replayed
    assert await redis.get(ACTIVE_CALLS_KEY) == "1"
    assert 0 < await redis.ttl(ACTIVE_CALLS_KEY) <= 600
    await post_webhook(client, livekit, "room_finished", room_name="r1", event_id="EV_2")
    await post_webhook(client, livekit, "room_finished", room_name="r2", event_id="EV_3")
    assert await redis.get(ACTIVE_CALLS_KEY) == "0"


async def test_livekit_events_arriving_together_are_each_applied_once(client, line, livekit, redis):
    body = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155559876"}
    call_ids = []
    for _ in range(2):
        placed = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
        call_ids.append((await placed.get_json())["call_id"])
    rooms = [(await Call.get(id=call_id)).room_name for call_id in call_ids] + ["r3", "r4", "r5"]
    # Every room's start at once, two of them delivered twice (LiveKit retrying a slow answer).
    deliveries = [(room, f"EV_{number}") for number, room in enumerate(rooms)]
    deliveries += [deliveries[0], deliveries[3]]
    answers = await asyncio.gather(
        *(
            post_webhook(client, livekit, "room_started", room_name=room, event_id=event_id)
            for room, event_id in deliveries
        )
    )
    assert [answer.status_code for answer in answers] == [200] * len(deliveries)
    duplicates = sorted([(await answer.get_json())["duplicate"] for answer in answers])
    assert duplicates == [False] * 5 + [True] * 2
    assert await redis.get(ACTIVE_CALLS_KEY) == "5"
    for call_id in call_ids:
        call = await Call.get(id=call_id)
        assert call.status == "dialing" and call.started_at is not None


async def test_livekit_webhook_refuses_bad_signatures(client, db, livekit, redis):
    body, auth = livekit.webhook("room_started", room_name="r1")
    assert (await client.post("/webhook/livekit", data=body)).status_code == 401
    tampered = body.replace("r1", "r9")
    assert (
        await client.post("/webhook/livekit", data=tampered, headers={"Authorization": auth})
    ).status_code == 401
    forged = lk.AccessToken("other", "other-secret-that-is-long-enough").to_jwt()
    assert (
        await client.post("/webhook/livekit", data=body, headers={"Authorization": forged})
    ).status_code == 401
    assert await redis.get(ACTIVE_CALLS_KEY) is None


async def test_livekit_events_move_the_call_log_and_fire_webhooks(client, line, livekit, settings):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    body = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155559876"}
    call_id = (
        await (
            await client.post("/calls/outbound_call", json=body, headers=line["headers"])
        ).get_json()
    )["call_id"]
    room = (await Call.get(id=call_id)).room_name
    await post_webhook(client, livekit, "room_started", room_name=room)
    assert (await Call.get(id=call_id)).status == "dialing"
    await post_webhook(
        client,
        livekit,
        "participant_joined",
        room_name=room,
        participant_identity="sip-callee",
        participant_kind=lk.ParticipantInfo.Kind.SIP,
    )
    answered = await Call.get(id=call_id)
    assert answered.status == "in_progress" and answered.answered_at is not None
    await post_webhook(client, livekit, "room_finished", room_name=room)
    assert (await Call.get(id=call_id)).ended_at is not None
    events = await WebhookDelivery.filter(workspace_id=line["workspace"].id).values_list(
        "event_type", flat=True
    )
    assert set(events) == {"call_started", "call_answered"}
