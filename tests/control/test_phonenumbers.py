"""`/phonenumbers` against the LiveKit (Twirp) and Twilio/Vonage stand-ins."""

import pytest

from control.models import Agent, PhoneNumber, Role
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user
from tests.fakes.livekit_server import object_count

TRUNK_BODY = {
    "sip_address": "sip.example.com",
    "phone_number": "+16505551234",
    "email": "owner@example.com",
    "provider": "vonage",
    "auth_username": "user",
    "auth_password": "pass-secret-99",
    "krisp_enabled": True,
    "label": "Main Line",
}


@pytest.fixture
async def team(db, settings, livekit, twilio, vonage):
    developer, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=workspace)
    outsider, _ = await make_user("outsider@example.com", role=Role.ADMIN)
    return {
        "dev": auth_headers(settings, developer),
        "member": auth_headers(settings, member),
        "outsider": auth_headers(settings, outsider),
        "workspace": workspace,
    }


async def test_sip_trunk_provisions_three_objects_and_hides_the_password(client, team, livekit):
    response = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=team["dev"])
    assert response.status_code == 201, await response.get_json()
    body = await response.get_json()
    assert "pass-secret-99" not in await response.get_data(as_text=True)
    assert body["has_auth_password"] is True and body["krisp_enabled"] is True
    assert sorted(livekit.methods()) == [
        "CreateSIPDispatchRule",
        "CreateSIPInboundTrunk",
        "CreateSIPOutboundTrunk",
    ]
    inbound = next(iter(livekit.inbound_trunks.values()))
    assert list(inbound.numbers) == ["+16505551234"] and inbound.krisp_enabled
    outbound = next(iter(livekit.outbound_trunks.values()))
    assert outbound.address == "sip.example.com" and outbound.auth_username == "user"
    stored = await PhoneNumber.get(phone_number="+16505551234")
    assert stored.auth_password_encrypted and "pass-secret-99" not in stored.auth_password_encrypted
    again = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=team["dev"])
    assert again.status_code == 409 and object_count(livekit) == 3


async def test_sip_trunk_rolls_back_on_livekit_failure(client, team, livekit):
    livekit.fail("CreateSIPDispatchRule")
    response = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=team["dev"])
    assert response.status_code == 502
    assert (await response.get_json())["code"] == "LIVEKIT_ERROR"
    assert object_count(livekit) == 0
    assert await PhoneNumber.all().count() == 0


@pytest.mark.parametrize(
    "changes", [{"phone_number": "6505551234"}, {"sip_address": "sip:user@host"}, {"extra": 1}]
)
async def test_sip_trunk_bad_input(client, team, livekit, changes):
    response = await client.post(
        "/phonenumbers/sip_trunk", json={**TRUNK_BODY, **changes}, headers=team["dev"]
    )
    assert response.status_code == 400
    assert object_count(livekit) == 0 and await PhoneNumber.all().count() == 0


async def test_update_in_place_and_delete_everything(client, team, livekit):
    await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=team["dev"])
    before = set(livekit.outbound_trunks)
    response = await client.put(
        "/phonenumbers/update_sip/+16505551234",
        json={"sip_address": "sip2.example.com", "krisp_enabled": False},
        headers=team["dev"],
    )
    assert response.status_code == 200, await response.get_json()
    assert set(livekit.outbound_trunks) == before  # same trunk, changed in place
    assert next(iter(livekit.outbound_trunks.values())).address == "sip2.example.com"
    assert "DeleteSIPTrunk" not in livekit.methods()
    other = await client.put(
        "/phonenumbers/update_sip/+16505551234", json={"label": "x"}, headers=team["outsider"]
    )
    assert other.status_code == 404
    assert (
        await client.delete("/phonenumbers/delete_sip/+16505551234", headers=team["outsider"])
    ).status_code == 404
    deleted = await client.delete("/phonenumbers/delete_sip/+16505551234", headers=team["dev"])
    assert deleted.status_code == 204
    assert object_count(livekit) == 0 and await PhoneNumber.all().count() == 0
    assert (
        await client.delete("/phonenumbers/delete_sip/not-a-number", headers=team["dev"])
    ).status_code == 400


async def test_roles(client, team, livekit):
    assert (
        await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=team["member"])
    ).status_code == 403
    assert (await client.get("/phonenumbers", headers=team["member"])).status_code == 200
    assert object_count(livekit) == 0


async def test_map_agent_routes_inbound_calls(client, team, settings):
    await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=team["dev"])
    agent = await create_agent(settings, team["workspace"].id, {"agent_name": "Reception"})
    mapping = {"phone_number": "+16505551234", "agent_id": str(agent.id)}
    # Routing a number is a write: members read only (PARITY.md's roles).
    refused = await client.put("/phonenumbers/map_agent", json=mapping, headers=team["member"])
    assert refused.status_code == 403
    assert (await Agent.get(id=agent.id)).phone_number is None
    response = await client.put("/phonenumbers/map_agent", json=mapping, headers=team["dev"])
    assert response.status_code == 200
    assert (await response.get_json())["agent_id"] == str(agent.id)
    assert (await Agent.get(id=agent.id)).phone_number == "+16505551234"
    listed = await (await client.get("/phonenumbers", headers=team["dev"])).get_json()
    assert listed["items"][0]["agent_name"] == "Reception"
    # inbound: the worker finds the agent by the dialled number
    spec = await client.post(
        "/internal/numbers/+16505551234/calls",
        json={},
        headers={"Authorization": "Bearer test-service-token"},
    )
    assert (await spec.get_json())["agent"]["agent_id"] == str(agent.id)
    foreign = await client.put(
        "/phonenumbers/map_agent",
        json={"phone_number": "+16505551234", "agent_id": str(agent.id)},
        headers=team["outsider"],
    )
    assert foreign.status_code == 404


INBOUND = "/internal/numbers/+16505551234/calls"
SERVICE = {"Authorization": "Bearer test-service-token"}


async def test_naming_a_number_squats_nothing_and_routes_nothing(client, team, settings):
    squatter = await client.post(
        "/agents",
        json={"agent_name": "Squatter", "phone_number": "+16505551234"},
        headers=team["outsider"],
    )
    assert squatter.status_code == 201
    squatter_id = (await squatter.get_json())["id"]
    assert (await client.post(INBOUND, json={}, headers=SERVICE)).status_code == 404
    dial = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155559876"}
    refused = await client.post("/calls/outbound_call", json=dial, headers=team["outsider"])
    assert refused.status_code == 404
    assert (await refused.get_json())["code"] == "NUMBER_NOT_REGISTERED"

    # The real owner registers the number and puts it on an agent: nothing stands in the way.
    registered = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=team["dev"])
    assert registered.status_code == 201, await registered.get_json()
    owner = await client.post(
        "/agents",
        json={"agent_name": "Reception", "phone_number": "+16505551234"},
        headers=team["dev"],
    )
    assert owner.status_code == 201, await owner.get_json()
    owner_body = await owner.get_json()
    assert owner_body["phone_number_status"] == "active"
    inbound = await client.post(INBOUND, json={}, headers=SERVICE)
    assert (await inbound.get_json())["agent"]["agent_id"] == owner_body["id"]
    # A second agent of the owner cannot take it silently; map_agent moves it.
    clash = await client.post(
        "/agents", json={"agent_name": "Two", "phone_number": "+16505551234"}, headers=team["dev"]
    )
    assert clash.status_code == 409

    # map_agent touches only the owner's agents; the squatter still names the number, inert.
    spare = await create_agent(settings, team["workspace"].id, {"agent_name": "Spare"})
    mapped = await client.put(
        "/phonenumbers/map_agent",
        json={"phone_number": "+16505551234", "agent_id": str(spare.id)},
        headers=team["dev"],
    )
    assert mapped.status_code == 200
    squatter_now = await (
        await client.get(f"/agents/{squatter_id}", headers=team["outsider"])
    ).get_json()
    assert squatter_now["phone_number"] == "+16505551234"
    assert squatter_now["phone_number_status"] == "not_registered"
    inbound = await client.post(INBOUND, json={}, headers=SERVICE)
    assert (await inbound.get_json())["agent"]["agent_id"] == str(spare.id)
    refused = await client.post("/calls/outbound_call", json=dial, headers=team["outsider"])
    assert refused.status_code == 404


async def test_registering_routes_the_agent_that_named_the_number(client, team, twilio):
    named = await client.post(
        "/agents",
        json={"agent_name": "Early", "phone_number": "+14155550123"},
        headers=team["dev"],
    )
    squatter = await client.post(
        "/agents",
        json={"agent_name": "Squatter", "phone_number": "+14155550123"},
        headers=team["outsider"],
    )
    assert named.status_code == squatter.status_code == 201
    bought = await client.post(
        "/phonenumbers/purchase",
        json={"phone_number": "+14155550123", "provider": "twilio", "country_code": "US"},
        headers=team["dev"],
    )
    assert bought.status_code == 201, await bought.get_json()
    agent_id = (await named.get_json())["id"]
    shown = await (await client.get(f"/agents/{agent_id}", headers=team["dev"])).get_json()
    assert shown["phone_number_status"] == "active"
    inbound = await client.post("/internal/numbers/+14155550123/calls", json={}, headers=SERVICE)
    assert (await inbound.get_json())["agent"]["agent_id"] == agent_id
    # Deleting the number leaves the agent naming it, inert.
    deleted = await client.delete("/phonenumbers/delete_sip/+14155550123", headers=team["dev"])
    assert deleted.status_code == 204
    shown = await (await client.get(f"/agents/{agent_id}", headers=team["dev"])).get_json()
    assert shown["phone_number_status"] == "not_registered"
    assert (
        await client.post("/internal/numbers/+14155550123/calls", json={}, headers=SERVICE)
    ).status_code == 404


async def test_search_is_public_and_purchase_provisions(client, team, livekit, twilio):
    found = await client.get("/phonenumbers/search?country_code=US&area_code=650")
    assert found.status_code == 200
    numbers = [item["phone_number"] for item in (await found.get_json())["items"]]
    assert numbers and all(n.startswith("+1650") for n in numbers)
    assert (await client.get("/phonenumbers/search")).status_code == 400
    bought = await client.post(
        "/phonenumbers/purchase",
        json={
            "phone_number": numbers[0],
            "provider": "twilio",
            "country_code": "US",
            "sip_address": "voxline.pstn.twilio.com",
        },
        headers=team["dev"],
    )
    assert bought.status_code == 201, await bought.get_json()
    assert numbers[0] in twilio.owned_numbers()
    assert object_count(livekit) == 3


async def test_purchase_releases_the_number_when_livekit_fails(client, team, livekit, twilio):
    livekit.fail("CreateSIPInboundTrunk")
    response = await client.post(
        "/phonenumbers/purchase",
        json={"phone_number": "+14155550123", "provider": "twilio", "country_code": "US"},
        headers=team["dev"],
    )
    assert response.status_code == 502
    assert twilio.owned_numbers() == [] and object_count(livekit) == 0
    assert await PhoneNumber.all().count() == 0
