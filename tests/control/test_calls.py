"""`/calls`: call-log list with every filter, detail, CSV export and tenant isolation."""

import csv
import io
import uuid
import wave
from datetime import UTC, datetime, timedelta, timezone

import pytest

from control.http.app import create_app
from control.models import Call, Campaign, Role
from control.services.agents import create_agent
from control.services.recordings import store_recording
from tests.conftest import auth_headers, make_user

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def world(db, settings):
    member, workspace = await make_user("member@example.com", role=Role.MEMBER)
    sales = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    support = await create_agent(settings, workspace.id, {"agent_name": "Support"})
    batch = uuid.uuid4()
    rows = [
        dict(
            agent=sales,
            call_type="phone",
            call_direction="outbound",
            disposition="interested",
            batch_id=batch,
            to_number="+14155550001",
        ),
        dict(
            agent=sales,
            call_type="phone",
            call_direction="inbound",
            disposition="not_interested",
            from_number='=HYPERLINK("http://evil")',
        ),
        dict(agent=support, call_type="web", call_direction="inbound", disposition="interested"),
        dict(
            agent=support,
            call_type="phone",
            call_direction="outbound",
            disposition=None,
            batch_id=batch,
        ),
    ]
    calls = []
    for index, row in enumerate(rows):
        call = await Call.create(workspace_id=workspace.id, status="completed", **row)
        await Call.filter(id=call.id).update(created_at=T0 + timedelta(days=index))
        calls.append(call)
    outsider, other_ws = await make_user("outsider@example.com", role=Role.ADMIN)
    other_agent = await create_agent(settings, other_ws.id, {"agent_name": "Theirs"})
    foreign = await Call.create(
        workspace_id=other_ws.id,
        agent=other_agent,
        call_type="phone",
        call_direction="outbound",
        status="completed",
    )
    return {
        "headers": auth_headers(settings, member),
        "sales": sales,
        "support": support,
        "batch": batch,
        "calls": calls,
        "foreign": foreign,
        "outsider": auth_headers(settings, outsider),
    }


async def ids(client, world, query=""):
    response = await client.get(f"/calls{query}", headers=world["headers"])
    assert response.status_code == 200, await response.get_json()
    return [item["id"] for item in (await response.get_json())["items"]]


async def test_list_is_newest_first_and_paginated(client, world):
    calls = world["calls"]
    assert await ids(client, world) == [str(c.id) for c in reversed(calls)]
    page = await (
        await client.get("/calls?page=2&page_size=3", headers=world["headers"])
    ).get_json()
    assert (
        page["total"] == 4 and len(page["items"]) == 1 and page["has_prev"] and not page["has_next"]
    )


async def test_each_filter(client, world):
    c = [str(call.id) for call in world["calls"]]
    assert set(await ids(client, world, "?call_type=web")) == {c[2]}
    assert set(await ids(client, world, "?call_direction=outbound")) == {c[0], c[3]}
    assert set(await ids(client, world, f"?agent_id={world['support'].id}")) == {c[2], c[3]}
    assert set(await ids(client, world, "?disposition=interested")) == {c[0], c[2]}
    assert set(await ids(client, world, f"?batch_id={world['batch']}")) == {c[0], c[3]}
    window = "start_datetime=2026-11-02T00:00:00Z&end_datetime=2026-11-03T23:00:00Z"
    assert set(await ids(client, world, f"?{window}")) == {c[1], c[2]}
    assert set(
        await ids(client, world, "?start_date=2026-11-03T00:00:00&end_date=2026-11-30T00:00:00")
    ) == {c[2], c[3]}


async def test_time_filters_with_an_offset_are_the_same_instant_in_utc(client, world):
    c = [str(call.id) for call in world["calls"]]  # created at 12:00 UTC on Nov 1, 2, 3, 4
    # 08:00-05:00 is 13:00 UTC: after the call of Nov 3, 12:00 UTC, before the one of Nov 4.
    window = "start_datetime=2026-11-03T08:00:00-05:00&end_datetime=2026-11-04T13:00:00%2B02:00"
    assert set(await ids(client, world, f"?{window}")) == set()
    window = "start_datetime=2026-11-03T06:59:00-05:00&end_datetime=2026-11-04T14:00:00%2B02:00"
    assert set(await ids(client, world, f"?{window}")) == {c[2], c[3]}
    export = await client.get(f"/calls/export?{window}", headers=world["headers"])
    rows = list(csv.DictReader(io.StringIO(await export.get_data(as_text=True))))
    assert {row["id"] for row in rows} == {c[2], c[3]}


@pytest.mark.parametrize(
    "query",
    [
        "?page_size=101",
        "?call_type=fax",
        "?start_datetime=yesterday",
        "?agent_id=nope",
        "?start_datetime=2026-11-05T00:00:00Z&end_datetime=2026-11-01T00:00:00Z",
        "?start_datetime=1900-01-01T00:00:00Z&end_datetime=2100-01-01T00:00:00Z",
    ],
)
async def test_bad_filters_are_400(client, world, query):
    response = await client.get(f"/calls{query}", headers=world["headers"])
    assert response.status_code == 400
    assert (await response.get_json())["code"] == "VALIDATION_ERROR"


async def test_detail_and_isolation(client, world):
    call = world["calls"][0]
    detail = await (await client.get(f"/calls/{call.id}", headers=world["headers"])).get_json()
    assert detail["id"] == str(call.id) and detail["transcript"] == [] and "latencies" in detail
    assert (
        await client.get(f"/calls/{world['foreign'].id}", headers=world["headers"])
    ).status_code == 404
    assert (await client.get(f"/calls/{call.id}", headers=world["outsider"])).status_code == 404
    assert str(world["foreign"].id) not in await ids(client, world)
    outsider_view = await (await client.get("/calls", headers=world["outsider"])).get_json()
    assert [item["id"] for item in outsider_view["items"]] == [str(world["foreign"].id)]


async def test_export_streams_filtered_csv_with_formulas_escaped(client, world):
    response = await client.get("/calls/export?call_direction=inbound", headers=world["headers"])
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.get_data(as_text=True))))
    assert {row["id"] for row in rows} == {str(world["calls"][1].id), str(world["calls"][2].id)}
    evil = next(row for row in rows if row["id"] == str(world["calls"][1].id))
    assert evil["from_number"].startswith("'=")
    assert str(world["foreign"].id) not in await response.get_data(as_text=True)


async def test_export_of_nothing_is_just_the_header(client, world):
    response = await client.get(
        "/calls/export?call_type=web&call_direction=outbound", headers=world["headers"]
    )
    text = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert text.strip().splitlines() == [text.strip().splitlines()[0]]
    assert text.startswith("id,created_at,agent_id")


async def test_export_pages_through_more_than_one_batch(client, world):
    workspace_id = world["calls"][0].workspace_id
    await Call.bulk_create(
        [
            Call(
                workspace_id=workspace_id,
                call_type="phone",
                call_direction="outbound",
                status="completed",
            )
            for _ in range(2500)
        ]
    )
    response = await client.get("/calls/export", headers=world["headers"])
    rows = list(csv.DictReader(io.StringIO(await response.get_data(as_text=True))))
    assert len(rows) == 2504 and len({row["id"] for row in rows}) == 2504


async def test_export_writes_the_same_cells_on_every_database(client, world):
    """Times are ISO 8601 in UTC with microseconds, whichever database (COPY or keyset) serves."""
    call = world["calls"][0]
    await Call.filter(id=call.id).update(
        started_at=datetime(2026, 11, 1, 12, 0, 5, tzinfo=UTC),
        answered_at=datetime(2026, 11, 1, 7, 0, 7, 250, tzinfo=timezone(timedelta(hours=-5))),
        duration_seconds=42.5,
        summary="+ wants a demo",
        agent_version=3,
    )
    response = await client.get("/calls/export?call_direction=outbound", headers=world["headers"])
    rows = list(csv.DictReader(io.StringIO(await response.get_data(as_text=True))))
    row = next(row for row in rows if row["id"] == str(call.id))
    assert {column: row[column] for column in ("created_at", "started_at", "answered_at")} == {
        "created_at": "2026-11-01T12:00:00.000000+00:00",
        "started_at": "2026-11-01T12:00:05.000000+00:00",
        "answered_at": "2026-11-01T12:00:07.000250+00:00",
    }
    assert row["ended_at"] == "" and row["duration_seconds"] == "42.5"
    assert row["agent_version"] == "3"  # the agent version the call ran
    assert row["summary"] == "'+ wants a demo"


def _wav(seconds: float = 0.1, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


async def _chunks(data: bytes):
    yield data


async def test_recordings_transcripts_and_exports_are_private_no_store(client, world, settings):
    call = world["calls"][0]
    await store_recording(settings, call, "audio/wav", _chunks(_wav()))
    responses = {
        "recording": await client.get(f"/calls/{call.id}/recording", headers=world["headers"]),
        "ranged recording": await client.get(
            f"/calls/{call.id}/recording", headers={**world["headers"], "Range": "bytes=0-99"}
        ),
        "detail": await client.get(f"/calls/{call.id}", headers=world["headers"]),
        "export": await client.get("/calls/export", headers=world["headers"]),
    }
    for name, response in responses.items():
        assert response.status_code in (200, 206), (name, response.status_code)
        assert response.headers["Cache-Control"] == "private, no-store", name
        assert "Expires" not in response.headers, name
    assert responses["ranged recording"].status_code == 206
    assert (await responses["recording"].get_data())[:4] == b"RIFF"


CAMPAIGN_FILTERED = (
    "/calls",
    "/calls/export",
    "/reports/dashboard",
    "/reports/call-summary",
    "/reports/disposition-summary",
)


async def test_a_campaign_filter_is_bounded_by_its_column_never_a_500(client, world):
    # `campaign=` is a campaign's id, its slug (at most 80 characters) or a call's label (at
    # most 100). 100 characters used to reach the slug column's check inside the query: a 500.
    label = "l" * 100
    labelled = await Call.create(
        workspace_id=world["sales"].workspace_id, agent=world["sales"], call_type="phone",
        call_direction="outbound", status="completed", campaign=label,
    )  # fmt: skip
    assert await ids(client, world, f"?campaign={label}") == [str(labelled.id)]
    for path in CAMPAIGN_FILTERED:
        fits = await client.get(f"{path}?campaign={'0' * 100}", headers=world["headers"])
        assert fits.status_code == 200, (path, await fits.get_data(as_text=True))
        too_long = await client.get(f"{path}?campaign={'0' * 101}", headers=world["headers"])
        assert too_long.status_code == 400, path
        body = await too_long.get_json()
        assert body["code"] == "VALIDATION_ERROR"
        assert [error["field"] for error in body["errors"]] == ["campaign"]


async def test_a_nul_in_a_query_parameter_is_a_400_naming_it(client, world):
    # PostgreSQL text holds no NUL: `campaign=%00...` used to fail inside the query (a 500).
    for path in CAMPAIGN_FILTERED:
        response = await client.get(f"{path}?campaign=%00abc&page=1", headers=world["headers"])
        assert response.status_code == 400, path
        body = await response.get_json()
        assert body["code"] == "VALIDATION_ERROR"
        assert [error["field"] for error in body["errors"]] == ["campaign"]


async def _answer_of_unbounded_query(settings, telephony_settings, query) -> tuple[int, dict]:
    """What the app answers when `query` (a value no request model bounded reaching the
    database) fails, on a route of this test's own: the one mapping in control/http/errors.py."""
    app = create_app(settings, telephony_settings)

    async def unbounded_filter() -> dict:
        return {"found": await query()}

    app.add_url_rule("/test-only/unbounded", view_func=unbounded_filter, methods=["GET"])
    try:
        response = await app.test_client().get("/test-only/unbounded")
        return response.status_code, await response.get_json()
    finally:
        await app.extensions["redis"].aclose()


async def test_a_value_the_orm_refuses_is_a_400_wherever_it_escapes(
    db, settings, telephony_settings
):
    # The ORM itself refuses a 100-character slug (the column holds 80).
    status, body = await _answer_of_unbounded_query(
        settings, telephony_settings, Campaign.filter(slug="s" * 100).count
    )
    assert status == 400 and body["code"] == "VALIDATION_ERROR" and "80" in body["detail"]


@pytest.mark.postgres_only
async def test_a_value_the_database_refuses_is_a_400_wherever_it_escapes(
    db, settings, telephony_settings
):
    # PostgreSQL refuses text with NUL ("data exception", SQLSTATE class 22).
    status, body = await _answer_of_unbounded_query(
        settings, telephony_settings, Campaign.filter(name="a\x00b").count
    )
    assert status == 400 and body["code"] == "VALIDATION_ERROR"
    assert "database cannot hold" in body["detail"]
