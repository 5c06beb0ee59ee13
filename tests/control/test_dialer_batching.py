"""The dialer's core dials a tick's rows together: slots for as many as fit, one record of the
attempts, their dispatches, and a statement count that does not grow with the rows dialed."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta

from control.dialing import dialer
from control.models import Batch, BatchItem, Call, DialerAttemptKey, WebhookDelivery
from control.security import utcnow
from control.services import calls as call_service
from control.services import capacity
from control.services.webhooks import set_endpoint
from tests.control.batching import phone_csv, report, tick, upload
from tests.statements import counting_statements
from tests.waiting import until


async def new_batch(client, line, rows: int, start: int = 0) -> str:
    # 600 a minute: a tick (1 s) may dial 10
    response = await upload(client, line, phone_csv(rows, start), calls_per_minute=600)
    assert response.status_code == 201, await response.get_data(as_text=True)
    return (await response.get_json())["id"]


def dispatches_per_call(livekit) -> Counter:
    return Counter(json.loads(d.metadata)["call_id"] for d in livekit.dispatches.values())


async def test_a_ticks_statements_do_not_grow_with_the_rows_it_dials(
    client, line, settings, telephony_settings, redis, livekit
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    statements = {}
    for rows, start in ((1, 0), (9, 100)):  # 10 calls: the platform's sessions in the tests
        batch_id = await new_batch(client, line, rows, start)
        with counting_statements() as counter:
            assert await tick(settings, telephony_settings, redis) == rows
        statements[rows] = counter.count
        await Batch.filter(id=batch_id).update(status="paused")  # the next tick is the other's
    assert len(livekit.dispatches) == 10
    assert await WebhookDelivery.filter(event_type="call_started").count() == 10
    # Dialed one by one, each call cost about a dozen statements; together, none of its own.
    assert statements[9] - statements[1] < 8, statements


async def test_at_capacity_a_tick_dials_the_free_slots_and_gives_the_rest_back(
    client, line, settings, telephony_settings, redis, livekit
):
    await line["workspace"].update_from_dict({"max_concurrent_calls": 3}).save()
    batch_id = await new_batch(client, line, 7)
    start = utcnow()
    assert await tick(settings, telephony_settings, redis, now=start) == 3
    calls = await Call.filter(batch_id=batch_id)
    assert len(calls) == len(livekit.dispatches) == 3
    held = await redis.zrange(capacity.WORKSPACE_KEY.format(line["workspace"].id), 0, -1)
    assert sorted(held) == sorted(str(call.id) for call in calls)
    keys = await DialerAttemptKey.filter(workspace_id=line["workspace"].id)
    assert len(keys) == 3 and all(key.response is not None for key in keys)
    rows = await BatchItem.filter(batch_id=batch_id)
    dialed = [row for row in rows if row.status == "calling"]
    assert sorted(row.call_id for row in dialed) == sorted(call.id for call in calls)
    assert all(row.attempt_log[0]["call_id"] == str(row.call_id) for row in dialed)
    given_back = [row for row in rows if row.status == "pending"]
    assert len(given_back) == 4  # untouched: the attempt not spent, nothing logged
    for row in given_back:
        assert (row.attempts, row.call_id, row.attempt_log) == (0, None, [])
        assert row.next_attempt_at > start

    await report(client, str(calls[0].id), "completed")
    later = start + timedelta(seconds=10)  # past the capacity back-off
    assert await tick(settings, telephony_settings, redis, now=later) == 1
    assert await tick(settings, telephony_settings, redis, now=later + timedelta(seconds=1)) == 0
    assert set(dispatches_per_call(livekit).values()) == {1}


async def test_livekit_refusing_some_dispatches_fails_those_calls_alone(
    client, line, settings, telephony_settings, redis, livekit
):
    await set_endpoint(settings, line["workspace"].id, "https://hooks.example.com/x")
    batch_id = await new_batch(client, line, 5)
    livekit.fail("CreateDispatch", times=2)
    start = utcnow()
    assert await tick(settings, telephony_settings, redis, now=start) == 3
    calls = await Call.filter(batch_id=batch_id)
    failed = [call for call in calls if call.status == "failed"]
    assert len(calls) == 5 and len(failed) == 2
    assert all(call.error.startswith("dispatch failed") for call in failed)
    assert len(livekit.dispatches) == 3
    started = await WebhookDelivery.filter(event_type="call_started").values_list(
        "call_id", flat=True
    )
    assert sorted(started) == sorted(call.id for call in calls if call.status == "queued")
    # Every row waits on its call; the failed ones settle as failed, none is dialed again.
    assert not await BatchItem.filter(batch_id=batch_id, next_attempt_at__not_isnull=True)
    assert await tick(settings, telephony_settings, redis, now=start + timedelta(seconds=1)) == 0
    rows = await BatchItem.filter(batch_id=batch_id)
    assert Counter(row.status for row in rows) == {"calling": 3, "failed": 2}
    assert len(livekit.dispatches) == 3 and set(dispatches_per_call(livekit).values()) == {1}


async def test_a_replica_dying_mid_dispatch_leaves_each_number_dialed_once(
    client, line, settings, telephony_settings, redis, livekit
):
    batch_id = await new_batch(client, line, 5)
    start = utcnow()
    gate = livekit.hold("CreateRoom")  # LiveKit stops answering
    try:
        dying = asyncio.create_task(tick(settings, telephony_settings, redis, now=start))
        await until(lambda: livekit.held("CreateRoom") == 5)
        dying.cancel()  # the replica dies with every dispatch of its tick in flight
        await asyncio.gather(dying, return_exceptions=True)
    finally:
        gate.set()
    # Recorded before any dispatch: each attempt's call log, key and room are known.
    rows = await BatchItem.filter(batch_id=batch_id)
    assert all(row.call_id == dialer.attempt_call_id(row.id, 1) for row in rows)
    assert await Call.filter(batch_id=batch_id).count() == 5
    assert not livekit.dispatches

    after_the_claims = start + timedelta(seconds=settings.dialer_claim_seconds + 1)
    assert await tick(settings, telephony_settings, redis, now=after_the_claims) == 5
    assert await tick(settings, telephony_settings, redis, now=after_the_claims) == 0
    assert sorted(dispatches_per_call(livekit)) == sorted(str(row.call_id) for row in rows)
    assert set(dispatches_per_call(livekit).values()) == {1}
    assert all(row.attempts == 1 for row in await BatchItem.filter(batch_id=batch_id))


async def test_an_attempt_whose_call_log_exists_is_left_to_recovery_and_the_rest_are_dialed(
    client, line, settings, telephony_settings, redis, livekit
):
    batch_id = await new_batch(client, line, 3)
    first = (await BatchItem.filter(batch_id=batch_id).order_by("line"))[0]
    # An earlier run got as far as this attempt's call log (an older version, say).
    call = await call_service.create_call(
        line["agent"],
        direction="outbound",
        from_number="+16505551234",
        to_number=first.phone_number,
        batch_id=first.batch_id,
        call_id=dialer.attempt_call_id(first.id, 1),
    )
    start = utcnow()
    assert await tick(settings, telephony_settings, redis, now=start) == 2
    assert str(call.id) not in dispatches_per_call(livekit)
    waiting = await BatchItem.get(id=first.id)
    assert (waiting.status, waiting.call_id, waiting.attempts) == ("calling", call.id, 1)

    after_the_claim = start + timedelta(seconds=settings.dialer_claim_seconds + 1)
    assert await tick(settings, telephony_settings, redis, now=after_the_claim) == 1
    assert await Call.filter(batch_id=batch_id).count() == 3
    assert len(livekit.dispatches) == 3 and set(dispatches_per_call(livekit).values()) == {1}
