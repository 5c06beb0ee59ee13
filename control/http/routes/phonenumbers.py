"""`/phonenumbers`: search, purchase, SIP trunks, agent mapping, and their LiveKit provisioning."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field
from quart import Blueprint, current_app
from quart_schema import validate_querystring, validate_request, validate_response

from control.http.errors import APIError
from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, public, require_role
from control.http.ratelimit import per_minute
from control.http.schemas import IsoTime
from control.models import PhoneNumber, Role
from control.services import phone_numbers as number_service
from control.services.agent_config import E164, check_e164

blueprint = Blueprint("phonenumbers", __name__, url_prefix="/phonenumbers")

Provider = Literal["twilio", "vonage"]


def _settings():
    return current_app.config["SETTINGS"]


def _telephony():
    return current_app.config["TELEPHONY"]


class LiveKitObjectsOut(BaseModel):
    inbound_trunk_id: str | None
    outbound_trunk_id: str | None
    dispatch_rule_id: str | None


class PhoneNumberOut(BaseModel):
    id: str
    phone_number: str
    source: str
    provider: str
    label: str | None
    email: str | None
    sip_address: str | None
    auth_username: str | None
    has_auth_password: bool
    krisp_enabled: bool
    agent_id: str | None
    agent_name: str | None
    livekit: LiveKitObjectsOut
    created_at: IsoTime
    updated_at: IsoTime


class AvailableNumberOut(BaseModel):
    phone_number: str
    country_code: str
    region: str | None
    locality: str | None
    capabilities: dict[str, bool]
    monthly_price: str | None
    currency: str | None
    provider: str


class AvailableNumbersOut(BaseModel):
    items: list[AvailableNumberOut]


def number_out(phone_number: PhoneNumber, agent=None) -> dict[str, Any]:
    return {
        "id": str(phone_number.id),
        "phone_number": phone_number.phone_number,
        "source": phone_number.source,
        "provider": phone_number.provider,
        "label": phone_number.label,
        "email": phone_number.email,
        "sip_address": phone_number.sip_address,
        "auth_username": phone_number.auth_username,
        "has_auth_password": phone_number.auth_password_encrypted is not None,
        "krisp_enabled": phone_number.krisp_enabled,
        "agent_id": str(agent.id) if agent else None,
        "agent_name": agent.agent_name if agent else None,
        "livekit": {
            "inbound_trunk_id": phone_number.inbound_trunk_id,
            "outbound_trunk_id": phone_number.outbound_trunk_id,
            "dispatch_rule_id": phone_number.dispatch_rule_id,
        },
        "created_at": phone_number.created_at.isoformat(),
        "updated_at": phone_number.updated_at.isoformat(),
    }


async def _with_agent(phone_number: PhoneNumber) -> dict[str, Any]:
    agents = await number_service.agents_by_number(
        phone_number.workspace_id, [phone_number.phone_number]
    )
    return number_out(phone_number, agents.get(phone_number.phone_number))


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country_code: str = Field(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")
    area_code: str | None = Field(default=None, pattern=r"^\d{1,6}$")
    contains: str | None = Field(default=None, max_length=16, pattern=r"^[0-9*]+$")
    provider: Provider = "twilio"
    limit: int = Field(default=20, ge=1, le=50)


class PurchaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: E164
    provider: Provider
    country_code: str = Field(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")
    sip_address: str | None = Field(
        default=None, max_length=255, description="Provider SIP host for outbound calls"
    )


class SipTrunkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sip_address: str = Field(min_length=1, max_length=255)
    phone_number: E164
    email: EmailStr | None = None
    provider: str = Field(default="sip", min_length=1, max_length=32)
    auth_username: str | None = Field(default=None, max_length=255)
    auth_password: str | None = Field(default=None, max_length=255)
    krisp_enabled: bool = False
    label: str | None = Field(default=None, max_length=200)


class SipTrunkUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sip_address: str | None = Field(default=None, min_length=1, max_length=255)
    email: EmailStr | None = None
    provider: str | None = Field(default=None, min_length=1, max_length=32)
    auth_username: str | None = Field(default=None, max_length=255)
    auth_password: str | None = Field(default=None, max_length=255)
    krisp_enabled: bool | None = None
    label: str | None = Field(default=None, max_length=200)


class MapAgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: E164
    agent_id: uuid.UUID


def _path_number(number: str) -> str:
    try:
        return check_e164(number)
    except ValueError as error:
        raise APIError(400, "INVALID_NUMBER", f"{number!r} {error}.") from error


@blueprint.get("")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[PhoneNumberOut])
async def list_numbers(query_args: PageQuery) -> dict:
    """List the workspace's phone numbers.

    With the agent each one routes to and its LiveKit objects.
    """
    workspace_id = current_principal().workspace_id
    page = await paginate(number_service.numbers_of(workspace_id), query_args, lambda row: row)
    agents = await number_service.agents_by_number(
        workspace_id, [row.phone_number for row in page.items]
    )
    page.items = [number_out(row, agents.get(row.phone_number)) for row in page.items]
    return page.model_dump(mode="json")


@blueprint.get("/search")
@per_minute(30)
@public
@validate_querystring(SearchQuery)
@validate_response(AvailableNumbersOut)
async def search_numbers(query_args: SearchQuery) -> dict:
    """Search numbers available to buy.

    By country (ISO code), area code and digits the number contains.
    """
    found = await number_service.search(
        _telephony(),
        query_args.provider,
        query_args.country_code.upper(),
        query_args.area_code,
        query_args.contains,
        query_args.limit,
    )
    return {
        "items": [
            {
                "phone_number": item.phone_number,
                "country_code": item.country_code,
                "region": item.region,
                "locality": item.locality,
                "capabilities": item.capabilities,
                "monthly_price": item.monthly_price,
                "currency": item.currency,
                "provider": item.provider,
            }
            for item in found
        ]
    }


@blueprint.post("/purchase")
@require_role(Role.DEVELOPER)
@validate_request(PurchaseIn)
@validate_response(PhoneNumberOut, 201)
async def purchase_number(data: PurchaseIn) -> tuple[dict, int]:
    """Buy a number and provision it on LiveKit.

    An inbound trunk, an outbound trunk (with `sip_address`) and a dispatch rule to the worker.
    """
    phone_number = await number_service.purchase(
        _telephony(),
        current_principal().workspace_id,
        data.phone_number,
        data.provider,
        data.country_code.upper(),
        data.sip_address,
    )
    return await _with_agent(phone_number), 201


@blueprint.post("/sip_trunk")
@require_role(Role.DEVELOPER)
@validate_request(SipTrunkIn)
@validate_response(PhoneNumberOut, 201)
async def register_sip_trunk(data: SipTrunkIn) -> tuple[dict, int]:
    """Register your own SIP trunk for a number.

    Provisions the same LiveKit objects; the password is encrypted and never returned.
    """
    phone_number = await number_service.register_trunk(
        _settings(), _telephony(), current_principal().workspace_id, data.model_dump()
    )
    return await _with_agent(phone_number), 201


@blueprint.put("/map_agent")
@require_role(Role.DEVELOPER)
@validate_request(MapAgentIn)
@validate_response(PhoneNumberOut)
async def map_agent(data: MapAgentIn) -> dict:
    """Route a number's calls to an agent.

    Inbound calls to the number then reach that agent.
    """
    workspace_id = current_principal().workspace_id
    await number_service.map_agent(workspace_id, data.phone_number, data.agent_id)
    return await _with_agent(await number_service.get_number(workspace_id, data.phone_number))


@blueprint.put("/update_sip/<number>")
@require_role(Role.DEVELOPER)
@validate_request(SipTrunkUpdate)
@validate_response(PhoneNumberOut)
async def update_sip(number: str, data: SipTrunkUpdate) -> dict:
    """Update a number's SIP configuration.

    Changed in place on LiveKit where it allows; service is never dropped.
    """
    phone_number = await number_service.update_trunk(
        _settings(),
        _telephony(),
        current_principal().workspace_id,
        _path_number(number),
        data.model_dump(exclude_unset=True),
    )
    return await _with_agent(phone_number)


@blueprint.delete("/delete_sip/<number>")
@require_role(Role.DEVELOPER)
async def delete_sip(number: str) -> tuple[str, int]:
    """Delete a number's SIP setup.

    Every LiveKit object created for it is removed.
    """
    await number_service.delete_trunk(
        _telephony(), current_principal().workspace_id, _path_number(number)
    )
    return "", 204
