"""Report rollups: the same figures as the calls table, whatever happened to the calls since.

A property test writes random calls around day boundaries and a daylight-saving change, changes
some (late reports, a `lost` replaced by a real outcome, dispositions, deletes), recomputes the
rollups or not, and compares every report on both paths in zones whole, half and three quarters
of an hour off UTC. The other tests pin the failure modes one at a time: stale hours, a second
or concurrent recomputation, a leftover of a crashed one, a rolled-back change, the command.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from tortoise.transactions import in_transaction

from control.models import Call, ReportRollup, ReportStaleHour, Role, Workspace
from control.services import report_rollups, reports
from control.services.agents import create_agent
from control.services.call_logs import CallFilters
from tests.conftest import TEST_DATA_DIR, auth_headers, make_user

ROOT = Path(__file__).resolve().parents[2]
# Four days around the United States' change to summer time (8 March 2026).
BASE = datetime(2026, 3, 6, tzinfo=UTC)
SPAN_MINUTES = 4 * 24 * 60
ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham")
GROUPS = ("day", "agent", "agent_version", "direction", "type", "status", "end_reason")

calls_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "agent": st.sampled_from([0, 1, None]),
            "agent_version": st.sampled_from([None, 1, 2]),
            "call_type": st.sampled_from(["phone", "web"]),
            "call_direction": st.sampled_from(["inbound", "outbound"]),
            "status": st.sampled_from(["completed", "failed", "no_answer", "in_progress"]),
            "end_reason": st.sampled_from([None, "user_hangup", "lost"]),
            "disposition": st.sampled_from([None, "interested", "callback"]),
            "batch": st.booleans(),
            "campaign": st.sampled_from([None, "fall", "spring"]),
            "second": st.integers(0, SPAN_MINUTES * 60 - 1),
            "answered": st.booleans(),
            "duration_ms": st.none() | st.integers(0, 3_600_000),
            "cost_micros": st.none() | st.integers(0, 5_000_000),
            "latencies": st.lists(st.integers(0, 5_000).map(lambda ms: ms / 4), max_size=4),
        }
    ),
    min_size=1,
    max_size=25,
)
changes_strategy = st.lists(
    st.tuples(
        st.integers(0, 100),
        st.sampled_from(["finish", "lost_to_real", "dispose", "delete", "late_latencies"]),
    ),
    max_size=6,
)
query_strategy = st.fixed_dictionaries(
    {
        "zone": st.sampled_from(ZONES),
        "start_minute": st.integers(-60, SPAN_MINUTES),
        "length_minutes": st.integers(0, SPAN_MINUTES + 120),
        "filter": st.sampled_from(
            [None, "agent", "agent_version", "campaign", "batch", "disposition", "type"]
        ),
    }
)


async def seed(workspace_id: uuid.UUID, agents: list, batch: uuid.UUID, drawn: dict) -> Call:
    created_at = BASE + timedelta(seconds=drawn["second"])
    answered = drawn["answered"]
    call = await Call.create(
        workspace_id=workspace_id,
        agent_id=None if drawn["agent"] is None else agents[drawn["agent"]].id,
        agent_version=drawn["agent_version"],
        call_type=drawn["call_type"],
        call_direction=drawn["call_direction"],
        status=drawn["status"],
        end_reason=drawn["end_reason"],
        disposition=drawn["disposition"],
        batch_id=batch if drawn["batch"] else None,
        campaign=drawn["campaign"],
        answered_at=created_at + timedelta(seconds=3) if answered else None,
        duration_seconds=None if drawn["duration_ms"] is None else drawn["duration_ms"] / 1000,
        usage={} if drawn["cost_micros"] is None else {"cost": drawn["cost_micros"] / 1e6},
        latencies=[{"turn": i + 1, "end_to_end_ms": ms} for i, ms in enumerate(drawn["latencies"])],
    )
    await Call.filter(id=call.id).update(created_at=created_at)
    return call


async def change(call: Call, action: str) -> None:
    """What happens to calls after they were placed (each write goes through the ORM)."""
    if action == "finish":  # a late report: the call is answered and talked for 42.5 s
        await Call.filter(id=call.id).update(
            status="completed",
            end_reason="user_hangup",
            answered_at=datetime.now(UTC),
            duration_seconds=42.5,
        )
    elif action == "lost_to_real":  # the reaper's `lost`, then the worker's real report
        await Call.filter(id=call.id).update(status="failed", end_reason="lost")
        await Call.filter(id=call.id).update(status="completed", end_reason="agent_hangup")
    elif action == "dispose":  # post-call analysis
        await Call.filter(id=call.id).update(disposition="not_interested", usage={"cost": 0.125})
    elif action == "delete":
        await Call.filter(id=call.id).delete()
    elif action == "late_latencies":
        await Call.filter(id=call.id).update(latencies=[{"end_to_end_ms": 321.5}])


def scope_of(query: dict, agents: list, batch: uuid.UUID) -> reports.ReportScope:
    start = BASE + timedelta(minutes=query["start_minute"])
    end = start + timedelta(minutes=query["length_minutes"])
    filters = CallFilters(start=start, end=end)
    if query["filter"] == "agent":
        filters = replace(filters, agent_id=agents[0].id)
    elif query["filter"] == "agent_version":
        filters = replace(filters, agent_version=1)
    elif query["filter"] == "campaign":
        filters = replace(filters, campaign="fall")
    elif query["filter"] == "batch":
        filters = replace(filters, batch_id=batch)
    elif query["filter"] == "disposition":
        filters = replace(filters, disposition="interested")
    elif query["filter"] == "type":
        filters = replace(filters, call_type="web")
    return reports.scope(filters, query["zone"])


async def assert_paths_agree(redis, workspace_id: uuid.UUID, scope: reports.ReportScope) -> None:
    rolled = await reports.with_rollups(workspace_id, scope)
    summaries = {}
    for group_by in GROUPS:
        summaries[group_by] = await reports.call_summary(workspace_id, scope, group_by)
        assert await reports.call_summary(workspace_id, rolled, group_by) == summaries[group_by]
    # The dashboard groups three ways at once (one statement on PostgreSQL): the same figures.
    dashboards = [
        await reports.dashboard(redis, workspace_id, each, 10) for each in (scope, rolled)
    ]
    for dashboard in dashboards:
        assert dashboard["totals"] == summaries["day"]["totals"]
        assert dashboard["per_day"] == summaries["day"]["groups"]
        assert dashboard["per_agent"] == summaries["agent"]["groups"]
    assert dashboards[0]["per_disposition"] == dashboards[1]["per_disposition"]
    assert await reports.disposition_summary(
        workspace_id, rolled
    ) == await reports.disposition_summary(workspace_id, scope)
    exact = {entry["agent_id"]: entry for entry in await reports.latency_percentiles(
        workspace_id, scope
    )}  # fmt: skip
    sketched = {entry["agent_id"]: entry for entry in await reports.latency_percentiles(
        workspace_id, rolled
    )}  # fmt: skip
    assert sketched.keys() == exact.keys()
    for agent_id, entry in exact.items():
        for kind in report_rollups.LATENCY_KINDS:
            want, got = entry[kind], sketched[agent_id][kind]
            assert (want is None) == (got is None), (agent_id, kind)
            if want is None:
                continue
            assert got["samples"] == want["samples"]
            for name in ("p50_ms", "p95_ms"):
                # Within the sketch's relative accuracy (a figure on a bin's edge: a hair over).
                bound = want[name] * report_rollups.RELATIVE_ACCURACY * (1 + 1e-9) + 1e-9
                assert abs(got[name] - want[name]) <= bound, (agent_id, kind, name)


@hypothesis_settings(
    max_examples=int(os.environ.get("VOXLINE_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no example store in the working tree
)
@given(
    drawn_calls=calls_strategy,
    changes=changes_strategy,
    refresh_first=st.booleans(),
    refresh_after=st.booleans(),
    queries=st.lists(query_strategy, min_size=1, max_size=3),
)
async def test_rollups_equal_the_calls_table_on_random_calls(
    db, redis, settings, drawn_calls, changes, refresh_first, refresh_after, queries
):
    # Each example in a workspace of its own (the database is emptied once per test).
    workspace = await Workspace.create(name="Property", slug=f"p-{uuid.uuid4().hex[:12]}")
    agents = [
        await create_agent(settings, workspace.id, {"agent_name": f"Agent {index}"})
        for index in range(2)
    ]
    batch = uuid.uuid4()
    placed = [await seed(workspace.id, agents, batch, drawn) for drawn in drawn_calls]
    if refresh_first:
        await report_rollups.refresh_all()
    for index, action in changes:
        await change(placed[index % len(placed)], action)
    if refresh_after:
        await report_rollups.refresh_all()
    for query in queries:
        await assert_paths_agree(redis, workspace.id, scope_of(query, agents, batch))


@pytest.fixture
async def world(db, settings):
    user, workspace = await make_user("rollups@example.com", role=Role.MEMBER)
    agent = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    return {"workspace": workspace, "agent": agent, "headers": auth_headers(settings, user)}


DAY = "start_datetime=2026-03-02T00:00:00Z&end_datetime=2026-03-05T00:00:00Z"


async def place(world, at: datetime, **fields: Any) -> Call:
    call = await Call.create(
        workspace_id=world["workspace"].id,
        agent=world["agent"],
        call_type="phone",
        call_direction="outbound",
        **{"status": "completed", **fields},
    )
    await Call.filter(id=call.id).update(created_at=at)
    return call


async def totals(client, world) -> dict:
    response = await client.get(
        f"/reports/call-summary?{DAY}&group_by=status", headers=world["headers"]
    )
    assert response.status_code == 200
    body = await response.get_json()
    return {"totals": body["totals"], "groups": {g["key"]: g["calls"] for g in body["groups"]}}


async def rollup_calls(workspace: Workspace) -> int:
    return sum(rollup.calls for rollup in await ReportRollup.filter(workspace_id=workspace.id))


async def test_a_changed_hour_is_read_from_the_calls_until_recomputed(client, world):
    call = await place(world, datetime(2026, 3, 3, 10, 15, tzinfo=UTC), status="in_progress")
    await report_rollups.refresh_all()
    assert await ReportStaleHour.filter(workspace_id=world["workspace"].id).count() == 0
    assert (await totals(client, world))["groups"] == {"in_progress": 1}
    # The worker's report arrives: the hour is stale at once, in the same transaction.
    await Call.filter(id=call.id).update(
        status="completed", answered_at=datetime(2026, 3, 3, 10, 16, tzinfo=UTC),
        duration_seconds=30.25,
    )  # fmt: skip
    assert await ReportStaleHour.filter(workspace_id=world["workspace"].id).count() == 1
    before = await totals(client, world)
    assert before["groups"] == {"completed": 1}
    assert before["totals"]["total_duration_seconds"] == 30.25
    assert await report_rollups.refresh_all() == 1
    assert await totals(client, world) == before
    assert await rollup_calls(world["workspace"]) == 1


async def test_a_heartbeat_leaves_the_hour_fresh(world):
    call = await place(world, datetime(2026, 3, 3, 10, tzinfo=UTC), status="in_progress")
    await report_rollups.refresh_all()
    await Call.filter(id=call.id).update(heartbeat_at=datetime.now(UTC))
    assert await ReportStaleHour.filter(workspace_id=world["workspace"].id).count() == 0


async def test_recomputing_twice_or_at_once_never_counts_a_call_twice(client, world):
    for minute in range(0, 180, 20):
        await place(world, datetime(2026, 3, 3, 9, minute % 60, tzinfo=UTC) + timedelta(
            hours=minute // 60
        ), duration_seconds=10.0, answered_at=datetime(2026, 3, 3, tzinfo=UTC))  # fmt: skip
    on_calls = await totals(client, world)  # every hour stale: all from the calls table
    # Two runners at once (two replicas' jobs), then a full rebuild, then another.
    await asyncio.gather(report_rollups.refresh_all(), report_rollups.refresh_all())
    assert await rollup_calls(world["workspace"]) == 9
    await report_rollups.rebuild()
    await report_rollups.rebuild()
    assert await rollup_calls(world["workspace"]) == 9
    assert await totals(client, world) == on_calls
    assert on_calls["totals"]["calls"] == 9 and on_calls["totals"]["total_duration_seconds"] == 90


async def test_a_crashed_recomputation_leaves_nothing_counted_twice(client, world):
    await place(world, datetime(2026, 3, 3, 10, tzinfo=UTC))
    await report_rollups.refresh_all()
    # What a crash halfway could leave (were it not one transaction): a second copy of the
    # hour's rollup, its stale mark still there. The next run recomputes the day from scratch.
    copy = await ReportRollup.get(workspace_id=world["workspace"].id)
    copy.id = None
    await copy.save(force_create=True)
    hour = report_rollups.hour_of(datetime(2026, 3, 3, 10, tzinfo=UTC))
    await ReportStaleHour.create(workspace_id=world["workspace"].id, hour=hour)
    assert (await totals(client, world))["totals"]["calls"] == 1  # stale: from the calls
    await report_rollups.refresh_all()
    assert await rollup_calls(world["workspace"]) == 1
    assert (await totals(client, world))["totals"]["calls"] == 1


async def test_a_rolled_back_change_marks_nothing_and_changes_nothing(client, world):
    call = await place(world, datetime(2026, 3, 3, 10, tzinfo=UTC), status="in_progress")
    await report_rollups.refresh_all()
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await Call.filter(id=call.id).update(status="completed")
            raise RuntimeError("the process dies before it commits")
    assert await ReportStaleHour.filter(workspace_id=world["workspace"].id).count() == 0
    assert (await totals(client, world))["groups"] == {"in_progress": 1}


async def test_deleting_calls_and_workspaces(client, world, settings):
    keep = await place(world, datetime(2026, 3, 3, 10, tzinfo=UTC))
    gone = await place(world, datetime(2026, 3, 3, 11, tzinfo=UTC))
    await report_rollups.refresh_all()
    await Call.filter(id=gone.id).delete()
    assert (await totals(client, world))["totals"]["calls"] == 1
    await report_rollups.refresh_all()
    assert await rollup_calls(world["workspace"]) == 1
    assert (await totals(client, world))["totals"]["calls"] == 1
    assert keep.id
    # A workspace deleted with its calls: its rollups go with it, and so do its marks.
    other = await Workspace.create(name="Other", slug="other-rollups")
    await Call.create(workspace=other, call_type="web", call_direction="inbound")
    await report_rollups.refresh_all()
    await other.delete()
    await report_rollups.refresh_all()
    assert await ReportRollup.filter(workspace_id=other.id).count() == 0
    assert await ReportStaleHour.filter(workspace_id=other.id).count() == 0


async def test_reports_rebuild_command_is_idempotent(world, settings):
    for hour in range(5):
        await place(world, datetime(2026, 3, 3, hour, tzinfo=UTC))
    await ReportStaleHour.all().delete()  # as if the rollups had been lost: nothing marked
    env = {
        **os.environ,
        "VOXLINE_ENV": "test",
        "VOXLINE_SERVICE_TOKEN": "test-service-token",
        "VOXLINE_DATA_DIR": TEST_DATA_DIR,
        "VOXLINE_DATABASE_URL": settings.database_url,
    }
    for _ in range(2):
        rebuild = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "voxline", "reports", "rebuild"),
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(rebuild.communicate(), 120)
        assert rebuild.returncode == 0, stderr.decode()
        assert "Report rollups rebuilt" in stdout.decode()
        assert await rollup_calls(world["workspace"]) == 5
