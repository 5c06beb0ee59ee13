"""A phone number's LiveKit SIP objects: its trunks and dispatch rule, created, updated, deleted.

Each function undoes its own partial work when a step fails, so a number is never left half
provisioned.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livekit import api as lk

from runtime.spec import mask_phone
from telephony.config import TelephonySettings, get_settings
from telephony.errors import LiveKitError
from telephony.numbers.base import check_e164
from telephony.sip.client import livekit_api, livekit_errors, metadata_json

logger = logging.getLogger(__name__)

#: Inbound calls each get a new room whose name starts with this (LiveKit adds caller and random).
ROOM_PREFIX = "call-"
#: Trunk metadata key that tags the objects of one provisioning run, so that a run whose create
#: request got no answer (the object may exist, its id unknown) can still be cleaned up.
PROVISIONING_TAG = "voxline_provisioning_id"

_SIP_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?")


@dataclass(frozen=True, kw_only=True)
class SipProvisioning:
    """The LiveKit objects behind one phone number; store these ids with the number.

    Attributes:
        inbound_trunk_id: the inbound trunk accepting calls to the number ("ST_...").
        outbound_trunk_id: the outbound trunk placing calls from it, or None when no SIP
            address was given.
        dispatch_rule_id: the rule sending inbound calls to the agent worker ("SDR_...").
    """

    inbound_trunk_id: str
    outbound_trunk_id: str | None
    dispatch_rule_id: str


def check_sip_address(address: str) -> str:
    """Returns `address` if LiveKit takes it as a trunk address (a host or IP, optional port).

    Raises:
        ValueError: for a SIP URI ("sip:user@host"), URI parameters or anything not a host.
    """
    if not isinstance(address, str) or not _SIP_HOST.fullmatch(address):
        raise ValueError(
            "sip_address must be a host name or IP address with an optional port, like "
            f"sip.example.com or 203.0.113.5:5060, not a SIP URI (got {address!r})"
        )
    return address


async def provision_number(
    number: str,
    *,
    agent_name: str | None = None,
    sip_address: str | None = None,
    auth_username: str | None = None,
    auth_password: str | None = None,
    krisp_enabled: bool = False,
    label: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    api: lk.LiveKitAPI | None = None,
    settings: TelephonySettings | None = None,
) -> SipProvisioning:
    """Creates the LiveKit objects that make `number` callable, all or nothing.

    1. An inbound trunk for the number (with Krisp noise cancellation if asked).
    2. An outbound trunk to `sip_address` with the number as caller id and the digest auth
       credentials, when `sip_address` is given.
    3. A dispatch rule limited to the inbound trunk that puts each caller in a new room
       ("call-...") and dispatches the agent worker there with `metadata`.

    If any step fails, everything created so far is deleted before the error is raised.

    Args:
        number: the E.164 number.
        agent_name: the worker's agent name; settings.agent_name (VOXLINE_AGENT_NAME) if None.
        sip_address: the SIP host outbound calls go to ("sip.example.com", or a provider's
            termination URI such as "example.pstn.twilio.com").
        auth_username: digest auth user for the outbound trunk.
        auth_password: digest auth password for the outbound trunk; never logged.
        krisp_enabled: noise cancellation on the inbound trunk's calls.
        label: the trunks' and rule's name in LiveKit; "Voxline <number>" by default.
        metadata: JSON-serialisable job metadata the agent receives on inbound calls.
        api: an open LiveKit client to use instead of a new one.
        settings: telephony settings; the environment's by default.

    Returns:
        The ids of the created objects.

    Raises:
        ValueError: if `number` is not E.164.
        LiveKitError: when LiveKit refuses or fails a step (nothing is left behind).
        NotConfigured: when LiveKit's credentials are missing.
    """
    check_e164(number)
    if sip_address is not None:
        check_sip_address(sip_address)
    settings = settings or get_settings()
    name = label or f"Voxline {number}"
    tag = json.dumps({PROVISIONING_TAG: uuid.uuid4().hex})
    created: list[tuple[str, str]] = []  # (kind, id), in creation order
    async with livekit_api(settings, api) as client:
        try:
            with livekit_errors("create the inbound trunk"):
                inbound = await client.sip.create_inbound_trunk(
                    lk.CreateSIPInboundTrunkRequest(
                        trunk=lk.SIPInboundTrunkInfo(
                            name=name, numbers=[number], krisp_enabled=krisp_enabled, metadata=tag
                        )
                    )
                )
            created.append(("trunk", inbound.sip_trunk_id))
            outbound_id = None
            if sip_address:
                with livekit_errors("create the outbound trunk"):
                    outbound = await client.sip.create_outbound_trunk(
                        lk.CreateSIPOutboundTrunkRequest(
                            trunk=_outbound_trunk(
                                name, number, sip_address, auth_username, auth_password, tag
                            )
                        )
                    )
                outbound_id = outbound.sip_trunk_id
                created.append(("trunk", outbound_id))
            with livekit_errors("create the dispatch rule"):
                rule = await client.sip.create_dispatch_rule(
                    lk.CreateSIPDispatchRuleRequest(
                        dispatch_rule=_dispatch_rule(
                            name,
                            inbound.sip_trunk_id,
                            agent_name or settings.agent_name,
                            metadata_json(metadata),
                        )
                    )
                )
            created.append(("rule", rule.sip_dispatch_rule_id))
        except BaseException as e:
            # BaseException: a cancelled request must not leave orphans either.
            ambiguous = not isinstance(e, LiveKitError) or e.retryable
            await _roll_back(client, created, number if ambiguous else None, tag)
            raise
    logger.info(
        "provisioned %s: inbound %s, outbound %s, rule %s",
        mask_phone(number),
        inbound.sip_trunk_id,
        outbound_id,
        rule.sip_dispatch_rule_id,
    )
    return SipProvisioning(
        inbound_trunk_id=inbound.sip_trunk_id,
        outbound_trunk_id=outbound_id,
        dispatch_rule_id=rule.sip_dispatch_rule_id,
    )


async def update_provisioning(
    existing: SipProvisioning,
    *,
    sip_address: str | None = None,
    auth_username: str | None = None,
    auth_password: str | None = None,
    krisp_enabled: bool | None = None,
    label: str | None = None,
    agent_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    api: lk.LiveKitAPI | None = None,
    settings: TelephonySettings | None = None,
) -> SipProvisioning:
    """Changes a number's LiveKit objects in place, so calls keep flowing throughout.

    LiveKit updates trunks and dispatch rules in place (UpdateSIPInboundTrunk,
    UpdateSIPOutboundTrunk and UpdateSIPDispatchRule), so nothing is deleted and re-created.
    Field-mask updates (`update`) are used where the mask has the field; the inbound trunk's
    `krisp_enabled` and the rule's room configuration (agent name, metadata) are not in the
    masks, so those objects are read and written back whole (`replace`). The outbound trunk is
    only ever patched, so a password LiveKit may mask in reads is never written back.

    If a number has no outbound trunk yet and `sip_address` is given, one is created.
    If a step fails, the steps already applied are undone before the error is raised.

    Args:
        existing: the number's current objects.
        sip_address: new outbound SIP host; None leaves it.
        auth_username: new outbound digest user; None leaves it, "" clears it.
        auth_password: new outbound digest password; None leaves it, "" clears it.
        krisp_enabled: new noise-cancellation setting of the inbound trunk; None leaves it.
        label: new name of the trunks and rule; None leaves it.
        agent_name: new agent to dispatch on inbound calls; None leaves it.
        metadata: new job metadata for inbound calls (replaces the old); None leaves it.
        api: an open LiveKit client to use instead of a new one.
        settings: telephony settings; the environment's by default.

    Returns:
        The number's objects (a new `outbound_trunk_id` if one was created).

    Raises:
        ValueError: for a malformed `sip_address`, or outbound auth changes for a number that
            has no outbound trunk and no `sip_address`.
        LiveKitError: when LiveKit refuses or fails a step, or an object no longer exists
            (code "not_found"); the applied steps have been undone.
    """
    outbound_changes = {
        key: value
        for key, value in (
            ("address", sip_address),
            ("auth_username", auth_username),
            ("auth_password", auth_password),
            ("name", label),
        )
        if value is not None
    }
    if sip_address is not None:
        check_sip_address(sip_address)
    needs_outbound = outbound_changes.keys() - {"name"}
    if needs_outbound and not existing.outbound_trunk_id and not sip_address:
        raise ValueError("this number has no outbound trunk: give sip_address to create one")
    undo: list[tuple[str, Any]] = []
    result = existing
    async with livekit_api(settings, api) as client:
        try:
            if krisp_enabled is not None or label is not None:
                undo.append(
                    ("inbound", await _update_inbound(client, existing, krisp_enabled, label))
                )
            if outbound_changes and existing.outbound_trunk_id:
                original = await _update_outbound(client, existing, outbound_changes)
                undo.append(("outbound", original))
            elif sip_address:
                outbound_id = await _add_outbound(
                    client, existing, sip_address, auth_username, auth_password, label
                )
                undo.append(("created", outbound_id))
                result = SipProvisioning(
                    inbound_trunk_id=existing.inbound_trunk_id,
                    outbound_trunk_id=outbound_id,
                    dispatch_rule_id=existing.dispatch_rule_id,
                )
            if agent_name is not None or metadata is not None or label is not None:
                original_rule = await _update_rule(client, existing, agent_name, metadata, label)
                undo.append(("rule", original_rule))
        except BaseException:
            await _undo_updates(client, undo)
            raise
    logger.info("updated SIP objects of inbound trunk %s in place", existing.inbound_trunk_id)
    return result


async def deprovision(
    existing: SipProvisioning,
    *,
    api: lk.LiveKitAPI | None = None,
    settings: TelephonySettings | None = None,
) -> None:
    """Deletes a number's dispatch rule and trunks; objects already gone are skipped.

    The rule goes first, so no call is routed to a trunk being deleted. Every object is
    attempted even if one fails, and the call can be repeated safely.

    Raises:
        LiveKitError: when an object could not be deleted (it names them all).
    """
    targets = [("rule", existing.dispatch_rule_id), ("trunk", existing.inbound_trunk_id)]
    if existing.outbound_trunk_id:
        targets.append(("trunk", existing.outbound_trunk_id))
    failures: list[LiveKitError] = []
    async with livekit_api(settings, api) as client:
        for kind, object_id in targets:
            try:
                await _delete(client, kind, object_id)
            except LiveKitError as e:
                failures.append(e)
    if failures:
        raise LiveKitError(
            "could not delete every SIP object: " + "; ".join(e.message for e in failures),
            code=failures[0].code,
            http_status=failures[0].http_status,
            retryable=all(e.retryable for e in failures),
        )
    logger.info("deprovisioned inbound trunk %s", existing.inbound_trunk_id)


def _outbound_trunk(
    name: str,
    number: str,
    address: str,
    auth_username: str | None,
    auth_password: str | None,
    tag: str,
) -> lk.SIPOutboundTrunkInfo:
    return lk.SIPOutboundTrunkInfo(
        name=name,
        address=address,
        numbers=[number],
        auth_username=auth_username or "",
        auth_password=auth_password or "",
        metadata=tag,
    )


def _dispatch_rule(
    name: str, inbound_trunk_id: str, agent_name: str, metadata: str
) -> lk.SIPDispatchRuleInfo:
    return lk.SIPDispatchRuleInfo(
        name=name,
        trunk_ids=[inbound_trunk_id],
        rule=lk.SIPDispatchRule(
            dispatch_rule_individual=lk.SIPDispatchRuleIndividual(room_prefix=ROOM_PREFIX)
        ),
        room_config=lk.RoomConfiguration(
            agents=[lk.RoomAgentDispatch(agent_name=agent_name, metadata=metadata)]
        ),
    )


async def _delete(client: lk.LiveKitAPI, kind: str, object_id: str) -> None:
    """Deletes a trunk or rule; one that no longer exists counts as deleted."""
    try:
        with livekit_errors(f"delete {kind} {object_id}"):
            if kind == "rule":
                await client.sip.delete_dispatch_rule(
                    lk.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=object_id)
                )
            else:
                await client.sip.delete_trunk(lk.DeleteSIPTrunkRequest(sip_trunk_id=object_id))
    except LiveKitError as e:
        if e.code != "not_found":
            raise
        logger.info("%s %s was already gone", kind, object_id)


async def _roll_back(
    client: lk.LiveKitAPI, created: list[tuple[str, str]], number: str | None, tag: str
) -> None:
    """Deletes what a failed provisioning created, rules first, then newest first; never raises.

    With `number`, the failing request may have been applied without an answer, so trunks of
    this run (found by number and tag) and the rules on its inbound trunk are deleted as well.
    """
    targets = list(reversed(created))
    if number is not None:
        try:
            targets = await _find_provisioned(client, number, tag) + targets
        except LiveKitError as e:
            logger.error("rollback of %s may leave objects behind: %s", mask_phone(number), e)
    targets.sort(key=lambda target: target[0] != "rule")  # stable: rules, then trunks
    for kind, object_id in dict.fromkeys(targets):
        try:
            await _delete(client, kind, object_id)
        except LiveKitError as e:
            logger.error("rollback left %s %s behind: %s", kind, object_id, e.message)


async def _find_provisioned(client: lk.LiveKitAPI, number: str, tag: str) -> list[tuple[str, str]]:
    """The rules and trunks one provisioning run (`tag`) created for `number`."""
    with livekit_errors("look for objects of the failed provisioning"):
        inbound = await client.sip.list_inbound_trunk(
            lk.ListSIPInboundTrunkRequest(numbers=[number])
        )
        outbound = await client.sip.list_outbound_trunk(
            lk.ListSIPOutboundTrunkRequest(numbers=[number])
        )
        inbound_ids = [t.sip_trunk_id for t in inbound.items if t.metadata == tag]
        rules = []
        if inbound_ids:
            found = await client.sip.list_dispatch_rule(
                lk.ListSIPDispatchRuleRequest(trunk_ids=inbound_ids)
            )
            rules = [r.sip_dispatch_rule_id for r in found.items if r.sip_dispatch_rule_id]
    outbound_ids = [t.sip_trunk_id for t in outbound.items if t.metadata == tag]
    return [("rule", rule_id) for rule_id in rules] + [
        ("trunk", trunk_id) for trunk_id in outbound_ids + inbound_ids
    ]


async def _get_inbound(client: lk.LiveKitAPI, trunk_id: str) -> lk.SIPInboundTrunkInfo:
    with livekit_errors(f"read inbound trunk {trunk_id}"):
        found = await client.sip.list_inbound_trunk(
            lk.ListSIPInboundTrunkRequest(trunk_ids=[trunk_id])
        )
    return _only(found.items, "inbound trunk", trunk_id)


async def _get_outbound(client: lk.LiveKitAPI, trunk_id: str) -> lk.SIPOutboundTrunkInfo:
    with livekit_errors(f"read outbound trunk {trunk_id}"):
        found = await client.sip.list_outbound_trunk(
            lk.ListSIPOutboundTrunkRequest(trunk_ids=[trunk_id])
        )
    return _only(found.items, "outbound trunk", trunk_id)


async def _get_rule(client: lk.LiveKitAPI, rule_id: str) -> lk.SIPDispatchRuleInfo:
    with livekit_errors(f"read dispatch rule {rule_id}"):
        found = await client.sip.list_dispatch_rule(
            lk.ListSIPDispatchRuleRequest(dispatch_rule_ids=[rule_id])
        )
    return _only(found.items, "dispatch rule", rule_id)


def _only(items: Any, kind: str, object_id: str) -> Any:
    for item in items:
        if object_id in (
            getattr(item, "sip_trunk_id", ""),
            getattr(item, "sip_dispatch_rule_id", ""),
        ):
            return item
    raise LiveKitError(f"the {kind} {object_id} no longer exists in LiveKit", code="not_found")


async def _update_inbound(
    client: lk.LiveKitAPI,
    existing: SipProvisioning,
    krisp_enabled: bool | None,
    label: str | None,
) -> lk.SIPInboundTrunkInfo:
    """Applies the inbound changes; returns the trunk as it was, for undoing."""
    trunk_id = existing.inbound_trunk_id
    original = await _get_inbound(client, trunk_id)
    with livekit_errors(f"update inbound trunk {trunk_id}"):
        if krisp_enabled is None:
            await client.sip.update_inbound_trunk_fields(trunk_id, name=label)
        else:
            changed = lk.SIPInboundTrunkInfo()
            changed.CopyFrom(original)
            changed.krisp_enabled = krisp_enabled
            if label is not None:
                changed.name = label
            await client.sip.update_inbound_trunk(trunk_id, changed)
    return original


async def _update_outbound(
    client: lk.LiveKitAPI, existing: SipProvisioning, changes: dict[str, str]
) -> lk.SIPOutboundTrunkInfo:
    """Patches the outbound trunk; returns it as it was, for undoing."""
    trunk_id = existing.outbound_trunk_id or ""
    original = await _get_outbound(client, trunk_id)
    with livekit_errors(f"update outbound trunk {trunk_id}"):
        await client.sip.update_outbound_trunk_fields(
            trunk_id,
            address=changes.get("address"),
            auth_username=changes.get("auth_username"),
            auth_password=changes.get("auth_password"),
            name=changes.get("name"),
        )
    return original


async def _add_outbound(
    client: lk.LiveKitAPI,
    existing: SipProvisioning,
    sip_address: str,
    auth_username: str | None,
    auth_password: str | None,
    label: str | None,
) -> str:
    """Creates an outbound trunk for a number that had none; returns its id."""
    inbound = await _get_inbound(client, existing.inbound_trunk_id)
    if not inbound.numbers:
        raise LiveKitError(
            f"inbound trunk {existing.inbound_trunk_id} has no number", code="failed_precondition"
        )
    with livekit_errors("create the outbound trunk"):
        outbound = await client.sip.create_outbound_trunk(
            lk.CreateSIPOutboundTrunkRequest(
                trunk=_outbound_trunk(
                    label or inbound.name,
                    inbound.numbers[0],
                    sip_address,
                    auth_username,
                    auth_password,
                    inbound.metadata,
                )
            )
        )
    return outbound.sip_trunk_id


async def _update_rule(
    client: lk.LiveKitAPI,
    existing: SipProvisioning,
    agent_name: str | None,
    metadata: Mapping[str, Any] | None,
    label: str | None,
) -> lk.SIPDispatchRuleInfo:
    """Rewrites the dispatch rule's agent, metadata or name; returns it as it was."""
    rule_id = existing.dispatch_rule_id
    original = await _get_rule(client, rule_id)
    with livekit_errors(f"update dispatch rule {rule_id}"):
        if agent_name is None and metadata is None:
            await client.sip.update_dispatch_rule_fields(rule_id, name=label)
        else:
            changed = lk.SIPDispatchRuleInfo()
            changed.CopyFrom(original)
            if label is not None:
                changed.name = label
            if not changed.room_config.agents:
                changed.room_config.agents.add()
            agent = changed.room_config.agents[0]
            if agent_name is not None:
                agent.agent_name = agent_name
            if metadata is not None:
                agent.metadata = metadata_json(metadata)
            await client.sip.update_dispatch_rule(rule_id, changed)
    return original


async def _undo_updates(client: lk.LiveKitAPI, undo: list[tuple[str, Any]]) -> None:
    """Puts back what a failed update changed, newest first; never raises."""
    for kind, original in reversed(undo):
        try:
            if kind == "created":
                await _delete(client, "trunk", original)
                continue
            with livekit_errors(f"undo the {kind} change"):
                if kind == "inbound":
                    await client.sip.update_inbound_trunk(original.sip_trunk_id, original)
                elif kind == "rule":
                    await client.sip.update_dispatch_rule(original.sip_dispatch_rule_id, original)
                else:
                    await client.sip.update_outbound_trunk_fields(
                        original.sip_trunk_id,
                        address=original.address,
                        auth_username=original.auth_username,
                        name=original.name,
                        # LiveKit may not return the password; only restore one it returned.
                        auth_password=original.auth_password or None,
                    )
        except LiveKitError as e:
            logger.error("could not undo the %s change: %s", kind, e.message)
