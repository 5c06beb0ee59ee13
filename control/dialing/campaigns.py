"""Campaigns: their settings and limits, the cached configuration the dialer reads, dispositions,
prospects' time zones, the public status counts, live calls and signed webhooks in."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control.config import Settings
from control.dialing import batches, dnc
from control.dialing.window import check_timezone, parse_clock
from control.errors import Conflict, Invalid, NotFound, Unauthenticated
from control.models import (
    Call,
    Campaign,
    DncSource,
    Locale,
    Prospect,
    ProspectStatus,
    ProspectUpload,
    WebhookEndpoint,
)
from control.security import SecretUnreadableError, decrypt_secret, utcnow
from control.services import webhooks
from control.services.calls import FINAL_STATUSES
from control.text import slugify
from runtime.spec import number_time_zones
from runtime.spec.phone import mask_phone

logger = logging.getLogger(__name__)

# Where a locale's prospects are: the country a number without `+` is read in, and the zone
# used when neither the row nor the number names one.
LOCALES: dict[str, dict[str, str]] = {
    Locale.USCA: {
        "name": "United States and Canada",
        "country": "US",
        "default_timezone": "America/New_York",
    },
    Locale.IN: {"name": "India", "country": "IN", "default_timezone": "Asia/Kolkata"},
    Locale.UK: {"name": "United Kingdom", "country": "GB", "default_timezone": "Europe/London"},
}

# Every numeric option: (minimum, maximum, default). The request models and `options/` read it.
LIMITS: dict[str, tuple[Any, Any, Any]] = {
    "call_ratio": (0.1, 10.0, 1.0),
    "dialer_interval": (2, 15, 10),
    "max_active_calls": (0, 1000, 0),
    "max_number_calls": (1, 100, 10),
    "min_time_between_calls": (0, 7 * 24 * 60, 30),
    "dupe_days": (-1, 3650, 90),
    "expire_days": (1, 3650, 90),
}
LIMIT_NOTES = {
    "call_ratio": "calls placed per free agent session",
    "dialer_interval": "seconds between dialer ticks",
    "max_active_calls": "0 = unlimited (still capped by platform capacity)",
    "max_number_calls": "attempts per prospect",
    "min_time_between_calls": "minutes between attempts on one prospect",
    "dupe_days": "a number already called within N days is skipped; -1 disables",
    "expire_days": "prospects older than this are not dialed",
}
DEFAULT_EARLIEST = "09:00"
DEFAULT_LATEST = "21:00"
TIME_FORMAT = "HH:MM"
MAX_DISPOSITIONS = 50

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")

CACHE_PREFIX = "campaign:config:"
# A missed clear (a replica dying between the write and the clear) heals by itself.
CACHE_TTL_SECONDS = 300
# Receivers of our own webhooks reject a timestamp skewed by more than this (PARITY.md).
SIGNATURE_TOLERANCE_SECONDS = 300
# A signed webhook request is applied once: its signature is remembered while a replay of it
# could still be fresh (a timestamp is accepted up to the tolerance either side of now).
SEEN_SIGNATURE_PREFIX = "campaign:webhook-signature:"
SEEN_SIGNATURE_SECONDS = 2 * SIGNATURE_TOLERANCE_SECONDS
# The campaign a webhook body names, read from its raw bytes (slugs need no JSON escapes): the
# signature is checked with that campaign's secret before anything parses the body.
CAMPAIGN_FIELD = re.compile(rb'"campaign"\s*:\s*"([a-z0-9][a-z0-9-]{0,79})"')

# What a campaign's configuration is, as the dialer reads it (cached) and the API shows it.
CONFIG_FIELDS = (
    "name", "slug", "locale_name", "active", "public_status", "agent_phone_number", "call_ratio",
    "dialer_interval", "max_active_calls", "max_number_calls", "min_time_between_calls",
    "dupe_days", "expire_days", "earliest_prospect_time", "latest_prospect_time", "dispositions",
)  # fmt: skip
# The fields a client writes after creation (the slug and `locale_name` are fixed).
WRITABLE_FIELDS = (
    "agent_id",
    *(field for field in CONFIG_FIELDS if field not in ("slug", "locale_name")),
)


def defaults() -> dict[str, Any]:
    """Every option's default (PUT fills missing fields with these)."""
    return {
        **{field: limit[2] for field, limit in LIMITS.items()},
        "locale_name": Locale.USCA.value,
        "active": True,
        "public_status": False,
        "earliest_prospect_time": DEFAULT_EARLIEST,
        "latest_prospect_time": DEFAULT_LATEST,
        "dispositions": [],
    }


def default_country(locale_name: str) -> str:
    return LOCALES[locale_name]["country"]


# --- time zones -----------------------------------------------------------------------------


def prospect_timezones(phone_number: str, given: str | None) -> list[str]:
    """The zones a prospect may be in: `[given]` when given (checked), else every zone the
    number's country and area code span (phonenumbers' data), else [] when it knows none.

    Raises:
        ValueError: `given` is not an IANA zone.
    """
    if given:
        return [check_timezone(given.strip())]
    return number_time_zones(phone_number)


# --- campaigns ------------------------------------------------------------------------------


def _not_found() -> NotFound:
    return NotFound("CAMPAIGN_NOT_FOUND", "No campaign with that slug.")


def is_slug(value: Any) -> bool:
    """Whether `value` can be a slug at all (anything else is not looked up)."""
    return isinstance(value, str) and SLUG_PATTERN.fullmatch(value) is not None


async def get_campaign(workspace_id: uuid.UUID, slug: str) -> Campaign:
    if not is_slug(slug):
        raise _not_found()
    campaign = await Campaign.get_or_none(slug=slug, workspace_id=workspace_id)
    if campaign is None:
        raise _not_found()
    return campaign


def campaigns_of(
    workspace_ids: list[uuid.UUID] | None, email: str | None = None
) -> QuerySet[Campaign]:
    """Campaigns of these workspaces (None: every workspace), optionally by creator email."""
    query = Campaign.all()
    if workspace_ids is not None:
        query = query.filter(workspace_id__in=workspace_ids)
    if email:
        query = query.filter(created_by_email__iexact=email.strip())
    return query.order_by("-created_at", "-id")


def _field_error(field: str, message: str) -> Invalid:
    return Invalid(
        "VALIDATION_ERROR", f"Invalid request: {field}: {message}", field=field, message=message
    )


def _check_window(values: dict[str, Any]) -> None:
    if parse_clock(values["earliest_prospect_time"]) >= parse_clock(values["latest_prospect_time"]):
        raise _field_error("latest_prospect_time", "must be later than earliest_prospect_time")


async def _check_line(workspace_id: uuid.UUID, agent_id: Any, number: str) -> None:
    """The agent is the workspace's and is mapped to the number the workspace holds."""
    if agent_id is None:
        raise _field_error("agent_id", "a campaign needs an agent")
    await batches.check_line(workspace_id, agent_id, number)


async def _name_taken(workspace_id: uuid.UUID, name: str, except_id: uuid.UUID | None) -> bool:
    query = Campaign.filter(workspace_id=workspace_id, name=name)
    if except_id is not None:
        query = query.exclude(id=except_id)
    return await query.exists()


def _name_conflict() -> Conflict:
    return Conflict("CAMPAIGN_EXISTS", "This workspace already has a campaign with that name.")


async def create_campaign(
    workspace_id: uuid.UUID, values: dict[str, Any], *, user_id: Any, email: str | None
) -> Campaign:
    """Create a campaign; its slug comes from the name, with a short random suffix when another
    workspace already uses it (the slug is unique platform-wide).

    Raises:
        Conflict: a name this workspace already uses.
        NotFound: an agent or number the workspace does not have.
        Invalid: a calling window that ends before it starts.
    """
    values = {**defaults(), **values}
    _check_window(values)
    await _check_line(workspace_id, values["agent_id"], values["agent_phone_number"])
    if await _name_taken(workspace_id, values["name"], None):
        raise _name_conflict()
    base = slugify(values["name"], fallback="campaign")
    for attempt in range(8):
        slug = base if attempt == 0 else f"{base}-{secrets.token_hex(3)}"
        if await Campaign.exists(slug=slug):
            continue
        try:
            campaign = await Campaign.create(
                workspace_id=workspace_id,
                slug=slug,
                created_by_id=user_id,
                created_by_email=email,
                **values,
            )
        except IntegrityError:
            # Another request took the name or the slug between the check and the insert.
            if await _name_taken(workspace_id, values["name"], None):
                raise _name_conflict() from None
            continue
        logger.info("campaign %s created in workspace %s", campaign.slug, workspace_id)
        return campaign
    raise Conflict("SLUG_TAKEN", "Could not find a free slug for that name; try another.")


async def update_campaign(
    redis: Redis,
    workspace_id: uuid.UUID,
    slug: str,
    changes: dict[str, Any],
    *,
    replace: bool,
) -> Campaign:
    """Apply `changes` (PATCH) or replace every writable field (PUT: missing ones take their
    defaults); `locale_name` and the slug never change. Clears the cached configuration."""
    campaign = await get_campaign(workspace_id, slug)
    locale = changes.pop("locale_name", None)
    if locale is not None and locale != campaign.locale_name:
        raise _field_error("locale_name", "cannot change after the campaign is created")
    current = {field: getattr(campaign, field) for field in WRITABLE_FIELDS}
    if replace:
        values = {**defaults(), "locale_name": campaign.locale_name, **changes}
    else:
        values = {**current, **changes}
    _check_window(values)
    if "agent_id" in changes or "agent_phone_number" in changes:
        await _check_line(workspace_id, values["agent_id"], values["agent_phone_number"])
    if values["name"] != campaign.name and await _name_taken(
        workspace_id, values["name"], campaign.id
    ):
        raise _name_conflict()
    changed = [field for field in WRITABLE_FIELDS if values.get(field) != current[field]]
    if changed:
        campaign.update_from_dict({field: values[field] for field in changed})
        try:
            await campaign.save(update_fields=[*changed, "updated_at"])
        except IntegrityError as error:
            raise _name_conflict() from error
    await forget_config(redis, [campaign.id])
    return campaign


def files_dir(settings: Settings, campaign_id: uuid.UUID) -> Path:
    """Where a campaign's uploaded lists are kept (named by row ids only, never by a client)."""
    return settings.data_dir / "prospects" / str(campaign_id)


async def delete_campaign(
    settings: Settings, redis: Redis, workspace_id: uuid.UUID, slug: str
) -> None:
    """Delete a campaign with its lists, prospects and kept files. Calls in progress are left
    to finish (nobody is hung up on); every call log stays, with its `campaign_id`."""
    campaign = await get_campaign(workspace_id, slug)
    await campaign.delete()
    # After the delete: a dialer that read the row just before cannot re-cache it for long.
    await forget_config(redis, [campaign.id])
    await forget_files(settings, [campaign.id])
    logger.info("campaign %s deleted", slug)


async def forget_files(settings: Settings, campaign_ids: Iterable[uuid.UUID]) -> None:
    """Remove the kept prospect lists of these campaigns (deleted, or their workspace is)."""
    for campaign_id in campaign_ids:
        await asyncio.to_thread(shutil.rmtree, files_dir(settings, campaign_id), ignore_errors=True)


async def prospect_counts(campaign: Campaign) -> dict[str, int]:
    """Prospects per status (every status, zeros included)."""
    counts = {status.value: 0 for status in ProspectStatus}
    rows = (
        await Prospect.filter(campaign_id=campaign.id, workspace_id=campaign.workspace_id)
        .annotate(count=Count("id"))
        .group_by("status")
        .values("status", "count")
    )
    for row in rows:
        counts[str(row["status"])] = row["count"]
    return counts


async def uploads_of(campaign_id: uuid.UUID) -> list[ProspectUpload]:
    return await ProspectUpload.filter(campaign_id=campaign_id).order_by("-priority", "created_at")


# --- the cached configuration ---------------------------------------------------------------


def config_of(campaign: Campaign) -> dict[str, Any]:
    """A campaign's configuration as JSON types: what the dialer reads on every tick."""
    return {
        "id": str(campaign.id),
        "workspace_id": str(campaign.workspace_id),
        "agent_id": str(campaign.agent_id) if campaign.agent_id else None,
        **{field: getattr(campaign, field) for field in CONFIG_FIELDS},
        "locale_name": str(campaign.locale_name),
        "default_country": default_country(campaign.locale_name),
        "updated_at": campaign.updated_at.isoformat() if campaign.updated_at else None,
    }


async def cached_config(campaign_id: uuid.UUID | str, redis: Redis) -> dict[str, Any] | None:
    """The campaign's configuration (`config_of`), from Redis or else the database (then
    cached); None if there is no such campaign."""
    key = f"{CACHE_PREFIX}{campaign_id}"
    cached = await redis.get(key)
    if cached is not None:
        return json.loads(cached)
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        return None
    config = config_of(campaign)
    await redis.set(key, json.dumps(config), ex=CACHE_TTL_SECONDS)
    return config


async def forget_config(redis: Redis, campaign_ids: list[uuid.UUID]) -> int:
    if not campaign_ids:
        return 0
    return await redis.delete(*(f"{CACHE_PREFIX}{id_}" for id_ in campaign_ids))


async def clear_cache(
    redis: Redis, *, slug: str | None = None, workspace_id: uuid.UUID | None = None
) -> int:
    """Forget cached configuration: of the campaign `slug`, else of every campaign of
    `workspace_id`, else of every campaign. Returns how many entries were dropped."""
    if slug is not None or workspace_id is not None:
        query = Campaign.all()
        if slug is not None:
            query = query.filter(slug=slug)
        if workspace_id is not None:
            query = query.filter(workspace_id=workspace_id)
        campaign_ids = await query.values_list("id", flat=True)
        # tortoise types `values_list` as tuples even with `flat=True`
        return await forget_config(redis, cast(list[uuid.UUID], campaign_ids))
    dropped = 0
    async for key in redis.scan_iter(match=f"{CACHE_PREFIX}*", count=500):
        dropped += await redis.delete(key)
    return dropped


# --- dispositions ---------------------------------------------------------------------------


async def apply_disposition(
    prospect: Prospect, disposition: str, *, callback_at: datetime | None, source: str
) -> None:
    """Record `disposition` on the prospect and do what its flags say: `dnc` puts the number
    on the workspace's do-not-call list and ends the prospect (`dnc`); `callback` schedules the
    next attempt at `callback_at` (or `min_time_between_calls` from now). A prospect already on
    `dnc` stays there.

    Args:
        source: who decided: "dialer" (the post-call analysis) or "webhook".

    Raises:
        Invalid: a disposition the campaign does not define.
    """
    campaign = await Campaign.get(id=prospect.campaign_id)
    chosen = next((item for item in campaign.dispositions if item["name"] == disposition), None)
    if chosen is None:
        names = ", ".join(item["name"] for item in campaign.dispositions) or "none defined"
        raise Invalid(
            "UNKNOWN_DISPOSITION",
            f"The campaign has no disposition {disposition[:64]!r} (it has: {names[:500]}).",
        )
    changes: dict[str, Any] = {"disposition": chosen["name"]}
    async with in_transaction():
        if chosen.get("dnc"):
            await dnc.add_dnc(
                prospect.workspace_id,
                prospect.phone_number,
                reason=f"disposition {chosen['name']}"[:200],
                source=DncSource.WEBHOOK if source == "webhook" else DncSource.DISPOSITION,
            )
            changes.update(status=ProspectStatus.DNC, next_attempt_at=None)
        elif chosen.get("callback") and prospect.status != ProspectStatus.DNC:
            when = callback_at or utcnow() + timedelta(minutes=campaign.min_time_between_calls)
            changes.update(status=ProspectStatus.CALLBACK, callback_at=when, next_attempt_at=when)
        await Prospect.filter(id=prospect.id).update(**changes)
    for field, value in changes.items():
        setattr(prospect, field, value)
    logger.info(
        "prospect %s of campaign %s: disposition %s (%s)",
        prospect.id, campaign.slug, chosen["name"], source,
    )  # fmt: skip


# --- public status and live calls -----------------------------------------------------------


def _start_of_day(now: datetime, zone: ZoneInfo) -> datetime:
    """Midnight of `now`'s day in `zone`, as a UTC time."""
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date(), clock(0), zone)
    return midnight.astimezone(now.tzinfo)


async def campaign_status(
    slug: str,
    member_of: Callable[[uuid.UUID], Awaitable[bool]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A campaign's aggregate counts (no number, name, email or id): for anyone when it has
    `public_status`, else only when `member_of(its workspace id)`; anyone else gets the same
    NotFound as for a slug no campaign has."""
    campaign = await Campaign.get_or_none(slug=slug) if is_slug(slug) else None
    if campaign is None:
        raise _not_found()
    if not campaign.public_status and (
        member_of is None or not await member_of(campaign.workspace_id)
    ):
        raise _not_found()
    now = now or utcnow()
    # "Today" is the campaign's own day: its locale's time zone, not UTC's.
    zone = LOCALES[campaign.locale_name]["default_timezone"]
    # Scoped by workspace too, as every query is: it also lets these counts read the calls index
    # (workspace_id, campaign_id, created_at) from its first column.
    calls = Call.filter(workspace_id=campaign.workspace_id, campaign_id=campaign.id)
    today = calls.filter(created_at__gte=_start_of_day(now, ZoneInfo(zone)))
    prospects = await prospect_counts(campaign)
    return {
        "campaign": campaign.name,
        "slug": campaign.slug,
        "active": campaign.active,
        "timezone": zone,
        "prospects": prospects,
        "total_prospects": sum(prospects.values()),
        "calls_today": await today.count(),
        "answered_today": await today.filter(answered_at__not_isnull=True).count(),
        "active_now": await calls.exclude(status__in=FINAL_STATUSES).count(),
        "as_of": now,
    }


def live_calls(workspace_id: uuid.UUID, campaign_id: uuid.UUID | None = None) -> QuerySet[Call]:
    """The workspace's campaign calls not yet in a final state, oldest first."""
    query = Call.filter(workspace_id=workspace_id, campaign_id__not_isnull=True).exclude(
        status__in=FINAL_STATUSES
    )
    if campaign_id is not None:
        query = query.filter(campaign_id=campaign_id)
    return query.order_by("created_at", "id")


async def slug_of(workspace_id: uuid.UUID, campaign_id: uuid.UUID) -> str:
    """The slug of one of the workspace's campaigns."""
    campaign = await Campaign.get(id=campaign_id, workspace_id=workspace_id)
    return campaign.slug


async def slugs_by_id(workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[str, str]:
    rows = await Campaign.filter(workspace_id=workspace_id, id__in=list(ids)).values_list(
        "id", "slug"
    )
    return {str(id_): slug for id_, slug in rows}


def live_call_out(call: Call, slugs: dict[str, str], now: datetime) -> dict[str, Any]:
    since = call.answered_at or call.started_at or call.created_at
    return {
        "call_id": str(call.id),
        "campaign_id": str(call.campaign_id),
        "campaign": slugs.get(str(call.campaign_id)),
        "to_number": mask_phone(call.to_number),
        "from_number": mask_phone(call.from_number),
        "status": call.status,
        "created_at": call.created_at,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "duration_seconds": max(0.0, round((now - since).total_seconds(), 1)),
    }


# --- webhooks in ----------------------------------------------------------------------------


def _bad_signature() -> Unauthenticated:
    # One answer for a missing, stale or wrong signature and an unknown campaign alike, so an
    # unsigned caller learns nothing about which slugs exist.
    return Unauthenticated(
        "INVALID_SIGNATURE",
        f"Sign the body as outgoing webhooks are signed ({webhooks.TIMESTAMP_HEADER}, "
        f"{webhooks.SIGNATURE_HEADER}) with the campaign's workspace webhook secret.",
    )


async def _webhook_secret(settings: Settings, slug: Any) -> tuple[Campaign | None, str | None]:
    if not is_slug(slug):
        return None, None
    campaign = await Campaign.get_or_none(slug=slug)
    if campaign is None:
        return None, None
    endpoint = await WebhookEndpoint.get_or_none(workspace_id=campaign.workspace_id)
    if endpoint is None:
        return campaign, None
    try:
        return campaign, decrypt_secret(settings, endpoint.secret_encrypted)
    except SecretUnreadableError:
        logger.warning("webhook secret of workspace %s is unreadable", campaign.workspace_id)
        return campaign, None


async def verify_webhook(
    settings: Settings,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: float | None = None,
) -> Campaign:
    """The campaign a signed webhook body names; Unauthenticated unless the raw body is signed
    with that campaign's workspace secret within the tolerance.

    Nothing parses the body before its signature holds: the campaign is the first
    `"campaign": "<slug>"` in its bytes, and `apply_webhook_event` refuses an event whose
    parsed `campaign` is another.
    """
    named = CAMPAIGN_FIELD.search(body)
    campaign, secret = await _webhook_secret(settings, named.group(1).decode() if named else None)
    try:
        stamp = int(timestamp or "")
    except ValueError:
        stamp = None
    now = time.time() if now is None else now
    # Compare even when something is missing, so every refusal costs about the same.
    expected = webhooks.sign(secret or secrets.token_hex(16), stamp or 0, body)
    matches = hmac.compare_digest(expected.encode(), (signature or "").strip().encode())
    fresh = stamp is not None and abs(now - stamp) <= SIGNATURE_TOLERANCE_SECONDS
    if campaign is None or secret is None or not matches or not fresh:
        raise _bad_signature()
    return campaign


async def apply_webhook_event(
    redis: Redis,
    campaign: Campaign,
    signature: str,
    *,
    named_campaign: str,
    prospect_id: uuid.UUID | None,
    phone_number: str | None,
    disposition: str,
    callback_at: datetime | None,
) -> Prospect | None:
    """Apply a verified webhook event (see `verify_webhook`) once.

    Returns:
        The prospect, or None when this signed request was applied before (a replay within
        the window changes nothing).
    """
    if named_campaign != campaign.slug:  # the signature was checked for another campaign
        raise _bad_signature()
    seen = f"{SEEN_SIGNATURE_PREFIX}{signature.strip()}"
    if not await redis.set(seen, "1", nx=True, ex=SEEN_SIGNATURE_SECONDS):
        logger.info("campaign %s: a webhook request replayed, not applied again", campaign.slug)
        return None
    try:
        prospect = await find_prospect(campaign, prospect_id, phone_number)
        await apply_disposition(prospect, disposition, callback_at=callback_at, source="webhook")
    except BaseException:
        await redis.delete(seen)  # not applied: the sender may send it again
        raise
    return prospect


async def find_prospect(
    campaign: Campaign, prospect_id: uuid.UUID | None, phone_number: str | None
) -> Prospect:
    query = Prospect.filter(campaign_id=campaign.id)
    if prospect_id is not None:
        query = query.filter(id=prospect_id)
    else:
        number = dnc.normalise(phone_number or "", default_country(campaign.locale_name))
        query = query.filter(phone_number=number)
    prospect = await query.order_by("-created_at").first()
    if prospect is None:
        raise NotFound("PROSPECT_NOT_FOUND", "The campaign has no such prospect.")
    return prospect
