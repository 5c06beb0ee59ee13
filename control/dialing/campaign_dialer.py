"""The campaign front end of the dialer: which prospects a tick dials, and what an outcome does.

Each active campaign is ticked every `dialer_interval` seconds; the tick is taken by a
compare-and-set on `Campaign.next_dial_at`, so one replica ticks it. A tick settles the
campaign's finished calls, finishes attempts a dead replica left half-done, then dials at most
`floor(call_ratio × free agent sessions)` prospects, where the free sessions are the campaign's
`max_active_calls` less its prospects being called, and the platform's (and workspace's)
capacity left. The shared core (`dialer`) records and dispatches each attempt.

Candidates are claimed with `FOR UPDATE SKIP LOCKED` (callbacks due first, then higher priority,
then the longest waiting) and every rule is checked on them at dial time: attempts left, age
(`expire_days`), the do-not-call list, the calling window in every zone of the prospect, the
spacing between attempts, and `dupe_days`. A prospect looked at and not dialed gets its
`skip_reason`, and is either ended (`failed`, `expired`, `dnc`) or pushed to when it may be
dialed (the next window opening, say), so later ticks do not look at it again before then.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from redis.asyncio import Redis
from tortoise.expressions import F, Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control.config import Settings
from control.dialing import campaigns, dialer, dnc
from control.dialing.window import CallingWindow, parse_clock
from control.models import Call, Campaign, Prospect, ProspectStatus, Workspace
from control.security import utcnow
from control.services import capacity
from telephony.config import TelephonySettings

logger = logging.getLogger(__name__)

PROSPECT_KEY = "campaign-prospect"
# The zones of a prospect whose number tells none: every zone the campaign's locale spans.
LOCALE_ZONES = {
    "USCA": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
    "IN": ("Asia/Kolkata",),
    "UK": ("Europe/London",),
}
WAITING = (ProspectStatus.PENDING, ProspectStatus.RETRYING)
# A tick looks at a few more prospects than it may dial: some are skipped (outside their
# window, say) and pushed out of the due set, so the next ticks find dialable ones sooner.
LOOK_AHEAD = 4
MIN_LOOKED_AT = 20
MAX_DIALS_PER_TICK = 200  # with an unlimited platform capacity (max_agent_sessions 0)
RETRYABLE = ("no_answer", "busy", "failed", "voicemail")
# What the campaign's claim changes on a prospect beside the core's, restored if given back.
CLAIMED_FIELDS = (*dialer.CLAIMED_FIELDS, "last_called_at", "skip_reason")


@dataclass(frozen=True)
class Rules:
    """A campaign's configuration as the dialer applies it (read from the cached config)."""

    id: uuid.UUID
    slug: str
    workspace_id: uuid.UUID
    agent_phone_number: str
    locale_name: str
    call_ratio: float
    dialer_interval: int
    max_active_calls: int
    max_number_calls: int
    min_time_between_calls: timedelta
    dupe_days: int
    expire_days: int
    earliest: time
    latest: time

    @classmethod
    def of(cls, config: dict[str, Any]) -> Rules:
        return cls(
            id=uuid.UUID(str(config["id"])),
            slug=config["slug"],
            workspace_id=uuid.UUID(str(config["workspace_id"])),
            agent_phone_number=config["agent_phone_number"],
            locale_name=config["locale_name"],
            call_ratio=float(config["call_ratio"]),
            dialer_interval=int(config["dialer_interval"]),
            max_active_calls=int(config["max_active_calls"]),
            max_number_calls=int(config["max_number_calls"]),
            min_time_between_calls=timedelta(minutes=int(config["min_time_between_calls"])),
            dupe_days=int(config["dupe_days"]),
            expire_days=int(config["expire_days"]),
            earliest=parse_clock(config["earliest_prospect_time"]),
            latest=parse_clock(config["latest_prospect_time"]),
        )

    def dialing(self) -> dialer.Dialing:
        return dialer.Dialing(
            model=Prospect,
            key_prefix=PROSPECT_KEY,
            workspace_id=self.workspace_id,
            agent_phone_number=self.agent_phone_number,
            call_fields={"campaign_id": self.id, "campaign": self.slug},
            claimed_fields=CLAIMED_FIELDS,
        )

    def zones_of(self, prospect: Prospect) -> tuple[str, ...]:
        return zones_of(prospect, self.locale_name)


def zones_of(prospect: Prospect, locale_name: str) -> tuple[str, ...]:
    """The zones whose clocks a prospect's calling window is read on."""
    return tuple(prospect.timezones or LOCALE_ZONES.get(locale_name, ("UTC",)))


# -- a tick -----------------------------------------------------------------------------------


async def tick(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    now: datetime | None = None,
) -> int:
    """One round of the campaign dialer over every active campaign whose tick is due; returns
    how many attempts it dispatched."""
    now = now or utcnow()
    due = Campaign.filter(active=True).filter(Q(next_dial_at=None) | Q(next_dial_at__lte=now))
    dialed = 0
    for campaign_id, next_dial_at in await due.order_by("created_at").values_list(
        "id", "next_dial_at"
    ):
        dialed += await tick_campaign(settings, telephony, redis, campaign_id, next_dial_at, now)
    return dialed


async def tick_campaign(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    campaign_id: uuid.UUID,
    next_dial_at: datetime | None,
    now: datetime,
) -> int:
    """One campaign's tick, if this replica takes it; returns how many attempts it dispatched."""
    config = await campaigns.cached_config(campaign_id, redis)
    if config is None or not config["active"]:
        return 0
    rules = Rules.of(config)
    # Compare-and-set: of two replicas reading the same tick, one takes it, the other skips.
    taken = await Campaign.filter(id=campaign_id, next_dial_at=next_dial_at).update(
        next_dial_at=now + timedelta(seconds=rules.dialer_interval)
    )
    if not taken:
        return 0
    await settle_finished_calls(rules, now)
    dialing = rules.dialing()
    calling = Prospect.filter(campaign_id=campaign_id, status=ProspectStatus.CALLING)
    dialed = await dialer.recover_orphans(settings, telephony, redis, dialing, calling, now)
    allowed = await dials_allowed(settings, redis, rules)
    if allowed <= 0:
        return dialed
    claimed, notes = await claim(settings, rules, allowed, now)
    return dialed + await dialer.dial_claimed(
        settings, telephony, redis, dialing, claimed, now, notes
    )


async def dials_allowed(settings: Settings, redis: Redis, rules: Rules) -> int:
    """`floor(call_ratio × free agent sessions)`, never past `max_active_calls`.

    Free sessions: the campaign's `max_active_calls` less its prospects being called (when it
    has a limit), and the platform's and the workspace's capacity left.
    """
    free = MAX_DIALS_PER_TICK
    if settings.max_agent_sessions > 0:
        free = settings.max_agent_sessions - await capacity.in_use(redis)
        if free <= 0:
            return 0
    workspace = await Workspace.get(id=rules.workspace_id).only("id", "max_concurrent_calls")
    if workspace.max_concurrent_calls:
        key = capacity.WORKSPACE_KEY.format(rules.workspace_id)
        free = min(free, workspace.max_concurrent_calls - await capacity.in_use(redis, key))
    allowed = math.floor(rules.call_ratio * max(free, 0) + 1e-9)
    if rules.max_active_calls > 0:
        in_progress = await Prospect.filter(
            campaign_id=rules.id, status=ProspectStatus.CALLING
        ).count()
        allowed = min(allowed, rules.max_active_calls - in_progress)
    return min(allowed, MAX_DIALS_PER_TICK)


# -- choosing whom to dial --------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What a look at a prospect decided: dial it (`why`), or skip it (`reason`, `fields`)."""

    why: str | None = None
    reason: str | None = None
    fields: dict[str, Any] | None = None


async def claim(
    settings: Settings, rules: Rules, allowed: int, now: datetime
) -> tuple[list[Prospect], dict[uuid.UUID, dict[str, Any]]]:
    """Claim up to `allowed` prospects to dial now, in order, checking every rule on each.

    Returns the prospects (as they were before the claim) and, per prospect, what its attempt's
    log entry says about why it was dialed. Prospects looked at and skipped are updated here.
    """
    looked_at = max(allowed * LOOK_AHEAD, MIN_LOOKED_AT)
    lease = now + timedelta(seconds=settings.dialer_claim_seconds)
    async with in_transaction():
        candidates = await _candidates(rules, looked_at, now)
        verdicts = await _judge(rules, candidates, now)
        chosen: list[Prospect] = []
        for prospect in candidates:
            verdict = verdicts[prospect.id]
            if verdict.why is None:
                await Prospect.filter(id=prospect.id).update(
                    skip_reason=verdict.reason, **(verdict.fields or {})
                )
            elif len(chosen) < allowed:
                chosen.append(prospect)
        if chosen:
            await Prospect.filter(id__in=[prospect.id for prospect in chosen]).update(
                status=ProspectStatus.CALLING,
                attempts=F("attempts") + 1,
                next_attempt_at=lease,
                last_called_at=now,
                skip_reason=None,
            )
    notes = {prospect.id: {"dial_reason": verdicts[prospect.id].why} for prospect in chosen}
    return chosen, notes


async def _candidates(rules: Rules, limit: int, now: datetime) -> list[Prospect]:
    """The due prospects in dialing order, locked: callbacks due first, then by priority
    (higher first), then the longest waiting."""
    found = {
        status: await due_prospects(rules.id, status, now, limit)
        for status in (ProspectStatus.CALLBACK, *WAITING)
    }
    waiting = sorted(
        found[ProspectStatus.PENDING] + found[ProspectStatus.RETRYING],
        key=lambda prospect: (-prospect.priority, prospect.next_attempt_at or prospect.created_at),
    )
    return (found[ProspectStatus.CALLBACK] + waiting)[:limit]


def due_prospects(
    campaign_id: uuid.UUID, status: ProspectStatus, now: datetime, limit: int
) -> QuerySet[Prospect]:
    """The first `limit` due prospects of one status, locked, skipping those another replica
    holds: one query a status, each read in the order of the index
    `(campaign_id, status, priority DESC, next_attempt_at)` (migration 0011)."""
    due = Q(next_attempt_at__lte=now)
    if status == ProspectStatus.PENDING:  # a new prospect may have no due time yet
        due |= Q(next_attempt_at=None)
    return (
        Prospect.filter(due, campaign_id=campaign_id, status=status)
        .order_by("-priority", "next_attempt_at")
        .limit(limit)
        .select_for_update(skip_locked=True)
    )


async def _judge(
    rules: Rules, candidates: list[Prospect], now: datetime
) -> dict[uuid.UUID, Verdict]:
    """Each candidate's verdict, the rules in order: attempts left, age, do-not-call, window,
    spacing, dupes."""
    numbers = list({prospect.phone_number for prospect in candidates})
    on_dnc = await dnc.listed(rules.workspace_id, numbers)
    recent = await _recent_calls(rules, numbers, now)
    dialing_now: set[str] = set()
    verdicts: dict[uuid.UUID, Verdict] = {}
    for prospect in candidates:
        verdict = _verdict(rules, prospect, now, on_dnc, recent, dialing_now)
        if verdict.why is not None:
            dialing_now.add(prospect.phone_number)
        verdicts[prospect.id] = verdict
    return verdicts


def _verdict(
    rules: Rules,
    prospect: Prospect,
    now: datetime,
    on_dnc: set[str],
    recent: dict[str, list[tuple[datetime, str]]],
    dialing_now: set[str],
) -> Verdict:
    if prospect.attempts >= rules.max_number_calls:
        return Verdict(reason="max_attempts", fields={"status": ProspectStatus.FAILED})
    if prospect.created_at < now - timedelta(days=rules.expire_days):
        return Verdict(reason="expired", fields={"status": ProspectStatus.EXPIRED})
    if prospect.phone_number in on_dnc:
        return Verdict(reason="dnc", fields={"status": ProspectStatus.DNC})
    window = CallingWindow(rules.zones_of(prospect), rules.earliest, rules.latest)
    opening = window.next_opening(now)
    if opening != now:
        # Never (windows that do not overlap): look again in a day, in case the rules change.
        return Verdict(
            reason="outside_window", fields={"next_attempt_at": opening or now + timedelta(days=1)}
        )
    if prospect.last_called_at and now < prospect.last_called_at + rules.min_time_between_calls:
        return Verdict(
            reason="too_soon",
            fields={"next_attempt_at": prospect.last_called_at + rules.min_time_between_calls},
        )
    if rules.dupe_days >= 0:
        own_calls = {entry.get("call_id") for entry in prospect.attempt_log}
        others = [
            moment
            for moment, caller in recent.get(prospect.phone_number, [])
            if caller != str(prospect.id) and caller not in own_calls
        ]
        if others or prospect.phone_number in dialing_now:
            last = max(others, default=now)
            return Verdict(
                reason="dupe", fields={"next_attempt_at": last + timedelta(days=rules.dupe_days)}
            )
    if prospect.status == ProspectStatus.CALLBACK:
        return Verdict(why="callback due")
    return Verdict(why="first attempt" if prospect.attempts == 0 else "retry")


async def _recent_calls(
    rules: Rules, numbers: list[str], now: datetime
) -> dict[str, list[tuple[datetime, str]]]:
    """Per number, when the workspace called it within `dupe_days` and by whom: a prospect's id
    (its last attempt, in any campaign) or a call log's id (any call to that number)."""
    if rules.dupe_days < 0 or not numbers:
        return {}
    since = now - timedelta(days=rules.dupe_days)
    recent: dict[str, list[tuple[datetime, str]]] = {}
    for prospect_id, number, called_at in await Prospect.filter(
        workspace_id=rules.workspace_id, phone_number__in=numbers, last_called_at__gte=since
    ).values_list("id", "phone_number", "last_called_at"):
        recent.setdefault(number, []).append((called_at, str(prospect_id)))
    for call_id, number, created_at in await Call.filter(
        workspace_id=rules.workspace_id, to_number__in=numbers, created_at__gte=since
    ).values_list("id", "to_number", "created_at"):
        recent.setdefault(number, []).append((created_at, str(call_id)))
    return recent


# -- settling ---------------------------------------------------------------------------------


async def settle_finished_calls(
    rules: Rules, now: datetime, prospects: QuerySet[Prospect] | None = None
) -> int:
    """Give each of the campaign's dispatched prospects (of `prospects`, if given) whose call
    ended its outcome; returns how many."""
    settled = 0
    query = prospects if prospects is not None else Prospect.filter(campaign_id=rules.id)
    for prospect, call in await dialer.finished_attempts(query):
        settled += await dialer.settle_attempt(
            prospect, call, now, **_prospect_outcome(rules, prospect, call, now)
        )
    return settled


def _prospect_outcome(
    rules: Rules, prospect: Prospect, call: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """What a finished attempt leaves on its prospect: answered ends it (its disposition may
    still ask for a callback or do-not-call); no answer, busy, failed and voicemail retry after
    `min_time_between_calls` while attempts are left."""
    outcome = dialer.outcome_of(call)
    if outcome is None:
        return {"status": ProspectStatus.CANCELLED}
    if outcome == "answered":
        return {"status": ProspectStatus.COMPLETED, "error": None}
    if prospect.attempts < rules.max_number_calls:
        return {
            "status": ProspectStatus.RETRYING,
            "error": dialer.reason_of(call),
            "next_attempt_at": now + rules.min_time_between_calls,
        }
    return {"status": ProspectStatus.FAILED, "error": dialer.reason_of(call)}


async def settle_call(call: Call, redis: Redis, now: datetime | None = None) -> Prospect | None:
    """Settle the prospect whose attempt `call` was, now (the post-call analysis does this
    before it applies a disposition, which must not be overwritten by the settling). Returns
    the prospect as it is after, or None when the call is no campaign's."""
    prospect = await Prospect.get_or_none(call_id=call.id)
    if prospect is None:
        return None
    config = await campaigns.cached_config(prospect.campaign_id, redis)
    if config is not None:
        only_it = Prospect.filter(id=prospect.id)
        await settle_finished_calls(Rules.of(config), now or utcnow(), only_it)
    await prospect.refresh_from_db()
    return prospect
