"""Phone numbers: buying and registering them, their LiveKit trunks and rules, mapping agents."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control.config import Settings
from control.errors import Conflict, Invalid, NotFound, Unavailable, UpstreamFailed
from control.models import Agent, PhoneNumber
from control.security import encrypt_secret
from runtime.spec.phone import mask_phone
from telephony import sip
from telephony.config import TelephonySettings
from telephony.errors import NotConfigured, NumberVendorError, TelephonyError
from telephony.numbers import get_number_provider

logger = logging.getLogger(__name__)


def telephony_error(error: TelephonyError) -> Unavailable | UpstreamFailed:
    """A telephony failure as the domain names it: unavailable when unconfigured, else an
    upstream failure (the number vendor's, or LiveKit's)."""
    if isinstance(error, NotConfigured):
        return Unavailable("TELEPHONY_NOT_CONFIGURED", str(error))
    if isinstance(error, NumberVendorError):
        return UpstreamFailed("NUMBER_PROVIDER_ERROR", str(error))
    return UpstreamFailed("LIVEKIT_ERROR", f"LiveKit refused or failed: {error}")


def numbers_of(workspace_id: uuid.UUID) -> QuerySet[PhoneNumber]:
    return PhoneNumber.filter(workspace_id=workspace_id).order_by("created_at")


async def get_number(workspace_id: uuid.UUID, number: str) -> PhoneNumber:
    phone_number = await PhoneNumber.get_or_none(workspace_id=workspace_id, phone_number=number)
    if phone_number is None:
        raise NotFound("NUMBER_NOT_FOUND", "No such phone number in this workspace.")
    return phone_number


async def agents_by_number(workspace_id: uuid.UUID, numbers: list[str]) -> dict[str, Agent]:
    agents = await Agent.filter(workspace_id=workspace_id, phone_number__in=numbers)
    return {agent.phone_number: agent for agent in agents if agent.phone_number is not None}


async def _ensure_free(number: str) -> None:
    # Only a registration holds a number: an agent that merely names it blocks nobody.
    if await PhoneNumber.exists(phone_number=number):
        raise Conflict("NUMBER_EXISTS", f"{number} is already registered on Voxline.")


async def _drop_foreign_routes(workspace_id: uuid.UUID, number: str) -> None:
    # Only the workspace holding a number routes it. Rows from before that rule may still route
    # it to another workspace's agent; that agent keeps naming the number, inert.
    foreign = Agent.filter(phone_number=number).exclude(workspace_id=workspace_id)
    await foreign.update(phone_number=None)


async def _route_to_naming_agent(workspace_id: uuid.UUID, number: str) -> None:
    """A newly registered number answers for the workspace's agent that already names it."""
    await _drop_foreign_routes(workspace_id, number)
    if await Agent.exists(workspace_id=workspace_id, phone_number=number):
        return
    waiting = Agent.filter(workspace_id=workspace_id, phone_number=None).order_by("created_at")
    naming = next(
        (agent for agent in await waiting if agent.config.get("phone_number") == number), None
    )
    if naming is not None:
        await Agent.filter(id=naming.id).update(phone_number=number)


async def search(
    telephony: TelephonySettings,
    provider: str,
    country_code: str,
    area_code: str | None,
    contains: str | None,
    limit: int,
) -> list[Any]:
    try:
        numbers = get_number_provider(provider, settings=telephony)
        return await numbers.search(
            country_code, area_code=area_code, contains=contains, limit=limit
        )
    except TelephonyError as error:
        raise telephony_error(error) from error


async def _record(
    workspace_id: uuid.UUID, number: str, provisioning: sip.SipProvisioning, **fields
) -> PhoneNumber:
    try:
        phone_number = await PhoneNumber.create(
            workspace_id=workspace_id,
            phone_number=number,
            inbound_trunk_id=provisioning.inbound_trunk_id,
            outbound_trunk_id=provisioning.outbound_trunk_id,
            dispatch_rule_id=provisioning.dispatch_rule_id,
            **fields,
        )
    except IntegrityError as error:  # registered concurrently: undo this request's LiveKit side
        await sip.deprovision(provisioning)
        raise Conflict("NUMBER_EXISTS", f"{number} is already registered on Voxline.") from error
    await _route_to_naming_agent(workspace_id, number)
    return phone_number


def _provisioning(phone_number: PhoneNumber) -> sip.SipProvisioning:
    return sip.SipProvisioning(
        inbound_trunk_id=phone_number.inbound_trunk_id,
        outbound_trunk_id=phone_number.outbound_trunk_id,
        dispatch_rule_id=phone_number.dispatch_rule_id,
    )


async def purchase(
    telephony: TelephonySettings,
    workspace_id: uuid.UUID,
    number: str,
    provider: str,
    country_code: str,
    sip_address: str | None,
) -> PhoneNumber:
    """Buy the number, then provision LiveKit; a LiveKit failure releases the number again."""
    await _ensure_free(number)
    try:
        numbers = get_number_provider(provider, settings=telephony)
        purchased = await numbers.purchase(number, country_code=country_code)
    except TelephonyError as error:
        raise telephony_error(error) from error
    try:
        provisioning = await sip.provision_number(
            number,
            sip_address=sip_address,
            metadata={"phone_number": number},
            settings=telephony,
        )
    except (TelephonyError, ValueError) as error:
        logger.warning("releasing %s: LiveKit provisioning failed", mask_phone(number))
        try:
            await numbers.release(purchased.provider_id)
        except TelephonyError:
            logger.exception("could not release %s after a failed provisioning", mask_phone(number))
        if isinstance(error, ValueError):
            raise Invalid("INVALID_SIP_CONFIG", str(error)) from error
        raise telephony_error(error) from error
    return await _record(
        workspace_id,
        number,
        provisioning,
        source="purchased",
        provider=purchased.provider,
        provider_id=purchased.provider_id,
        sip_address=sip_address,
    )


async def register_trunk(
    settings: Settings, telephony: TelephonySettings, workspace_id: uuid.UUID, data: dict[str, Any]
) -> PhoneNumber:
    """Register a customer's own SIP trunk for a number and provision LiveKit for it."""
    number = data["phone_number"]
    await _ensure_free(number)
    try:
        provisioning = await sip.provision_number(
            number,
            sip_address=data["sip_address"],
            auth_username=data.get("auth_username"),
            auth_password=data.get("auth_password"),
            krisp_enabled=data.get("krisp_enabled", False),
            label=data.get("label"),
            metadata={"phone_number": number},
            settings=telephony,
        )
    except ValueError as error:
        raise Invalid("INVALID_SIP_CONFIG", str(error)) from error
    except TelephonyError as error:
        raise telephony_error(error) from error
    password = data.get("auth_password")
    return await _record(
        workspace_id,
        number,
        provisioning,
        source="sip_trunk",
        provider=data.get("provider") or "sip",
        label=data.get("label"),
        email=data.get("email"),
        sip_address=data["sip_address"],
        auth_username=data.get("auth_username"),
        auth_password_encrypted=encrypt_secret(settings, password) if password else None,
        krisp_enabled=data.get("krisp_enabled", False),
    )


async def update_trunk(
    settings: Settings,
    telephony: TelephonySettings,
    workspace_id: uuid.UUID,
    number: str,
    changes: dict[str, Any],
) -> PhoneNumber:
    """Change the number's SIP configuration in place on LiveKit, then record it."""
    phone_number = await get_number(workspace_id, number)
    sip_changes = {
        key: changes[key]
        for key in ("sip_address", "auth_username", "auth_password", "krisp_enabled", "label")
        if key in changes
    }
    if sip_changes:
        try:
            updated = await sip.update_provisioning(
                _provisioning(phone_number), settings=telephony, **sip_changes
            )
        except ValueError as error:
            raise Invalid("INVALID_SIP_CONFIG", str(error)) from error
        except TelephonyError as error:
            raise telephony_error(error) from error
        phone_number.outbound_trunk_id = updated.outbound_trunk_id
    for key in ("sip_address", "auth_username", "krisp_enabled", "label", "email", "provider"):
        if key in changes:
            setattr(phone_number, key, changes[key])
    if "auth_password" in changes:
        password = changes["auth_password"]
        phone_number.auth_password_encrypted = (
            encrypt_secret(settings, password) if password else None
        )
    await phone_number.save()
    return phone_number


async def delete_trunk(telephony: TelephonySettings, workspace_id: uuid.UUID, number: str) -> None:
    """Remove every LiveKit object of the number, then the number itself."""
    phone_number = await get_number(workspace_id, number)
    try:
        await sip.deprovision(_provisioning(phone_number), settings=telephony)
    except TelephonyError as error:
        raise telephony_error(error) from error
    async with in_transaction():
        # The agent keeps naming the number, inert, until the workspace registers it again.
        await Agent.filter(workspace_id=workspace_id, phone_number=number).update(phone_number=None)
        await phone_number.delete()


async def map_agent(workspace_id: uuid.UUID, number: str, agent_id: uuid.UUID) -> Agent:
    """Route the number's calls to the agent (the number moves off any other agent)."""
    await get_number(workspace_id, number)
    async with in_transaction():
        agent = (
            await Agent.filter(id=agent_id, workspace_id=workspace_id).select_for_update().first()
        )
        if agent is None:
            raise NotFound("AGENT_NOT_FOUND", "No agent with that id in this workspace.")
        previous_agents = Agent.filter(workspace_id=workspace_id, phone_number=number)
        for previous in await previous_agents.exclude(id=agent.id):
            previous.phone_number = None
            previous.config = {**previous.config, "phone_number": None}
            await previous.save(update_fields=["phone_number", "config", "updated_at"])
        await _drop_foreign_routes(workspace_id, number)
        agent.phone_number = number
        agent.config = {**agent.config, "phone_number": number}
        await agent.save(update_fields=["phone_number", "config", "updated_at"])
    logger.info("number %s now routes to agent %s", mask_phone(number), agent.id)
    return agent


async def release_all(telephony: TelephonySettings, workspace_id: uuid.UUID) -> None:
    """Take down every number of the workspace, before the workspace itself goes.

    Each number loses its LiveKit dispatch rule and trunks and, when it was bought through
    Voxline, is given back to its provider (so it stops being billed); then its row goes. A
    number that fails keeps its row, so a retry resumes where this one stopped.

    Raises:
        UpstreamFailed: `NUMBERS_NOT_RELEASED`, listing every number that could not be released.
    """
    failures = []
    for phone_number in await numbers_of(workspace_id):
        try:
            await sip.deprovision(_provisioning(phone_number), settings=telephony)
            if phone_number.source == "purchased":
                provider = get_number_provider(phone_number.provider, settings=telephony)
                await provider.release(phone_number.provider_id or phone_number.phone_number)
        except (TelephonyError, ValueError) as error:
            logger.warning("could not release %s: %s", mask_phone(phone_number.phone_number), error)
            failures.append(f"{phone_number.phone_number} ({error})")
            continue
        await phone_number.delete()
    if failures:
        raise UpstreamFailed(
            "NUMBERS_NOT_RELEASED",
            "The workspace was not deleted: these numbers could not be released from LiveKit or "
            "their provider, so they would still route calls or be billed: "
            + "; ".join(failures)
            + ". Try again, or delete each with DELETE /phonenumbers/delete_sip/{number}.",
        )
