"""`/api/v/dnc/`: the workspace do-not-call list (add, list, remove), roles and tenancy, and that
it stops every outbound dial: the API's, batches' (at upload and at dial time) and campaigns'."""

from __future__ import annotations

from control.dialing import dnc
from control.models import BatchItem, Call, DncNumber, Role
from control.services import capacity
from tests.conftest import auth_headers, make_user
from tests.control.batching import csv_of, tick, upload


async def test_a_number_is_added_listed_and_removed(client, line):
    workspace_id = line["workspace"].id
    added = await client.post(
        "/api/v/dnc/",
        json={"phone_number": "+1 (415) 555-0100", "reason": "asked on the phone"},
        headers=line["headers"],
    )
    assert added.status_code == 201, await added.get_data(as_text=True)
    body = await added.get_json()
    assert body["phone_number"] == "+14155550100" and body["source"] == "api"
    assert body["reason"] == "asked on the phone" and body["created_by_email"] == "dev@example.com"
    assert await dnc.is_dnc(workspace_id, "+14155550100")
    # Idempotent: the same number again is the same entry.
    again = await client.post(
        "/api/v/dnc/", json={"phone_number": "+14155550100"}, headers=line["headers"]
    )
    assert again.status_code == 200
    assert (await again.get_json())["reason"] == "asked on the phone"
    await client.post("/api/v/dnc/", json={"phone_number": "+14155550101"}, headers=line["headers"])
    page = await (await client.get("/api/v/dnc/?page_size=1", headers=line["headers"])).get_json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["has_next"] is True
    removed = await client.delete("/api/v/dnc/%2B14155550100/", headers=line["headers"])
    assert removed.status_code == 204
    assert not await dnc.is_dnc(workspace_id, "+14155550100")
    assert await dnc.is_dnc(workspace_id, "+14155550101")
    gone = await client.delete("/api/v/dnc/+14155550100/", headers=line["headers"])
    assert gone.status_code == 404 and (await gone.get_json())["code"] == "DNC_NOT_FOUND"


async def test_bad_numbers_are_refused(client, line):
    for body in (
        {"phone_number": "12345"},
        {"phone_number": "4155550100"},  # no country code
        {"phone_number": ""},
        {"phone_number": 14155550100},
        {"phone_number": "+14155550100", "reason": "x" * 201},
        {"number": "+14155550100"},
    ):
        response = await client.post("/api/v/dnc/", json=body, headers=line["headers"])
        assert response.status_code == 400, body
    bad_path = await client.delete("/api/v/dnc/not-a-number/", headers=line["headers"])
    assert bad_path.status_code == 400
    assert await DncNumber.all().count() == 0


async def test_members_read_the_list_and_cannot_change_it(client, line, settings):
    await dnc.add_dnc(line["workspace"].id, "+14155550100")
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=line["workspace"])
    headers = auth_headers(settings, member)
    listed = await client.get("/api/v/dnc/", headers=headers)
    assert listed.status_code == 200 and (await listed.get_json())["total"] == 1
    refused = await client.post(
        "/api/v/dnc/", json={"phone_number": "+14155550101"}, headers=headers
    )
    assert refused.status_code == 403
    refused = await client.delete("/api/v/dnc/+14155550100/", headers=headers)
    assert refused.status_code == 403
    assert await DncNumber.all().count() == 1


async def test_each_workspace_has_its_own_list(client, line, settings):
    await dnc.add_dnc(line["workspace"].id, "+14155550100", reason="mine")
    outsider, workspace = await make_user("outsider@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, outsider)
    listed = await (await client.get("/api/v/dnc/", headers=headers)).get_json()
    assert listed["total"] == 0
    assert not await dnc.is_dnc(workspace.id, "+14155550100")
    response = await client.delete("/api/v/dnc/+14155550100/", headers=headers)
    assert response.status_code == 404
    assert await dnc.is_dnc(line["workspace"].id, "+14155550100")
    # The outsider's own entry for the same number is theirs alone.
    added = await client.post("/api/v/dnc/", json={"phone_number": "+14155550100"}, headers=headers)
    assert added.status_code == 201
    assert await DncNumber.filter(phone_number="+14155550100").count() == 2


# The list applies to every outbound dial, not only the campaign dialer's.

DIAL = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155550100"}


async def test_an_outbound_call_to_a_listed_number_is_409_and_dials_nothing(
    client, line, livekit, redis
):
    await client.post("/api/v/dnc/", json={"phone_number": "+14155550100"}, headers=line["headers"])
    headers = {**line["headers"], "Idempotency-Key": "call-ada"}
    refused = await client.post("/calls/outbound_call", json=DIAL, headers=headers)
    assert refused.status_code == 409
    body = await refused.get_json()
    assert body["code"] == "NUMBER_ON_DNC" and "4155550100" not in body["detail"]
    assert livekit.requests == [] and await Call.all().count() == 0
    assert await redis.zcard(capacity.PLATFORM_KEY) == 0  # no capacity slot held either
    # Off the list, the same request (and key) dials.
    removed = await client.delete("/api/v/dnc/+14155550100/", headers=line["headers"])
    assert removed.status_code == 204
    placed = await client.post("/calls/outbound_call", json=DIAL, headers=headers)
    assert placed.status_code == 201, await placed.get_json()
    assert len(livekit.dispatches) == 1


async def test_batch_rows_on_the_list_are_rejected_at_upload(client, line):
    await dnc.add_dnc(line["workspace"].id, "+14155550101")
    file = csv_of(["+14155550100,Ada", "+14155550101,Bob", "+14155550102,Cy"])
    response = await upload(client, line, file)
    assert response.status_code == 201, await response.get_data(as_text=True)
    body = await response.get_json()
    assert (body["accepted"], body["rejected_count"]) == (2, 1)
    assert body["rejected"] == [{"line": 3, "reason": dnc.ON_DNC_REASON}]
    assert body["rejected"][0]["reason"].startswith("NUMBER_ON_DNC")
    numbers = await BatchItem.filter(batch_id=body["id"]).values_list("phone_number", flat=True)
    assert sorted(numbers) == ["+14155550100", "+14155550102"]
    # Another workspace's list is not this one's.
    outsider, elsewhere = await make_user("outsider@example.com", role=Role.ADMIN)
    await dnc.add_dnc(elsewhere.id, "+14155550100")
    again = await (await upload(client, line, file)).get_json()
    assert again["accepted"] == 2 and [row["line"] for row in again["rejected"]] == [3]


async def test_batch_rows_listed_after_the_upload_are_skipped_when_dialed(
    client, line, settings, telephony_settings, redis, livekit
):
    response = await upload(client, line, csv_of(["+14155550100,Ada", "+14155550101,Bob"]))
    batch = await response.get_json()
    added = await client.post(
        "/api/v/dnc/", json={"phone_number": "+14155550101"}, headers=line["headers"]
    )
    assert added.status_code == 201
    assert await tick(settings, telephony_settings, redis) == 1
    calls = await Call.filter(batch_id=batch["id"])
    assert [call.to_number for call in calls] == ["+14155550100"]
    assert len(livekit.dispatches) == 1
    listed = await client.get(f"/batch/{batch['id']}/items", headers=line["headers"])
    skipped = next(
        item for item in (await listed.get_json())["items"] if item["phone_number"].endswith("01")
    )
    assert (skipped["status"], skipped["attempts"], skipped["call_id"]) == ("cancelled", 0, None)
    assert skipped["error"].startswith("NUMBER_ON_DNC")
    assert await tick(settings, telephony_settings, redis) == 0  # and never later either
