"""Call control through the platform: agent settings reach the worker, a transfer on a real call
flow (worker, LiveKit stand-in) lands in the call log and fires its events, `call_ringing`, and
the number's noise-cancellation setting on the dial."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from livekit import api as lk

from control.models import Call, PhoneNumber, Role, WebhookDelivery
from control.services.agents import create_agent, update_agent
from control.services.webhooks import set_endpoint
from runtime.spec import CallReport
from runtime.worker import CallRunner
from tests.conftest import auth_headers, make_user, scripted_agent_config
from tests.control.conftest import TRUNK_BODY
from tests.control.test_call_flows import post_webhook
from tests.control_plane import control_plane, new_runner  # noqa: F401 (fixtures)
from tests.fakes.openai_server import tool_call

AGENT_NUMBER = "+16505551234"  # the `line` fixture's number
CALLEE = "+14155559876"
SERVICE = {"Authorization": "Bearer test-service-token"}
DESTINATIONS = [
    {"name": "billing", "destination": "+16505550100", "description": "Invoices"},
    {"name": "support", "destination": "sip:help@pbx.example.com"},
]


@pytest.fixture
async def line(db, settings, livekit, client) -> dict:
    """A developer's number with its trunks in the LiveKit stand-in (kept: calls dial on them)."""
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    headers = auth_headers(settings, user)
    trunk = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=headers)
    assert trunk.status_code == 201, await trunk.get_json()
    agent = await create_agent(
        settings, workspace.id, {"agent_name": "Caller", "phone_number": AGENT_NUMBER}
    )
    return {"headers": headers, "agent": agent, "workspace": workspace}


async def _agent_with(client, line, **fields: Any) -> dict:
    response = await client.put(f"/agents/{line['agent'].id}", json=fields, headers=line["headers"])
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def _outbound_call_id(client, line) -> str:
    body = {"agent_phone_number": AGENT_NUMBER, "phone_number_to_dial": CALLEE}
    response = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
    assert response.status_code == 201, await response.get_json()
    return (await response.get_json())["call_id"]


# ------------------------------------------------------------------------------------------
# Settings: accepted only when they can be run, and carried to the worker
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"dtmf_menu": {"12": "two keys"}},
        {"dtmf_menu": {"A": "not a phone key"}},
        {"dtmf_menu": {"1": "  "}},
        {"transfer_destinations": [{"name": "Billing Dept", "destination": "+16505550100"}]},
        {"transfer_destinations": [{"name": "billing", "destination": "12345"}]},
        {"transfer_destinations": DESTINATIONS + [DESTINATIONS[0]]},  # a name twice
    ],
)
async def test_call_control_settings_that_cannot_run_are_refused(client, line, fields):
    response = await client.put(f"/agents/{line['agent'].id}", json=fields, headers=line["headers"])
    assert response.status_code == 400
    body = await response.get_json()
    assert body["code"] == "VALIDATION_ERROR" and body["detail"]


@pytest.mark.parametrize(
    ("destination", "field"),
    [
        ({"type": "lukewarm"}, "transfer_destinations.0.type"),
        ({"type": "warm", "ring_timeout": -5}, "transfer_destinations.0.ring_timeout"),
        ({"type": "warm", "ring_timeout": 0}, "transfer_destinations.0.ring_timeout"),
        (
            {"type": "warm", "hold_audio_url": "ftp://x/hold.wav"},
            "transfer_destinations.0.hold_audio_url",
        ),
        (
            {"type": "warm", "hold_audio_url": "http://127.0.0.1:8080/hold.wav"},
            "transfer_destinations.0.hold_audio_url",
        ),
        (
            {"type": "warm", "fallback_message": "x" * 501},
            "transfer_destinations.0.fallback_message",
        ),
    ],
)
async def test_bad_warm_transfer_settings_are_a_400_naming_the_field(
    client, line, destination, field
):
    body = {"transfer_destinations": [{**DESTINATIONS[0], **destination}]}
    response = await client.put(f"/agents/{line['agent'].id}", json=body, headers=line["headers"])
    assert response.status_code == 400, await response.get_json()
    assert [error["field"] for error in (await response.get_json())["errors"]] == [field]


async def test_warm_transfer_settings_are_kept_and_reach_the_call_spec(client, line):
    warm = {
        **DESTINATIONS[0],
        "type": "warm",
        "ring_timeout": 20,
        "briefing_instructions": "Mention the invoice number.",
        "hold_audio_url": "https://cdn.example.com/hold.wav",
        "fallback_message": "Billing is busy; I can take a message.",
    }
    agent = await _agent_with(client, line, transfer_destinations=[warm])
    assert agent["transfer_destinations"][0] == {**warm, "ring_timeout": 20.0}
    call_id = await _outbound_call_id(client, line)
    spec = await (await client.get(f"/internal/calls/{call_id}/spec", headers=SERVICE)).get_json()
    assert spec["agent"]["transfer_destinations"] == [{**warm, "ring_timeout": 20.0}]
    assert spec["sip_trunk_id"]  # the human is dialled on the number's outbound trunk


async def test_a_destination_without_a_name_gets_one_by_its_place(client, line):
    agent = await _agent_with(
        client, line, transfer_destinations=[DESTINATIONS[0], {"destination": "+16505550199"}]
    )
    assert [(d["name"], d["destination"]) for d in agent["transfer_destinations"]] == [
        ("billing", "+16505550100"),
        ("destination_2", "+16505550199"),
    ]


async def test_the_settings_reach_the_call_spec(client, line):
    agent = await _agent_with(
        client,
        line,
        transfer_destinations=DESTINATIONS,
        dtmf_menu={"1": "Talk about invoices.", "#": "Repeat the menu."},
        voicemail_detection=True,
        voicemail_action="leave_message",
        voicemail_message="Hi {{customer_name}}, please call back.",
        recording_enabled=True,
    )
    assert agent["dtmf_menu"] == {"1": "Talk about invoices.", "#": "Repeat the menu."}
    assert [d["name"] for d in agent["transfer_destinations"]] == ["billing", "support"]
    call_id = await _outbound_call_id(client, line)
    spec = await (await client.get(f"/internal/calls/{call_id}/spec", headers=SERVICE)).get_json()
    assert [
        (d["name"], d["destination"], d["description"], d["type"])
        for d in spec["agent"]["transfer_destinations"]
    ] == [
        ("billing", "+16505550100", "Invoices", "cold"),
        ("support", "sip:help@pbx.example.com", "", "cold"),
    ]
    assert spec["agent"]["dtmf_menu"] == {"1": "Talk about invoices.", "#": "Repeat the menu."}
    assert (
        spec["agent"]["voicemail_detection"],
        spec["agent"]["voicemail_action"],
        spec["agent"]["voicemail_message"],
        spec["agent"]["recording_enabled"],
    ) == (True, "leave_message", "Hi {{customer_name}}, please call back.", True)
    assert spec["krisp_enabled"] is False  # the number's setting (off by default)


# ------------------------------------------------------------------------------------------
# Reports: the call log keeps the transfers, their events fire once
# ------------------------------------------------------------------------------------------


async def _report(client, call_id: str, **fields: Any) -> dict:
    report = CallReport(call_id=call_id, status="completed", **fields).to_dict()
    response = await client.post(f"/internal/calls/{call_id}/report", json=report, headers=SERVICE)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def test_reported_transfers_are_kept_and_fire_their_events_once(client, line, settings):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    call_id = await _outbound_call_id(client, line)
    transfers = [
        {
            "destination_name": "support",
            "destination": "sip:***lp@pbx.example.com",
            "at": "2026-01-05T10:00:00+00:00",
            "outcome": "failed",
            "error": "sip status 603: Decline",
            "sip_status": 603,
        },
        {
            "destination_name": "billing",
            "destination": "+16505550100",  # a runtime that forgot to mask it
            "at": "2026-01-05T10:01:00+00:00",
            "outcome": "succeeded",
        },
    ]
    assert (await _report(client, call_id, end_reason="transferred", transfers=transfers))[
        "applied"
    ]
    again = await _report(client, call_id, end_reason="transferred", transfers=transfers)
    assert again["applied"] is False

    detail = await (await client.get(f"/calls/{call_id}", headers=line["headers"])).get_json()
    assert detail["end_reason"] == "transferred"
    assert [
        (t["destination_name"], t["destination"], t["outcome"]) for t in detail["transfers"]
    ] == [
        ("support", "sip:***lp@pbx.example.com", "failed"),
        ("billing", "+1650***0100", "succeeded"),
    ]
    deliveries = await WebhookDelivery.filter(
        workspace_id=line["workspace"].id, event_type__startswith="transfer_"
    )
    events = sorted((d.payload["data"]["attempt"], d.event_type) for d in deliveries)
    assert events == [
        (1, "transfer_failed"),
        (1, "transfer_initiated"),
        (2, "transfer_initiated"),
        (2, "transfer_succeeded"),
    ]
    failed = next(d for d in deliveries if d.event_type == "transfer_failed")
    assert failed.payload["data"]["sip_status"] == 603
    assert "16505550100" not in json.dumps([d.payload for d in deliveries])


async def test_a_reported_warm_transfer_keeps_its_briefing_and_says_why_it_failed(
    client, line, settings
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    call_id = await _outbound_call_id(client, line)
    warm = {
        "destination_name": "billing",
        "destination": "+1650***0100",
        "type": "warm",
        "at": "2026-01-05T10:00:00+00:00",
        "briefing": "Ann wants a refund for order 12.",
    }
    declined = {**warm, "outcome": "failed", "reason": "declined_by_key"}
    accepted = {
        **warm,
        "outcome": "succeeded",
        "reason": "accepted",
        "at": "2026-01-05T10:02:00+00:00",
    }
    await _report(client, call_id, end_reason="transferred", transfers=[declined, accepted])
    detail = await (await client.get(f"/calls/{call_id}", headers=line["headers"])).get_json()
    assert [(t["type"], t["reason"], t["briefing"]) for t in detail["transfers"]] == [
        ("warm", "declined_by_key", "Ann wants a refund for order 12."),
        ("warm", "accepted", "Ann wants a refund for order 12."),
    ]
    deliveries = await WebhookDelivery.filter(
        workspace_id=line["workspace"].id, event_type__startswith="transfer_"
    )
    events = sorted(
        (d.payload["data"]["attempt"], d.event_type, d.payload["data"]["type"]) for d in deliveries
    )
    assert events == [
        (1, "transfer_failed", "warm"),
        (1, "transfer_initiated", "warm"),
        (2, "transfer_initiated", "warm"),
        (2, "transfer_succeeded", "warm"),
    ]
    failed = next(d for d in deliveries if d.event_type == "transfer_failed")
    assert failed.payload["data"]["reason"] == "declined_by_key"


async def test_a_report_with_an_unknown_transfer_outcome_is_refused(client, line):
    call_id = await _outbound_call_id(client, line)
    report = CallReport(
        call_id=call_id,
        status="completed",
        transfers=[{"destination_name": "billing", "destination": "x", "outcome": "maybe"}],
    ).to_dict()
    response = await client.post(f"/internal/calls/{call_id}/report", json=report, headers=SERVICE)
    assert response.status_code == 400
    assert (await Call.get(id=call_id)).status not in ("completed",)


# ------------------------------------------------------------------------------------------
# `call_ringing`
# ------------------------------------------------------------------------------------------


async def test_a_ringing_callee_moves_the_call_to_ringing_then_answered(
    client, line, livekit, settings
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    call_id = await _outbound_call_id(client, line)
    room = (await Call.get(id=call_id)).room_name

    async def callee(event: str, call_status: str) -> None:
        response = await post_webhook(
            client,
            livekit,
            event,
            room_name=room,
            participant_identity=f"sip-{call_id}",
            participant_kind=lk.ParticipantInfo.Kind.SIP,
            participant_attributes={"sip.callStatus": call_status},
        )
        assert response.status_code == 200

    await post_webhook(client, livekit, "room_started", room_name=room)
    await callee("participant_joined", "ringing")
    await callee("participant_joined", "ringing")  # LiveKit may say it twice
    ringing = await Call.get(id=call_id)
    assert ringing.status == "ringing" and ringing.answered_at is None
    await callee("track_published", "active")  # it picked up: its audio is published
    assert (await Call.get(id=call_id)).status == "in_progress"
    events = await WebhookDelivery.filter(workspace_id=line["workspace"].id).values_list(
        "event_type", flat=True
    )
    assert sorted(events) == ["call_answered", "call_ringing", "call_started"]


# ------------------------------------------------------------------------------------------
# The whole flow: worker, LiveKit stand-in, control plane
# ------------------------------------------------------------------------------------------


@pytest.fixture
def runner(new_runner: Callable[..., CallRunner]) -> CallRunner:  # noqa: F811 (the fixture)
    """A call runner on text, reaching the app in process."""
    return new_runner()


async def test_an_outbound_call_is_transferred_by_name_and_logged(
    client, line, livekit, livekit_api, settings, scripted_llm, runner
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    await update_agent(
        settings.model_copy(update={"allow_private_urls": True}),  # the LLM is on loopback
        line["workspace"].id,
        line["agent"].id,
        scripted_agent_config(
            scripted_llm, first_message="Hello from Acme.", transfer_destinations=DESTINATIONS
        ),
    )
    await PhoneNumber.filter(phone_number=AGENT_NUMBER).update(krisp_enabled=True)
    call_id = await _outbound_call_id(client, line)
    [dispatch] = list(livekit.dispatches.values())
    scripted_llm.on("billing", tool_call("transfer_call", destination="billing"))

    assert await runner.run(dispatch.metadata, dispatch.room, livekit_api, None, None) is None
    [dial] = livekit.calls("CreateSIPParticipant")
    assert dial.request["krisp_enabled"] is True  # the number's setting, not a constant
    await runner.agent.greeting
    await runner.session.run(user_input="Can you put me through to billing?")
    [transfer] = livekit.calls("TransferSIPParticipant")
    assert transfer.error is None
    assert (
        transfer.request["room_name"],
        transfer.request["participant_identity"],
        transfer.request["transfer_to"],
    ) == (dispatch.room, f"sip-{call_id}", "tel:+16505550100")
    # The events fired as the transfer happened, before the call's report.
    live = await Call.get(id=call_id)
    assert live.ended_at is None and [t["outcome"] for t in live.transfers] == ["succeeded"]
    sent = await WebhookDelivery.filter(
        workspace_id=line["workspace"].id, event_type__startswith="transfer_"
    ).values_list("event_type", flat=True)
    assert sorted(sent) == ["transfer_initiated", "transfer_succeeded"]
    await runner.finish("room closed")

    call = await Call.get(id=call_id)
    assert (call.status, call.end_reason) == ("completed", "transferred")
    [record] = call.transfers
    assert (record["destination_name"], record["destination"], record["outcome"]) == (
        "billing",
        "+1650***0100",
        "succeeded",
    )
    events = await WebhookDelivery.filter(workspace_id=line["workspace"].id).values_list(
        "event_type", flat=True
    )
    assert {"transfer_initiated", "transfer_succeeded", "call_ended"} <= set(events)
    assert "transfer_failed" not in events
    assert events.count("transfer_succeeded") == 1  # the report fired it no second time


async def test_transfers_sent_during_the_call_fire_once_and_stop_when_it_is_final(
    client, line, settings
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    call_id = await _outbound_call_id(client, line)
    started = {
        "destination_name": "billing",
        "destination": "+1650***0100",
        "at": "2026-01-05T10:01:00+00:00",
        "outcome": "initiated",
    }
    path = f"/internal/calls/{call_id}/transfers"
    sent = await client.post(path, json={"transfers": [started]}, headers=SERVICE)
    assert sent.status_code == 200 and (await sent.get_json())["applied"] is True
    done = {**started, "outcome": "succeeded"}
    assert (await client.post(path, json={"transfers": [done]}, headers=SERVICE)).status_code == 200
    assert [t["outcome"] for t in (await Call.get(id=call_id)).transfers] == ["succeeded"]
    # the end-of-call report carries the same attempt: nothing fires twice
    await _report(client, call_id, end_reason="transferred", transfers=[done])
    late = await client.post(path, json={"transfers": [done]}, headers=SERVICE)
    assert (await late.get_json())["applied"] is False
    events = await WebhookDelivery.filter(
        workspace_id=line["workspace"].id, event_type__startswith="transfer_"
    ).values_list("event_type", flat=True)
    assert sorted(events) == ["transfer_initiated", "transfer_succeeded"]
    bad = await client.post(
        path, json={"transfers": [{**done, "outcome": "maybe"}]}, headers=SERVICE
    )
    assert bad.status_code == 400
    assert (await client.post(path, json={"transfers": []})).status_code == 401
