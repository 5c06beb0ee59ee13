"""The dialer: one claim-and-dispatch core, and its batch front end (campaigns: campaign_dialer).

Safe with any number of replicas. A front end takes its pace by a compare-and-set (a batch's or a
campaign's `next_dial_at`), so two replicas never spend the same slot; rows are claimed with
`FOR UPDATE SKIP LOCKED`, so no row is claimed twice. The core then dials what was claimed: each
attempt's call id (and so its room, `call-<id>`) derives from the row and the attempt number and
is recorded before dialing; the attempt dials through `POST /calls/outbound_call`'s path with the
key `<prefix>:<row>:<attempt>` (`batch-item:…`, `campaign-prospect:…`), kept apart from clients'
`Idempotency-Key`s (`DialerAttemptKey`), which cannot reach it. An attempt whose replica
died mid-dial is found again when its claim runs out: its call and its room on LiveKit are looked
up before anything is dispatched. A call's final state is settled on its row by the front end's
policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from tortoise.expressions import F
from tortoise.models import Model
from tortoise.queryset import QuerySet

from control import jobs
from control.config import Settings
from control.dialing import batches, dnc
from control.errors import AtCapacity, DomainError
from control.models import Batch, BatchItem, BatchStatus, Call, DialerAttemptKey, ItemStatus
from control.security import utcnow
from control.services import calls as call_service
from control.services import idempotency, webhooks
from telephony import sip
from telephony.config import TelephonySettings
from telephony.errors import TelephonyError

logger = logging.getLogger(__name__)

ATTEMPT_NAMESPACE = uuid.UUID("0b1d5c8e-7a41-4f0e-9d3c-2b6a8e4f1c07")
BATCH_KEY = "batch-item"
SETTLE_BATCH = 500
CAPACITY_BACKOFF = timedelta(seconds=2)
ORPHANS_PER_TICK = 100
# The row states the core moves through (BatchItem's and Prospect's statuses share them).
CALLING, FAILED = "calling", "failed"
# What a claim changes on a row, and so what giving the claim back restores.
CLAIMED_FIELDS = ("status", "attempts", "call_id", "attempt_log")


# -- the shared core --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialing:
    """What a front end supplies for one batch or campaign: where its rows live, how its
    attempts are keyed, the line its calls go out on and what each call log carries."""

    model: type[Model]  # BatchItem or Prospect
    key_prefix: str
    workspace_id: uuid.UUID
    agent_phone_number: str
    call_fields: dict[str, Any]  # {"batch_id": …} or {"campaign_id": …, "campaign": slug}
    claimed_fields: tuple[str, ...] = CLAIMED_FIELDS


def attempt_call_id(item_id: uuid.UUID, attempt: int) -> uuid.UUID:
    """The call id of a row's attempt: the same after a crash, new for a retry (row ids are
    random UUIDs, so a batch item's and a prospect's never meet)."""
    return uuid.uuid5(ATTEMPT_NAMESPACE, f"{item_id}:{attempt}")


def attempt_key(item_id: uuid.UUID, attempt: int, key_prefix: str = BATCH_KEY) -> str:
    """The attempt's idempotency key: `batch-item:<id>:<attempt>` or
    `campaign-prospect:<id>:<attempt>`."""
    return f"{key_prefix}:{item_id}:{attempt}"


def outcome_of(call: dict[str, Any]) -> str | None:
    """A finished call's outcome for its row (None: the call was cancelled)."""
    status = call["status"]
    if status == "completed":
        return "voicemail" if call.get("end_reason") == "voicemail" else "answered"
    if status in ("busy", "rejected"):
        return "busy"
    if status == "no_answer":
        return "no_answer"
    if status == "cancelled":
        return None
    return "failed"


def reason_of(call: dict[str, Any]) -> str:
    """Why a call ended as it did, for a row's attempt log: `busy (SIP 486)`."""
    parts = [call["status"]]
    if call.get("end_reason"):
        parts.append(call["end_reason"])
    if call.get("sip_status"):
        parts.append(f"SIP {call['sip_status']}")
    if call.get("error"):
        parts.append(str(call["error"])[:300])
    return ": ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else "")


async def finished_attempts(query: QuerySet[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """The dispatched rows of `query` whose call reached its final state, each with its call."""
    waiting = await query.filter(
        status=CALLING, next_attempt_at=None, call_id__not_isnull=True
    ).limit(SETTLE_BATCH)
    if not waiting:
        return []
    finals = {
        row["id"]: row
        for row in await Call.filter(
            id__in=[item.call_id for item in waiting], status__in=call_service.FINAL_STATUSES
        ).values("id", "status", "end_reason", "error", "sip_status")
    }
    return [(item, finals[item.call_id]) for item in waiting if item.call_id in finals]


async def settle_attempt(item: Any, call: dict[str, Any], now: datetime, **fields: Any) -> int:
    """Write a finished attempt's outcome on its row (its log entry too) with `fields`, once."""
    outcome, reason = outcome_of(call), reason_of(call)
    log = [
        {**entry, "outcome": outcome, "reason": reason, "ended_at": now.isoformat()}
        if entry.get("attempt") == item.attempts
        else entry
        for entry in item.attempt_log
    ]
    # Conditional: another replica settling the same attempt changes nothing.
    return await (
        type(item)
        .filter(id=item.id, status=CALLING, attempts=item.attempts, next_attempt_at=None)
        .update(outcome=outcome, attempt_log=log, **fields)
    )


async def recover_orphans(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    dialing: Dialing,
    calling: QuerySet[Any],
    now: datetime,
) -> int:
    """Finish the attempts of `calling` rows whose replica died mid-dial (their claim ran out).

    They were paid for by the pace when first claimed; returns how many were dispatched now.
    """
    orphans = await jobs.claim_due(
        calling,
        "next_attempt_at",
        timedelta(seconds=settings.dialer_claim_seconds),
        ORPHANS_PER_TICK,
        now=now,
    )
    dialed = 0
    for item in orphans:
        dialed += await _recover(settings, telephony, redis, dialing, item, now)
    return dialed


async def dial_claimed(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    dialing: Dialing,
    claimed: list[Any],
    now: datetime,
    notes: dict[uuid.UUID, dict[str, Any]] | None = None,
) -> int:
    """Dial the next attempt of each claimed row (as it was before its claim); at capacity the
    rest are given back untouched. `notes` adds to an attempt's log entry (e.g. why it was
    dialed). Returns how many were dispatched."""
    dialed = 0
    for index, item in enumerate(claimed):
        note = (notes or {}).get(item.id, {})
        placed = await _attempt(
            settings, telephony, redis, dialing, item, item.attempts + 1, now, note
        )
        if placed is None:  # at capacity
            for left in claimed[index + 1 :]:
                await give_back(dialing, left, now)
            break
        dialed += placed
    return dialed


async def give_back(dialing: Dialing, item: Any, now: datetime) -> None:
    """Undo a claim that dialed nothing (the attempt is not spent)."""
    await dialing.model.filter(id=item.id, status=CALLING).update(
        **{name: getattr(item, name) for name in dialing.claimed_fields},
        next_attempt_at=now + CAPACITY_BACKOFF,
    )


async def _attempt(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    dialing: Dialing,
    item: Any,
    attempt: int,
    now: datetime,
    note: dict[str, Any] | None = None,
) -> int | None:
    """Dial one attempt of a row: 1 when dispatched, 0 when it failed, None at capacity."""
    model, key = dialing.model, attempt_key(item.id, attempt, dialing.key_prefix)
    call_id = attempt_call_id(item.id, attempt)
    entry = {
        "attempt": attempt,
        "call_id": str(call_id),
        "room_name": f"call-{call_id}",
        "started_at": now.isoformat(),
        **(note or {}),
    }
    log = [entry for entry in item.attempt_log if entry.get("attempt") != attempt] + [entry]
    # Recorded before dialing: after a crash the attempt's call and room are known.
    await model.filter(id=item.id).update(call_id=call_id, attempt_log=log)
    body = {
        "agent_phone_number": dialing.agent_phone_number,
        "phone_number_to_dial": item.phone_number,
        "dynamic_variables": item.variables,
    }

    async def place_call() -> dict[str, Any]:
        call, dispatch_id = await call_service.start_outbound_call(
            settings,
            telephony,
            redis,
            dialing.workspace_id,
            dialing.agent_phone_number,
            item.phone_number,
            item.variables,
            call_id=call_id,
            now=now,
            **dialing.call_fields,
        )
        return {"call_id": str(call.id), "dispatch_id": dispatch_id}

    try:
        await idempotency.once(dialing.workspace_id, key, body, place_call, store=DialerAttemptKey)
    except AtCapacity:
        await give_back(dialing, item, now)
        return None
    except DomainError as refused:
        if await Call.exists(id=call_id):  # dispatch failed: the call is final, settle it
            await model.filter(id=item.id).update(next_attempt_at=None)
            return 0
        await model.filter(id=item.id, status=CALLING).update(
            status=FAILED,
            outcome="failed",
            error=refused.detail,
            next_attempt_at=None,
            attempt_log=[
                {**e, "outcome": "failed", "reason": refused.detail} if e is entry else e
                for e in log
            ],
        )
        return 0
    await model.filter(id=item.id).update(next_attempt_at=None)
    return 1


async def _recover(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    dialing: Dialing,
    item: Any,
    now: datetime,
) -> int:
    """An attempt whose replica died while dialing it: finish it without dialing anyone twice."""
    model, attempt = dialing.model, item.attempts
    call_id = attempt_call_id(item.id, attempt)
    call = await Call.get_or_none(id=call_id)
    if call is None:
        # It died before the call log existed, so nothing was dispatched: dial this attempt.
        await DialerAttemptKey.filter(
            workspace_id=dialing.workspace_id,
            key=attempt_key(item.id, attempt, dialing.key_prefix),
            response=None,
        ).delete()
        placed = await _attempt(settings, telephony, redis, dialing, item, attempt, now)
        return placed or 0
    if call.status in call_service.FINAL_STATUSES or await _dispatched(telephony, call):
        logger.info(
            "%s %s: attempt %d was dispatched before a restart",
            dialing.key_prefix,
            item.id,
            attempt,
        )
        await model.filter(id=item.id).update(call_id=call_id, next_attempt_at=None)
        return 0
    try:
        await call_service.reserve_capacity(settings, redis, call.id, call.workspace_id)
    except AtCapacity:
        await model.filter(id=item.id).update(next_attempt_at=now + CAPACITY_BACKOFF)
        return 0
    try:
        await sip.dispatch_agent(
            call_service.room_of(call),
            metadata={"call_id": str(call.id), "direction": "outbound"},
            settings=telephony,
        )
    except TelephonyError as error:
        await call_service.finish_call(
            redis, call, status="failed", end_reason="error", error=f"dispatch failed: {error}"
        )
    await model.filter(id=item.id).update(call_id=call_id, next_attempt_at=None)
    return 1


async def _dispatched(telephony: TelephonySettings, call: Call) -> bool:
    """Whether LiveKit already has an agent dispatched to the call's room."""
    async with sip.livekit_api(telephony) as client:
        found = await client.agent_dispatch.list_dispatch(room_name=call_service.room_of(call))
    return bool(found)


# -- the batch front end ----------------------------------------------------------------------


def batch_dialing(batch: Batch) -> Dialing:
    return Dialing(
        model=BatchItem,
        key_prefix=BATCH_KEY,
        workspace_id=batch.workspace_id,
        agent_phone_number=batch.agent_phone_number,
        call_fields={"batch_id": batch.id},
    )


async def tick(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    now: datetime | None = None,
) -> int:
    """One round of the batch dialer; returns how many attempts it dispatched."""
    now = now or utcnow()
    await _start_scheduled(now)
    await settle_finished_calls(now)
    dialed = 0
    for batch in await Batch.filter(status=BatchStatus.RUNNING).order_by("created_at"):
        if batches.in_window(batch, now):
            dialed += await _dial_batch(settings, telephony, redis, batch, now)
    await _finish_and_report(settings, now)
    return dialed


async def _start_scheduled(now: datetime) -> None:
    for batch in await Batch.filter(status=BatchStatus.SCHEDULED, scheduled_time__lte=now):
        started = await Batch.filter(id=batch.id, status=BatchStatus.SCHEDULED).update(
            status=BatchStatus.RUNNING, started_at=now
        )
        if started:
            await batch.refresh_from_db()
            await batches.emit_status(batch, "batch.started")


async def settle_finished_calls(now: datetime | None = None) -> int:
    """Give each dispatched item whose call reached its final state its outcome; returns how many.

    A retryable outcome with attempts left (in a batch still live) schedules a new attempt after
    the batch's retry delay; the reason is kept on the attempt either way.
    """
    now = now or utcnow()
    finished = await finished_attempts(BatchItem.all())
    policies = {
        batch.id: batch
        for batch in await Batch.filter(id__in=list({item.batch_id for item, _ in finished}))
    }
    settled = 0
    for item, call in finished:
        batch = policies.get(item.batch_id)
        if batch is not None:
            settled += await settle_attempt(
                item, call, now, **_batch_outcome(item, batch, call, now)
            )
    return settled


def _batch_outcome(
    item: BatchItem, batch: Batch, call: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """What a finished attempt leaves on its item, by the batch's retry policy."""
    outcome = outcome_of(call)
    live = batch.status in batches.LIVE_BATCH_STATUSES
    if outcome is None:
        return {"status": ItemStatus.CANCELLED}
    if outcome in ("answered", "voicemail"):
        return {"status": ItemStatus.COMPLETED, "error": None}
    if live and outcome in batch.retry_on and item.attempts < batch.max_attempts:
        return {
            "status": ItemStatus.RETRYING,
            "error": reason_of(call),
            "next_attempt_at": now + timedelta(minutes=batch.retry_delay_minutes),
        }
    return {"status": ItemStatus.FAILED, "error": reason_of(call)}


def _pace(batch: Batch, settings: Settings, now: datetime) -> tuple[int, datetime]:
    """How many dials the batch's pace allows now, and its next dial time after them."""
    interval = 60.0 / batch.calls_per_minute
    window = max(interval, settings.dialer_tick_seconds)
    start = now - timedelta(seconds=window)
    if batch.next_dial_at is not None and batch.next_dial_at > start:
        start = batch.next_dial_at
    allowed = math.floor((now - start).total_seconds() / interval + 1e-9)
    return max(allowed, 0), start + timedelta(seconds=allowed * interval)


async def _dial_batch(
    settings: Settings, telephony: TelephonySettings, redis: Redis, batch: Batch, now: datetime
) -> int:
    dialing = batch_dialing(batch)
    dialed = await recover_orphans(
        settings,
        telephony,
        redis,
        dialing,
        BatchItem.filter(batch_id=batch.id, status=ItemStatus.CALLING),
        now,
    )
    allowed, next_dial_at = _pace(batch, settings, now)
    if allowed <= 0:
        return dialed
    # Compare-and-set: of two replicas reading the same pace, one takes it, the other skips.
    taken = await Batch.filter(
        id=batch.id, status=BatchStatus.RUNNING, next_dial_at=batch.next_dial_at
    ).update(next_dial_at=next_dial_at)
    if not taken:
        return dialed
    claimed = await jobs.claim_due(
        BatchItem.filter(batch_id=batch.id, status__in=(ItemStatus.PENDING, ItemStatus.RETRYING)),
        "next_attempt_at",
        timedelta(seconds=settings.dialer_claim_seconds),
        allowed,
        now=now,
        status=ItemStatus.CALLING,
        attempts=F("attempts") + 1,
    )
    claimed = await _skip_do_not_call(claimed)
    return dialed + await dial_claimed(settings, telephony, redis, dialing, claimed, now)


async def _skip_do_not_call(claimed: list[BatchItem]) -> list[BatchItem]:
    """Cancel the claimed items whose number joined the do-not-call list after the upload (their
    attempt is not spent); returns the others, to dial."""
    if not claimed:
        return claimed
    listed = await dnc.listed(claimed[0].workspace_id, (item.phone_number for item in claimed))
    for item in claimed:
        if item.phone_number in listed:
            await BatchItem.filter(id=item.id, status=ItemStatus.CALLING).update(
                status=ItemStatus.CANCELLED,
                attempts=item.attempts,
                next_attempt_at=None,
                error=dnc.ON_DNC_REASON,
            )
    return [item for item in claimed if item.phone_number not in listed]


async def _finish_and_report(settings: Settings, now: datetime) -> None:
    """Complete running batches with nothing left to do; send progress where it changed."""
    for batch in await Batch.filter(status=BatchStatus.RUNNING):
        open_items = await BatchItem.filter(
            batch_id=batch.id, status__in=batches.OPEN_ITEM_STATUSES
        ).exists()
        if not open_items:
            finished = await Batch.filter(id=batch.id, status=BatchStatus.RUNNING).update(
                status=BatchStatus.COMPLETED, finished_at=now
            )
            if finished:
                await batch.refresh_from_db()
                await _send_progress(settings, batch, now, force=True)
                await batches.emit_status(
                    batch, "batch.completed", {"progress": await batches.progress_data(batch)}
                )
            continue
        await _send_progress(settings, batch, now)


async def _send_progress(
    settings: Settings, batch: Batch, now: datetime, *, force: bool = False
) -> None:
    """`batch.progress`, at most every `batch_progress_seconds`, only when something changed."""
    if not force and batch.progress_sent_at is not None:
        if now - batch.progress_sent_at < timedelta(seconds=settings.batch_progress_seconds):
            return
    data = await batches.progress_data(batch)
    digest = hashlib.sha256(
        json.dumps([data["counts"], data["outcomes"]], sort_keys=True).encode()
    ).hexdigest()
    if digest == batch.progress_digest:
        return
    sequence = batch.progress_seq + 1
    # Compare-and-set on the sequence: one replica sends each numbered event.
    taken = await Batch.filter(id=batch.id, progress_seq=batch.progress_seq).update(
        progress_seq=sequence, progress_sent_at=now, progress_digest=digest
    )
    if taken:
        await webhooks.emit(
            batch.workspace_id,
            "batch.progress",
            {"batch_id": str(batch.id), "name": batch.name, "sequence": sequence, **data},
            event_key=f"{batch.id}:batch.progress:{sequence}",
        )
