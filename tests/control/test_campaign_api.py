"""`/api/v/campaign/`: CRUD, validation, slugs, roles, tenancy, cache, status, live, options,
the signed webhook, and `GET /calls?campaign=`."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from control.dialing import campaigns
from control.models import (
    Call,
    Campaign,
    DncNumber,
    Membership,
    Prospect,
    ProspectStatus,
    ProspectUpload,
    Role,
)
from control.security import utcnow
from control.services import webhooks
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user
from tests.control.campaigning import (
    DISPOSITIONS,
    LINE_NUMBER,
    campaign_body,
    create_campaign,
    event_body,
    signed_headers,
)

PARITY_DEFAULTS = {
    "locale_name": "USCA",
    "active": True,
    "public_status": False,
    "call_ratio": 1.0,
    "dialer_interval": 10,
    "max_active_calls": 0,
    "max_number_calls": 10,
    "min_time_between_calls": 30,
    "dupe_days": 90,
    "expire_days": 90,
    "earliest_prospect_time": "09:00",
    "latest_prospect_time": "21:00",
    "dispositions": [],
}


async def test_a_campaign_is_created_with_the_documented_defaults(client, line):
    body = await create_campaign(client, line)
    assert body["slug"] == "spring-outreach" and body["name"] == "Spring outreach"
    assert {field: body[field] for field in PARITY_DEFAULTS} == PARITY_DEFAULTS
    assert body["agent_id"] == str(line["agent"].id)
    assert body["agent_phone_number"] == "+16505551234"
    assert body["created_by_email"] == "dev@example.com"
    assert body["uploads"] == [] and body["total_prospects"] == 0
    assert set(body["prospects"]) == {status.value for status in ProspectStatus}
    detail = await client.get("/api/v/campaign/spring-outreach/", headers=line["headers"])
    assert detail.status_code == 200
    assert (await detail.get_json())["id"] == body["id"]


async def test_every_option_is_stored_and_read_back(client, line):
    options = {
        "locale_name": "IN",
        "active": False,
        "public_status": True,
        "call_ratio": 2.5,
        "dialer_interval": 2,
        "max_active_calls": 5,
        "max_number_calls": 3,
        "min_time_between_calls": 120,
        "dupe_days": -1,
        "expire_days": 7,
        "earliest_prospect_time": "10:30",
        "latest_prospect_time": "18:00",
        "dispositions": DISPOSITIONS,
    }
    body = await create_campaign(client, line, **options)
    stored = {field: body[field] for field in options}
    assert stored == {
        **options,
        "dispositions": [{"callback": False, "dnc": False, **item} for item in DISPOSITIONS],
    }
    row = await Campaign.get(slug=body["slug"])
    assert row.dialer_interval == 2 and row.dupe_days == -1 and row.locale_name == "IN"


BAD_BODIES = {
    "interval too short": {"dialer_interval": 1},
    "interval too long": {"dialer_interval": 16},
    "interval not a number": {"dialer_interval": "soon"},
    "ratio zero": {"call_ratio": 0},
    "ratio huge": {"call_ratio": 1e12},
    "attempts huge": {"max_number_calls": 10**15},
    "negative spacing": {"min_time_between_calls": -5},
    "dupe days below -1": {"dupe_days": -2},
    "clock not HH:MM": {"earliest_prospect_time": "9am"},
    "clock with seconds": {"latest_prospect_time": "21:00:00"},
    "window backwards": {"earliest_prospect_time": "21:00", "latest_prospect_time": "09:00"},
    "empty window": {"earliest_prospect_time": "10:00", "latest_prospect_time": "10:00"},
    "unknown locale": {"locale_name": "FR"},
    "duplicate dispositions": {"dispositions": [{"name": "yes"}, {"name": "Yes"}]},
    "disposition without name": {"dispositions": [{"description": "x"}]},
    "dispositions not a list": {"dispositions": "interested"},
    "unknown field": {"dialer_speed": 3},
    "blank name": {"name": "   "},
    "bad caller number": {"agent_phone_number": "6505551234"},
    "agent not a uuid": {"agent_id": "agent-1"},
    "null option": {"active": None},
    "NUL in the name": {"name": "Spring\x00"},
    "NUL in a disposition": {"dispositions": [{"name": "yes", "description": "\x00"}]},
}


async def test_invalid_options_are_refused_with_field_errors(client, line):
    for case, fields in BAD_BODIES.items():
        response = await client.post(
            "/api/v/campaign/", json=campaign_body(line, **fields), headers=line["headers"]
        )
        assert response.status_code == 400, (case, await response.get_data(as_text=True))
        body = await response.get_json()
        assert body["code"] == "VALIDATION_ERROR" and body["errors"], case
    assert await Campaign.all().count() == 0


async def test_the_agent_and_number_must_be_the_workspaces(client, line, settings):
    response = await client.post(
        "/api/v/campaign/",
        json=campaign_body(line, agent_phone_number="+16505559999"),
        headers=line["headers"],
    )
    assert response.status_code == 404
    assert (await response.get_json())["code"] == "NUMBER_NOT_REGISTERED"
    other, _ = await make_user("other@example.com", role=Role.ADMIN)
    response = await client.post(
        "/api/v/campaign/", json=campaign_body(line), headers=auth_headers(settings, other)
    )
    assert response.status_code == 404  # the agent is another workspace's
    assert (await response.get_json())["code"] == "AGENT_NOT_FOUND"
    assert await Campaign.all().count() == 0


async def test_a_name_is_unique_per_workspace_and_slugs_platform_wide(client, line, settings):
    await create_campaign(client, line)
    again = await client.post("/api/v/campaign/", json=campaign_body(line), headers=line["headers"])
    assert again.status_code == 409
    assert (await again.get_json())["code"] == "CAMPAIGN_EXISTS"
    # The same name in another workspace: its own campaign, with a suffixed slug.
    other = await second_line(client, settings)
    suffixed = await create_campaign(client, other)
    assert re.fullmatch(r"spring-outreach-[0-9a-f]{6}", suffixed["slug"])
    assert suffixed["name"] == "Spring outreach"
    assert await Campaign.filter(name="Spring outreach").count() == 2
    # A name with no letter or digit still gets a slug.
    odd = await create_campaign(client, line, name="!!!")
    assert odd["slug"] == "campaign"


async def second_line(client, settings, email: str = "dev2@example.com") -> dict:
    """A developer of a new workspace with its own number and agent (like the `line` fixture)."""
    user, workspace = await make_user(email, role=Role.DEVELOPER)
    headers = auth_headers(settings, user)
    trunk = {"sip_address": "sip.example.com", "phone_number": LINE_NUMBER, "provider": "vonage"}
    trunk["phone_number"] = "+16505550199"
    response = await client.post("/phonenumbers/sip_trunk", json=trunk, headers=headers)
    assert response.status_code == 201, await response.get_data(as_text=True)
    agent = await create_agent(
        settings, workspace.id, {"agent_name": "Second", "phone_number": "+16505550199"}
    )
    return {"headers": headers, "agent": agent, "workspace": workspace, "number": "+16505550199"}


async def test_locale_cannot_change_after_creation(client, line):
    await create_campaign(client, line, locale_name="UK")
    url = "/api/v/campaign/spring-outreach/"
    response = await client.patch(url, json={"locale_name": "IN"}, headers=line["headers"])
    assert response.status_code == 400
    assert (await response.get_json())["errors"][0]["field"] == "locale_name"
    put = await client.put(
        url, json=campaign_body(line, locale_name="USCA"), headers=line["headers"]
    )
    assert put.status_code == 400
    same = await client.patch(url, json={"locale_name": "UK"}, headers=line["headers"])
    assert same.status_code == 200
    assert (await Campaign.get(slug="spring-outreach")).locale_name == "UK"


async def test_put_replaces_every_option_and_patch_changes_only_those_sent(client, line):
    await create_campaign(
        client, line, dialer_interval=3, dupe_days=5, dispositions=DISPOSITIONS[:1]
    )
    url = "/api/v/campaign/spring-outreach/"
    patched = await client.patch(url, json={"dialer_interval": 7}, headers=line["headers"])
    assert patched.status_code == 200
    body = await patched.get_json()
    assert body["dialer_interval"] == 7 and body["dupe_days"] == 5
    assert [item["name"] for item in body["dispositions"]] == ["interested"]
    # PUT: what is left out takes its default; the slug and locale stay.
    put = await client.put(
        url, json=campaign_body(line, name="Renamed", call_ratio=3), headers=line["headers"]
    )
    assert put.status_code == 200, await put.get_data(as_text=True)
    body = await put.get_json()
    assert body["name"] == "Renamed" and body["slug"] == "spring-outreach"
    assert body["call_ratio"] == 3.0
    assert {field: body[field] for field in PARITY_DEFAULTS if field != "call_ratio"} == {
        field: value for field, value in PARITY_DEFAULTS.items() if field != "call_ratio"
    }
    # PUT needs the required fields; a PATCH window that ends before it starts is refused.
    incomplete = await client.put(url, json={"dialer_interval": 4}, headers=line["headers"])
    assert incomplete.status_code == 400
    backwards = await client.patch(
        url, json={"earliest_prospect_time": "22:00"}, headers=line["headers"]
    )
    assert backwards.status_code == 400
    assert (await Campaign.get(slug="spring-outreach")).earliest_prospect_time == "09:00"


async def test_renaming_onto_another_campaigns_name_is_409(client, line):
    await create_campaign(client, line)
    await create_campaign(client, line, name="Autumn")
    response = await client.patch(
        "/api/v/campaign/autumn/", json={"name": "Spring outreach"}, headers=line["headers"]
    )
    assert response.status_code == 409
    assert (await Campaign.get(slug="autumn")).name == "Autumn"


async def test_update_delete_and_delete_cache_clear_the_cached_configuration(client, line, redis):
    body = await create_campaign(client, line)
    campaign_id = body["id"]
    key = f"{campaigns.CACHE_PREFIX}{campaign_id}"
    first = await campaigns.cached_config(campaign_id, redis)
    assert first["dialer_interval"] == 10 and await redis.exists(key)
    # A change in the database alone is not seen: the dialer reads the cache.
    await Campaign.filter(id=campaign_id).update(dialer_interval=4)
    assert (await campaigns.cached_config(campaign_id, redis))["dialer_interval"] == 10
    url = "/api/v/campaign/spring-outreach/"
    response = await client.patch(url, json={"dialer_interval": 12}, headers=line["headers"])
    assert response.status_code == 200
    assert not await redis.exists(key)
    assert (await campaigns.cached_config(campaign_id, redis))["dialer_interval"] == 12
    # By hand: delete-cache drops the workspace's entries.
    await Campaign.filter(id=campaign_id).update(dialer_interval=5)
    cleared = await client.delete("/api/v/delete-cache/", headers=line["headers"])
    assert cleared.status_code == 200 and (await cleared.get_json())["cleared"] == 1
    assert (await campaigns.cached_config(campaign_id, redis))["dialer_interval"] == 5
    # Delete: the cache goes with the campaign.
    assert (await client.delete(url, headers=line["headers"])).status_code == 204
    assert not await redis.exists(key)
    assert await campaigns.cached_config(campaign_id, redis) is None


async def test_delete_cache_of_a_workspace_leaves_other_workspaces_cached(
    client, line, redis, settings
):
    mine = await create_campaign(client, line)
    other = await second_line(client, settings)
    theirs = await create_campaign(client, other, name="Theirs")
    for campaign in (mine, theirs):
        await campaigns.cached_config(campaign["id"], redis)
    response = await client.delete("/api/v/delete-cache/", headers=line["headers"])
    assert (await response.get_json())["cleared"] == 1
    assert await redis.exists(f"{campaigns.CACHE_PREFIX}{theirs['id']}")
    root, _ = await make_user("root@example.com", role=Role.MEMBER, superuser=True)
    response = await client.delete("/api/v/delete-cache/", headers=auth_headers(settings, root))
    assert (await response.get_json())["cleared"] == 1
    assert not await redis.exists(f"{campaigns.CACHE_PREFIX}{theirs['id']}")


async def test_deleting_a_campaign_keeps_its_call_logs(client, line):
    body = await create_campaign(client, line)
    call = await Call.create(
        workspace_id=line["workspace"].id,
        call_type="phone",
        call_direction="outbound",
        status="in_progress",
        campaign_id=body["id"],
    )
    response = await client.delete("/api/v/campaign/spring-outreach/", headers=line["headers"])
    assert response.status_code == 204
    assert await Campaign.filter(id=body["id"]).count() == 0
    kept = await Call.get(id=call.id)
    assert str(kept.campaign_id) == body["id"] and kept.status == "in_progress"
    gone = await client.get("/api/v/campaign/spring-outreach/", headers=line["headers"])
    assert gone.status_code == 404


def write_routes(slug: str, upload_id: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("POST", "/api/v/campaign/", {"name": "X"}),
        ("PUT", f"/api/v/campaign/{slug}/", {"name": "X"}),
        ("PATCH", f"/api/v/campaign/{slug}/", {"active": False}),
        ("DELETE", f"/api/v/campaign/{slug}/", None),
        ("POST", f"/api/v/upload/{slug}/", None),
        ("POST", f"/api/v/upload/{upload_id}/retry/", None),
        ("POST", f"/api/v/prospect/{upload_id}/", {"phone_number": "+14155550100"}),
        ("DELETE", "/api/v/delete-cache/", None),
        ("POST", "/api/v/dnc/", {"phone_number": "+14155550100"}),
        ("DELETE", "/api/v/dnc/+14155550100/", None),
    ]


async def _upload_row(campaign: dict, workspace_id, status="failed") -> ProspectUpload:
    return await ProspectUpload.create(
        campaign_id=campaign["id"], workspace_id=workspace_id, list_name="L", status=status
    )


async def test_members_read_and_cannot_write(client, line, settings):
    campaign = await create_campaign(client, line)
    upload = await _upload_row(campaign, line["workspace"].id)
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=line["workspace"])
    headers = auth_headers(settings, member)
    for path in (
        "/api/v/campaign/",
        "/api/v/campaign/spring-outreach/",
        f"/api/v/upload/{upload.id}/",
        "/api/v/options/",
        "/api/v/live/",
        "/api/v/dnc/",
    ):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, path
    for method, path, body in write_routes("spring-outreach", str(upload.id)):
        response = await client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert (await response.get_json())["code"] == "INSUFFICIENT_ROLE"
    assert (await Campaign.get(slug="spring-outreach")).active is True


async def test_a_developer_api_key_writes(client, line):
    from control.services.workspaces import create_api_key

    admin, _ = await make_user("admin@example.com", role=Role.ADMIN, workspace=line["workspace"])
    _, secret = await create_api_key(line["workspace"].id, admin, "ci", Role.DEVELOPER)
    body = await create_campaign(client, line, headers={"X-API-Key": secret})
    assert body["created_by_email"] is None
    _, member_secret = await create_api_key(line["workspace"].id, admin, "ro", Role.MEMBER)
    response = await client.patch(
        "/api/v/campaign/spring-outreach/",
        json={"active": False},
        headers={"X-API-Key": member_secret},
    )
    assert response.status_code == 403


async def test_another_workspaces_campaign_answers_404(client, line, settings):
    campaign = await create_campaign(client, line)
    upload = await _upload_row(campaign, line["workspace"].id)
    outsider, _ = await make_user("outsider@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, outsider)
    for method, path, body in [
        ("GET", "/api/v/campaign/spring-outreach/", None),
        ("PATCH", "/api/v/campaign/spring-outreach/", {"active": False}),
        ("DELETE", "/api/v/campaign/spring-outreach/", None),
        ("POST", f"/api/v/upload/{upload.id}/retry/", None),
        ("POST", f"/api/v/prospect/{upload.id}/", {"phone_number": "+14155550100"}),
        ("GET", f"/api/v/upload/{upload.id}/", None),
        ("GET", "/api/v/live/?campaign=spring-outreach", None),
        ("PUT", "/api/v/campaign/spring-outreach/", campaign_body(line)),
    ]:
        response = await client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 404, (method, path)
    listed = await client.get("/api/v/campaign/", headers=headers)
    assert (await listed.get_json())["total"] == 0
    row = await Campaign.get(slug="spring-outreach")
    assert row.active is True
    assert (await ProspectUpload.get(id=upload.id)).status == "failed"


async def test_the_list_is_paginated_and_filtered_by_creator_and_workspace(client, line, settings):
    for index in range(3):
        await create_campaign(client, line, name=f"Campaign {index}")
    colleague, _ = await make_user(
        "colleague@example.com", role=Role.DEVELOPER, workspace=line["workspace"]
    )
    await create_campaign(
        client, line, headers=auth_headers(settings, colleague), name="Colleague's"
    )
    page = await (
        await client.get("/api/v/campaign/?page_size=2", headers=line["headers"])
    ).get_json()
    assert page["total"] == 4 and len(page["items"]) == 2 and page["has_next"] is True
    mine = await (
        await client.get("/api/v/campaign/?email=colleague@example.com", headers=line["headers"])
    ).get_json()
    assert [item["name"] for item in mine["items"]] == ["Colleague's"]
    # `workspace`: one the caller belongs to, else 404; a superuser may name any.
    other = await second_line(client, settings, "dev3@example.com")
    await create_campaign(client, other, name="Elsewhere")
    url = f"/api/v/campaign/?workspace={other['workspace'].id}"
    assert (await client.get(url, headers=line["headers"])).status_code == 404
    root, _ = await make_user("root@example.com", role=Role.MEMBER, superuser=True)
    listed = await (await client.get(url, headers=auth_headers(settings, root))).get_json()
    assert [item["name"] for item in listed["items"]] == ["Elsewhere"]
    bad = await client.get("/api/v/campaign/?workspace=nope", headers=line["headers"])
    assert bad.status_code == 400


async def test_options_list_every_allowed_value(client, line):
    response = await client.get("/api/v/options/", headers=line["headers"])
    assert response.status_code == 200
    body = await response.get_json()
    assert {locale["code"] for locale in body["locales"]} == {"USCA", "IN", "UK"}
    zones = {locale["code"]: locale["default_timezone"] for locale in body["locales"]}
    assert zones["IN"] == "Asia/Kolkata"
    assert body["numeric"]["dialer_interval"] == {
        "min": 2, "max": 15, "default": 10, "type": "integer",
        "description": "seconds between dialer ticks",
    }  # fmt: skip
    assert body["numeric"]["dupe_days"]["min"] == -1
    assert body["times"]["earliest_prospect_time"]["default"] == "09:00"
    assert body["times"]["latest_prospect_time"]["format"] == "HH:MM"
    assert "callback" in body["dispositions"]["flags"]


async def _prospect(campaign_id, workspace_id, number: str, name: str, status="pending"):
    return await Prospect.create(
        campaign_id=campaign_id,
        workspace_id=workspace_id,
        phone_number=number,
        name=name,
        status=status,
        timezones=["America/Los_Angeles"],
    )


async def test_todays_calls_are_counted_in_the_campaigns_own_day(client, line):
    body = await create_campaign(client, line, public_status=True)  # USCA: New York's day
    new_york = ZoneInfo("America/New_York")
    evening = datetime.combine(utcnow().astimezone(new_york).date(), clock(20), new_york)
    for hours_before in (1, 18, 23):  # 19:00 and 02:00 that day, and 21:00 the day before
        call = await Call.create(
            workspace_id=line["workspace"].id, call_type="phone", call_direction="outbound",
            status="completed", campaign_id=body["id"], to_number="+14155550111",
        )  # fmt: skip
        at = (evening - timedelta(hours=hours_before)).astimezone(UTC)  # stored in UTC, as always
        await Call.filter(id=call.id).update(created_at=at)
    # 20:00 in New York is already tomorrow in UTC: a UTC day would count only the 19:00 call.
    status = await campaigns.campaign_status("spring-outreach", now=evening.astimezone(UTC))
    assert (status["timezone"], status["calls_today"]) == ("America/New_York", 2)


async def test_the_public_status_has_counts_and_no_personal_data(client, line):
    body = await create_campaign(client, line, public_status=True)
    workspace_id = line["workspace"].id
    people = {"+14155550111": "Ada Lovelace", "+14155550122": "Grace Hopper"}
    for (number, name), status in zip(people.items(), ("pending", "completed"), strict=True):
        await _prospect(body["id"], workspace_id, number, name, status)
    now = utcnow()
    for status, answered in (("in_progress", now), ("completed", now), ("no_answer", None)):
        await Call.create(
            workspace_id=workspace_id,
            call_type="phone",
            call_direction="outbound",
            status=status,
            to_number="+14155550111",
            from_number="+16505551234",
            answered_at=answered,
            campaign_id=body["id"],
        )
    yesterday = await Call.create(
        workspace_id=workspace_id, call_type="phone", call_direction="outbound",
        status="completed", campaign_id=body["id"], to_number="+14155550122",
    )  # fmt: skip
    await Call.filter(id=yesterday.id).update(created_at=now - timedelta(days=2))
    response = await client.get("/api/v/campaign/spring-outreach/status/")  # no credentials
    assert response.status_code == 200
    status = await response.get_json()
    assert status["campaign"] == "Spring outreach" and status["active"] is True
    assert status["prospects"]["pending"] == 1 and status["prospects"]["completed"] == 1
    assert status["total_prospects"] == 2
    assert (status["calls_today"], status["answered_today"], status["active_now"]) == (3, 2, 1)
    text = await response.get_data(as_text=True)
    for number in (*people, "+16505551234"):
        assert number[-7:] not in text and number[2:5] + number[5:8] not in text
    for name in people.values():
        assert name.split()[0] not in text and name.split()[1] not in text
    assert "dev@example.com" not in text and body["id"] not in text
    assert str(workspace_id) not in text and str(line["agent"].id) not in text
    missing = await client.get("/api/v/campaign/no-such-campaign/status/")
    assert missing.status_code == 404


async def test_a_campaigns_status_is_private_unless_it_says_public(client, line, settings):
    from control.services.workspaces import create_api_key

    await create_campaign(client, line)  # public_status defaults to false
    url = "/api/v/campaign/spring-outreach/status/"
    unknown = await client.get("/api/v/campaign/no-such-campaign/status/")
    assert unknown.status_code == 404
    outsider, _ = await make_user("outsider@example.com", role=Role.ADMIN)
    for headers in ({}, auth_headers(settings, outsider)):  # anonymous, another tenant
        hidden = await client.get(url, headers=headers)
        assert hidden.status_code == 404
        assert await hidden.get_json() == await unknown.get_json()  # nothing tells them apart
    # The workspace's own people always see it: a member (whatever workspace they work in
    # now), a member-role API key.
    member, elsewhere = await make_user("member@example.com", role=Role.MEMBER)
    await Membership.create(user=member, workspace=line["workspace"], role=Role.MEMBER)
    admin, _ = await make_user("admin@example.com", role=Role.ADMIN, workspace=line["workspace"])
    _, member_key = await create_api_key(line["workspace"].id, admin, "ro", Role.MEMBER)
    for headers in (
        line["headers"],
        auth_headers(settings, member),
        auth_headers(settings, member, elsewhere),
        {"X-API-Key": member_key},
    ):
        seen = await client.get(url, headers=headers)
        assert seen.status_code == 200
        assert (await seen.get_json())["slug"] == "spring-outreach"
    wrong = await client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401

    made_public = await client.patch(
        "/api/v/campaign/spring-outreach/", json={"public_status": True}, headers=line["headers"]
    )
    assert (await made_public.get_json())["public_status"] is True
    for headers in ({}, auth_headers(settings, outsider)):
        assert (await client.get(url, headers=headers)).status_code == 200
    await client.patch(
        "/api/v/campaign/spring-outreach/", json={"public_status": False}, headers=line["headers"]
    )
    assert (await client.get(url)).status_code == 404


async def test_the_status_counts_only_calls_of_the_campaigns_workspace(client, line):
    body = await create_campaign(client, line, public_status=True)
    outsider, elsewhere = await make_user("outsider@example.com", role=Role.ADMIN)
    now = utcnow()
    for workspace_id in (line["workspace"].id, elsewhere.id):
        for status, answered in (("in_progress", now), ("completed", now)):
            await Call.create(
                workspace_id=workspace_id, call_type="phone", call_direction="outbound",
                status=status, answered_at=answered, campaign_id=body["id"],
                to_number="+14155550111",
            )  # fmt: skip
    status = await (await client.get("/api/v/campaign/spring-outreach/status/")).get_json()
    assert (status["calls_today"], status["answered_today"], status["active_now"]) == (2, 2, 1)


async def test_the_public_status_is_rate_limited(client, line):
    await create_campaign(client, line, public_status=True)
    # 60 a minute: a burst of 60, then one more a second. A slow machine may take seconds over
    # the burst and earn that many more, so the bound allows them, measured, not guessed.
    started = time.monotonic()
    codes = []
    while 429 not in codes and len(codes) < 200:
        codes.append((await client.get("/api/v/campaign/spring-outreach/status/")).status_code)
    earned = math.ceil(time.monotonic() - started) + 1
    assert codes[-1] == 429 and set(codes[:-1]) == {200}
    assert 60 <= len(codes) - 1 <= 60 + earned


async def test_live_lists_the_workspaces_campaign_calls_in_progress_masked(client, line, settings):
    body = await create_campaign(client, line)
    other = await second_line(client, settings)
    theirs = await create_campaign(client, other, name="Theirs")
    workspace_id = line["workspace"].id
    started = utcnow() - timedelta(seconds=30)

    async def call(status, campaign_id, workspace=workspace_id, to="+14155550111"):
        return await Call.create(
            workspace_id=workspace, call_type="phone", call_direction="outbound",
            status=status, to_number=to, from_number="+16505551234", started_at=started,
            answered_at=started, campaign_id=campaign_id,
        )  # fmt: skip

    live = await call("in_progress", body["id"])
    ringing = await call("ringing", body["id"], to="+14155550122")
    await call("completed", body["id"])  # final: not live
    await call("in_progress", None)  # not a campaign call
    await call("in_progress", theirs["id"], workspace=other["workspace"].id)
    response = await client.get("/api/v/live/", headers=line["headers"])
    assert response.status_code == 200
    page = await response.get_json()
    assert page["total"] == 2
    by_id = {item["call_id"]: item for item in page["items"]}
    assert set(by_id) == {str(live.id), str(ringing.id)}
    item = by_id[str(live.id)]
    assert item["campaign"] == "spring-outreach" and item["status"] == "in_progress"
    assert item["to_number"] == "+1415***0111" and item["duration_seconds"] >= 30
    assert "+14155550111" not in await response.get_data(as_text=True)
    filtered = await client.get("/api/v/live/?campaign=theirs", headers=line["headers"])
    assert filtered.status_code == 404
    for odd in ("%00", "%C2%AD%F0%B5%B9%A9", "x" * 81):
        response = await client.get(f"/api/v/live/?campaign={odd}", headers=line["headers"])
        assert response.status_code in (400, 404), odd
        odd_slug = await client.get(f"/api/v/campaign/{odd}/", headers=line["headers"])
        assert odd_slug.status_code == 404, odd


async def test_calls_filter_by_campaign_id_or_slug(client, line):
    body = await create_campaign(client, line)
    workspace_id = line["workspace"].id
    dialed = await Call.create(
        workspace_id=workspace_id, call_type="phone", call_direction="outbound",
        status="completed", campaign_id=body["id"],
    )  # fmt: skip
    await Call.create(
        workspace_id=workspace_id, call_type="phone", call_direction="outbound",
        status="completed",
    )  # fmt: skip
    for value in (body["id"], "spring-outreach"):
        response = await client.get(f"/calls?campaign={value}", headers=line["headers"])
        assert response.status_code == 200
        items = (await response.get_json())["items"]
        assert [item["id"] for item in items] == [str(dialed.id)]
        assert items[0]["campaign_id"] == body["id"]
    unknown = await client.get("/calls?campaign=other", headers=line["headers"])
    assert (await unknown.get_json())["total"] == 0


async def _signed_setup(client, line, settings):
    campaign = await create_campaign(client, line, dispositions=DISPOSITIONS)
    _, secret = await webhooks.set_endpoint(
        settings, line["workspace"].id, "https://hooks.example.com/voxline"
    )
    prospect = await _prospect(
        campaign["id"], line["workspace"].id, "+14155550111", "Ada", status="completed"
    )
    return campaign, secret, prospect


async def post_event(client, secret: str | None, timestamp=None, **fields):
    body = event_body(**fields)
    headers = (
        signed_headers(secret, body, timestamp) if secret else {"Content-Type": "application/json"}
    )
    return await client.post("/api/v/webhook/", data=body, headers=headers)


async def test_a_signed_webhook_applies_a_disposition(client, line, settings):
    _, secret, prospect = await _signed_setup(client, line, settings)
    callback_at = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    response = await post_event(
        client, secret, campaign="spring-outreach", prospect_id=str(prospect.id),
        disposition="call_back", callback_at=callback_at.isoformat(),
    )  # fmt: skip
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert (await response.get_json())["status"] == "callback"
    row = await Prospect.get(id=prospect.id)
    assert row.status == "callback" and row.disposition == "call_back"
    assert row.callback_at == callback_at and row.next_attempt_at == callback_at
    # By number, a do-not-call disposition: the number joins the workspace's list.
    response = await post_event(
        client, secret, campaign="spring-outreach", phone_number="+1 415 555 0111",
        disposition="do_not_call",
    )  # fmt: skip
    assert response.status_code == 200
    row = await Prospect.get(id=prospect.id)
    assert row.status == "dnc" and row.next_attempt_at is None
    entry = await DncNumber.get(workspace_id=line["workspace"].id, phone_number="+14155550111")
    assert entry.source == "webhook"


async def test_unsigned_stale_or_wrongly_signed_webhooks_get_401(client, line, settings):
    _, secret, prospect = await _signed_setup(client, line, settings)
    event = {"campaign": "spring-outreach", "prospect_id": str(prospect.id)}
    event["disposition"] = "do_not_call"
    refusals = [
        await post_event(client, None, **event),
        await post_event(client, "whsec_wrong", **event),
        await post_event(client, secret, timestamp=int(time.time()) - 301, **event),
        await post_event(client, secret, timestamp=int(time.time()) + 301, **event),
        await post_event(client, secret, **{**event, "campaign": "no-such-slug"}),
    ]
    body = event_body(**event)
    tampered = signed_headers(secret, body)
    refusals.append(
        await client.post(
            "/api/v/webhook/", data=body.replace(b"do_not", b"xdo_no"), headers=tampered
        )
    )
    refusals.append(
        await client.post(
            "/api/v/webhook/", data=b"not json", headers=signed_headers(secret, b"not json")
        )
    )
    bodies = []
    for response in refusals:
        assert response.status_code == 401
        bodies.append(await response.get_json())
    # An unknown slug reads exactly like a bad signature.
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["code"] == "INVALID_SIGNATURE"
    assert (await Prospect.get(id=prospect.id)).status == "completed"
    assert await DncNumber.all().count() == 0


async def test_a_webhook_signature_is_checked_over_the_raw_bytes_before_parsing(
    client, line, settings
):
    _, secret, prospect = await _signed_setup(client, line, settings)
    headers = {"Content-Type": "application/json"}
    # Unsigned, nothing is parsed: this used to raise RecursionError in the parser (a 500).
    deep = b"[" * 100_000
    unsigned = await client.post("/api/v/webhook/", data=deep, headers=headers)
    assert unsigned.status_code == 401
    assert (await unsigned.get_json())["code"] == "INVALID_SIGNATURE"
    # Signed, the body is then parsed like any JSON body: too deep is a 400.
    deep = ('{"campaign": "spring-outreach", "x": ' + "[" * 100 + "]" * 100 + "}").encode()
    signed_deep = await client.post(
        "/api/v/webhook/", data=deep, headers=signed_headers(secret, deep)
    )
    assert signed_deep.status_code == 400
    assert (await signed_deep.get_json())["code"] == "JSON_TOO_DEEP"
    # The secret is the campaign's that the body names first; an event whose parsed campaign
    # (a repeated key's last value) is another one is refused.
    event = {"prospect_id": str(prospect.id), "disposition": "do_not_call"}
    twofaced = (
        '{"campaign": "spring-outreach", "campaign": "another-campaign", '
        + event_body(**event).decode()[1:]
    ).encode()
    refused = await client.post(
        "/api/v/webhook/", data=twofaced, headers=signed_headers(secret, twofaced)
    )
    assert refused.status_code == 401
    assert (await Prospect.get(id=prospect.id)).status == "completed"


async def test_a_replayed_webhook_answers_not_applied_and_changes_nothing(
    client, line, settings, redis
):
    _, secret, prospect = await _signed_setup(client, line, settings)
    callback_at = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    first = event_body(
        campaign="spring-outreach", prospect_id=str(prospect.id), disposition="call_back",
        callback_at=callback_at.isoformat(),
    )  # fmt: skip
    first_headers = signed_headers(secret, first)
    applied = await client.post("/api/v/webhook/", data=first, headers=first_headers)
    assert applied.status_code == 200
    assert (await applied.get_json())["applied"] is True
    later = event_body(
        campaign="spring-outreach", prospect_id=str(prospect.id), disposition="interested"
    )
    assert (
        await client.post("/api/v/webhook/", data=later, headers=signed_headers(secret, later))
    ).status_code == 200
    (before,) = await Prospect.filter(id=prospect.id).values()
    assert before["disposition"] == "interested"
    # The captured first request, sent again within its window: answered, not applied again.
    replayed = await client.post("/api/v/webhook/", data=first, headers=first_headers)
    assert replayed.status_code == 200
    assert await replayed.get_json() == {"applied": False}
    assert await Prospect.filter(id=prospect.id).values() == [before]
    # Remembered for the signature's window only.
    seen = [key async for key in redis.scan_iter(match=f"{campaigns.SEEN_SIGNATURE_PREFIX}*")]
    assert len(seen) == 2  # the two requests applied
    for key in seen:
        assert 0 < await redis.ttl(key) <= 2 * campaigns.SIGNATURE_TOLERANCE_SECONDS
    # A request that was refused is not remembered: sent again, it is refused again.
    missing = event_body(
        campaign="spring-outreach", phone_number="+14155550199", disposition="interested"
    )
    missing_headers = signed_headers(secret, missing)
    for _ in range(2):
        again = await client.post("/api/v/webhook/", data=missing, headers=missing_headers)
        assert again.status_code == 404


async def test_a_signed_webhook_for_an_unknown_prospect_or_disposition(client, line, settings):
    _, secret, prospect = await _signed_setup(client, line, settings)
    missing = await post_event(
        client, secret, campaign="spring-outreach", phone_number="+14155550199",
        disposition="interested",
    )  # fmt: skip
    assert missing.status_code == 404
    assert (await missing.get_json())["code"] == "PROSPECT_NOT_FOUND"
    unknown = await post_event(
        client, secret, campaign="spring-outreach", prospect_id=str(prospect.id),
        disposition="maybe",
    )  # fmt: skip
    assert unknown.status_code == 400
    assert (await unknown.get_json())["code"] == "UNKNOWN_DISPOSITION"
    nameless = await post_event(client, secret, campaign="spring-outreach", disposition="x")
    assert nameless.status_code == 400
    assert (await Prospect.get(id=prospect.id)).disposition is None


async def test_a_callback_without_a_time_waits_the_minimum_spacing(client, line):
    campaign = await create_campaign(
        client, line, dispositions=DISPOSITIONS, min_time_between_calls=45
    )
    prospect = await _prospect(campaign["id"], line["workspace"].id, "+14155550111", "Ada")
    before = utcnow()
    await campaigns.apply_disposition(prospect, "call_back", callback_at=None, source="dialer")
    row = await Prospect.get(id=prospect.id)
    assert row.status == "callback"
    assert before + timedelta(minutes=45) <= row.next_attempt_at <= utcnow() + timedelta(minutes=45)
    # A prospect on do-not-call is never moved back to a callback.
    await campaigns.apply_disposition(prospect, "do_not_call", callback_at=None, source="dialer")
    await campaigns.apply_disposition(prospect, "call_back", callback_at=None, source="dialer")
    row = await Prospect.get(id=prospect.id)
    assert row.status == "dnc" and row.disposition == "call_back"
    entry = await DncNumber.get(phone_number="+14155550111")
    assert entry.source == "disposition"
