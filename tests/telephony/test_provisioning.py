"""SIP provisioning against the LiveKit stand-in: create, roll back, update in place, delete."""

from __future__ import annotations

import json
import logging

import pytest

from telephony import sip
from telephony.errors import LiveKitError
from tests.fakes.livekit_server import FakeLiveKit, object_count
from tests.telephony.conftest import AGENT_NAME

NUMBER = "+16505551234"
METADATA = {"workspace_id": "ws-1", "phone_number_id": "pn-1"}


async def provision(settings, **overrides) -> sip.SipProvisioning:
    arguments = {
        "sip_address": "sip.example.com",
        "auth_username": "trunk-user",
        "auth_password": "trunk-pass",
        "krisp_enabled": True,
        "label": "Main Line",
        "metadata": METADATA,
        "settings": settings,
    }
    return await sip.provision_number(NUMBER, **(arguments | overrides))


async def test_provisioning_creates_exactly_the_three_objects(livekit, telephony_settings):
    result = await provision(telephony_settings)

    assert livekit.methods() == [
        "CreateSIPInboundTrunk",
        "CreateSIPOutboundTrunk",
        "CreateSIPDispatchRule",
    ]
    assert set(livekit.inbound_trunks) == {result.inbound_trunk_id}
    assert set(livekit.outbound_trunks) == {result.outbound_trunk_id}
    assert set(livekit.dispatch_rules) == {result.dispatch_rule_id}

    inbound = livekit.inbound_trunks[result.inbound_trunk_id]
    assert list(inbound.numbers) == [NUMBER]
    assert inbound.krisp_enabled is True
    assert inbound.name == "Main Line"
    assert not inbound.auth_username  # inbound calls are matched by the dialled number

    outbound = livekit.outbound_trunks[result.outbound_trunk_id]
    assert outbound.address == "sip.example.com"
    assert list(outbound.numbers) == [NUMBER]
    assert (outbound.auth_username, outbound.auth_password) == ("trunk-user", "trunk-pass")

    rule = livekit.dispatch_rules[result.dispatch_rule_id]
    assert list(rule.trunk_ids) == [result.inbound_trunk_id]
    assert rule.rule.WhichOneof("rule") == "dispatch_rule_individual"
    assert rule.rule.dispatch_rule_individual.room_prefix == "call-"
    [agent] = rule.room_config.agents
    assert agent.agent_name == AGENT_NAME
    assert json.loads(agent.metadata) == METADATA


async def test_provisioning_without_a_sip_address_makes_no_outbound_trunk(
    livekit, telephony_settings
):
    result = await provision(telephony_settings, sip_address=None, agent_name="other-agent")

    assert result.outbound_trunk_id is None
    assert livekit.methods() == ["CreateSIPInboundTrunk", "CreateSIPDispatchRule"]
    [rule] = livekit.dispatch_rules.values()
    assert rule.room_config.agents[0].agent_name == "other-agent"


@pytest.mark.parametrize(
    ("failing", "created_before"),
    [("CreateSIPInboundTrunk", 0), ("CreateSIPOutboundTrunk", 1), ("CreateSIPDispatchRule", 2)],
)
async def test_a_failed_step_rolls_back_everything_created_before(
    livekit: FakeLiveKit, telephony_settings, failing, created_before
):
    livekit.fail(failing, code="invalid_argument", message="nope")

    with pytest.raises(LiveKitError) as caught:
        await provision(telephony_settings)

    assert caught.value.code == "invalid_argument"
    assert "nope" in str(caught.value)
    assert not caught.value.retryable
    assert object_count(livekit) == 0
    created = [
        call.response["sip_trunk_id"]
        for call in livekit.calls()
        if call.method in ("CreateSIPInboundTrunk", "CreateSIPOutboundTrunk") and not call.error
    ]
    deleted = [call.request["sip_trunk_id"] for call in livekit.calls("DeleteSIPTrunk")]
    assert len(created) == created_before
    assert sorted(deleted) == sorted(created)
    assert livekit.calls("DeleteSIPDispatchRule") == []


async def test_rollback_deletes_newest_first(livekit, telephony_settings):
    livekit.fail("CreateSIPDispatchRule")

    with pytest.raises(LiveKitError) as caught:
        await provision(telephony_settings)

    assert caught.value.retryable  # a 500 may succeed later
    created = [
        livekit.calls(method)[0].response["sip_trunk_id"]
        for method in ("CreateSIPInboundTrunk", "CreateSIPOutboundTrunk")
    ]
    deleted = [call.request["sip_trunk_id"] for call in livekit.calls("DeleteSIPTrunk")]
    assert deleted == created[::-1]  # the outbound trunk, created last, goes first
    assert object_count(livekit) == 0


async def test_a_create_applied_without_an_answer_is_swept_up(livekit, telephony_settings):
    # The server creates the outbound trunk but the answer is an error: the id is unknown.
    livekit.fail("CreateSIPOutboundTrunk", code="unavailable", after_apply=True)

    with pytest.raises(LiveKitError) as caught:
        await provision(telephony_settings)

    assert caught.value.code == "unavailable"
    assert object_count(livekit) == 0


async def test_a_rule_applied_without_an_answer_is_swept_up(livekit, telephony_settings):
    livekit.fail("CreateSIPDispatchRule", code="internal", after_apply=True)

    with pytest.raises(LiveKitError):
        await provision(telephony_settings)

    assert object_count(livekit) == 0


async def test_a_number_already_on_a_trunk_is_refused_and_the_first_is_kept(
    livekit, telephony_settings
):
    first = await provision(telephony_settings)

    with pytest.raises(LiveKitError) as caught:
        await provision(telephony_settings)

    assert caught.value.code == "already_exists"
    assert set(livekit.inbound_trunks) == {first.inbound_trunk_id}
    assert set(livekit.outbound_trunks) == {first.outbound_trunk_id}
    assert set(livekit.dispatch_rules) == {first.dispatch_rule_id}


@pytest.mark.parametrize(
    "number", ["6505551234", "+0123", "+1 650 555 1234", "", "+16505551234\n", "+1٦٥٠5551234"]
)
async def test_a_number_that_is_not_e164_is_refused_before_calling_livekit(
    livekit, telephony_settings, number
):
    with pytest.raises(ValueError, match="E.164"):
        await sip.provision_number(number, settings=telephony_settings)
    assert livekit.calls() == []


@pytest.mark.parametrize("address", ["sip:user@sip.example.com", "sip.example.com;transport=tcp"])
async def test_a_sip_uri_as_address_is_refused_before_calling_livekit(
    livekit, telephony_settings, address
):
    with pytest.raises(ValueError, match="host name"):
        await provision(telephony_settings, sip_address=address)
    assert livekit.calls() == []


async def test_provisioning_logs_mask_the_number(livekit, telephony_settings, caplog):
    with caplog.at_level(logging.INFO, logger="telephony"):
        await provision(telephony_settings)

    assert "+1650***1234" in caplog.text
    assert NUMBER not in caplog.text
    assert "trunk-pass" not in caplog.text


async def test_update_changes_every_object_in_place(livekit: FakeLiveKit, telephony_settings):
    existing = await provision(telephony_settings)
    livekit.requests.clear()

    result = await sip.update_provisioning(
        existing,
        sip_address="sip2.example.com",
        auth_username="new-user",
        auth_password="new-pass",
        krisp_enabled=False,
        label="Support",
        agent_name="support-agent",
        metadata={"workspace_id": "ws-1", "agent_id": "a-2"},
        settings=telephony_settings,
    )

    assert result == existing
    assert not [m for m in livekit.methods() if m.startswith(("Create", "Delete"))]
    assert {"UpdateSIPInboundTrunk", "UpdateSIPOutboundTrunk", "UpdateSIPDispatchRule"} <= set(
        livekit.methods()
    )
    inbound = livekit.inbound_trunks[existing.inbound_trunk_id]
    assert (inbound.krisp_enabled, inbound.name, list(inbound.numbers)) == (
        False,
        "Support",
        [NUMBER],
    )
    outbound = livekit.outbound_trunks[existing.outbound_trunk_id]
    assert (outbound.address, outbound.auth_username, outbound.auth_password) == (
        "sip2.example.com",
        "new-user",
        "new-pass",
    )
    assert outbound.name == "Support"
    # The outbound trunk is patched with a field mask, never replaced.
    [outbound_update] = livekit.calls("UpdateSIPOutboundTrunk")
    assert "update" in outbound_update.request
    rule = livekit.dispatch_rules[existing.dispatch_rule_id]
    assert rule.name == "Support"
    assert list(rule.trunk_ids) == [existing.inbound_trunk_id]
    [agent] = rule.room_config.agents
    assert agent.agent_name == "support-agent"
    assert json.loads(agent.metadata) == {"workspace_id": "ws-1", "agent_id": "a-2"}


async def test_update_of_one_field_touches_only_its_object(livekit, telephony_settings):
    existing = await provision(telephony_settings)
    livekit.requests.clear()

    await sip.update_provisioning(existing, auth_password="rotated", settings=telephony_settings)

    assert [m for m in livekit.methods() if m.startswith("Update")] == ["UpdateSIPOutboundTrunk"]
    outbound = livekit.outbound_trunks[existing.outbound_trunk_id]
    assert (outbound.address, outbound.auth_username, outbound.auth_password) == (
        "sip.example.com",
        "trunk-user",
        "rotated",
    )


async def test_changing_the_agent_keeps_the_metadata(livekit, telephony_settings):
    existing = await provision(telephony_settings)

    await sip.update_provisioning(existing, agent_name="night-agent", settings=telephony_settings)

    [agent] = livekit.dispatch_rules[existing.dispatch_rule_id].room_config.agents
    assert agent.agent_name == "night-agent"
    assert json.loads(agent.metadata) == METADATA


async def test_a_failed_update_puts_back_what_it_changed(livekit, telephony_settings):
    existing = await provision(telephony_settings)
    before = (
        dict(livekit.inbound_trunks),
        dict(livekit.outbound_trunks),
        dict(livekit.dispatch_rules),
    )
    livekit.fail("UpdateSIPDispatchRule", code="internal")

    with pytest.raises(LiveKitError):
        await sip.update_provisioning(
            existing,
            sip_address="sip2.example.com",
            krisp_enabled=False,
            agent_name="support-agent",
            settings=telephony_settings,
        )

    assert livekit.inbound_trunks[existing.inbound_trunk_id] == before[0][existing.inbound_trunk_id]
    assert (
        livekit.outbound_trunks[existing.outbound_trunk_id] == before[1][existing.outbound_trunk_id]
    )
    assert livekit.dispatch_rules == before[2]


async def test_update_adds_an_outbound_trunk_to_a_number_without_one(livekit, telephony_settings):
    existing = await provision(telephony_settings, sip_address=None)

    result = await sip.update_provisioning(
        existing, sip_address="sip.example.com", auth_username="u", settings=telephony_settings
    )

    assert result.outbound_trunk_id is not None
    assert result.inbound_trunk_id == existing.inbound_trunk_id
    outbound = livekit.outbound_trunks[result.outbound_trunk_id]
    assert (outbound.address, list(outbound.numbers), outbound.auth_username) == (
        "sip.example.com",
        [NUMBER],
        "u",
    )


async def test_update_of_auth_without_any_outbound_trunk_is_refused(livekit, telephony_settings):
    existing = await provision(telephony_settings, sip_address=None)

    with pytest.raises(ValueError, match="sip_address"):
        await sip.update_provisioning(existing, auth_username="u", settings=telephony_settings)


async def test_update_of_objects_deleted_behind_our_back_says_not_found(
    livekit, telephony_settings
):
    existing = await provision(telephony_settings)
    livekit.inbound_trunks.clear()

    with pytest.raises(LiveKitError) as caught:
        await sip.update_provisioning(existing, krisp_enabled=False, settings=telephony_settings)

    assert caught.value.code == "not_found"


async def test_deprovision_removes_everything_and_can_be_repeated(livekit, telephony_settings):
    existing = await provision(telephony_settings)
    livekit.requests.clear()

    await sip.deprovision(existing, settings=telephony_settings)

    assert object_count(livekit) == 0
    assert livekit.methods() == ["DeleteSIPDispatchRule", "DeleteSIPTrunk", "DeleteSIPTrunk"]
    await sip.deprovision(existing, settings=telephony_settings)  # all already gone: no error


async def test_deprovision_tries_every_object_and_reports_failures(livekit, telephony_settings):
    existing = await provision(telephony_settings)
    livekit.fail("DeleteSIPDispatchRule", code="internal", message="rule store down")

    with pytest.raises(LiveKitError, match="rule store down"):
        await sip.deprovision(existing, settings=telephony_settings)

    assert livekit.inbound_trunks == {} and livekit.outbound_trunks == {}
    assert set(livekit.dispatch_rules) == {existing.dispatch_rule_id}
    await sip.deprovision(existing, settings=telephony_settings)  # the retry finishes the job
    assert object_count(livekit) == 0


async def test_one_open_client_can_serve_several_calls(livekit, telephony_settings):
    async with sip.livekit_api(telephony_settings) as client:
        existing = await sip.provision_number(NUMBER, api=client, settings=telephony_settings)
        await sip.deprovision(existing, api=client)

    assert object_count(livekit) == 0
