"""`/reports`: the three workspace reports over seeded calls whose totals are known.

Four calls in range (one at 23:30 UTC, which is the next day in Tokyo), one just before the range
and one in another workspace; every figure below is worked out by hand from this table.

Every test runs twice: reports reading the calls table alone, and reading the hourly rollups
(computed from the calls before each request) plus the calls of the hours at each end. Counts and
sums are the same figures on both; percentiles from the rollups' sketch are within its accuracy.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from control.models import Call, Role, Workspace
from control.services import capacity, report_rollups
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user

RANGE = "start_datetime=2026-11-01T00:00:00Z&end_datetime=2026-11-04T00:00:00Z"
BATCH = uuid.uuid4()


@pytest.fixture(autouse=True, params=["calls", "rollups"])
def source(request, settings):
    """Which path the reports read: the calls table, or the rollups."""
    settings.report_rollups = request.param == "rollups"
    yield request.param
    settings.report_rollups = True


def latency(source: str, samples: int, p50_ms: float, p95_ms: float) -> dict:
    """Percentiles as the path reports them: exact on the calls table, within the sketch's
    relative accuracy from rollups (the sample count is exact on both)."""
    if source == "calls":
        return {"samples": samples, "p50_ms": p50_ms, "p95_ms": p95_ms}
    close = lambda ms: pytest.approx(ms, rel=report_rollups.RELATIVE_ACCURACY)  # noqa: E731
    return {"samples": samples, "p50_ms": close(p50_ms), "p95_ms": close(p95_ms)}


def turns(*end_to_end_ms: float) -> list[dict]:
    return [
        {"turn": index + 1, "end_to_end_ms": ms, "llm_ttft_ms": ms / 2}
        for index, ms in enumerate(end_to_end_ms)
    ]


async def seed_call(workspace_id, agent, created_at, **fields) -> Call:
    answered = fields.pop("answered", True)
    defaults = dict(
        call_type="phone",
        call_direction="outbound",
        status="completed",
        end_reason="user_hangup",
        answered_at=created_at + timedelta(seconds=5) if answered else None,
    )
    call = await Call.create(workspace_id=workspace_id, agent=agent, **{**defaults, **fields})
    await Call.filter(id=call.id).update(created_at=created_at)
    return call


@pytest.fixture
async def world(db, settings):
    member, workspace = await make_user("member@example.com", role=Role.MEMBER)
    sales = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    support = await create_agent(settings, workspace.id, {"agent_name": "Support"})
    at = lambda day, hour, minute=0: datetime(2026, 11, day, hour, minute, tzinfo=UTC)  # noqa: E731
    await seed_call(
        workspace.id, sales, at(1, 10),
        duration_seconds=60, disposition="interested", batch_id=BATCH, campaign="fall",
        latencies=turns(500, 700), usage={"cost": 0.10},
    )  # fmt: skip
    await seed_call(
        workspace.id, sales, at(1, 23, 30),
        duration_seconds=120, disposition="not_interested", end_reason="agent_hangup",
        call_direction="inbound", latencies=turns(900, 300, 1100), usage={"cost": 0.25},
    )  # fmt: skip
    await seed_call(
        workspace.id, support, at(2, 12),
        answered=False, status="no_answer", end_reason=None, batch_id=BATCH,
    )  # fmt: skip
    await seed_call(
        workspace.id, support, at(3, 8),
        duration_seconds=30, disposition="interested", call_direction="inbound",
        call_type="web", campaign="fall", latencies=turns(400),
    )  # fmt: skip
    # Outside the range by half an hour (in Tokyo it is already Nov 1: the range is instants).
    await seed_call(
        workspace.id, sales, datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
        duration_seconds=999, disposition="interested", latencies=turns(5),
    )  # fmt: skip
    outsider, other = await make_user("outsider@example.com", role=Role.ADMIN)
    theirs = await create_agent(settings, other.id, {"agent_name": "Theirs"})
    await seed_call(
        other.id, theirs, at(2, 9),
        duration_seconds=500, disposition="interested", batch_id=BATCH, campaign="fall",
        latencies=turns(10),
    )  # fmt: skip
    return {
        "headers": auth_headers(settings, member),
        "outsider": auth_headers(settings, outsider),
        "workspace": workspace,
        "sales": str(sales.id),
        "support": str(support.id),
    }


async def report(client, headers, path, query="") -> dict:
    await report_rollups.refresh_all()  # every hour fresh: the rollup path reads them all
    response = await client.get(f"/reports/{path}?{RANGE}{query}", headers=headers)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


def day_figures(per_day: list[dict]) -> dict[str, tuple[int, int, float]]:
    return {
        day["key"]: (day["calls"], day["answered"], day["total_duration_seconds"])
        for day in per_day
    }


async def test_dashboard_totals_and_groups(client, world):
    body = await report(client, world["headers"], "dashboard")
    assert body["totals"] == {
        "calls": 4,
        "answered": 3,
        "total_duration_seconds": 210.0,
        "average_duration_seconds": 70.0,
        "cost": pytest.approx(0.35),
    }
    assert day_figures(body["per_day"]) == {
        "2026-11-01": (2, 2, 180.0),
        "2026-11-02": (1, 0, 0.0),
        "2026-11-03": (1, 1, 30.0),
        "2026-11-04": (0, 0, 0.0),  # the range ends at its first instant
    }
    agents = {group["agent_name"]: group for group in body["per_agent"]}
    assert set(agents) == {"Sales", "Support"}
    assert agents["Sales"]["key"] == world["sales"]
    assert (agents["Sales"]["calls"], agents["Sales"]["average_duration_seconds"]) == (2, 90.0)
    # The unanswered call counts as a call but not in the average talk time.
    assert (agents["Support"]["calls"], agents["Support"]["average_duration_seconds"]) == (2, 30.0)
    dispositions = {group["key"]: group["calls"] for group in body["per_disposition"]}
    assert dispositions == {"interested": 2, "not_interested": 1, "none": 1}
    assert body["range"]["timezone"] == "UTC"


async def test_days_follow_the_requested_time_zone(client, world):
    body = await report(client, world["headers"], "dashboard", "&timezone=Asia/Tokyo")
    # 23:30 UTC on Nov 1 is 08:30 on Nov 2 in Tokyo; 12:00 UTC on Nov 2 is 21:00 there.
    assert day_figures(body["per_day"]) == {
        "2026-11-01": (1, 1, 60.0),
        "2026-11-02": (2, 1, 120.0),
        "2026-11-03": (1, 1, 30.0),
        "2026-11-04": (0, 0, 0.0),
    }
    assert body["totals"]["calls"] == 4  # the range is the same instants in any zone
    summary = await report(
        client, world["headers"], "call-summary", "&group_by=day&timezone=America/New_York"
    )
    # New York is 5 hours behind: 08:00 UTC on Nov 3 is 03:00 there, the range starts Oct 31.
    assert day_figures(summary["groups"]) == {
        "2026-10-31": (0, 0, 0.0),
        "2026-11-01": (2, 2, 180.0),
        "2026-11-02": (1, 0, 0.0),
        "2026-11-03": (1, 1, 30.0),
    }


async def test_latency_percentiles_are_nearest_rank_per_agent(client, world, source):
    body = await report(client, world["headers"], "dashboard")
    per_agent = {entry["agent_name"]: entry for entry in body["latency"]}
    # Sales' turns: 300 500 700 900 1100 -> p50 rank 3, p95 rank 5; first turns: 500 900.
    assert per_agent["Sales"]["turn"] == latency(source, 5, 700.0, 1100.0)
    assert per_agent["Sales"]["first_response"] == latency(source, 2, 500.0, 900.0)
    assert per_agent["Support"]["turn"] == latency(source, 1, 400.0, 400.0)
    assert set(per_agent) == {"Sales", "Support"}


async def test_call_summary_groups(client, world):
    headers = world["headers"]

    async def groups(group_by, query=""):
        body = await report(client, headers, "call-summary", f"&group_by={group_by}{query}")
        return {group["key"]: (group["calls"], group["answered"]) for group in body["groups"]}

    assert await groups("direction") == {"outbound": (2, 1), "inbound": (2, 2)}
    assert await groups("type") == {"phone": (3, 2), "web": (1, 1)}
    assert await groups("status") == {"completed": (3, 3), "no_answer": (1, 0)}
    assert await groups("end_reason") == {
        "user_hangup": (2, 2),
        "agent_hangup": (1, 1),
        "none": (1, 0),
    }
    assert await groups("agent") == {world["sales"]: (2, 2), world["support"]: (2, 1)}
    assert await groups("agent", f"&agent_id={world['support']}") == {world["support"]: (2, 1)}
    assert await groups("direction", f"&batch_id={BATCH}") == {"outbound": (2, 1)}
    assert await groups("type", "&campaign=fall") == {"phone": (1, 1), "web": (1, 1)}
    body = await report(client, headers, "call-summary", "&group_by=type&campaign=fall")
    assert body["totals"]["total_duration_seconds"] == 90.0


async def test_disposition_summary_with_filters(client, world):
    headers = world["headers"]

    async def shares(query=""):
        body = await report(client, headers, "disposition-summary", query)
        return body["total"], {
            item["disposition"]: (item["calls"], item["percentage"])
            for item in body["dispositions"]
        }

    assert await shares() == (
        4,
        {"interested": (2, 50.0), "not_interested": (1, 25.0), "none": (1, 25.0)},
    )
    assert await shares("&campaign=fall") == (2, {"interested": (2, 100.0)})
    assert await shares(f"&batch_id={BATCH}") == (2, {"interested": (1, 50.0), "none": (1, 50.0)})
    assert await shares(f"&agent_id={world['sales']}") == (
        2,
        {"interested": (1, 50.0), "not_interested": (1, 50.0)},
    )


async def test_reports_never_count_another_workspace(client, world):
    # The outsider's workspace holds one call in range; their reports see only it.
    body = await report(client, world["outsider"], "dashboard")
    assert body["totals"]["calls"] == 1 and body["totals"]["total_duration_seconds"] == 500.0
    assert [entry["agent_name"] for entry in body["latency"]] == ["Theirs"]
    # Filtering by our agent or batch from their workspace finds none of our calls.
    shares = await report(
        client, world["outsider"], "disposition-summary", f"&agent_id={world['sales']}"
    )
    assert shares["total"] == 0 and shares["dispositions"] == []
    summary = await report(client, world["outsider"], "call-summary", f"&batch_id={BATCH}")
    assert summary["totals"]["calls"] == 1


async def test_date_aliases_and_the_default_range(client, world, settings):
    body = await report(client, world["headers"], "disposition-summary")
    aliased = await client.get(
        "/reports/disposition-summary?start_date=2026-11-01T00:00:00&end_date=2026-11-04T00:00:00",
        headers=world["headers"],
    )
    assert (await aliased.get_json())["total"] == body["total"] == 4
    # No range: the last 30 days (in a workspace of its own: the seeded days may be recent).
    user, workspace = await make_user("recent@example.com", role=Role.MEMBER)
    now = datetime.now(UTC)
    await seed_call(workspace.id, None, now - timedelta(days=1), disposition="recent")
    await seed_call(workspace.id, None, now - timedelta(days=31), disposition="stale")
    default = await client.get("/reports/disposition-summary", headers=auth_headers(settings, user))
    assert [item["disposition"] for item in (await default.get_json())["dispositions"]] == [
        "recent"
    ]


async def test_active_calls_against_capacity(client, world, redis, settings):
    workspace: Workspace = world["workspace"]
    await Workspace.filter(id=workspace.id).update(max_concurrent_calls=3)
    limits = capacity.limits_for(settings.max_agent_sessions, workspace.id, 3)
    for _ in range(2):
        await capacity.reserve(redis, uuid.uuid4(), limits, hold_seconds=600)
    body = await report(client, world["headers"], "dashboard")
    assert body["active_calls"] == {
        "workspace": {"active": 2, "capacity": 3},
        "platform": {"active": 2, "capacity": settings.max_agent_sessions},
    }
    theirs = await report(client, world["outsider"], "dashboard")
    assert theirs["active_calls"]["workspace"] == {"active": 0, "capacity": None}


@pytest.mark.parametrize(
    "query",
    [
        "timezone=Mars/Olympus_Mons",
        "timezone=../../etc/passwd",
        "group_by=color",
        "start_datetime=2026-11-05T00:00:00Z&end_datetime=2026-11-01T00:00:00Z",
        "agent_id=not-a-uuid",
        # day buckets over centuries (found by the fuzz test: a 500 on SQLite)
        "start_datetime=0305-01-19T02:51:44Z&group_by=day",
    ],
)
async def test_bad_parameters_are_400(client, world, query):
    response = await client.get(f"/reports/call-summary?{query}", headers=world["headers"])
    assert response.status_code == 400, await response.get_json()


async def test_a_report_over_ten_years_says_how_to_narrow_it(client, world):
    response = await client.get(
        "/reports/dashboard?start_date=1990-01-01", headers=world["headers"]
    )
    body = await response.get_json()
    assert response.status_code == 400 and body["code"] == "RANGE_TOO_LONG"
    assert "start_datetime" in body["detail"]


async def test_reports_need_a_member(client, world):
    for path in ("dashboard", "call-summary", "disposition-summary"):
        response = await client.get(f"/reports/{path}")
        assert response.status_code == 401


async def test_nearest_rank_at_exact_boundaries(client, db, settings, source):
    # 20 turns: p95 is rank 19 exactly (0.95 * 20), p50 rank 10; 21 turns: ranks 20 and 11.
    user, workspace = await make_user("ranks@example.com", role=Role.MEMBER)
    twenty = await create_agent(settings, workspace.id, {"agent_name": "Twenty"})
    twenty_one = await create_agent(settings, workspace.id, {"agent_name": "TwentyOne"})
    at = datetime(2026, 11, 2, 12, tzinfo=UTC)
    await seed_call(workspace.id, twenty, at, latencies=turns(*range(200, 0, -10)))
    await seed_call(workspace.id, twenty_one, at, latencies=turns(*range(10, 220, 10)))
    body = await report(client, auth_headers(settings, user), "dashboard")
    per_agent = {entry["agent_name"]: entry["turn"] for entry in body["latency"]}
    assert per_agent["Twenty"] == latency(source, 20, 100.0, 190.0)
    assert per_agent["TwentyOne"] == latency(source, 21, 110.0, 200.0)
