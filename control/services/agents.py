"""Agents: create, read, merge-update and delete, with header secrets encrypted at rest."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import ValidationError
from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from control.config import Settings
from control.errors import APIError, field_errors
from control.models import Agent, PhoneNumber
from control.security import decrypt_secret, encrypt_secret, mask_secret
from control.services import knowledge_files
from control.services.agent_config import AgentConfig
from runtime.spec import URLNotAllowedError, check_url_allowed_async

logger = logging.getLogger(__name__)

# A provider change drops the stored model (and voice), so the new provider's default applies.
PROVIDER_DEPENDENTS = {
    "LLM_provider": ("LLM_model", "LLM_base_url"),
    "STT_provider": ("STT_model",),
    "TTS_provider": ("TTS_model", "TTS_voice"),
}


def agents_of(workspace_id: uuid.UUID) -> QuerySet[Agent]:
    return Agent.filter(workspace_id=workspace_id).order_by("-created_at")


async def get_agent(workspace_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
    agent = await Agent.get_or_none(id=agent_id, workspace_id=workspace_id)
    if agent is None:
        raise APIError(404, "AGENT_NOT_FOUND", "No agent with that id in this workspace.")
    return agent


def plain_config(settings: Settings, agent: Agent) -> dict[str, Any]:
    """The agent's settings with header secrets decrypted (for the runtime, never the API)."""
    config = dict(agent.config)
    config["custom_functions"] = [
        {
            **function,
            "headers": {
                name: decrypt_secret(settings, value)
                for name, value in function.get("headers", {}).items()
            },
        }
        for function in config.get("custom_functions", [])
    ]
    return config


def public_config(settings: Settings, agent: Agent) -> dict[str, Any]:
    """The agent's settings as the API shows them: header values masked."""
    config = plain_config(settings, agent)
    for function in config["custom_functions"]:
        function["headers"] = {
            name: mask_secret(value) for name, value in function["headers"].items()
        }
    return config


def _encrypted(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    stored = dict(config)
    stored["custom_functions"] = [
        {
            **function,
            "headers": {
                name: encrypt_secret(settings, value) for name, value in function["headers"].items()
            },
        }
        for function in config["custom_functions"]
    ]
    return stored


def _validated(data: dict[str, Any]) -> AgentConfig:
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as error:
        errors = field_errors(error)
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in errors[:5])
        raise APIError(
            400, "VALIDATION_ERROR", f"Invalid agent: {summary}", errors=errors
        ) from error


async def _check_urls(settings: Settings, config: AgentConfig) -> None:
    for function in config.custom_functions:
        try:
            await check_url_allowed_async(
                function.url, settings.allow_private_urls, unresolvable_ok=True
            )
        except URLNotAllowedError as error:
            raise APIError(
                400,
                "URL_NOT_ALLOWED",
                f"custom function {function.name!r}: {error}",
                errors=[{"field": f"custom_functions.{function.name}.url", "message": str(error)}],
            ) from error


async def _check_number_free(agent: Agent, phone_number: str | None) -> None:
    """A number answers for one agent, and only agents of the workspace that registered it."""
    if phone_number is None:
        return
    taken = Agent.filter(phone_number=phone_number).exclude(id=agent.id)
    registered_elsewhere = PhoneNumber.filter(phone_number=phone_number).exclude(
        workspace_id=agent.workspace_id
    )
    if await taken.exists() or await registered_elsewhere.exists():
        raise APIError(
            409, "PHONE_NUMBER_TAKEN", f"{phone_number} already belongs to another agent."
        )


async def _save(agent: Agent, settings: Settings, config: AgentConfig) -> Agent:
    await _check_urls(settings, config)
    await _check_number_free(agent, config.phone_number)
    stored = _encrypted(settings, config.model_dump(mode="json"))
    agent.agent_name = config.agent_name
    agent.phone_number = config.phone_number
    agent.config = {k: v for k, v in stored.items() if k not in ("agent_name", "phone_number")}
    try:
        await agent.save()
    except IntegrityError as error:  # a concurrent save took the number
        raise APIError(
            409, "PHONE_NUMBER_TAKEN", "That number belongs to another agent."
        ) from error
    return agent


async def create_agent(settings: Settings, workspace_id: uuid.UUID, data: dict[str, Any]) -> Agent:
    config = _validated(data)
    return await _save(Agent(id=uuid.uuid4(), workspace_id=workspace_id), settings, config)


def _keep_masked_headers(
    incoming: list[dict[str, Any]], current: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Header values sent back masked (as the API showed them) keep their stored secret."""
    stored_by_name = {function["name"]: function["headers"] for function in current}
    merged = []
    for function in incoming:
        if not isinstance(function, dict) or not isinstance(function.get("headers"), dict):
            merged.append(function)
            continue
        stored = stored_by_name.get(function.get("name"), {})
        headers = {
            name: stored[name]
            if name in stored and isinstance(value, str) and value == mask_secret(stored[name])
            else value
            for name, value in function["headers"].items()
        }
        merged.append({**function, "headers": headers})
    return merged


async def update_agent(
    settings: Settings, workspace_id: uuid.UUID, agent_id: uuid.UUID, changes: dict[str, Any]
) -> Agent:
    """Merge `changes` (only the fields sent) into the agent and validate the result as a whole."""
    agent = await get_agent(workspace_id, agent_id)
    current = {
        "agent_name": agent.agent_name,
        "phone_number": agent.phone_number,
        **plain_config(settings, agent),
    }
    merged = {**current, **changes}
    for provider_field, dependents in PROVIDER_DEPENDENTS.items():
        if provider_field in changes:
            for dependent in dependents:
                if dependent not in changes:
                    merged.pop(dependent, None)
    if isinstance(changes.get("custom_functions"), list):
        merged["custom_functions"] = _keep_masked_headers(
            changes["custom_functions"], current["custom_functions"]
        )
    return await _save(agent, settings, _validated(merged))


async def delete_agent(settings: Settings, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """Delete the agent, its files and their chunks."""
    agent = await get_agent(workspace_id, agent_id)
    await knowledge_files.forget_agent(settings, agent.id)
    await agent.delete()
