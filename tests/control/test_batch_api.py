"""`/batch`: uploads (rows, rejects, bad files), progress, items, pause/resume, cancel, roles."""

from __future__ import annotations

import pytest

from control.models import Batch, BatchItem, Call, Role
from tests.conftest import auth_headers, make_user
from tests.control.batching import csv_of, numbers, phone_csv, report, tick, upload


async def items_of(client, line, batch_id, **query) -> list[dict]:
    response = await client.get(
        f"/batch/{batch_id}/items",
        query_string={"page_size": 100, **query},
        headers=line["headers"],
    )
    assert response.status_code == 200
    return (await response.get_json())["items"]


async def test_an_upload_accepts_good_rows_and_lists_the_rest_by_line(client, line):
    file = (
        b"Name;Mobile;Plan\n"
        b"Ada;+14155550100;gold\n"
        b"Bob;12345;silver\n"  # line 3: invalid
        b"Cy;(415) 555-0101;=cmd|' /C calc'!A0\n"  # no +: the default country applies
        b"Di;+1 415 555 0100;bronze\n"  # line 5: the same number as line 2
        b";;\n"  # blank cells: skipped, not an error
        b"Ed;;gold\n"  # line 7: no number
    )
    response = await upload(client, line, file, default_country="US")
    assert response.status_code == 201, await response.get_data(as_text=True)
    body = await response.get_json()
    assert body["accepted"] == 2 and body["total_items"] == 2 and body["rejected_count"] == 3
    rejected = {row["line"]: row["reason"] for row in body["rejected"]}
    assert set(rejected) == {3, 5, 7}
    assert rejected[3].startswith("invalid") and rejected[7].startswith("invalid")
    assert rejected[5] == "duplicate: the same number as line 2"
    assert body["status"] == "running" and body["counts"]["pending"] == 2
    items = await items_of(client, line, body["id"])
    assert [(item["line"], item["phone_number"]) for item in items] == [
        (2, "+14155550100"),
        (4, "+14155550101"),
    ]
    # Every other column is a variable, kept as plain text (a formula is never evaluated).
    assert items[1]["variables"] == {"Name": "Cy", "Plan": "=cmd|' /C calc'!A0"}


async def test_a_duplicate_far_apart_in_a_large_file_is_found(client, line):
    rows = [f"{number},x" for number in numbers(1500)] + [f"{numbers(1)[0]},again"]
    body = await (await upload(client, line, csv_of(rows))).get_json()
    assert body["accepted"] == 1500
    assert body["rejected"] == [{"line": 1502, "reason": "duplicate: the same number as line 2"}]


async def test_without_a_default_country_a_number_needs_its_plus(client, line):
    response = await upload(client, line, csv_of(["4155550100,A", "+14155550101,B"]))
    body = await response.get_json()
    assert body["accepted"] == 1
    assert body["rejected"] == [
        {"line": 2, "reason": "invalid: no country code (start with + or set default_country)"}
    ]


BAD_FILES = {
    "empty": (b"", 400, "EMPTY_FILE"),
    "blank lines only": (b"\n\r\n\n", 400, "EMPTY_FILE"),
    "header only": (b"phone_number,name\n", 400, "NO_USABLE_ROWS"),
    "no phone column": (b"name,email\nAda,ada@example.com\n", 400, "NO_PHONE_COLUMN"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50, 400, "NOT_A_CSV"),
    "one endless line": (b"phone," + b"x" * 200_000, 400, "NOT_A_CSV"),
    "every row invalid": (b"phone\n123\nabc\n", 400, "NO_USABLE_ROWS"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
async def test_a_file_with_no_usable_row_is_refused_and_leaves_nothing(client, line, name):
    file, status, code = BAD_FILES[name]
    response = await upload(client, line, file)
    assert response.status_code == status, await response.get_data(as_text=True)
    body = await response.get_json()
    assert body["code"] == code and body["detail"]
    assert await Batch.all().count() == 0 and await BatchItem.all().count() == 0


async def test_all_rows_rejected_says_why(client, line):
    body = await (await upload(client, line, b"phone\n123\n")).get_json()
    assert "line 2" in body["detail"] and "invalid" in body["detail"]


async def test_a_50_mb_file_is_refused_naming_the_limit(client, line):
    row = b"+14155550100," + b"a long note " * 50 + b"\n"
    file = b"phone,name\n" + row * (50_000_000 // len(row))
    response = await upload(client, line, file)
    assert response.status_code == 413
    body = await response.get_json()
    assert body["code"] == "FILE_TOO_LARGE" and "20971520 bytes" in body["detail"]
    assert await BatchItem.all().count() == 0


async def test_more_rows_than_the_limit_is_refused_naming_the_limit(client, line):
    file = phone_csv(1) + b"123\n" * 100_000
    response = await upload(client, line, file)
    assert response.status_code == 413
    body = await response.get_json()
    assert body["code"] == "TOO_MANY_ROWS" and "100000 rows" in body["detail"]
    assert await BatchItem.all().count() == 0


async def test_no_file_field_is_a_400(client, line):
    response = await upload(client, line, None)
    assert response.status_code == 400
    assert (await response.get_json())["code"] == "NO_FILE"


async def test_encodings_delimiters_and_quoted_newlines(client, line):
    # UTF-8 with a BOM, tab-separated, a quoted cell across two lines, then a Latin-1 line.
    file = (
        "\ufeffcontact\tnote\n".encode()
        + '+14155550100\t"Zoë says:\nline two"\n'.encode()
        + "+14155550101\tJosé\n".encode("latin-1")
        + b"bad\tx\n"
    )
    body = await (await upload(client, line, file)).get_json()
    assert body["accepted"] == 2
    assert [row["line"] for row in body["rejected"]] == [5]  # physical lines, not records
    assert body["rejected"][0]["reason"].startswith("invalid")
    items = await items_of(client, line, body["id"])
    assert items[0]["variables"] == {"note": "Zoë says:\nline two"}
    assert items[1]["line"] == 4 and items[1]["variables"] == {"note": "José"}


@pytest.mark.parametrize("alias", ["Phone", "MOBILE", "contact_number", "phone_number"])
async def test_the_phone_column_is_found_by_any_alias(client, line, alias):
    body = await (
        await upload(client, line, csv_of(["+14155550100,Ada"], f"{alias},name"))
    ).get_json()
    assert body["accepted"] == 1


async def test_upload_checks_the_agent_the_number_and_the_options(client, line, settings):
    other, _ = await make_user("other@example.com", role=Role.DEVELOPER)
    response = await upload(client, line, phone_csv(1), headers=auth_headers(settings, other))
    assert response.status_code == 404 and (await response.get_json())["code"] == "AGENT_NOT_FOUND"
    for field, value in {
        "timezone": "Mars/Olympus",
        "calls_per_minute": 601,
        "earliest_time": "25:00",
        "retry_on": "sometimes",
        "agent_phone_number": "not-a-number",
    }.items():
        response = await upload(client, line, phone_csv(1), **{field: value})
        assert response.status_code == 400, (field, await response.get_data(as_text=True))
    assert await Batch.all().count() == 0


async def test_roles_members_read_developers_write(client, line, settings):
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=line["workspace"])
    as_member = auth_headers(settings, member)
    assert (await upload(client, line, phone_csv(2), headers=as_member)).status_code == 403
    batch = await (await upload(client, line, phone_csv(2))).get_json()
    assert (await client.get("/batch", headers=as_member)).status_code == 200
    assert (await client.get(f"/batch/{batch['id']}", headers=as_member)).status_code == 200
    assert (await client.get(f"/batch/{batch['id']}/items", headers=as_member)).status_code == 200
    patch = await client.patch(f"/batch/{batch['id']}", json={"action": "pause"}, headers=as_member)
    assert patch.status_code == 403
    assert (await client.delete(f"/batch/{batch['id']}", headers=as_member)).status_code == 403
    assert (await Batch.get(id=batch["id"])).status == "running"


async def test_another_workspace_sees_nothing(client, line, settings):
    batch = await (await upload(client, line, phone_csv(2))).get_json()
    intruder, _ = await make_user("intruder@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, intruder)
    assert (await (await client.get("/batch", headers=headers)).get_json())["total"] == 0
    for method, path, body in [
        ("GET", f"/batch/{batch['id']}", None),
        ("GET", f"/batch/{batch['id']}/items", None),
        ("PATCH", f"/batch/{batch['id']}", {"action": "pause"}),
        ("DELETE", f"/batch/{batch['id']}", None),
    ]:
        response = await client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 404, (method, path)
    assert (await Batch.get(id=batch["id"])).status == "running"


async def test_list_is_paginated_and_filtered(client, line):
    for start in (0, 10, 20):
        await upload(client, line, phone_csv(2, start))
    page = await (await client.get("/batch?page_size=2", headers=line["headers"])).get_json()
    assert (page["total"], len(page["items"]), page["has_next"], page["has_prev"]) == (
        3, 2, True, False,
    )  # fmt: skip
    running = await client.get("/batch?status=completed", headers=line["headers"])
    assert (await running.get_json())["total"] == 0


async def test_pause_resume_reschedule_and_pace(client, line, settings, telephony_settings, redis):
    batch = await (await upload(client, line, phone_csv(3))).get_json()
    path = f"/batch/{batch['id']}"
    paused = await client.patch(path, json={"action": "pause"}, headers=line["headers"])
    assert (await paused.get_json())["status"] == "paused"
    assert await tick(settings, telephony_settings, redis) == 0
    changed = await client.patch(
        path,
        json={
            "action": "resume",
            "calls_per_minute": 120,
            "earliest_time": "09:00",
            "latest_time": "17:30",
            "timezone": "Europe/Paris",
        },
        headers=line["headers"],
    )
    body = await changed.get_json()
    assert changed.status_code == 200, body
    assert (body["status"], body["calls_per_minute"], body["latest_time"], body["timezone"]) == (
        "running", 120, "17:30", "Europe/Paris",
    )  # fmt: skip
    later = await client.patch(
        path, json={"scheduled_time": "2999-01-01T09:00:00"}, headers=line["headers"]
    )
    body = await later.get_json()
    assert body["status"] == "scheduled"
    assert body["scheduled_time"].startswith("2999-01-01T08:00:00")  # 09:00 in Paris, as UTC
    assert body["next_attempt_at"].startswith("2999-01-01T08:00:00")
    bad = await client.patch(path, json={"action": "explode"}, headers=line["headers"])
    assert bad.status_code == 400
    assert (await client.patch(path, json={}, headers=line["headers"])).status_code == 400


async def test_cancel_keeps_it_readable_then_delete_removes_it(
    client, line, settings, telephony_settings, redis, livekit
):
    batch = await (await upload(client, line, phone_csv(12), calls_per_minute=60)).get_json()
    assert await tick(settings, telephony_settings, redis) == 1  # one call in flight
    path = f"/batch/{batch['id']}"
    cancelled = await client.delete(path, headers=line["headers"])
    body = await cancelled.get_json()
    assert cancelled.status_code == 200
    assert body["status"] == "cancelled" and body["finished_at"]
    assert (body["counts"]["cancelled"], body["counts"]["calling"]) == (11, 1)
    (in_flight,) = await items_of(client, line, batch["id"], status="calling")
    await report(client, in_flight["call_id"], "busy")  # the call in flight finishes
    await tick(settings, telephony_settings, redis)
    (settled,) = await items_of(client, line, batch["id"], status="failed")  # no retry now
    assert settled["outcome"] == "busy"
    assert len(livekit.dispatches) == 1
    assert (
        await client.patch(path, json={"action": "resume"}, headers=line["headers"])
    ).status_code == 409
    assert (await client.delete(path, headers=line["headers"])).status_code == 204
    assert (await client.get(path, headers=line["headers"])).status_code == 404
    assert await Call.filter(batch_id=batch["id"]).count() == 1  # call logs stay
    assert await BatchItem.all().count() == 0
