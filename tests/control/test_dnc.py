"""`/api/v/dnc/`: the workspace do-not-call list (add, list, remove), roles and tenancy."""

from __future__ import annotations

from control.dialing import dnc
from control.models import DncNumber, Role
from tests.conftest import auth_headers, make_user


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
