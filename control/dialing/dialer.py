"""The dialer: one claim-and-dispatch core, and its batch front end (campaigns: campaign_dialer).

Safe with any number of replicas. A front end takes its pace by a compare-and-set (a batch's or a
campaign's `next_dial_at`), so two replicas never spend the same slot; rows are claimed with
`FOR UPDATE SKIP LOCKED`, so no row is claimed twice. The core then dials what was claimed, all
of a tick's rows at once, taking the steps of `POST /calls/outbound_call` (`services.calls`)
once for all of them: the line and its workspace's limits are read once, the do-not-call list is
asked once, capacity slots are taken in one script (at capacity, the rest of the claim is given
back untouched). Each attempt's call id (and so its room, `call-<id>`) derives from the row and
the attempt number; the attempts are recorded on their rows, with their call logs and their keys
`<prefix>:<row>:<attempt>` (`batch-item:…`, `campaign-prospect:…`, kept apart from clients'
`Idempotency-Key`s in `DialerAttemptKey`, which clients cannot reach), in one transaction before
anything is dispatched. An attempt whose replica died mid-dial is found again when its claim runs
out: its call and its room on LiveKit are looked up before anything is dispatched. A call's
final state is settled on its row by the front end's policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control import jobs
from control.config import Settings
from control.dialing import batches, dnc
from control.errors import AtCapacity, DomainError
from control.models import Batch, BatchItem, BatchStatus, Call, DialerAttemptKey, ItemStatus
from control.security import utcnow
from control.services import calls as call_service
from control.services import capacity, idempotency, webhooks
from telephony import sip
from telephony.config import TelephonySettings

logger = logging.getLogger(__name__)

ATTEMPT_NAMESPACE = uuid.UUID("0b1d5c8e-7a41-4f0e-9d3c-2b6a8e4f1c07")
BATCH_KEY = "batch-item"
SETTLE_BATCH = 500
CAPACITY_BACKOFF = timedelta(seconds=2)
ORPHANS_PER_TICK = 100
DISPATCHES_AT_ONCE = 16  # LiveKit requests a tick has in flight
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
    waiting = query.filter(status=CALLING, next_attempt_at=None, call_id__not_isnull=True)
    # Only the rows to settle are loaded: most ticks find none among many calls still live.
    finals = {
        row["id"]: row
        for row in await Call.filter(
            id__in=Subquery(waiting.limit(SETTLE_BATCH).values("call_id")),
            status__in=call_service.FINAL_STATUSES,
        ).values("id", "status", "end_reason", "error", "sip_status")
    }
    if not finals:
        return []
    return [(item, finals[item.call_id]) for item in await waiting.filter(call_id__in=list(finals))]


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
    """Dial the next attempt of each claimed row (as it was before its claim), all at once; at
    capacity the rest are given back untouched. `notes` adds to an attempt's log entry (e.g. why
    it was dialed). Returns how many were dispatched."""
    attempts = [
        Attempt.of(item, item.attempts + 1, now, (notes or {}).get(item.id)) for item in claimed
    ]
    return await _dial(settings, telephony, redis, dialing, attempts, now)


async def give_back(dialing: Dialing, item: Any, now: datetime) -> None:
    """Undo a claim that dialed nothing (the attempt is not spent)."""
    await dialing.model.filter(id=item.id, status=CALLING).update(
        **{name: getattr(item, name) for name in dialing.claimed_fields},
        next_attempt_at=now + CAPACITY_BACKOFF,
    )


@dataclass(frozen=True)
class Attempt:
    """One attempt at a claimed row: the row (as it was before its claim), the attempt's number,
    its call id and its entry in the row's attempt log."""

    item: Any
    number: int
    call_id: uuid.UUID
    entry: dict[str, Any]

    @classmethod
    def of(cls, item: Any, number: int, now: datetime, note: dict[str, Any] | None) -> Attempt:
        call_id = attempt_call_id(item.id, number)
        entry = {
            "attempt": number,
            "call_id": str(call_id),
            "room_name": f"call-{call_id}",
            "started_at": now.isoformat(),
            **(note or {}),
        }
        return cls(item, number, call_id, entry)

    def log(self, **outcome: Any) -> list[dict[str, Any]]:
        """The row's attempt log with this attempt's entry (in place of an earlier try at it)."""
        earlier = [entry for entry in self.item.attempt_log if entry.get("attempt") != self.number]
        return [*earlier, {**self.entry, **outcome}]


async def _dial(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    dialing: Dialing,
    attempts: list[Attempt],
    now: datetime,
) -> int:
    """Dial `attempts`, in order, as `POST /calls/outbound_call` dials one, each step once for
    all of them: the line, the do-not-call list, the capacity slots (at capacity the rest are
    given back), the record of the attempts, their dispatches, their `call_started` events.
    Returns how many were dispatched."""
    if not attempts:
        return 0
    try:
        agent = await call_service.outbound_agent(dialing.workspace_id, dialing.agent_phone_number)
    except DomainError as refused:  # the line cannot call out: nothing is dialed
        for attempt in attempts:
            await _refuse(dialing, attempt, refused.detail)
        return 0
    listed = await dnc.listed(dialing.workspace_id, (a.item.phone_number for a in attempts))
    for attempt in attempts:
        if attempt.item.phone_number in listed:
            await _refuse(dialing, attempt, dnc.refusal(attempt.item.phone_number).detail)
    attempts = [attempt for attempt in attempts if attempt.item.phone_number not in listed]
    taken = await call_service.reserve_capacities(
        settings, redis, [attempt.call_id for attempt in attempts], dialing.workspace_id
    )
    for attempt in attempts[taken:]:  # at capacity
        await give_back(dialing, attempt.item, now)
    calls = await _record(redis, dialing, agent, attempts[:taken], now)
    if not calls:
        return 0
    dispatched = await _dispatch_all(telephony, redis, list(calls.values()))
    await call_service.emit_started(dispatched)
    # Dispatched, or finished as failed when LiveKit refused: either way the call settles it.
    await dialing.model.filter(id__in=list(calls)).update(next_attempt_at=None)
    return len(dispatched)


async def _refuse(dialing: Dialing, attempt: Attempt, reason: str) -> None:
    """End a row whose attempt was refused before anything was dialed: failed, with why."""
    await dialing.model.filter(id=attempt.item.id, status=CALLING).update(
        status=FAILED,
        outcome="failed",
        error=reason,
        next_attempt_at=None,
        call_id=attempt.call_id,
        attempt_log=attempt.log(outcome="failed", reason=reason),
    )


async def _record(
    redis: Redis, dialing: Dialing, agent: Any, attempts: list[Attempt], now: datetime
) -> dict[uuid.UUID, Call]:
    """Record `attempts` (their slots taken) before anything is dialed, in one transaction: each
    on its row, its key and its call log (queued). After a crash an attempt's call and room are
    known. Returns the call log of each attempt recorded, by row id.

    An attempt started before (its key or its call log exists) is not dialed again."""
    if not attempts:
        return {}
    calls = {
        attempt.item.id: call_service.new_call(
            agent,
            direction="outbound",
            from_number=dialing.agent_phone_number,
            to_number=attempt.item.phone_number,
            dynamic_variables=attempt.item.variables,
            call_id=attempt.call_id,
            created_at=now,
            **dialing.call_fields,
        )
        for attempt in attempts
    }
    try:
        await _save_attempts(dialing, attempts, calls)
        return calls
    except IntegrityError:
        if len(attempts) == 1:
            await _started_before(redis, dialing, attempts[0])
            return {}
    # One of them was started before: each on its own, so the others are still dialed.
    recorded: dict[uuid.UUID, Call] = {}
    for attempt in attempts:
        recorded.update(await _record(redis, dialing, agent, [attempt], now))
    return recorded


async def _save_attempts(
    dialing: Dialing, attempts: list[Attempt], calls: dict[uuid.UUID, Call]
) -> None:
    async with in_transaction():
        await dialing.model.bulk_update(
            [
                dialing.model(
                    id=attempt.item.id, call_id=attempt.call_id, attempt_log=attempt.log()
                )
                for attempt in attempts
            ],
            fields=["call_id", "attempt_log"],
        )
        await DialerAttemptKey.bulk_create(
            [
                DialerAttemptKey(
                    workspace_id=dialing.workspace_id,
                    key=attempt_key(attempt.item.id, attempt.number, dialing.key_prefix),
                    fingerprint=idempotency.fingerprint(
                        {
                            "agent_phone_number": dialing.agent_phone_number,
                            "phone_number_to_dial": attempt.item.phone_number,
                            "dynamic_variables": attempt.item.variables,
                        }
                    ),
                    response={"call_id": str(attempt.call_id)},
                )
                for attempt in attempts
            ]
        )
        await call_service.create_calls(list(calls.values()))


async def _started_before(redis: Redis, dialing: Dialing, attempt: Attempt) -> None:
    """An attempt whose key or call log exists already: it is not dialed here."""
    logger.warning(
        "%s %s: attempt %d was started before", dialing.key_prefix, attempt.item.id, attempt.number
    )
    if await Call.exists(id=attempt.call_id):
        # Left to recovery when its claim runs out, as after a crash: its room is looked up on
        # LiveKit before anything is dispatched (the slot is the call's: it is kept).
        await dialing.model.filter(id=attempt.item.id).update(
            call_id=attempt.call_id, attempt_log=attempt.log()
        )
        return
    await capacity.release(redis, attempt.call_id, capacity.keys_of(dialing.workspace_id))
    await _refuse(dialing, attempt, "this attempt's key was taken before; nothing was dialed")


async def _dispatch_all(
    telephony: TelephonySettings, redis: Redis, calls: list[Call]
) -> list[Call]:
    """Dispatch the agent to each call's room, a few at a time; a call LiveKit refuses is
    finished as failed. Returns the calls dispatched."""
    gate = asyncio.Semaphore(DISPATCHES_AT_ONCE)

    async def dispatch(call: Call) -> bool:
        async with gate:
            try:
                await call_service.dispatch_outbound(telephony, redis, call)
            except DomainError:
                return False
            return True

    sent = await asyncio.gather(*(dispatch(call) for call in calls))
    return [call for call, ok in zip(calls, sent, strict=True) if ok]


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
        # It died before the attempt was recorded, so nothing was dispatched: dial this attempt
        # (a key left without an answer, by a version that claimed it first, goes).
        await DialerAttemptKey.filter(
            workspace_id=dialing.workspace_id,
            key=attempt_key(item.id, attempt, dialing.key_prefix),
            response=None,
        ).delete()
        return await _dial(
            settings, telephony, redis, dialing, [Attempt.of(item, attempt, now, None)], now
        )
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
    dispatched = await _dispatch_all(telephony, redis, [call])
    await model.filter(id=item.id).update(call_id=call_id, next_attempt_at=None)
    return len(dispatched)


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
