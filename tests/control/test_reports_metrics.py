"""`/reports/workload` and the control plane's `/metrics`: their figures, and promtool's verdict."""

import uuid
from datetime import timedelta

import pytest

from control import jobs, models
from control.http.app import create_app
from control.models import Call, Job, JobStatus, Role, WebhookDelivery
from control.security import utcnow
from control.services import capacity
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user
from tests.promtools import promtool_check, sample

TOKEN = "scrape-token-" + "s" * 24


async def scrape(client, path: str, **headers: str) -> str:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return await response.get_data(as_text=True)


async def seed_batch_items(workspace_id) -> int:
    """Three items due and one not yet due, in a running batch; the count that is due."""
    batch = await models.Batch.create(
        workspace_id=workspace_id, name="Fall", agent_phone_number="+16505550100", status="running"
    )
    now = utcnow()
    for line, next_attempt_at in enumerate(
        [None, now - timedelta(minutes=1), now, now + timedelta(hours=1)]
    ):
        await models.BatchItem.create(
            batch=batch,
            workspace_id=workspace_id,
            line=line + 2,
            phone_number=f"+1650555010{line}",
            next_attempt_at=next_attempt_at,
        )
    return 3


async def test_workload_counts_what_runs_and_waits(client, db, settings, redis):
    user, workspace = await make_user("owner@example.com", role=Role.ADMIN)
    sales = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    support = await create_agent(settings, workspace.id, {"agent_name": "Support"})
    for agent, status in [(sales, "in_progress"), (sales, "ringing"), (support, "in_progress")]:
        await Call.create(
            workspace_id=workspace.id, agent=agent, call_type="phone", call_direction="outbound",
            status=status,
        )  # fmt: skip
    # Finished and merely queued calls hold no session.
    for status in ("completed", "queued"):
        await Call.create(
            workspace_id=workspace.id, agent=support, call_type="phone", call_direction="outbound",
            status=status,
        )  # fmt: skip
    limits = capacity.limits_for(settings.max_agent_sessions, workspace.id, None)
    for _ in range(3):
        await capacity.reserve(redis, uuid.uuid4(), limits, hold_seconds=600)
    now = utcnow()
    await Job.create(kind="analysis", status=JobStatus.FAILED, run_at=now)
    await Job.create(kind="analysis", status=JobStatus.PENDING, run_at=now - timedelta(seconds=5))
    for status in ("pending", "pending", "failed", "delivered"):
        await WebhookDelivery.create(
            workspace_id=workspace.id, event_type="call_ended", payload={}, url="https://x.test",
            next_attempt_at=now, status=status,
        )  # fmt: skip
    due_items = await seed_batch_items(workspace.id) if hasattr(models, "BatchItem") else None

    text = await scrape(client, "/reports/workload")
    promtool_check(text)
    assert sample(text, "voxline_active_calls") == 3
    assert sample(text, "voxline_call_capacity") == settings.max_agent_sessions
    assert sample(text, "voxline_agent_active_sessions", agent_id=str(sales.id)) == 2
    assert sample(text, "voxline_agent_active_sessions", agent_id=str(support.id)) == 1
    assert sample(text, "voxline_background_jobs", state="failed") == 1
    assert sample(text, "voxline_background_jobs", state="due") == 1
    assert sample(text, "voxline_webhook_deliveries", state="pending") == 2
    assert sample(text, "voxline_webhook_deliveries", state="failed") == 1
    if due_items is not None:
        assert sample(text, "voxline_dialer_queue_depth", queue="batch_items") == due_items
    # Public: no workspace name, no user, no phone number.
    for private in (workspace.name, workspace.slug, user.email, "+1650555"):
        assert private not in text


async def test_control_plane_counts_requests_by_route_template(client, db, settings):
    user, _ = await make_user("owner@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, user)
    route = "/calls/<uuid:call_id>"
    before = await scrape(client, "/metrics")
    missing = [uuid.uuid4() for _ in range(3)]
    for call_id in missing:
        response = await client.get(f"/calls/{call_id}", headers=headers)
        assert response.status_code == 404
    after = await scrape(client, "/metrics")
    promtool_check(after)
    counted = "voxline_http_requests_total"
    labels = {"method": "GET", "route": route, "status": "404"}
    assert (sample(after, counted, **labels) or 0) - (sample(before, counted, **labels) or 0) == 3
    timed = "voxline_http_request_duration_seconds_count"
    timings = (sample(after, timed, method="GET", route=route) or 0) - (
        sample(before, timed, method="GET", route=route) or 0
    )
    assert timings == 3
    # Templates, never raw paths: no call id becomes a label.
    for call_id in missing:
        assert str(call_id) not in after
    await client.get("/no/such/path")
    unmatched = await scrape(client, "/metrics")
    assert sample(unmatched, counted, method="GET", route="unmatched", status="404") >= 1


@pytest.mark.parametrize("path", ["/metrics", "/reports/workload"])
async def test_a_metrics_token_guards_the_scrapes(db, settings, telephony_settings, path):
    guarded = create_app(settings.model_copy(update={"metrics_token": TOKEN}), telephony_settings)
    client = guarded.test_client()
    assert (await client.get(path)).status_code == 401
    wrong = await client.get(path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    await scrape(client, path, Authorization=f"Bearer {TOKEN}")


async def test_background_jobs_are_counted_by_kind_and_outcome(client, db, settings, redis):
    before = await scrape(client, "/metrics")
    # A kind nobody registered fails for good, and is counted as `unknown` (labels stay bounded).
    await Job.create(kind="no-such-kind", run_at=utcnow(), max_attempts=1)
    await jobs.drain(jobs.JobContext(settings, redis))  # also schedules and runs the reaper
    after = await scrape(client, "/metrics")
    promtool_check(after)

    def delta(**labels: str) -> float:
        name = "voxline_jobs_total"
        return (sample(after, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    assert delta(kind="unknown", outcome="failed") == 1
    # Once per reaper period: a drain that straddles a period boundary may run it twice.
    assert delta(kind="reap_calls", outcome="done") >= 1
    assert "no-such-kind" not in after
    assert await Job.filter(kind="no-such-kind", status=JobStatus.FAILED).count() == 1
