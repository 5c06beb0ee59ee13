"""Agents: create, read, merge-update and delete, with header secrets encrypted at rest."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control.config import Settings
from control.errors import Conflict, Invalid, NotFound, field_errors
from control.models import Agent, AgentVersion, PhoneNumber
from control.security import (
    SecretUnreadableError,
    decrypt_secret,
    encrypt_secret,
    mask_secret,
)
from control.services import agent_versions, knowledge_files
from control.services.agent_config import AgentConfig
from runtime.spec import URLNotAllowedError, check_url_allowed_async

logger = logging.getLogger(__name__)

# A provider change drops the stored model (and voice), so the new provider's default applies.
PROVIDER_DEPENDENTS = {
    "LLM_provider": ("LLM_model", "LLM_base_url", "LLM_api_key", "LLM_settings"),
    "STT_provider": ("STT_model", "STT_settings"),
    "TTS_provider": ("TTS_model", "TTS_voice", "TTS_settings"),
}


def agents_of(workspace_id: uuid.UUID) -> QuerySet[Agent]:
    return Agent.filter(workspace_id=workspace_id).order_by("-created_at")


async def get_agent(workspace_id: uuid.UUID | None, agent_id: uuid.UUID) -> Agent:
    """An agent by id, within `workspace_id` (None only for the service-token endpoints)."""
    query = Agent.filter(id=agent_id)
    if workspace_id is not None:
        query = query.filter(workspace_id=workspace_id)
    agent = await query.first()
    if agent is None:
        where = "" if workspace_id is None else " in this workspace"
        raise NotFound("AGENT_NOT_FOUND", f"No agent with that id{where}.")
    return agent


LLM_KEY_FIELD = "LLM_api_key"
SEALED_PREFIX = "sealed-secret:"


def _open_secret(
    settings: Settings, ciphertext: str, what: str, sealed: dict[str, str] | None
) -> str:
    try:
        return decrypt_secret(settings, ciphertext)
    except SecretUnreadableError as error:
        if sealed is None:
            raise SecretUnreadableError(
                f"{what} cannot be decrypted with the configured encryption keys "
                "(VOXLINE_ENCRYPTION_KEYS); set it again"
            ) from error
        # derived from the ciphertext, so two readings of one stored secret compare equal
        placeholder = SEALED_PREFIX + hashlib.sha256(ciphertext.encode()).hexdigest()[:32]
        sealed[placeholder] = ciphertext
        return placeholder


def plain_config(
    settings: Settings,
    agent: Agent,
    *,
    sealed: dict[str, str] | None = None,
    version: AgentVersion | None = None,
) -> dict[str, Any]:
    """The agent's settings with its secrets decrypted (for the runtime, never the API): as
    `version` has them, or the latest when it is None.

    A secret that no configured key decrypts raises `SecretUnreadableError` (naming it), unless
    `sealed` is given: then its value is a placeholder that `sealed` maps to the stored
    ciphertext, so that saving the agent again keeps the secret as it is.
    """
    return _opened(settings, agent_versions.runs_with(agent, version), sealed)


def _opened(
    settings: Settings, stored: dict[str, Any], sealed: dict[str, str] | None
) -> dict[str, Any]:
    config = dict(stored)
    config["custom_functions"] = [
        {
            **function,
            "headers": {
                name: _open_secret(
                    settings,
                    value,
                    f"header {name!r} of custom function {function.get('name')!r}",
                    sealed,
                )
                for name, value in function.get("headers", {}).items()
            },
        }
        for function in config.get("custom_functions", [])
    ]
    if config.get(LLM_KEY_FIELD):
        config[LLM_KEY_FIELD] = _open_secret(settings, config[LLM_KEY_FIELD], LLM_KEY_FIELD, sealed)
    return config


def public_config(
    settings: Settings, agent: Agent, version: AgentVersion | None = None
) -> dict[str, Any]:
    """The agent's settings as the API shows them (as `version` has them, else the latest):
    secrets masked.

    A secret no configured key decrypts shows as null, and `unreadable_secrets` names it.
    """
    sealed: dict[str, str] = {}
    config = plain_config(settings, agent, sealed=sealed, version=version)
    unreadable: list[str] = []

    def shown(value: str, field: str) -> str | None:
        if value in sealed:
            unreadable.append(field)
            return None
        return mask_secret(value)

    for function in config["custom_functions"]:
        function["headers"] = {
            name: shown(value, f"custom_functions.{function['name']}.headers.{name}")
            for name, value in function["headers"].items()
        }
    if config.get(LLM_KEY_FIELD):
        config[LLM_KEY_FIELD] = shown(config[LLM_KEY_FIELD], LLM_KEY_FIELD)
    else:
        config[LLM_KEY_FIELD] = None
    config["unreadable_secrets"] = unreadable
    return config


def _encrypted(
    settings: Settings, config: dict[str, Any], sealed: dict[str, str] | None = None
) -> dict[str, Any]:
    sealed = sealed or {}

    def seal(value: str) -> str:
        return sealed[value] if value in sealed else encrypt_secret(settings, value)

    stored = dict(config)
    stored["custom_functions"] = [
        {
            **function,
            "headers": {name: seal(value) for name, value in function["headers"].items()},
        }
        for function in config["custom_functions"]
    ]
    if stored.get(LLM_KEY_FIELD):
        stored[LLM_KEY_FIELD] = seal(stored[LLM_KEY_FIELD])
    else:
        stored.pop(LLM_KEY_FIELD, None)
    return stored


def _validated(data: dict[str, Any]) -> AgentConfig:
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as error:
        errors = field_errors(error)
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in errors[:5])
        raise Invalid("VALIDATION_ERROR", f"Invalid agent: {summary}", errors=errors) from error


async def _check_urls(settings: Settings, config: AgentConfig) -> None:
    """The SSRF policy on every URL an agent calls (checked again at call time, after DNS).

    The LLM endpoint is called from the control plane (chats, analysis) and the workers alike.
    """
    urls = [("LLM_base_url", "LLM_base_url", config.LLM_base_url)]
    for function in config.custom_functions:
        field = f"custom_functions.{function.name}.url"
        urls.append((f"custom function {function.name!r}", field, function.url))
    for index, destination in enumerate(config.transfer_destinations):
        field = f"transfer_destinations.{index}.hold_audio_url"
        urls.append((f"hold audio of {destination.name!r}", field, destination.hold_audio_url))
    for what, field, url in urls:
        if not url:
            continue
        try:
            await check_url_allowed_async(url, settings.allow_private_urls, unresolvable_ok=True)
        except URLNotAllowedError as error:
            raise Invalid(
                "URL_NOT_ALLOWED",
                f"{what}: {error}",
                field=field,
                message=str(error),
            ) from error


async def _check_handoffs(agent: Agent, config: AgentConfig) -> None:
    """Hand-offs go to other agents of the agent's own workspace, never to itself."""
    for index, handoff in enumerate(config.handoff_destinations):
        field = f"handoff_destinations.{index}.agent_id"
        if handoff.agent_id == agent.id:
            raise Invalid(
                "VALIDATION_ERROR",
                f"{field}: an agent cannot hand a call to itself",
                field=field,
                message="an agent cannot hand a call to itself",
            )
        if not await Agent.exists(id=handoff.agent_id, workspace_id=agent.workspace_id):
            raise Invalid(
                "VALIDATION_ERROR",
                f"{field}: no agent with that id in this workspace",
                field=field,
                message="no agent with that id in this workspace",
            )


async def _answering_number(agent: Agent, phone_number: str | None) -> str | None:
    """The number the agent answers on: the one it names, if its workspace registered it.

    A number the workspace has not registered (`PhoneNumber`, the only proof of ownership) is
    kept in the agent's settings but is inert: it routes nothing and blocks nobody.
    """
    if phone_number is None or not await PhoneNumber.exists(
        workspace_id=agent.workspace_id, phone_number=phone_number
    ):
        return None
    taken = Agent.filter(workspace_id=agent.workspace_id, phone_number=phone_number)
    if await taken.exclude(id=agent.id).exists():
        raise Conflict(
            "PHONE_NUMBER_TAKEN",
            f"{phone_number} already answers for another agent of this workspace; move it with "
            "PUT /phonenumbers/map_agent.",
        )
    return phone_number


def phone_number_status(agent: Agent) -> dict[str, Any]:
    """Whether the number the agent names routes calls, as the agent detail shows it."""
    named = agent.config.get("phone_number", agent.phone_number)
    if named is None:
        return {"phone_number_status": None}
    if agent.phone_number == named:
        return {"phone_number_status": "active"}
    return {
        "phone_number_status": "not_registered",
        "phone_number_warning": (
            f"This workspace has not registered {named}, so it routes no calls to this agent "
            "and cannot place calls; register it with POST /phonenumbers/purchase or "
            "POST /phonenumbers/sip_trunk."
        ),
    }


WEB_CALL_KEY_FIELD = "web_call_public_key"
WEB_CALL_KEY_PREFIX = "wpk_"


def new_web_call_key(agent_id: uuid.UUID) -> str:
    """A web-call public key; it names its agent, so generate-token needs no lookup by number."""
    return f"{WEB_CALL_KEY_PREFIX}{agent_id.hex}_{secrets.token_urlsafe(24)}"


def agent_id_of_web_call_key(key: str) -> uuid.UUID | None:
    if not key.startswith(WEB_CALL_KEY_PREFIX):
        return None
    try:
        return uuid.UUID(hex=key[len(WEB_CALL_KEY_PREFIX) :].split("_", 1)[0])
    except ValueError:
        return None


async def rotate_web_call_key(workspace_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
    """Give the agent a new web-call public key; the old one stops working at once."""
    agent = await get_agent(workspace_id, agent_id)
    if not agent.config.get("allow_web_calls"):
        raise Conflict(
            "WEB_CALLS_DISABLED",
            "Set allow_web_calls to true first; then the agent has a key.",
        )
    agent.config = {**agent.config, WEB_CALL_KEY_FIELD: new_web_call_key(agent.id)}
    await agent.save(update_fields=["config", "updated_at"])
    return agent


def _same_settings(settings: Settings) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    """Whether two stored configurations run alike: compared decrypted, as every save encrypts
    its secrets anew (one no key reads compares by its ciphertext)."""

    def same(first: dict[str, Any], second: dict[str, Any]) -> bool:
        return _opened(settings, first, {}) == _opened(settings, second, {})

    return same


# What a save takes that is the agent's own, not part of its stored configuration.
AGENT_OWN_FIELDS = ("agent_name", "version_note", *agent_versions.VERSION_SETTINGS)


async def _save(
    agent: Agent,
    settings: Settings,
    config: AgentConfig,
    sealed: dict[str, str] | None = None,
    *,
    author: str | None = None,
    restoring: bool = False,
) -> Agent:
    """Store the agent, and a new version when what its calls do changed (always, `restoring`),
    published as its version settings say."""
    await _check_urls(settings, config)
    await _check_handoffs(agent, config)
    answering = await _answering_number(agent, config.phone_number)
    stored = _encrypted(settings, config.model_dump(mode="json"), sealed)
    agent.agent_name = config.agent_name
    web_call_key = agent.config.get(WEB_CALL_KEY_FIELD) if agent.config else None
    if config.allow_web_calls and not web_call_key:
        web_call_key = new_web_call_key(agent.id)
    agent.phone_number = answering
    agent.config = {k: v for k, v in stored.items() if k not in AGENT_OWN_FIELDS}
    if web_call_key:
        agent.config[WEB_CALL_KEY_FIELD] = web_call_key
    agent.auto_publish = config.auto_publish
    agent.require_passing_tests = config.require_passing_tests
    agent.traffic_split = stored.get("traffic_split")
    try:
        async with in_transaction():
            await agent.save()
            version = await agent_versions.record(
                agent,
                agent.config,
                _same_settings(settings),
                author=author,
                note=config.version_note,
                always=restoring,
            )
            await agent_versions.check_split(agent, agent.traffic_split)
            await agent_versions.after_save(agent, version)
    except IntegrityError as error:  # a concurrent save took the number
        raise Conflict("PHONE_NUMBER_TAKEN", "That number belongs to another agent.") from error
    return agent


async def create_agent(
    settings: Settings,
    workspace_id: uuid.UUID,
    data: dict[str, Any],
    *,
    author: str | None = None,
) -> Agent:
    """A new agent; it starts at version 1, published. `author` labels who saved it."""
    config = _validated(data)
    return await _save(
        Agent(id=uuid.uuid4(), workspace_id=workspace_id), settings, config, author=author
    )


def _origin(url: Any) -> tuple[str, str | None, int | None] | None:
    """Scheme, host and port of a URL: where a stored secret may be sent."""
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    return parts.scheme.lower(), parts.hostname, port


def _secret_required(field: str, message: str) -> Invalid:
    return Invalid("SECRET_REQUIRED", message, field=field)


def _keep_masked_headers(
    incoming: list[dict[str, Any]], current: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Header values sent back masked (as the API showed them) keep their stored secret.

    Only while the function's URL stays on the same host: a stored secret never follows a
    function to a new host (the header must then be sent again in full).
    """
    stored_by_name = {function["name"]: function for function in current}
    merged = []
    for function in incoming:
        if not isinstance(function, dict) or not isinstance(function.get("headers"), dict):
            merged.append(function)
            continue
        name = function.get("name")
        stored_function = stored_by_name.get(name, {})
        stored = stored_function.get("headers", {})
        headers = {}
        for header, value in function["headers"].items():
            if header in stored and isinstance(value, str) and value == mask_secret(stored[header]):
                if _origin(function.get("url")) != _origin(stored_function.get("url")):
                    raise _secret_required(
                        f"custom_functions.{name}.headers.{header}",
                        f"custom function {name!r} now calls another host: send the value of "
                        f"header {header!r} again in full (the stored one is not sent to a new "
                        "host)",
                    )
                value = stored[header]
            headers[header] = value
        merged.append({**function, "headers": headers})
    return merged


def _keep_llm_key(changes: dict[str, Any], current: dict[str, Any], merged: dict[str, Any]) -> None:
    """A masked `LLM_api_key` sent back keeps the stored key, as long as the LLM's host stays."""
    stored = current.get(LLM_KEY_FIELD)
    if not stored:
        return
    if LLM_KEY_FIELD in changes:
        if changes[LLM_KEY_FIELD] != mask_secret(stored):
            return  # a new key (or null): nothing stored goes anywhere
        merged[LLM_KEY_FIELD] = stored
    if merged.get(LLM_KEY_FIELD) == stored:  # kept (a provider change drops it)
        if _origin(merged.get("LLM_base_url")) != _origin(current.get("LLM_base_url")):
            raise _secret_required(
                LLM_KEY_FIELD,
                "LLM_base_url now names another host: send LLM_api_key again in full (or null "
                "to send no key); the stored key is not sent to a new host",
            )


def _current(
    settings: Settings, agent: Agent, sealed: dict[str, str], version: AgentVersion | None = None
) -> dict[str, Any]:
    """The agent as a save takes it: its own fields and its settings (as `version` has them)."""
    return {
        "agent_name": agent.agent_name,
        "phone_number": agent.phone_number,
        "auto_publish": agent.auto_publish,
        "require_passing_tests": agent.require_passing_tests,
        "traffic_split": agent.traffic_split,
        **plain_config(settings, agent, sealed=sealed, version=version),
    }


async def update_agent(
    settings: Settings,
    workspace_id: uuid.UUID,
    agent_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    author: str | None = None,
) -> Agent:
    """Merge `changes` (only the fields sent) into the agent and validate the result as a whole."""
    agent = await get_agent(workspace_id, agent_id)
    sealed: dict[str, str] = {}  # secrets no key reads: kept as stored unless replaced
    current = _current(settings, agent, sealed)
    merged = {**current, **changes}
    merged.pop(WEB_CALL_KEY_FIELD, None)  # read-only; `_save` keeps the stored one
    for provider_field, dependents in PROVIDER_DEPENDENTS.items():
        if provider_field in changes:
            for dependent in dependents:
                if dependent not in changes:
                    merged.pop(dependent, None)
    if isinstance(changes.get("custom_functions"), list):
        merged["custom_functions"] = _keep_masked_headers(
            changes["custom_functions"], current["custom_functions"]
        )
    _keep_llm_key(changes, current, merged)
    return await _save(agent, settings, _validated(merged), sealed, author=author)


async def restore_version(
    settings: Settings,
    workspace_id: uuid.UUID,
    agent_id: uuid.UUID,
    number: int,
    *,
    author: str | None = None,
) -> tuple[Agent, AgentVersion]:
    """A new version equal to version `number` (checked as any save is); the agent's own
    fields (name, number, web-call access, version settings) stay as they are.

    Raises:
        NotFound: `AGENT_NOT_FOUND`, `VERSION_NOT_FOUND`.
    """
    agent = await get_agent(workspace_id, agent_id)
    version = await agent_versions.get_version(agent, number)
    sealed: dict[str, str] = {}
    restored = _current(settings, agent, sealed, version)
    restored.pop(WEB_CALL_KEY_FIELD, None)
    restored["version_note"] = f"Restored from version {number}"
    await _save(agent, settings, _validated(restored), sealed, author=author, restoring=True)
    newest = await agent_versions.latest(agent)
    if newest is None:  # not reached: a restoring save always makes a version
        raise NotFound("VERSION_NOT_FOUND", "The agent has no versions.")
    return agent, newest


async def delete_agent(settings: Settings, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """Delete the agent, its files and their chunks."""
    agent = await get_agent(workspace_id, agent_id)
    await knowledge_files.forget_agent(settings, agent.id)
    await agent.delete()
