"""The workspace do-not-call list: adding, checking, listing and removing numbers.

It applies to every outbound dial: `POST /calls/outbound_call` refuses a listed number
(`refuse_listed`, in `services.calls.start_outbound_call`), and the dialers' core refuses the
listed numbers among a tick's rows at dial time (`listed`, `refusal`); batches also reject
listed rows at upload and skip rows listed later, and campaigns end such prospects.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import cast

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from control.errors import Conflict, Invalid, NotFound
from control.models import DncNumber, DncSource
from runtime.spec import normalise_number
from runtime.spec.phone import mask_phone

logger = logging.getLogger(__name__)


def normalise(phone_number: str, default_country: str | None = None) -> str:
    """`phone_number` as E.164, or Invalid saying why not."""
    try:
        return normalise_number(phone_number, default_country)
    except ValueError as error:
        raise Invalid(
            "INVALID_PHONE_NUMBER",
            f"phone_number is {error} (send it in E.164, e.g. +14155550100).",
        ) from error


ON_DNC = "NUMBER_ON_DNC"
#: Why a batch row is not called: at upload, or when it was listed after the upload.
ON_DNC_REASON = f"{ON_DNC}: the number is on the workspace's do-not-call list"


async def is_dnc(workspace_id: uuid.UUID, phone_number: str) -> bool:
    """Whether the workspace must never call `phone_number` (E.164)."""
    return await DncNumber.exists(workspace_id=workspace_id, phone_number=phone_number)


async def listed(workspace_id: uuid.UUID, phone_numbers: Iterable[str]) -> set[str]:
    """Which of `phone_numbers` (E.164) the workspace must never call."""
    numbers = list(set(phone_numbers))
    if not numbers:
        return set()
    rows = await DncNumber.filter(workspace_id=workspace_id, phone_number__in=numbers).values_list(
        "phone_number", flat=True
    )
    return set(cast(list[str], rows))  # tortoise types a flat `values_list` as tuples


async def refuse_listed(workspace_id: uuid.UUID, phone_number: str) -> None:
    """Conflict `NUMBER_ON_DNC` when the workspace must never call `phone_number`."""
    if await is_dnc(workspace_id, phone_number):
        raise refusal(phone_number)


def refusal(phone_number: str) -> Conflict:
    """The Conflict `NUMBER_ON_DNC` that refuses a dial to a listed `phone_number`."""
    return Conflict(
        ON_DNC,
        f"{mask_phone(phone_number)} is on this workspace's do-not-call list "
        "(/api/v/dnc/); nothing was dialed.",
    )


async def add_dnc(
    workspace_id: uuid.UUID,
    phone_number: str,
    *,
    reason: str | None = None,
    source: DncSource | str = DncSource.API,
    created_by_email: str | None = None,
) -> tuple[DncNumber, bool]:
    """Put an E.164 number on the workspace's list; idempotent. Returns the row and whether it
    is new (a number already listed keeps its first reason and source)."""
    existing = await DncNumber.get_or_none(workspace_id=workspace_id, phone_number=phone_number)
    if existing is not None:
        return existing, False
    try:
        entry = await DncNumber.create(
            workspace_id=workspace_id,
            phone_number=phone_number,
            reason=reason,
            source=DncSource(source),
            created_by_email=created_by_email,
        )
    except IntegrityError:  # added by another request between the read and the insert
        return await DncNumber.get(workspace_id=workspace_id, phone_number=phone_number), False
    logger.info("do-not-call: %s added (%s)", mask_phone(phone_number), entry.source)
    return entry, True


def dnc_of(workspace_id: uuid.UUID) -> QuerySet[DncNumber]:
    return DncNumber.filter(workspace_id=workspace_id).order_by("-created_at", "-id")


async def remove_dnc(workspace_id: uuid.UUID, phone_number: str) -> None:
    """Take a number off the list; 404 if it is not on it."""
    removed = await DncNumber.filter(workspace_id=workspace_id, phone_number=phone_number).delete()
    if not removed:
        raise NotFound("DNC_NOT_FOUND", "That number is not on the do-not-call list.")
    logger.info("do-not-call: %s removed", mask_phone(phone_number))
