"""Model providers: the catalogue a workspace sees, and its credentials for each vendor.

A workspace's key (and region or endpoint) for a vendor is encrypted at rest with the key ring
(`VOXLINE_ENCRYPTION_KEYS`), never returned in full, and travels to the workers inside a call's
spec for the providers its agent uses. An agent's own `LLM_api_key` overrides it, and it
overrides the platform's environment variable (`runtime.providers.resolve_endpoint`).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from control.config import Settings
from control.errors import Invalid, NotFound
from control.models import WorkspaceProvider
from control.security import (
    SecretUnreadableError,
    decrypt_secret,
    encrypt_secret,
    mask_secret,
)
from runtime.spec import (
    PROVIDER_KINDS,
    PROVIDERS,
    ProviderCredential,
    ProviderInfo,
    URLNotAllowedError,
    check_url_allowed_async,
    credential_providers,
    install_advice,
    normalise_provider,
    provider_configured,
)

logger = logging.getLogger(__name__)


def _vendor(provider: str) -> tuple[str, tuple[ProviderInfo, ...]]:
    name = normalise_provider(provider)
    vendors = credential_providers()
    if name not in vendors:
        raise NotFound(
            "PROVIDER_NOT_FOUND",
            f"No provider {provider!r} takes credentials; known: {', '.join(vendors)}.",
        )
    return name, vendors[name]


async def _stored(workspace_id: uuid.UUID) -> dict[str, WorkspaceProvider]:
    rows = await WorkspaceProvider.filter(workspace_id=workspace_id)
    return {row.provider: row for row in rows}


def _credential(settings: Settings, row: WorkspaceProvider) -> ProviderCredential:
    """Raises SecretUnreadableError when no configured key reads the stored key."""
    return ProviderCredential(
        api_key=decrypt_secret(settings, row.api_key_encrypted) if row.api_key_encrypted else None,
        region=row.region,
        base_url=row.base_url,
    )


def _present(row: WorkspaceProvider | None) -> ProviderCredential | None:
    """What `configured` needs to know of a row, without decrypting it."""
    if row is None:
        return None
    return ProviderCredential(
        api_key="stored" if row.api_key_encrypted else None,
        region=row.region,
        base_url=row.base_url,
    )


def entry(info: ProviderInfo, configured: bool) -> dict[str, Any]:
    """One provider as `GET /providers` shows it."""
    return {
        "name": info.name,
        "label": info.label,
        "models": list(info.models),
        "voices": list(info.voices),
        "languages": list(info.languages),
        "settings": [
            {
                "name": setting.name,
                "type": setting.type,
                "description": setting.description,
                "minimum": setting.minimum,
                "maximum": setting.maximum,
                "choices": list(setting.choices),
            }
            for setting in info.settings
        ],
        "calls_tools": info.calls_tools,
        "extra": info.extra,
        "installed": info.installed(),
        "install": None if info.installed() else install_advice(info.extra),
        "takes_credentials": info.takes_credentials,
        "accepts_base_url": info.accepts_base_url,
        "open_models": info.open_models,
        "configured": configured,
    }


async def catalogue(
    workspace_id: uuid.UUID | None, environ: Mapping[str, str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every provider by kind, each saying whether the workspace (or the platform) can run it."""
    environ = os.environ if environ is None else environ
    stored = await _stored(workspace_id) if workspace_id is not None else {}
    return {
        kind: [
            entry(info, provider_configured(info, _present(stored.get(info.name)), environ))
            for info in PROVIDERS[kind].values()
        ]
        for kind in PROVIDER_KINDS
    }


async def get_credentials(workspace_id: uuid.UUID, provider: str) -> WorkspaceProvider:
    """The workspace's credentials for a vendor; 404 when none are stored."""
    name, _ = _vendor(provider)
    row = await WorkspaceProvider.get_or_none(workspace_id=workspace_id, provider=name)
    if row is None:
        raise NotFound(
            "PROVIDER_NOT_CONFIGURED", f"This workspace has no credentials for {name!r}."
        )
    return row


def _masked(settings: Settings, ciphertext: str) -> str | None:
    try:
        return mask_secret(decrypt_secret(settings, ciphertext))
    except SecretUnreadableError:
        return None


def _host(url: str | None) -> tuple[str, str | None, int | None] | None:
    if not url:
        return None
    parts = urlsplit(url.strip())
    return parts.scheme.lower(), parts.hostname, parts.port


async def put_credentials(
    settings: Settings,
    workspace_id: uuid.UUID,
    provider: str,
    *,
    api_key: str | None,
    region: str | None,
    base_url: str | None,
) -> WorkspaceProvider:
    """Store (or replace) the workspace's credentials for a vendor.

    A masked key sent back (as GET showed it) keeps the stored key while the endpoint stays on
    the same host; a stored key never follows a credential to a new host.

    Raises:
        NotFound: no such vendor.
        Invalid: a missing key, an endpoint the vendor takes none of, or one the address
            policy refuses.
    """
    name, infos = _vendor(provider)
    row = await WorkspaceProvider.get_or_none(workspace_id=workspace_id, provider=name)
    needs_key = any(info.api_key_env for info in infos)
    if base_url is not None and not any(info.accepts_base_url for info in infos):
        raise Invalid(
            "BASE_URL_NOT_ACCEPTED",
            f"{infos[0].label} is reached at its own endpoint; it takes no base_url.",
            field="base_url",
        )
    if base_url is not None:
        try:
            await check_url_allowed_async(
                base_url, settings.allow_private_urls, unresolvable_ok=True
            )
        except URLNotAllowedError as error:
            raise Invalid(
                "URL_NOT_ALLOWED", f"base_url: {error}", field="base_url", message=str(error)
            ) from error
    ciphertext = None
    if api_key is not None:
        stored = row.api_key_encrypted if row else None
        if stored and api_key == _masked(settings, stored):
            if _host(base_url) != _host(row.base_url if row else None):
                raise Invalid(
                    "SECRET_REQUIRED",
                    "base_url now names another host: send api_key again in full (the stored "
                    "key is not sent to a new host)",
                    field="api_key",
                )
            ciphertext = stored
        else:
            ciphertext = encrypt_secret(settings, api_key)
    elif needs_key:
        raise Invalid("API_KEY_REQUIRED", f"{infos[0].label} needs an api_key.", field="api_key")
    elif base_url is None:
        raise Invalid(
            "BASE_URL_REQUIRED",
            f"{infos[0].label} runs on your own server: give its base_url.",
            field="base_url",
        )
    if row is None:
        row = WorkspaceProvider(id=uuid.uuid4(), workspace_id=workspace_id, provider=name)
    row.api_key_encrypted = ciphertext
    row.region = region
    row.base_url = base_url
    await row.save()
    logger.info("workspace %s: credentials for %s set", workspace_id, name)
    return row


async def delete_credentials(workspace_id: uuid.UUID, provider: str) -> None:
    """Forget the workspace's credentials for a vendor (404 when none were stored)."""
    row = await get_credentials(workspace_id, provider)
    await row.delete()
    logger.info("workspace %s: credentials for %s removed", workspace_id, row.provider)


def shown(settings: Settings, row: WorkspaceProvider) -> dict[str, Any]:
    """A credential as the API shows it: the key masked (null when no key reads it)."""
    api_key = None
    unreadable = False
    if row.api_key_encrypted:
        try:
            api_key = mask_secret(decrypt_secret(settings, row.api_key_encrypted))
        except SecretUnreadableError:  # the key that wrote it is gone: it must be set again
            unreadable = True
    return {
        "provider": row.provider,
        "api_key": api_key,
        "api_key_unreadable": unreadable,
        "region": row.region,
        "base_url": row.base_url,
        "updated_at": row.updated_at,
    }


async def credentials_for(
    settings: Settings, workspace_id: uuid.UUID, providers: Iterable[str]
) -> dict[str, ProviderCredential]:
    """The workspace's decrypted credentials for these vendors (those it has), for a call.

    Raises:
        SecretUnreadableError: a stored key no configured key decrypts.
    """
    names = {normalise_provider(name) for name in providers}
    rows = await WorkspaceProvider.filter(workspace_id=workspace_id, provider__in=sorted(names))
    return {row.provider: _credential(settings, row) for row in rows}
