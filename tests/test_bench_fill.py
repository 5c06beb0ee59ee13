"""The benches' bulk fill (`tests/bench/fill.py`): rows from the models, so columns cannot rot.

A column the bench does not name gets the model's default (the benches broke when `calls`
gained `transfers`); a required column nobody gives stops the fill with its name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from control.models import Call, Prospect, ProspectStatus, Workspace
from tests.bench.fill import RequiredColumn, copy_rows, plan

pytestmark = pytest.mark.postgres_only("COPY")


async def test_rows_get_the_model_defaults_for_every_column_they_do_not_name(db):
    workspace = await Workspace.create(name="Fill", slug="fill")
    placed = datetime.now(UTC) - timedelta(days=3)
    rows = [
        {
            "workspace_id": workspace.id,
            "call_type": "phone",
            "call_direction": "outbound" if index % 2 else "inbound",
            "created_at": placed,
            "latencies": [{"turn": 1, "end_to_end_ms": 300 + index}],
        }
        for index in range(3)
    ]

    assert await copy_rows(Call, rows) == 3

    calls = await Call.filter(workspace_id=workspace.id).order_by("call_direction")
    assert [call.call_direction for call in calls] == ["inbound", "inbound", "outbound"]
    assert len({call.id for call in calls}) == 3  # a key of its own per row
    for call in calls:
        assert call.status == "queued" and call.transfers == [] and call.usage == {}
        assert call.created_at == placed
        assert call.latencies[0]["end_to_end_ms"] >= 300
        assert call.agent_id is None and call.ended_at is None


async def test_enum_fields_take_members_and_auto_now_is_set(db):
    workspace = await Workspace.create(name="Fill", slug="fill")
    campaign_id = await _campaign(workspace)
    before = datetime.now(UTC)

    await copy_rows(
        Prospect,
        [
            {
                "campaign_id": campaign_id,
                "workspace_id": workspace.id,
                "phone_number": "+14155550100",
                "status": ProspectStatus.RETRYING,
                "timezones": ["America/Los_Angeles"],
            }
        ],
    )

    prospect = await Prospect.get(campaign_id=campaign_id)
    assert prospect.status == ProspectStatus.RETRYING
    assert prospect.timezones == ["America/Los_Angeles"] and prospect.attempt_log == []
    assert prospect.created_at >= before - timedelta(seconds=5)


async def test_a_required_column_nobody_gives_stops_the_fill_with_its_name(db):
    workspace = await Workspace.create(name="Fill", slug="fill")

    with pytest.raises(RequiredColumn, match=r"Call\.call_direction has no default"):
        await copy_rows(Call, [{"workspace_id": workspace.id, "call_type": "phone"}])
    assert await Call.all().count() == 0

    with pytest.raises(ValueError, match="Call has no column transfer_count"):
        plan(Call, ["workspace_id", "call_type", "call_direction", "transfer_count"])


async def _campaign(workspace: Workspace):
    from control.models import Agent, Campaign

    agent = await Agent.create(workspace=workspace, agent_name="Fill")
    campaign = await Campaign.create(
        workspace=workspace, agent=agent, name="Fill", slug="fill", agent_phone_number="+1650"
    )
    return campaign.id
