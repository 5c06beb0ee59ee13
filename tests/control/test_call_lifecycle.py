"""The call lifecycle under faults: capacity reservations, one final state per call, derived
event ids, the reaper, idempotent outbound calls and the durable job queue."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from control import jobs
from control.jobs.queue import JobKind, kinds
from control.models import (
    Call,
    DialerAttemptKey,
    IdempotencyKey,
    Job,
    JobStatus,
    Role,
    WebhookDelivery,
)
from control.security import utcnow
from control.services import calls as call_service
from control.services import capacity
from control.services.idempotency import KEY_LIFETIME
from control.services.webhooks import set_endpoint
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from tests.conftest import auth_headers, make_user
from tests.servers import SERVICE_TOKEN, ControlPlaneProcess
from tests.waiting import until

SERVICE = {"Authorization": "Bearer test-service-token"}
DIAL = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155559876"}
REPORT = {
    "status": "completed",
    "end_reason": "user_hangup",
    "transcript": [{"role": "user", "text": "Thanks, bye.", "started_at": 1.0}],
}


async def deliveries(call_id: uuid.UUID | str, event_type: str) -> list[dict]:
    """The queued webhook events of one type for one call (payloads)."""
    payloads = await WebhookDelivery.filter(event_type=event_type).values_list("payload", flat=True)
    return [payload for payload in payloads if payload["data"].get("call_id") == str(call_id)]


async def place_call(client, line, **headers) -> tuple[int, dict]:
    response = await client.post(
        "/calls/outbound_call", json=DIAL, headers={**line["headers"], **headers}
    )
    return response.status_code, await response.get_json()


# -- capacity ---------------------------------------------------------------------------------


async def test_two_hundred_calls_at_once_against_a_capacity_of_ten(client, line, livekit, settings):
    assert settings.max_agent_sessions == 10
    results = await asyncio.gather(*(place_call(client, line) for _ in range(200)))
    statuses = [status for status, _ in results]
    assert statuses.count(201) == 10, sorted(set(statuses))
    assert statuses.count(429) == 190
    assert all(body["code"] == "AT_CAPACITY" for status, body in results if status == 429)
    assert len(livekit.dispatches) == 10
    assert await Call.all().count() == 10  # a refused call leaves no call log behind


async def test_a_workspace_limit_is_enforced_and_named(client, line, settings):
    workspace = line["workspace"]
    admin, _ = await make_user("admin@example.com", role=Role.ADMIN, workspace=workspace)
    changed = await client.patch(
        f"/workspaces/{workspace.id}",
        json={"max_concurrent_calls": 1},
        headers=auth_headers(settings, admin),
    )
    assert changed.status_code == 200
    assert (await changed.get_json())["max_concurrent_calls"] == 1
    assert (await place_call(client, line))[0] == 201
    status, body = await place_call(client, line)
    assert status == 429 and body["code"] == "AT_CAPACITY"
    assert "workspace" in body["detail"]
    developer_patch = await client.patch(
        f"/workspaces/{workspace.id}", json={"max_concurrent_calls": 5}, headers=line["headers"]
    )
    assert developer_patch.status_code == 403


async def test_an_inbound_call_over_capacity_is_refused_and_logged(client, line, settings):
    await line["workspace"].update_from_dict({"max_concurrent_calls": 1}).save()
    assert (await place_call(client, line))[0] == 201
    response = await client.post(
        "/internal/numbers/+16505551234/calls",
        json={"from_number": "+14155550000"},
        headers=SERVICE,
    )
    assert response.status_code == 429
    body = await response.get_json()
    assert body["code"] == "AT_CAPACITY" and body["call_id"]
    refused = await Call.get(id=body["call_id"])
    assert (refused.status, refused.end_reason) == ("failed", "at_capacity")


async def test_a_slot_is_freed_by_the_report_and_by_room_finished(client, line, livekit, redis):
    workspace_key = capacity.WORKSPACE_KEY.format(line["workspace"].id)
    _, first = await place_call(client, line)
    _, second = await place_call(client, line)
    assert await capacity.in_use(redis, workspace_key) == 2
    await client.post(f"/internal/calls/{first['call_id']}/report", json=REPORT, headers=SERVICE)
    assert await capacity.in_use(redis, workspace_key) == 1
    body, auth = livekit.webhook("room_finished", room_name=second["room_name"])
    await client.post(
        "/webhook/livekit",
        data=body,
        headers={"Authorization": auth, "Content-Type": "application/webhook+json"},
    )
    assert await capacity.in_use(redis) == 0


async def test_an_expired_slot_heals_instead_of_holding_capacity(redis):
    limits = capacity.limits_for(1, uuid.uuid4(), None)
    # A slot whose release was lost and whose expiry has passed (nobody refreshed it).
    await capacity.reserve(redis, uuid.uuid4(), limits, hold_seconds=-1)
    held = uuid.uuid4()
    await capacity.reserve(redis, held, limits, hold_seconds=60)
    with pytest.raises(Exception) as refused:
        await capacity.reserve(redis, uuid.uuid4(), limits, hold_seconds=60)
    assert getattr(refused.value, "code", None) == "AT_CAPACITY"
    await capacity.reserve(redis, held, limits, hold_seconds=60)  # a call's own slot: refreshed


# -- one final state per call -----------------------------------------------------------------


async def test_the_same_report_three_times_ends_the_call_once(client, line, settings):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    _, placed = await place_call(client, line)
    call_id = placed["call_id"]
    answers = await asyncio.gather(
        *(
            client.post(f"/internal/calls/{call_id}/report", json=REPORT, headers=SERVICE)
            for _ in range(3)
        )
    )
    assert [response.status_code for response in answers] == [200, 200, 200]
    applied = sorted([(await response.get_json())["applied"] for response in answers])
    assert applied == [False, False, True]
    assert len(await deliveries(call_id, "call_ended")) == 1
    assert await Job.filter(kind="analyse_call").count() == 1
    # A different outcome for a call already final changes nothing either.
    late = await client.post(
        f"/internal/calls/{call_id}/report",
        json={**REPORT, "status": "failed", "end_reason": "error"},
        headers=SERVICE,
    )
    assert (await late.get_json())["applied"] is False
    assert (await Call.get(id=call_id)).status == "completed"


async def test_event_ids_derive_from_the_call_and_the_event(client, line, settings):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    _, first = await place_call(client, line)
    _, second = await place_call(client, line)
    started = await deliveries(first["call_id"], "call_started")
    assert len(started) == 1
    again = await call_service.emit_once(
        await Call.get(id=first["call_id"]), "call_started", {"call_id": first["call_id"]}
    )
    assert again is None and len(await deliveries(first["call_id"], "call_started")) == 1
    other = await deliveries(second["call_id"], "call_started")
    assert other[0]["id"] != started[0]["id"]


# -- the reaper -------------------------------------------------------------------------------


async def test_the_reaper_finishes_a_call_no_worker_took(client, line, settings, redis):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    _, placed = await place_call(client, line)
    patient = settings.model_copy(update={"join_timeout_seconds": 3600})
    assert await call_service.reap_lost_calls(patient, redis) == 0
    impatient = settings.model_copy(update={"join_timeout_seconds": 0})
    assert await call_service.reap_lost_calls(impatient, redis) == 1
    call = await Call.get(id=placed["call_id"])
    assert (call.status, call.end_reason) == ("failed", "lost")
    assert await capacity.in_use(redis) == 0
    assert len(await deliveries(call.id, "call_failed")) == 1
    assert await call_service.reap_lost_calls(impatient, redis) == 0  # once


async def test_a_silent_call_is_lost_and_a_late_report_replaces_lost(client, line, settings, redis):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    _, placed = await place_call(client, line)
    call_id = placed["call_id"]
    assert (await client.get(f"/internal/calls/{call_id}/spec", headers=SERVICE)).status_code == 200
    assert (
        await client.post(f"/internal/calls/{call_id}/heartbeat", headers=SERVICE)
    ).status_code == 200
    alive = settings.model_copy(update={"heartbeat_timeout_seconds": 3600})
    assert await call_service.reap_lost_calls(alive, redis) == 0
    silent = settings.model_copy(update={"heartbeat_timeout_seconds": 0})
    assert await call_service.reap_lost_calls(silent, redis) == 1
    assert (await Call.get(id=call_id)).end_reason == "lost"

    late = await client.post(f"/internal/calls/{call_id}/report", json=REPORT, headers=SERVICE)
    assert (await late.get_json())["applied"] is True
    call = await Call.get(id=call_id)
    assert (call.status, call.end_reason) == ("completed", "user_hangup")
    ended = await deliveries(call_id, "call_ended")
    assert [event["data"]["status"] for event in ended] in (
        ["failed", "completed"],
        ["completed", "failed"],
    )
    assert ended[0]["id"] != ended[1]["id"]  # the real outcome is a new event, not a duplicate
    again = await client.post(f"/internal/calls/{call_id}/report", json=REPORT, headers=SERVICE)
    assert (await again.get_json())["applied"] is False
    assert len(await deliveries(call_id, "call_ended")) == 2


async def test_a_closed_room_without_a_report_is_lost_after_the_grace(
    client, line, livekit, settings, redis
):
    _, placed = await place_call(client, line)
    body, auth = livekit.webhook("room_finished", room_name=placed["room_name"])
    await client.post(
        "/webhook/livekit",
        data=body,
        headers={"Authorization": auth, "Content-Type": "application/webhook+json"},
    )
    patient = settings.model_copy(update={"join_timeout_seconds": 3600})
    assert await call_service.reap_lost_calls(patient, redis) == 0  # the report may still come
    no_grace = patient.model_copy(update={"reaper_grace_seconds": 0})
    assert await call_service.reap_lost_calls(no_grace, redis) == 1


# -- idempotent outbound calls ----------------------------------------------------------------


async def test_the_same_idempotency_key_ten_times_at_once_dials_once(client, line, livekit):
    key = {"Idempotency-Key": "retry-me-0001"}
    results = await asyncio.gather(*(place_call(client, line, **key) for _ in range(10)))
    statuses = [status for status, _ in results]
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    first = next(body for status, body in results if status == 201)
    assert all(body == first for status, body in results if status == 200)
    assert len(livekit.dispatches) == 1 and await Call.all().count() == 1

    status, later = await place_call(client, line, **key)
    assert (status, later) == (200, first)
    mismatch = await client.post(
        "/calls/outbound_call",
        json={**DIAL, "phone_number_to_dial": "+14155550000"},
        headers={**line["headers"], **key},
    )
    assert mismatch.status_code == 422
    assert (await place_call(client, line, **{"Idempotency-Key": "another"}))[0] == 201


async def test_a_failed_first_request_frees_its_idempotency_key(client, line, livekit):
    livekit.fail("CreateDispatch")
    key = {"Idempotency-Key": "after-failure"}
    assert (await place_call(client, line, **key))[0] == 502
    assert await IdempotencyKey.all().count() == 0
    livekit.reset()
    assert (await place_call(client, line, **key))[0] == 201


async def test_keys_past_their_lifetime_are_pruned_by_the_housekeeping_job(
    client, line, settings, redis
):
    for key in ("old-one", "fresh-one"):
        assert (await place_call(client, line, **{"Idempotency-Key": key}))[0] == 201
    workspace_id = line["workspace"].id
    await DialerAttemptKey.create(workspace_id=workspace_id, key="batch-item:x:1", fingerprint="f")
    await DialerAttemptKey.create(workspace_id=workspace_id, key="batch-item:y:1", fingerprint="f")
    aged = utcnow() - KEY_LIFETIME - timedelta(minutes=1)
    await IdempotencyKey.filter(key="old-one").update(created_at=aged)
    await DialerAttemptKey.filter(key="batch-item:x:1").update(created_at=aged)

    await kinds()["reap_calls"].handler(jobs.JobContext(settings, redis), {})

    assert await IdempotencyKey.all().values_list("key", flat=True) == ["fresh-one"]
    assert await DialerAttemptKey.all().values_list("key", flat=True) == ["batch-item:y:1"]


# -- the job queue ----------------------------------------------------------------------------

ATTEMPTS: list[str] = []


async def _flaky(context: jobs.JobContext, payload: dict) -> None:
    ATTEMPTS.append(payload["name"])
    if payload.get("fail"):
        raise RuntimeError("the outside service is down")


@pytest.fixture(autouse=True)
def flaky_job_kind(monkeypatch):
    """A job kind of the tests' own, beside the real ones, for as long as a test runs."""
    flaky = JobKind("test_flaky", _flaky, max_attempts=3, retry_delays=(0,))
    monkeypatch.setitem(kinds(), flaky.name, flaky)


async def test_jobs_retry_with_backoff_then_fail_visibly(db, settings, redis):
    ATTEMPTS.clear()
    context = jobs.JobContext(settings, redis)
    await jobs.enqueue("test_flaky", {"name": "doomed", "fail": True})
    await jobs.enqueue("test_flaky", {"name": "fine"})
    await jobs.drain(context)
    assert ATTEMPTS.count("doomed") == 3 and ATTEMPTS.count("fine") == 1
    failed = await Job.get(kind="test_flaky", status=JobStatus.FAILED)
    assert failed.attempts == 3 and "outside service is down" in failed.last_error
    assert (await jobs.queue_state())["failed"] == 1


async def test_a_keyed_job_is_queued_once_and_a_periodic_job_runs_once_a_period(
    db, settings, redis
):
    assert await jobs.enqueue("test_flaky", {"name": "once"}, key="only-one") is not None
    assert await jobs.enqueue("test_flaky", {"name": "once"}, key="only-one") is None
    slow = settings.model_copy(update={"reaper_period_seconds": 3600})
    replicas = [jobs.JobContext(slow, redis), jobs.JobContext(slow, redis)]
    await asyncio.gather(*(jobs.drain(replica) for replica in replicas))
    assert await Job.filter(kind="reap_calls").count() == 1


async def test_a_job_left_running_by_a_dead_replica_runs_again_after_its_lease(db, settings, redis):
    ATTEMPTS.clear()
    job = await jobs.enqueue("test_flaky", {"name": "orphan"})
    # A replica claimed it, then died: the row is `running` with its lease run out.
    await Job.filter(id=job.id).update(status=JobStatus.RUNNING, run_at=job.run_at)
    await jobs.drain(jobs.JobContext(settings, redis))
    assert ATTEMPTS == ["orphan"]
    assert (await Job.get(id=job.id)).status == JobStatus.DONE


async def test_a_workers_heartbeat_beats_until_its_client_closes(app, client, line, settings):
    _, placed = await place_call(client, line)
    call_id = placed["call_id"]
    assert (await client.get(f"/internal/calls/{call_id}/spec", headers=SERVICE)).status_code == 200
    runtime_settings = RuntimeSettings(
        api_url="http://control-plane.test",
        service_token=settings.service_token,
        heartbeat_seconds=0.05,
    )
    control = ControlPlane(runtime_settings, transport=httpx.ASGITransport(app=app.app))
    heartbeat = control.start_heartbeat(call_id)

    async def beat_taken() -> bool:
        return (await Call.get(id=call_id)).heartbeat_at is not None

    await until(beat_taken, seconds=30, every=0.2)
    # Closing the client (a call's end, however it ended) stops the heartbeat with it: it
    # never beats on into a closed client.
    await control.aclose()
    assert heartbeat.cancelled()


# -- a worker killed mid-call, against `voxline serve` with its background work ---------------

WORKER = """
import asyncio, sys
from runtime.control_client import ControlPlane

async def main():
    async with ControlPlane() as control:
        call = await control.open_call(sys.argv[1], direction="web")
        print(call.call_id, flush=True)
        await control.keep_alive(call.call_id)  # what a live call's worker does

asyncio.run(main())
"""


async def test_a_worker_killed_mid_call_is_reaped_and_its_slot_freed(
    settings, line, redis, tmp_path
):
    await set_endpoint(
        settings.model_copy(update={"allow_private_urls": True}),
        line["workspace"].id,
        "http://127.0.0.1:9/hooks",
    )
    server = ControlPlaneProcess(
        settings,
        tmp_path / "serve.log",
        VOXLINE_BACKGROUND_WORKERS="true",
        VOXLINE_JOBS_POLL_SECONDS="0.2",
        VOXLINE_REAPER_PERIOD_SECONDS="1",
        VOXLINE_HEARTBEAT_TIMEOUT_SECONDS="4",
        VOXLINE_REAPER_GRACE_SECONDS="1",
    )
    server.start()
    worker = None
    try:
        await server.wait_until_up()
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            str(line["agent"].id),
            env={
                **os.environ,
                "VOXLINE_API_URL": server.url,
                "VOXLINE_SERVICE_TOKEN": SERVICE_TOKEN,
                "VOXLINE_HEARTBEAT_SECONDS": "0.5",
            },
            stdout=asyncio.subprocess.PIPE,
        )
        call_id = (await asyncio.wait_for(worker.stdout.readline(), 60)).decode().strip()
        workspace_key = capacity.WORKSPACE_KEY.format(line["workspace"].id)
        assert await capacity.in_use(redis, workspace_key) == 1
        # Alive: heartbeats keep it past the heartbeat timeout.
        await until(lambda: heartbeats_after(call_id, seconds=5), seconds=30, every=0.2)
        assert (await Call.get(id=call_id)).status == "queued"

        worker.kill()  # SIGKILL: no report, no goodbye
        await worker.wait()
        killed_at = time.monotonic()
        call = await until(lambda: final_call(call_id), seconds=60, every=0.2)
        finished_in = time.monotonic() - killed_at
        print(f"\nworker killed -> call finished as lost in {finished_in:.1f} s")
        assert (call.status, call.end_reason) == ("failed", "lost")

        # The reaper writes the final state, then gives the slot back: wait for that event.
        async def slot_freed() -> bool:
            return await capacity.in_use(redis, workspace_key) == 0

        await until(slot_freed, seconds=30, every=0.1)
        assert len(await deliveries(call_id, "call_failed")) == 1
    finally:
        if worker is not None and worker.returncode is None:
            worker.kill()
        server.stop()


async def heartbeats_after(call_id: str, seconds: float) -> bool:
    call = await Call.get(id=call_id)
    return bool(
        call.joined_at
        and call.heartbeat_at
        and (call.heartbeat_at - call.joined_at).total_seconds() >= seconds
    )


async def final_call(call_id: str) -> Call | None:
    call = await Call.get(id=call_id)
    return call if call.status not in call_service.LIVE_STATUSES else None
