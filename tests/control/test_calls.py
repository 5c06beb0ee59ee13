"""`/calls`: call-log list with every filter, detail, CSV export and tenant isolation."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from control.models import Call, Role
from control.services.agents import create_agent
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
