"""Post-call analysis: summary, disposition, sentiment and extracted data, with the agent's LLM."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from control.config import Settings
from control.dialing import campaign_dialer, campaigns
from control.errors import DomainError
from control.models import Agent, Call, Campaign, Prospect
from control.services import agent_versions, chats
from control.services.calls import agent_spec, emit_once

logger = logging.getLogger(__name__)

SENTIMENTS = ("positive", "neutral", "negative")
ANALYST_PROMPT = (
    "You analyse finished phone calls. Answer with one JSON object and nothing else, with the "
    "keys: {keys}."
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def _wanted(config: dict[str, Any]) -> dict[str, str]:
    """The JSON keys to ask for, each with what it should hold."""
    keys: dict[str, str] = {}
    if config.get("summary"):
        keys["summary"] = "two or three sentences summarising the call"
    if config.get("dispositions"):
        names = ", ".join(
            f"{item['name']} ({item.get('description') or item['name']})"
            for item in config["dispositions"]
        )
        keys["disposition"] = f"exactly one of: {names}"
    if config.get("sentiment"):
        keys["sentiment"] = "the caller's sentiment: positive, neutral or negative"
    for point in config.get("data_points", []):
        keys[point["name"]] = f"{point['type']}: {point.get('description') or point['name']}"
    if config.get("success_evaluation"):
        keys["success"] = f"true or false: {config['success_evaluation']}"
    return keys


JSON_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}


def reply_schema(config: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of the analysis asked for: what a local LLM's decoding is held to."""
    properties: dict[str, Any] = {}
    if config.get("summary"):
        properties["summary"] = {"type": "string"}
    if config.get("dispositions"):
        properties["disposition"] = {"enum": [item["name"] for item in config["dispositions"]]}
    if config.get("sentiment"):
        properties["sentiment"] = {"enum": list(SENTIMENTS)}
    for point in config.get("data_points", []):
        properties[point["name"]] = {"type": JSON_TYPES.get(point.get("type"), "string")}
    if config.get("success_evaluation"):
        properties["success"] = {"type": "boolean"}
    return {"type": "object", "properties": properties, "required": list(properties)}


def _transcript_text(call: Call) -> str:
    lines = [
        f"{turn['role']}: {turn['text']}"
        for turn in call.transcript
        if turn.get("role") in ("user", "assistant") and turn.get("text")
    ]
    return "\n".join(lines)


def _parse(text: str) -> dict[str, Any]:
    match = _JSON_OBJECT.search(text or "")
    if not match:
        return {}
    try:
        parsed = json.loads(match.group(0))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


CALLBACK_POINT = "callback_at"


def campaign_analysis(
    config: dict[str, Any], campaign: Campaign, zones: tuple[str, ...], ended_at: datetime
) -> dict[str, Any]:
    """The analysis of a campaign's call: the disposition is one of the campaign's, and the
    time the person asked to be called back at ("call me tomorrow at 3") is captured."""
    zone = ZoneInfo(zones[0])
    local_now = ended_at.astimezone(zone).isoformat(timespec="minutes")
    callback = {
        "name": CALLBACK_POINT,
        "type": "string",
        "description": (
            "when the person asked to be called back, as an ISO 8601 date-time with its UTC "
            f"offset in their time zone {zone.key} (the call ended at {local_now} there); "
            "empty if they did not ask"
        ),
    }
    points = [point for point in config.get("data_points", []) if point["name"] != CALLBACK_POINT]
    return {**config, "dispositions": campaign.dispositions, "data_points": [*points, callback]}


def callback_time(value: Any, zones: tuple[str, ...], ended_at: datetime) -> datetime | None:
    """The callback time the analysis captured, in UTC (None: none, unreadable or past)."""
    try:
        moment = datetime.fromisoformat(str(value).strip()) if value else None
    except ValueError:
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # a local time: the prospect's
        moment = moment.replace(tzinfo=ZoneInfo(zones[0]))
    moment = moment.astimezone(UTC)
    return moment if moment > ended_at else None


async def analyse_call(settings: Settings, call_id: uuid.UUID, redis: Redis) -> Call | None:
    """Analyse a finished call as its agent configures, store the result, fire `call_analyzed`.

    A campaign's call is analysed with the campaign's dispositions; its prospect is then settled
    and given the disposition (a callback at the time the person asked for, or do-not-call).
    """
    call = await Call.get_or_none(id=call_id)
    if call is None or call.agent_id is None or not _transcript_text(call):
        return None
    agent = await Agent.get(id=call.agent_id)
    version = await agent_versions.recorded(agent, call.agent_version)  # as the call ran
    config = agent_versions.runs_with(agent, version).get("post_call_analysis", {})
    campaign = await Campaign.get_or_none(id=call.campaign_id) if call.campaign_id else None
    if campaign is not None and not campaign.dispositions:
        campaign = None  # a campaign's dispositions, when it has any, replace the agent's
    prospect = await Prospect.get_or_none(call_id=call.id) if campaign else None
    ended_at = call.ended_at or call.created_at
    if campaign is not None and prospect is not None:
        zones = campaign_dialer.zones_of(prospect, campaign.locale_name)
        config = campaign_analysis(config, campaign, zones, ended_at)
    keys = _wanted(config)
    if not keys:
        return None
    spec = (await agent_spec(settings, agent, version)).replace(
        system_prompt=ANALYST_PROMPT.format(keys=json.dumps(keys)),
        first_message="",
        custom_functions=(),
        knowledge_ready=False,
        temperature=0.0,
        reply_schema=reply_schema(config),
    )
    try:
        reply = await chats.run_turn(
            settings,
            agent=spec,
            message=f"Analyse this call:\n{_transcript_text(call)}",
            session_id=f"analysis-{call.id}",
            workspace_id=str(call.workspace_id),
        )
    except DomainError as error:  # e.g. the agent's LLM has no key: the call log stands without it
        logger.warning("post-call analysis of %s skipped: %s", call.id, error.detail)
        return None
    except Exception:  # analysis is best effort
        logger.exception("post-call analysis of %s failed", call.id)
        return None
    result = _parse(reply.reply)
    allowed = {item["name"] for item in config.get("dispositions", [])}
    call.summary = str(result["summary"]) if result.get("summary") else None
    call.disposition = result.get("disposition") if result.get("disposition") in allowed else None
    call.sentiment = result.get("sentiment") if result.get("sentiment") in SENTIMENTS else None
    call.extracted_data = {
        key: value
        for key, value in result.items()
        if key not in ("summary", "disposition", "sentiment")
    }
    await call.save(update_fields=["summary", "disposition", "sentiment", "extracted_data"])
    await emit_once(
        call,
        "call_analyzed",
        {
            "call_id": str(call.id),
            "transcript": call.transcript,
            "summary": call.summary,
            "disposition": call.disposition,
            "sentiment": call.sentiment,
            "extracted_data": call.extracted_data,
            "recording_url": call.recording_url,
        },
    )
    if campaign is not None and prospect is not None and call.disposition:
        # Settled first: the dialer's settling of the attempt must not overwrite the disposition.
        prospect = await campaign_dialer.settle_call(call, redis)
        if prospect is not None:
            when = callback_time(call.extracted_data.get(CALLBACK_POINT), zones, ended_at)
            await campaigns.apply_disposition(
                prospect, call.disposition, callback_at=when, source="dialer"
            )
    return call
