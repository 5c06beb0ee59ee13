"""Agent dispatch, outbound dialing, room tokens and webhook checks against the LiveKit stand-in."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import jwt
import pytest
from livekit import api as lk

from runtime.spec import CallStatus
from telephony import sip
from telephony.config import TelephonySettings
from telephony.errors import DialError, InvalidWebhook, LiveKitError, NotConfigured
from tests.fakes.livekit_server import FakeLiveKit
from tests.telephony.conftest import AGENT_NAME
from tests.waiting import until

CALLEE = "+14155559876"


async def outbound_trunk(settings) -> str:
    provisioned = await sip.provision_number(
        "+16505551234", sip_address="sip.example.com", settings=settings
    )
    return provisioned.outbound_trunk_id


async def test_dispatch_creates_the_room_and_dispatches_the_agent_with_metadata(
    livekit: FakeLiveKit, telephony_settings
):
    metadata = {"call_id": "c-1", "dynamic_variables": {"customer_name": "Ada"}}

    dispatch_id = await sip.dispatch_agent(
        "call-c-1", metadata=metadata, settings=telephony_settings
    )

    assert livekit.methods() == ["CreateRoom", "CreateDispatch"]
    assert "call-c-1" in livekit.rooms
    dispatch = livekit.dispatches[dispatch_id]
    assert (dispatch.agent_name, dispatch.room) == (AGENT_NAME, "call-c-1")
    assert json.loads(dispatch.metadata) == metadata


async def test_dispatch_into_an_existing_room_reuses_it(livekit, telephony_settings):
    await sip.dispatch_agent("web-1", "agent-a", {"n": 1}, settings=telephony_settings)
    room_sid = livekit.rooms["web-1"].sid

    await sip.dispatch_agent("web-1", "agent-b", {"n": 2}, settings=telephony_settings)

    assert livekit.rooms["web-1"].sid == room_sid
    assert sorted(d.agent_name for d in livekit.dispatches.values()) == ["agent-a", "agent-b"]


async def test_dispatch_failure_is_a_livekit_error(livekit, telephony_settings):
    livekit.fail("CreateDispatch", code="unavailable", message="no workers")

    with pytest.raises(LiveKitError, match="no workers") as caught:
        await sip.dispatch_agent("call-x", settings=telephony_settings)

    assert caught.value.retryable
    assert livekit.dispatches == {}


async def test_a_failed_request_leaves_the_shared_client_to_the_requests_still_on_it(
    livekit, telephony_settings
):
    gate = livekit.hold("ListDispatch")

    async def list_dispatches() -> list:
        async with sip.livekit_api(telephony_settings) as client:
            return await client.agent_dispatch.list_dispatch(room_name="call-x")

    listing = asyncio.create_task(list_dispatches())
    await until(lambda: livekit.held("ListDispatch") == 1)
    livekit.fail("CreateDispatch", code="unavailable", message="no workers")
    with pytest.raises(LiveKitError, match="no workers"):
        await sip.dispatch_agent("call-y", settings=telephony_settings)
    gate.set()

    assert await listing == []  # its client was not closed under it
    assert (await sip.dispatch_agent("call-z", settings=telephony_settings)).startswith("AD_")


async def test_dial_brings_the_callee_into_the_room(livekit, telephony_settings):
    trunk_id = await outbound_trunk(telephony_settings)
    await sip.dispatch_agent("call-c-2", settings=telephony_settings)

    result = await sip.dial(
        "call-c-2",
        trunk_id,
        CALLEE,
        "callee",
        krisp_enabled=True,
        participant_name="Ada",
        settings=telephony_settings,
    )

    assert (result.room_name, result.participant_identity) == ("call-c-2", "callee")
    assert result.sip_call_id.startswith("SCL_")
    participant = livekit.participants["call-c-2"]["callee"]
    assert participant.kind == lk.ParticipantInfo.Kind.SIP
    [request] = livekit.calls("CreateSIPParticipant")
    assert request.message.sip_trunk_id == trunk_id
    assert request.message.sip_call_to == CALLEE
    assert request.message.wait_until_answered is True
    assert request.message.krisp_enabled is True
    assert request.message.ringing_timeout.seconds == 45  # PARITY.md: about 45 s of ringing


@pytest.mark.parametrize(
    ("sip_status", "call_status", "retryable"),
    [
        (486, CallStatus.BUSY, True),
        (600, CallStatus.BUSY, True),
        (408, CallStatus.NO_ANSWER, True),
        (480, CallStatus.NO_ANSWER, True),
        (487, CallStatus.NO_ANSWER, True),
        (403, CallStatus.REJECTED, False),
        (603, CallStatus.REJECTED, False),
        (404, CallStatus.FAILED, False),
        (503, CallStatus.FAILED, False),
    ],
)
async def test_dial_failures_carry_the_sip_status_and_call_status(
    livekit, telephony_settings, caplog, sip_status, call_status, retryable
):
    trunk_id = await outbound_trunk(telephony_settings)
    livekit.fail_dial(sip_status)

    with pytest.raises(DialError) as caught, caplog.at_level(logging.INFO, logger="telephony"):
        await sip.dial("call-c-3", trunk_id, CALLEE, "callee", settings=telephony_settings)

    error = caught.value
    assert error.sip_status == sip_status
    assert error.call_status == call_status
    assert error.retryable is retryable
    assert str(sip_status) in str(error)
    assert CALLEE not in str(error) and "+1415***9876" in str(error)
    assert CALLEE not in caplog.text and "+1415***9876" in caplog.text
    assert "callee" not in livekit.participants.get("call-c-3", {})


async def test_dial_over_an_unknown_trunk_fails_without_a_sip_status(livekit, telephony_settings):
    with pytest.raises(DialError) as caught:
        await sip.dial("call-c-4", "ST_missing", CALLEE, "callee", settings=telephony_settings)

    assert caught.value.call_status == CallStatus.FAILED
    assert caught.value.sip_status is None
    assert caught.value.code == "not_found"


async def test_dial_reaching_no_server_is_a_retryable_failure(telephony_settings):
    unreachable = telephony_settings.model_copy(update={"livekit_url": "http://127.0.0.1:9"})

    with pytest.raises(DialError) as caught:
        await sip.dial("call-c-5", "ST_x", CALLEE, "callee", settings=unreachable)

    assert caught.value.call_status == CallStatus.FAILED
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("sip_status", "expected"),
    [(486, "busy"), (408, "no_answer"), (480, "no_answer"), (403, "rejected"), (603, "rejected")]
    + [(500, "failed"), (None, "failed")],
)
def test_call_status_for_sip(sip_status, expected):
    assert sip.call_status_for_sip(sip_status) == expected


def test_room_token_grants(telephony_settings: TelephonySettings):
    token = sip.mint_room_token(
        "web-abc", "visitor-1", ttl_seconds=300, name="Visitor", settings=telephony_settings
    )

    claims = jwt.decode(
        token,
        telephony_settings.livekit_api_secret,
        algorithms=["HS256"],
        issuer=telephony_settings.livekit_api_key,
    )
    assert claims["sub"] == "visitor-1"
    assert claims["name"] == "Visitor"
    assert claims["exp"] - claims["nbf"] == 300
    video = claims["video"]
    assert video["roomJoin"] is True
    assert video["room"] == "web-abc"
    for power in ("roomAdmin", "roomCreate", "roomList", "roomRecord", "ingressAdmin", "agent"):
        assert power not in video
    assert "sip" not in claims
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-" + "z" * 32, algorithms=["HS256"])


async def test_a_room_token_cannot_use_the_server_api(livekit, telephony_settings):
    token = sip.mint_room_token("web-abc", "visitor-1", settings=telephony_settings)
    client = lk.LiveKitAPI.with_token(token, livekit.url)
    try:
        with pytest.raises(lk.ServerError) as caught:
            await client.sip.create_inbound_trunk(
                lk.CreateSIPInboundTrunkRequest(trunk=lk.SIPInboundTrunkInfo(numbers=[CALLEE]))
            )
    finally:
        await client.aclose()
    assert caught.value.code == "permission_denied"
    assert livekit.inbound_trunks == {}


def test_a_signed_webhook_is_accepted(livekit: FakeLiveKit, telephony_settings):
    body, authorization = livekit.webhook(
        "participant_joined",
        room_name="call-c-1",
        participant_identity="callee",
        participant_kind=lk.ParticipantInfo.Kind.SIP,
        event_id="EV_1",
    )

    event = sip.verify_livekit_webhook(body, authorization, settings=telephony_settings)

    assert (event.event, event.id) == ("participant_joined", "EV_1")
    assert event.room.name == "call-c-1"
    assert event.participant.identity == "callee"
    assert event.participant.kind == lk.ParticipantInfo.Kind.SIP


def test_a_webhook_is_accepted_as_bytes_and_with_a_bearer_prefix(livekit, telephony_settings):
    body, authorization = livekit.webhook("room_started", room_name="call-c-1")

    event = sip.verify_livekit_webhook(
        body.encode(), f"Bearer {authorization}", settings=telephony_settings
    )

    assert event.event == "room_started"


@pytest.mark.parametrize(
    "tamper",
    ["body", "missing header", "other secret", "unhashed token", "expired", "garbage"],
)
def test_a_webhook_that_does_not_check_out_is_refused(livekit, telephony_settings, tamper):
    body, authorization = livekit.webhook("room_finished", room_name="call-c-1")
    if tamper == "body":
        body = body.replace("call-c-1", "call-c-2")
    elif tamper == "missing header":
        authorization = ""
    elif tamper == "other secret":
        authorization = FakeLiveKit(api_secret="x" * 40).sign_webhook(body)
    elif tamper == "unhashed token":
        authorization = lk.AccessToken(livekit.api_key, livekit.api_secret).to_jwt()
    elif tamper == "expired":
        authorization = jwt.encode(
            {**jwt.decode(authorization, options={"verify_signature": False}), "exp": 1},
            livekit.api_secret,
            algorithm="HS256",
        )
    else:
        authorization = "not-a-jwt"

    with pytest.raises(InvalidWebhook):
        sip.verify_livekit_webhook(body, authorization, settings=telephony_settings)


async def test_the_stand_in_refuses_a_token_signed_with_another_secret(livekit, telephony_settings):
    wrong = telephony_settings.model_copy(update={"livekit_api_secret": "y" * 40})

    with pytest.raises(LiveKitError) as caught:
        await sip.dispatch_agent("call-x", settings=wrong)

    assert caught.value.code == "unauthenticated"
    assert livekit.unauthorized == 1
    assert livekit.rooms == {}


async def test_the_stand_in_speaks_twirp_json_too(livekit: FakeLiveKit):
    token = (
        lk.AccessToken(livekit.api_key, livekit.api_secret)
        .with_grants(lk.VideoGrants(room_create=True))
        .to_jwt()
    )
    async with httpx.AsyncClient(base_url=livekit.url) as client:
        response = await client.post(
            "/twirp/livekit.RoomService/CreateRoom",
            json={"name": "json-room", "empty_timeout": 30},
            headers={"Authorization": f"Bearer {token}"},
        )
        missing = await client.post(
            "/twirp/livekit.RoomService/Nope", json={}, headers={"Authorization": token}
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["name"] == "json-room"
    assert livekit.rooms["json-room"].empty_timeout == 30
    assert livekit.calls("CreateRoom")[0].content_type == "application/json"
    assert missing.status_code == 404 and missing.json()["code"] == "bad_route"


async def test_missing_livekit_settings_name_the_variables(monkeypatch):
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = TelephonySettings(env="test", livekit_api_key="key")

    with pytest.raises(NotConfigured) as caught:
        await sip.dispatch_agent("call-x", settings=settings)

    assert "LIVEKIT_URL" in str(caught.value) and "LIVEKIT_API_SECRET" in str(caught.value)
    assert "LIVEKIT_API_KEY" not in str(caught.value)
    with pytest.raises(NotConfigured):
        sip.mint_room_token("web-1", "visitor", settings=settings)
