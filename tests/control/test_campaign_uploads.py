"""Prospect lists: uploads read by the job queue, row rejects, bad files, retries without
duplicates, and prospects added one at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from control.dialing import prospects
from control.models import Membership, Prospect, ProspectUpload, Role
from tests.conftest import auth_headers, make_user
from tests.control.batching import csv_of, numbers
from tests.control.campaigning import create_campaign, run_jobs, upload_list


async def upload_detail(client, headers, upload_id: str) -> dict:
    response = await client.get(f"/api/v/upload/{upload_id}/", headers=headers)
    assert response.status_code == 200
    return await response.get_json()


async def test_an_upload_is_read_by_a_job_into_prospects(client, line, settings, redis):
    await create_campaign(client, line, active=False)  # the dialer stays out
    file = (
        b"Name,Phone,Timezone,Plan\n"
        b"Ada,+1 212 555 0100,,gold\n"  # New York by its area code
        b"Bob,(312) 555-0101,America/Denver,silver\n"  # no +: the locale's country; zone given
        b"Cy,12345,,bronze\n"  # line 4: invalid number
        b"Di,+14155550102,Mars/Olympus,gold\n"  # line 5: unknown zone
        b"Ed,+1 212 555 0100,,gold\n"  # line 6: the number of line 2
        b"Fi,+442079460000,,\n"  # a London number
    )
    response = await upload_list(client, line["headers"], "spring-outreach", file, priority=5)
    assert response.status_code == 202, await response.get_data(as_text=True)
    accepted = await response.get_json()
    assert accepted["status"] == "pending" and accepted["added_count"] == 0
    await run_jobs(settings, redis)
    body = await upload_detail(client, line["headers"], accepted["uuid"])
    assert body["status"] == "completed", body
    assert (body["total_rows"], body["added_count"], body["rejected_count"]) == (6, 3, 3)
    reasons = {row["line"]: row["reason"] for row in body["rejects"]}
    assert set(reasons) == {4, 5, 6}
    assert reasons[4].startswith("invalid") and reasons[5].startswith("invalid time zone")
    assert reasons[6].startswith("duplicate")
    stored = {
        prospect.line: prospect
        for prospect in await Prospect.filter(upload_id=accepted["uuid"]).order_by("line")
    }
    assert set(stored) == {2, 3, 7}
    assert stored[2].phone_number == "+12125550100" and stored[2].name == "Ada"
    assert stored[2].timezones == ["America/New_York"]
    assert stored[2].variables == {"Plan": "gold"}
    assert stored[3].phone_number == "+13125550101" and stored[3].timezones == ["America/Denver"]
    assert stored[7].timezones == ["Europe/London"]
    assert all(
        prospect.priority == 5 and prospect.status == "pending" for prospect in stored.values()
    )
    detail = await client.get("/api/v/campaign/spring-outreach/", headers=line["headers"])
    campaign = await detail.get_json()
    assert campaign["prospects"]["pending"] == 3 and campaign["total_prospects"] == 3
    assert [(item["uuid"], item["status"]) for item in campaign["uploads"]] == [
        (accepted["uuid"], "completed")
    ]


async def test_an_area_code_spanning_zones_keeps_every_zone_and_a_locale_reads_its_numbers(
    client, line, settings, redis
):
    await create_campaign(client, line, locale_name="IN", active=False)
    file = csv_of(["98765 43210,Asha", "+12085550100,Ben"])  # no +: India; 208: two US zones
    response = await upload_list(client, line["headers"], "spring-outreach", file)
    await run_jobs(settings, redis)
    body = await upload_detail(client, line["headers"], (await response.get_json())["uuid"])
    assert body["added_count"] == 2, body
    by_name = {prospect.name: prospect for prospect in await Prospect.all()}
    assert by_name["Asha"].phone_number == "+919876543210"
    assert by_name["Asha"].timezones in (["Asia/Calcutta"], ["Asia/Kolkata"])
    assert set(by_name["Ben"].timezones) == {"America/Boise", "America/Los_Angeles"}


async def test_a_number_another_list_has_is_a_duplicate(client, line, settings, redis):
    await create_campaign(client, line, active=False)  # the dialer stays out
    first = await upload_list(
        client, line["headers"], "spring-outreach", csv_of(["+14155550100,A"])
    )
    await run_jobs(settings, redis)
    second = await upload_list(
        client,
        line["headers"],
        "spring-outreach",
        csv_of(["+14155550100,A again", "+14155550101,B"]),
        list_name="Second",
        priority=9,
    )
    await run_jobs(settings, redis)
    body = await upload_detail(client, line["headers"], (await second.get_json())["uuid"])
    assert body["added_count"] == 1
    assert body["rejects"] == [
        {"line": 2, "reason": "duplicate: the campaign already has it (another list)"}
    ]
    assert await Prospect.filter(phone_number="+14155550100").count() == 1
    # The detail lists higher priorities first.
    campaign = await (
        await client.get("/api/v/campaign/spring-outreach/", headers=line["headers"])
    ).get_json()
    assert [item["list_name"] for item in campaign["uploads"]] == ["Second", "Leads"]
    assert (await first.get_json())["uuid"] == campaign["uploads"][1]["uuid"]


BAD_FILES = {
    "empty": (b"", 400, "EMPTY_FILE"),
    "no phone column": (b"name,email\nAda,ada@example.com\n", 400, "NO_PHONE_COLUMN"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50, 400, "NOT_A_CSV"),
}


async def test_a_file_unusable_from_its_header_is_refused_at_once(client, line):
    await create_campaign(client, line, active=False)
    for name, (file, status, code) in BAD_FILES.items():
        response = await upload_list(client, line["headers"], "spring-outreach", file)
        assert response.status_code == status, name
        assert (await response.get_json())["code"] == code, name
    assert await ProspectUpload.all().count() == 0


async def test_bad_form_fields_are_refused(client, line):
    await create_campaign(client, line, active=False)
    file = csv_of(["+14155550100,A"])
    for list_name, fields in [
        (None, {}),  # missing
        ("", {}),
        ("Leads", {"priority": "high"}),
        ("Leads", {"priority": "99999999999999999999"}),
        ("Leads\x00", {}),
    ]:
        response = await upload_list(
            client, line["headers"], "spring-outreach", file, list_name, **fields
        )
        assert response.status_code == 400, (list_name, fields)
    assert await ProspectUpload.all().count() == 0


async def test_an_upload_needs_a_file_and_a_campaign_of_the_workspace(client, line, settings):
    await create_campaign(client, line, active=False)  # the dialer stays out
    response = await upload_list(client, line["headers"], "spring-outreach", None)
    assert response.status_code == 400 and (await response.get_json())["code"] == "NO_FILE"
    outsider, _ = await make_user("outsider@example.com", role=Role.ADMIN)
    response = await upload_list(
        client, auth_headers(settings, outsider), "spring-outreach", csv_of(["+14155550100,A"])
    )
    assert response.status_code == 404
    assert await ProspectUpload.all().count() == 0


async def test_a_failed_upload_is_retried_without_duplicating_prospects(
    client, line, settings, redis
):
    await create_campaign(client, line, active=False)  # the dialer stays out
    rows = [f"{number},Person {index}" for index, number in enumerate(numbers(1500))]
    good = csv_of(rows)
    # A line past the first chunk is not CSV: the job fails after storing some rows.
    broken = csv_of(rows[:1200] + ["+1," + "x" * 70_000] + rows[1200:])
    response = await upload_list(client, line["headers"], "spring-outreach", broken)
    upload_id = (await response.get_json())["uuid"]
    await run_jobs(settings, redis)
    failed = await upload_detail(client, line["headers"], upload_id)
    assert failed["status"] == "failed" and "line" in failed["error"].lower()
    stored_before = await Prospect.filter(upload_id=upload_id).count()
    assert 0 < stored_before < 1500 and failed["added_count"] == stored_before
    # Only a failed upload can be retried.
    completed = await upload_list(
        client, line["headers"], "spring-outreach", csv_of(["+14155559999,Z"])
    )
    await run_jobs(settings, redis)
    refused = await client.post(
        f"/api/v/upload/{(await completed.get_json())['uuid']}/retry/", headers=line["headers"]
    )
    assert refused.status_code == 409
    # The cause goes away (the kept file is fixed); the retry adds only the missing rows.
    upload = await ProspectUpload.get(id=upload_id)
    await asyncio.to_thread(Path(upload.file_path).write_bytes, good)
    retried = await client.post(f"/api/v/upload/{upload_id}/retry/", headers=line["headers"])
    assert retried.status_code == 202
    assert (await retried.get_json())["status"] == "pending"
    await run_jobs(settings, redis)
    body = await upload_detail(client, line["headers"], upload_id)
    assert body["status"] == "completed" and body["error"] is None
    assert body["added_count"] == 1500 and body["rejected_count"] == 0 and body["attempts"] == 2
    stored = await Prospect.filter(upload_id=upload_id).values_list("phone_number", "line")
    assert len(stored) == 1500 and len({number for number, _ in stored}) == 1500
    # A job run again (a lease that ran out, a duplicate job) adds nothing either.
    await ProspectUpload.filter(id=upload_id).update(status="processing")
    await prospects.process_upload(upload.id)
    assert await Prospect.filter(upload_id=upload_id).count() == 1500
    again = await client.post(f"/api/v/upload/{upload_id}/retry/", headers=line["headers"])
    assert again.status_code == 409


async def test_an_upload_whose_file_is_gone_fails_with_the_reason(client, line, settings, redis):
    await create_campaign(client, line, active=False)  # the dialer stays out
    response = await upload_list(
        client, line["headers"], "spring-outreach", csv_of(["+14155550100,A"])
    )
    upload = await ProspectUpload.get(id=(await response.get_json())["uuid"])
    await asyncio.to_thread(Path(upload.file_path).unlink)
    await run_jobs(settings, redis)
    body = await upload_detail(client, line["headers"], str(upload.id))
    assert body["status"] == "failed" and "gone" in body["error"]


async def test_one_prospect_is_added_to_a_list(client, line, settings, redis):
    await create_campaign(client, line, active=False)  # the dialer stays out
    response = await upload_list(
        client, line["headers"], "spring-outreach", csv_of(["+14155550100,A"]), priority=3
    )
    upload_id = (await response.get_json())["uuid"]
    await run_jobs(settings, redis)
    url = f"/api/v/prospect/{upload_id}/"
    added = await client.post(
        url,
        json={
            "phone_number": "(415) 555-0177",
            "name": "Grace",
            "timezone": "America/Los_Angeles",
            "variables": {"plan": "gold", "seats": 3},
        },
        headers=line["headers"],
    )
    assert added.status_code == 201, await added.get_data(as_text=True)
    body = await added.get_json()
    assert body["phone_number"] == "+14155550177" and body["priority"] == 3
    assert body["timezones"] == ["America/Los_Angeles"] and body["upload"] == upload_id
    assert body["variables"] == {"plan": "gold", "seats": 3} and body["status"] == "pending"
    assert (await upload_detail(client, line["headers"], upload_id))["added_count"] == 2
    # The campaign already has the number (from this call or from the file): 409.
    for number in ("+14155550177", "+1 415 555 0100"):
        again = await client.post(url, json={"phone_number": number}, headers=line["headers"])
        assert again.status_code == 409
        assert (await again.get_json())["code"] == "PROSPECT_EXISTS"
    for bad in (
        {"phone_number": "12"},
        {"phone_number": "+14155550188", "timezone": "Nowhere/Town"},
        {"phone_number": "+14155550188", "variables": "x"},
        {"phone_number": 14155550188},
        {"phone_number": "+14155550188", "extra": True},
    ):
        response = await client.post(url, json=bad, headers=line["headers"])
        assert response.status_code == 400, bad
    assert await Prospect.all().count() == 2
    missing = await client.post(
        "/api/v/prospect/00000000-0000-0000-0000-000000000000/",
        json={"phone_number": "+14155550188"},
        headers=line["headers"],
    )
    assert missing.status_code == 404


async def test_deleting_a_campaign_removes_its_lists_prospects_and_files(
    client, line, settings, redis
):
    await create_campaign(client, line, active=False)  # the dialer stays out
    response = await upload_list(
        client, line["headers"], "spring-outreach", csv_of(["+14155550100,A"])
    )
    upload = await ProspectUpload.get(id=(await response.get_json())["uuid"])
    await run_jobs(settings, redis)
    path = Path(upload.file_path)
    assert await asyncio.to_thread(path.exists) and await Prospect.all().count() == 1
    deleted = await client.delete("/api/v/campaign/spring-outreach/", headers=line["headers"])
    assert deleted.status_code == 204
    assert not await asyncio.to_thread(path.exists)
    assert await ProspectUpload.all().count() == 0 and await Prospect.all().count() == 0
    gone = await client.get(f"/api/v/upload/{upload.id}/", headers=line["headers"])
    assert gone.status_code == 404


async def test_deleting_the_workspace_removes_its_campaigns_kept_lists(
    client, line, settings, redis
):
    await create_campaign(client, line, active=False)
    response = await upload_list(
        client, line["headers"], "spring-outreach", csv_of(["+14155550100,A"])
    )
    upload = await ProspectUpload.get(id=(await response.get_json())["uuid"])
    path = Path(upload.file_path)
    assert await asyncio.to_thread(path.exists)
    workspace = line["workspace"]
    await Membership.filter(workspace_id=workspace.id).update(role=Role.ADMIN)
    deleted = await client.delete(f"/workspaces/{workspace.id}", headers=line["headers"])
    assert deleted.status_code == 204
    assert not await asyncio.to_thread(path.parent.exists)
    assert await ProspectUpload.all().count() == 0
