"""The batch dialer, driven tick by tick: pace, capacity, retries, windows, schedules, crash
recovery, replicas, progress events."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from control import jobs
from control.dialing import dialer
from control.models import Batch, BatchItem, Call, DialerAttemptKey, WebhookDelivery
from control.security import utcnow
from control.services import calls as call_service
from control.services.webhooks import set_endpoint
from tests.control.batching import (
    attempt_call,
    csv_of,
    numbers,
    phone_csv,
    report,
    tick,
    upload,
)


async def new_batch(client, line, file: bytes, **fields) -> dict:
    response = await upload(client, line, file, **fields)
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def batch_state(client, line, batch_id) -> dict:
    return await (await client.get(f"/batch/{batch_id}", headers=line["headers"])).get_json()


async def items(client, line, batch_id) -> list[dict]:
    response = await client.get(
        f"/batch/{batch_id}/items", query_string={"page_size": 100}, headers=line["headers"]
    )
    return (await response.get_json())["items"]


def dispatched_numbers(livekit) -> Counter:
    """How many dispatches each number got (from the call logs the dispatches name)."""
    return Counter(json.loads(d.metadata)["call_id"] for d in livekit.dispatches.values())


async def events(event_type: str) -> list[dict]:
    return [
        payload
        for payload in await WebhookDelivery.filter(event_type=event_type).values_list(
            "payload", flat=True
        )
    ]


async def test_every_row_is_dialed_once_and_its_outcome_comes_from_the_call(
    client, line, settings, telephony_settings, redis, livekit
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    file = csv_of([f"{n},Person {i},{i}" for i, n in enumerate(numbers(5))], "phone,name,order")
    batch = await new_batch(client, line, file)
    assert await tick(settings, telephony_settings, redis) == 5
    assert await tick(settings, telephony_settings, redis) == 0  # nothing twice
    calls = await Call.filter(batch_id=batch["id"]).order_by("to_number")
    assert [call.to_number for call in calls] == numbers(5)
    assert calls[2].dynamic_variables == {"name": "Person 2", "order": "2"}
    assert sorted(dispatched_numbers(livekit)) == sorted(str(call.id) for call in calls)
    listed = await client.get(f"/calls?batch_id={batch['id']}", headers=line["headers"])
    assert (await listed.get_json())["total"] == 5

    outcomes = [
        ("completed", {"end_reason": "user_hangup"}),
        ("completed", {"end_reason": "voicemail"}),
        ("no_answer", {"sip_status": 480}),
        ("busy", {"sip_status": 486}),
        ("failed", {"end_reason": "error"}),
    ]
    for call, (status, fields) in zip(calls, outcomes, strict=True):
        await report(client, str(call.id), status, **fields)
    state = await batch_state(client, line, batch["id"])
    assert state["counts"]["calling"] == 5  # settled by the next tick, not before
    await tick(settings, telephony_settings, redis)
    state = await batch_state(client, line, batch["id"])
    assert state["status"] == "completed" and state["percent_done"] == 100.0
    assert state["counts"] == {
        "pending": 0, "calling": 0, "completed": 2, "failed": 3, "retrying": 0, "cancelled": 0,
    }  # fmt: skip
    assert state["outcomes"] == {
        "answered": 1, "voicemail": 1, "no_answer": 1, "busy": 1, "failed": 1,
    }  # fmt: skip
    listed = await items(client, line, batch["id"])
    busy = next(item for item in listed if item["outcome"] == "busy")
    assert busy["status"] == "failed" and "SIP 486" in busy["error"]
    assert busy["attempt_log"][0]["reason"] == busy["error"]
    assert len(await events("batch.started")) == 1
    (completed,) = await events("batch.completed")
    assert completed["data"]["progress"]["percent_done"] == 100.0


async def test_the_pace_holds_tick_by_tick(client, line, settings, telephony_settings, redis):
    await new_batch(client, line, phone_csv(20), calls_per_minute=60)
    start = utcnow()
    dials = []
    for seconds in (0, 0, 0.5, 1.0, 1.2, 2.0, 30.0, 30.0, 30.5, 31.0):
        at = start + timedelta(seconds=seconds)
        dials.append(await tick(settings, telephony_settings, redis, now=at))
    # One a second at 60 a minute; an idle stretch earns no burst.
    assert dials == [1, 0, 0, 1, 0, 1, 1, 0, 0, 1]


async def test_a_fast_pace_dials_several_per_tick_up_to_its_rate(
    client, line, settings, telephony_settings, redis
):
    await new_batch(client, line, phone_csv(30), calls_per_minute=300)
    start = utcnow()
    first = await tick(settings, telephony_settings, redis, now=start)
    second = await tick(settings, telephony_settings, redis, now=start + timedelta(seconds=1))
    assert (first, second) == (5, 5)  # settings.dialer_tick_seconds == 1


async def test_capacity_holds_and_a_refused_attempt_is_not_spent(
    client, line, settings, telephony_settings, redis
):
    await line["workspace"].update_from_dict({"max_concurrent_calls": 2}).save()
    batch = await new_batch(client, line, phone_csv(5))
    assert await tick(settings, telephony_settings, redis) == 2
    listed = await items(client, line, batch["id"])
    waiting = [item for item in listed if item["status"] == "pending"]
    assert len(waiting) == 3 and all(item["attempts"] == 0 for item in waiting)
    assert all(not item["attempt_log"] for item in waiting)
    calling = [item for item in listed if item["status"] == "calling"]
    await report(client, calling[0]["call_id"], "completed")
    later = utcnow() + timedelta(seconds=10)  # past the capacity back-off
    assert await tick(settings, telephony_settings, redis, now=later) == 1


async def test_retries_follow_the_policy_with_a_new_attempt_each_time(
    client, line, settings, telephony_settings, redis, livekit
):
    batch = await new_batch(
        client,
        line,
        phone_csv(1),
        max_attempts=3,
        retry_delay_minutes=10,
        retry_on="busy,no_answer",
    )
    start = utcnow()
    assert await tick(settings, telephony_settings, redis, now=start) == 1
    (item,) = await items(client, line, batch["id"])
    first_call = item["call_id"]
    assert first_call == attempt_call(item["id"], 1)
    await report(client, first_call, "busy", sip_status=486)
    await tick(settings, telephony_settings, redis, now=start + timedelta(seconds=5))
    (item,) = await items(client, line, batch["id"])
    assert item["status"] == "retrying" and item["outcome"] == "busy"
    due = item["next_attempt_at"]
    state = await batch_state(client, line, batch["id"])
    assert state["counts"]["retrying"] == 1 and state["next_attempt_at"] == due
    # Not before the retry delay.
    assert await tick(settings, telephony_settings, redis, now=start + timedelta(minutes=9)) == 0
    assert await tick(settings, telephony_settings, redis, now=start + timedelta(minutes=11)) == 1
    (item,) = await items(client, line, batch["id"])
    assert item["attempts"] == 2 and item["call_id"] == attempt_call(item["id"], 2)
    await report(client, item["call_id"], "no_answer", sip_status=480)
    await tick(settings, telephony_settings, redis, now=start + timedelta(minutes=12))
    assert await tick(settings, telephony_settings, redis, now=start + timedelta(minutes=23)) == 1
    (item,) = await items(client, line, batch["id"])
    await report(client, item["call_id"], "completed")
    await tick(settings, telephony_settings, redis, now=start + timedelta(minutes=24))
    (item,) = await items(client, line, batch["id"])
    assert (item["status"], item["outcome"], item["attempts"]) == ("completed", "answered", 3)
    assert [entry["outcome"] for entry in item["attempt_log"]] == ["busy", "no_answer", "answered"]
    assert "SIP 486" in item["attempt_log"][0]["reason"]
    assert len({entry["call_id"] for entry in item["attempt_log"]}) == 3
    assert len(livekit.dispatches) == 3
    assert (await batch_state(client, line, batch["id"]))["status"] == "completed"


async def test_an_outcome_outside_the_policy_or_the_last_attempt_fails(
    client, line, settings, telephony_settings, redis
):
    batch = await new_batch(client, line, phone_csv(2), max_attempts=2, retry_on="busy")
    await tick(settings, telephony_settings, redis)
    first, second = await items(client, line, batch["id"])
    await report(client, first["call_id"], "failed", end_reason="error")
    await report(client, second["call_id"], "busy")
    await tick(settings, telephony_settings, redis)
    first, second = await items(client, line, batch["id"])
    assert (first["status"], second["status"]) == ("failed", "retrying")


async def test_the_calling_window_is_in_the_batch_time_zone(
    client, line, settings, telephony_settings, redis
):
    batch = await new_batch(
        client,
        line,
        phone_csv(2),
        timezone="America/New_York",
        earliest_time="09:00",
        latest_time="17:00",
    )
    # Tomorrow's noon in New York (12 to 36 hours away) and 10 hours before it, in the night
    # there: both after the numbers were queued, whatever time of day the test runs.
    new_york = ZoneInfo("America/New_York")
    tomorrow = utcnow().astimezone(new_york).date() + timedelta(days=1)
    noon = datetime.combine(tomorrow, clock(12), new_york).astimezone(UTC)
    night = noon - timedelta(hours=10)  # 02:00 there (01:00 or 03:00 across a DST change)
    assert await tick(settings, telephony_settings, redis, now=night) == 0
    assert await tick(settings, telephony_settings, redis, now=noon) == 2
    assert (await batch_state(client, line, batch["id"]))["counts"]["calling"] == 2


async def test_a_scheduled_batch_starts_at_its_time(
    client, line, settings, telephony_settings, redis
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    when = utcnow() + timedelta(hours=2)
    batch = await new_batch(client, line, phone_csv(2), scheduled_time=when.isoformat())
    assert batch["status"] == "scheduled" and batch["started_at"] is None
    assert batch["next_attempt_at"] is not None
    assert await tick(settings, telephony_settings, redis) == 0
    assert await events("batch.started") == []
    assert await tick(settings, telephony_settings, redis, now=when + timedelta(seconds=1)) == 2
    state = await batch_state(client, line, batch["id"])
    assert state["status"] == "running" and state["started_at"]
    assert len(await events("batch.started")) == 1


async def test_progress_events_are_numbered_and_spaced(
    client, line, settings, telephony_settings, redis
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    batch = await new_batch(client, line, phone_csv(3), calls_per_minute=60)
    start = utcnow()
    for seconds in (0, 1, 2, 3):  # a dial each second: changes, but within 5 s of the first
        await tick(settings, telephony_settings, redis, now=start + timedelta(seconds=seconds))
    assert [event["data"]["sequence"] for event in await events("batch.progress")] == [1]
    await tick(settings, telephony_settings, redis, now=start + timedelta(seconds=6))
    sent = await events("batch.progress")
    assert sorted(event["data"]["sequence"] for event in sent) == [1, 2]
    assert len({event["id"] for event in sent}) == 2
    assert max(event["data"]["counts"]["calling"] for event in sent) == 3
    # Nothing changed: no event, however much time passes.
    await tick(settings, telephony_settings, redis, now=start + timedelta(seconds=60))
    assert len(await events("batch.progress")) == 2
    assert batch["id"] == sent[0]["data"]["batch_id"]


async def test_two_replicas_ticking_at_once_never_dial_an_item_twice(
    client, line, settings, telephony_settings, redis, livekit
):
    await new_batch(client, line, phone_csv(40), calls_per_minute=600)
    settings = settings.model_copy(update={"max_agent_sessions": 100})
    start = utcnow()
    dialed = 0
    for step in range(6):
        at = start + timedelta(seconds=step)
        results = await asyncio.gather(
            *(tick(settings, telephony_settings, redis, now=at) for _ in range(3))
        )
        dialed += sum(results)
        assert sum(results) <= 10, results  # the pace is shared, not per replica
    assert dialed == len(livekit.dispatches) == await Call.all().count() == 40
    assert len(set(await Call.all().values_list("to_number", flat=True))) == 40


# -- a replica that died mid-dial ------------------------------------------------------------


async def _orphan(batch_id: str, at_attempt: int = 1) -> BatchItem:
    """Leave one item as a replica that died while dialing it would: calling, claim run out."""
    item = await BatchItem.filter(batch_id=batch_id).order_by("line").first()
    call_id = dialer.attempt_call_id(item.id, at_attempt)
    await BatchItem.filter(id=item.id).update(
        status="calling",
        attempts=at_attempt,
        call_id=call_id,
        next_attempt_at=utcnow() - timedelta(seconds=1),
        attempt_log=[
            {"attempt": at_attempt, "call_id": str(call_id), "room_name": f"call-{call_id}"}
        ],
    )
    return await BatchItem.get(id=item.id)


async def test_a_clients_idempotency_key_cannot_poison_a_dialer_attempt(
    client, line, settings, telephony_settings, redis, livekit
):
    batch = await new_batch(client, line, phone_csv(1))
    paused = await client.patch(
        f"/batch/{batch['id']}", json={"action": "pause"}, headers=line["headers"]
    )
    assert paused.status_code == 200
    [item] = await items(client, line, batch["id"])
    # The dialer's own key for the item's first attempt, sent by a client with another body.
    own_key = {"Idempotency-Key": f"batch-item:{item['id']}:1"}
    body = {"agent_phone_number": "+16505551234", "phone_number_to_dial": "+14155550999"}
    first = await client.post(
        "/calls/outbound_call", json=body, headers={**line["headers"], **own_key}
    )
    assert first.status_code == 201, await first.get_json()
    again = await client.post(
        "/calls/outbound_call", json=body, headers={**line["headers"], **own_key}
    )
    assert again.status_code == 200  # the client's key still works for the client
    assert (await again.get_json())["call_id"] == (await first.get_json())["call_id"]

    resumed = await client.patch(
        f"/batch/{batch['id']}", json={"action": "resume"}, headers=line["headers"]
    )
    assert resumed.status_code == 200
    assert await tick(settings, telephony_settings, redis) == 1
    [dialed] = await items(client, line, batch["id"])
    assert (dialed["status"], dialed["error"]) == ("calling", None)
    assert dialed["call_id"] == attempt_call(item["id"], 1)
    call = await Call.get(id=dialed["call_id"])
    assert call.to_number == item["phone_number"] and call.status == "queued"
    assert len(livekit.dispatches) == 2  # the client's call and the dialer's


async def test_after_a_crash_before_the_call_log_the_attempt_dials_once(
    client, line, settings, telephony_settings, redis, livekit
):
    batch = await new_batch(client, line, phone_csv(1))
    await Batch.filter(id=batch["id"]).update(status="paused")  # the dead replica's moment
    item = await _orphan(batch["id"])
    # It had claimed the idempotency key, then died.
    await DialerAttemptKey.create(
        workspace_id=line["workspace"].id, key=dialer.attempt_key(item.id, 1), fingerprint="x"
    )
    await Batch.filter(id=batch["id"]).update(status="running")
    assert await tick(settings, telephony_settings, redis) == 1
    assert await tick(settings, telephony_settings, redis) == 0
    call = await Call.get(id=dialer.attempt_call_id(item.id, 1))
    assert [d.room for d in livekit.dispatches.values()] == [call.room_name]
    assert (await BatchItem.get(id=item.id)).attempts == 1  # the same attempt, not a new one


async def test_after_a_crash_between_the_call_log_and_the_dispatch_it_dispatches_once(
    client, line, settings, telephony_settings, redis, livekit
):
    batch = await new_batch(client, line, phone_csv(1))
    await Batch.filter(id=batch["id"]).update(status="paused")
    item = await _orphan(batch["id"])
    call = await call_service.create_call(
        line["agent"],
        direction="outbound",
        from_number="+16505551234",
        to_number=item.phone_number,
        batch_id=uuid.UUID(batch["id"]),
        call_id=dialer.attempt_call_id(item.id, 1),
    )
    await Batch.filter(id=batch["id"]).update(status="running")
    assert await tick(settings, telephony_settings, redis) == 1
    assert await tick(settings, telephony_settings, redis) == 0
    assert [d.room for d in livekit.dispatches.values()] == [call.room_name]
    assert await Call.all().count() == 1


async def test_after_a_crash_after_the_dispatch_nothing_is_dialed_again(
    client, line, settings, telephony_settings, redis, livekit
):
    batch = await new_batch(client, line, phone_csv(1))
    assert await tick(settings, telephony_settings, redis) == 1
    # The replica died before it recorded that the dispatch went out.
    (item,) = await BatchItem.filter(batch_id=batch["id"])
    await BatchItem.filter(id=item.id).update(next_attempt_at=utcnow() - timedelta(seconds=1))
    assert await tick(settings, telephony_settings, redis) == 0
    assert len(livekit.dispatches) == 1
    await report(client, str(item.call_id), "completed")
    await tick(settings, telephony_settings, redis)
    assert (await BatchItem.get(id=item.id)).status == "completed"


async def test_the_dialer_runs_as_a_periodic_job(
    client, line, settings, redis, livekit, jobs_reach_livekit
):
    await new_batch(client, line, phone_csv(3))
    await jobs.drain(jobs.JobContext(settings, redis))
    assert len(livekit.dispatches) == 3


async def test_rescheduling_moves_the_rows_not_yet_dialed(
    client, line, settings, telephony_settings, redis
):
    later = utcnow() + timedelta(days=1)
    batch = await new_batch(client, line, phone_csv(2), scheduled_time=later.isoformat())
    assert await tick(settings, telephony_settings, redis) == 0
    sooner = (utcnow() - timedelta(minutes=1)).isoformat()
    response = await client.patch(
        f"/batch/{batch['id']}", json={"scheduled_time": sooner}, headers=line["headers"]
    )
    assert response.status_code == 200
    assert await tick(settings, telephony_settings, redis) == 2
    assert (await batch_state(client, line, batch["id"]))["status"] == "running"
