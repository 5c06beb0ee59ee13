"""Helpers of the campaign dialer tests: a campaign, prospects in bulk, and a stand-in worker
that ends many calls at once in SQL (the simulation places thousands of calls)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from control.dialing import campaigns
from control.models import Call, Campaign, Prospect
from control.services import calls as call_service
from control.services import capacity

AGENT_NUMBER = "+16505551234"
DISPOSITIONS = [
    {"name": "interested", "description": "wants a quote", "callback": False, "dnc": False},
    {"name": "callback", "description": "asked to be called later", "callback": True, "dnc": False},
    {"name": "remove_me", "description": "asked not to be called", "callback": False, "dnc": True},
]
# How a stand-in worker ends a call with each outcome: the call's final status and end reason.
CALL_ENDINGS = {
    "answered": ("completed", "user_hangup"),
    "voicemail": ("completed", "voicemail"),
    "no_answer": ("no_answer", None),
    "busy": ("busy", None),
    "failed": ("failed", "error"),
}


def midday_zone(now: datetime) -> str:
    """An IANA zone where it is about noon at `now` (for tests on the job queue's real clock)."""
    offset = (12 - now.hour + 12) % 24 - 12  # hours east of UTC, -12..11
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX signs are inverted


async def new_campaign(line: dict, **fields: Any) -> Campaign:
    values = {
        "name": "Autumn offers",
        "agent_id": line["agent"].id,
        "agent_phone_number": AGENT_NUMBER,
        "dispositions": DISPOSITIONS,
        **fields,
    }
    return await campaigns.create_campaign(
        line["workspace"].id, values, user_id=None, email="dev@example.com"
    )


def prospect(campaign: Campaign, phone_number: str, **fields: Any) -> Prospect:
    """An unsaved prospect; its zones from its number (or `timezone`), as an upload derives them."""
    given = fields.pop("timezone", None)
    zones = fields.pop("timezones", None)
    return Prospect(
        id=uuid.uuid4(),
        campaign_id=campaign.id,
        workspace_id=campaign.workspace_id,
        phone_number=phone_number,
        timezones=campaigns.prospect_timezones(phone_number, given) if zones is None else zones,
        **fields,
    )


async def add_prospects(prospects: list[Prospect]) -> None:
    await Prospect.bulk_create(prospects, batch_size=500)


async def finish_calls(redis: Redis, outcomes: dict[uuid.UUID, str], now: datetime) -> None:
    """End the calls `outcomes` names, as their workers' reports would (grouped: one UPDATE an
    outcome), and free their capacity slots."""
    by_outcome: dict[str, list[uuid.UUID]] = {}
    for call_id, outcome in outcomes.items():
        by_outcome.setdefault(outcome, []).append(call_id)
    for outcome, call_ids in by_outcome.items():
        status, end_reason = CALL_ENDINGS[outcome]
        await Call.filter(id__in=call_ids, status__in=call_service.LIVE_STATUSES).update(
            status=status, end_reason=end_reason, ended_at=now
        )
    await release_slots(redis, outcomes)


async def release_slots(redis: Redis, call_ids: Iterable[uuid.UUID]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in call_ids:
            pipe.zrem(capacity.PLATFORM_KEY, str(call_id))
        await pipe.execute()
