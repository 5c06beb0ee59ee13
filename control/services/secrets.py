"""Secrets at rest: re-encrypting every stored secret with the newest key (`voxline rotate-keys`).

Encrypted fields: agents' custom-function header values and `LLM_api_key` (in `Agent.config`
and each `AgentVersion.config`),
SIP auth passwords of phone numbers, webhook signing secrets, and workspaces' provider keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tortoise.transactions import in_transaction

from control.config import Settings
from control.models import Agent, AgentVersion, PhoneNumber, WebhookEndpoint, WorkspaceProvider
from control.security import SecretUnreadableError, reencrypt_secret

logger = logging.getLogger(__name__)


@dataclass
class Rotation:
    """What `rotate_secrets` did: secrets re-encrypted, and the ones no key could read."""

    rotated: int = 0
    unreadable: list[str] = field(default_factory=list)


def _rotate(settings: Settings, ciphertext: str, where: str, result: Rotation) -> str:
    try:
        rotated = reencrypt_secret(settings, ciphertext)
    except SecretUnreadableError:
        result.unreadable.append(where)
        return ciphertext  # kept as it is: a key added back later may still read it
    result.rotated += 1
    return rotated


def _rotate_agent_config(
    settings: Settings, stored: dict[str, Any], owner: str, result: Rotation
) -> dict[str, Any]:
    """An agent's stored settings (or one version's) with their secrets re-encrypted."""
    config = dict(stored)
    functions = []
    for function in config.get("custom_functions", []):
        headers = {
            name: _rotate(
                settings,
                value,
                f"{owner}: header {name!r} of custom function {function.get('name')!r}",
                result,
            )
            for name, value in function.get("headers", {}).items()
        }
        functions.append({**function, "headers": headers})
    if "custom_functions" in config:
        config["custom_functions"] = functions
    if config.get("LLM_api_key"):
        config["LLM_api_key"] = _rotate(
            settings, config["LLM_api_key"], f"{owner}: LLM_api_key", result
        )
    return config


async def rotate_secrets(settings: Settings) -> Rotation:
    """Re-encrypt every stored secret with the newest key (the first of the keys).

    A secret no configured key decrypts is left as it is and listed in `unreadable`.
    """
    result = Rotation()
    async with in_transaction():
        for agent in await Agent.all().select_for_update():
            agent.config = _rotate_agent_config(settings, agent.config, f"agent {agent.id}", result)
            await agent.save(update_fields=["config"])
        for version in await AgentVersion.all().select_for_update():
            owner = f"agent {version.agent_id} version {version.number}"
            version.config = _rotate_agent_config(settings, version.config, owner, result)
            await version.save(update_fields=["config"])
        for number in await PhoneNumber.filter(auth_password_encrypted__isnull=False):
            if number.auth_password_encrypted is None:  # the filter leaves none; narrows the type
                continue
            number.auth_password_encrypted = _rotate(
                settings,
                number.auth_password_encrypted,
                f"phone number {number.id}: auth_password",
                result,
            )
            await number.save(update_fields=["auth_password_encrypted"])
        for endpoint in await WebhookEndpoint.all():
            endpoint.secret_encrypted = _rotate(
                settings,
                endpoint.secret_encrypted,
                f"webhook endpoint of workspace {endpoint.workspace_id}: signing secret",
                result,
            )
            await endpoint.save(update_fields=["secret_encrypted"])
        for credential in await WorkspaceProvider.filter(api_key_encrypted__isnull=False):
            if credential.api_key_encrypted is None:  # the filter leaves none; narrows the type
                continue
            credential.api_key_encrypted = _rotate(
                settings,
                credential.api_key_encrypted,
                f"workspace {credential.workspace_id}: {credential.provider} api_key",
                result,
            )
            await credential.save(update_fields=["api_key_encrypted"])
    for where in result.unreadable:
        logger.warning("%s cannot be decrypted with any configured key; set it again", where)
    return result
