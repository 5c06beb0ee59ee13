"""`GET /providers` and a workspace's provider credentials (`/workspaces/{id}/providers/...`)."""

from __future__ import annotations

import sys

import pytest

from control.models import Role, WorkspaceProvider
from control.security import decrypt_secret
from control.services.agents import create_agent
from control.services.calls import agent_spec
from control.services.secrets import rotate_secrets
from tests.conftest import auth_headers, make_user

KEY = "sk-ant-workspace-key-1234"


@pytest.fixture
async def admin(db):
    return await make_user("admin@example.com", role=Role.ADMIN)


def _url(workspace, provider: str) -> str:
    return f"/workspaces/{workspace.id}/providers/{provider}"


def _by_name(catalogue: dict, kind: str) -> dict:
    return {entry["name"]: entry for entry in catalogue[kind]}


async def test_the_catalogue_lists_every_kind_with_what_the_agent_form_needs(
    client, settings, admin, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("GROQ_API_KEY", "gsk-platform")
    user, _ = admin
    response = await client.get("/providers", headers=auth_headers(settings, user))
    assert response.status_code == 200
    body = await response.get_json()
    llm, stt, tts = (_by_name(body, kind) for kind in ("llm", "stt", "tts"))
    assert {"openai", "anthropic", "groq", "local", "together", "ollama"} <= set(llm)
    assert {"deepgram", "assemblyai", "google", "azure", "local"} <= set(stt)
    assert {"openai", "elevenlabs", "cartesia", "deepgram", "google", "azure", "local"} <= set(tts)
    anthropic = llm["anthropic"]
    assert anthropic["extra"] == "anthropic" and anthropic["installed"] is True
    assert anthropic["calls_tools"] is True and "claude-sonnet-4-6" in anthropic["models"]
    assert anthropic["configured"] is False  # neither the workspace nor the platform has a key
    assert llm["groq"]["configured"] is True  # the platform's environment has one
    assert llm["local"]["calls_tools"] is False and llm["local"]["configured"] is True
    settings_of = {s["name"]: s for s in tts["elevenlabs"]["settings"]}
    assert settings_of["stability"] == {
        "name": "stability",
        "type": "number",
        "description": "",
        "minimum": 0,
        "maximum": 1,
        "choices": [],
    }
    assert "Calm" in {s["name"]: s for s in tts["cartesia"]["settings"]}["emotion"]["choices"]
    assert tts["elevenlabs"]["voices"] and tts["elevenlabs"]["languages"]
    assert llm["ollama"]["accepts_base_url"] is True and llm["ollama"]["extra"] is None


async def test_the_catalogue_needs_a_login(client):
    response = await client.get("/providers")
    assert response.status_code == 401


async def test_credentials_are_write_only_encrypted_and_make_the_provider_configured(
    client, settings, admin, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    user, workspace = admin
    headers = auth_headers(settings, user)

    missing = await client.get(_url(workspace, "anthropic"), headers=headers)
    assert missing.status_code == 404
    assert (await missing.get_json())["code"] == "PROVIDER_NOT_CONFIGURED"

    put = await client.put(_url(workspace, "Anthropic"), json={"api_key": KEY}, headers=headers)
    assert put.status_code == 200, await put.get_json()
    shown = await put.get_json()
    assert shown["provider"] == "anthropic" and shown["api_key"] == "****1234"
    assert KEY not in str(shown)
    row = await WorkspaceProvider.get(workspace_id=workspace.id, provider="anthropic")
    assert row.api_key_encrypted != KEY and decrypt_secret(settings, row.api_key_encrypted) == KEY

    got = await client.get(_url(workspace, "anthropic"), headers=headers)
    assert (await got.get_json())["api_key"] == "****1234"
    catalogue = await (await client.get("/providers", headers=headers)).get_json()
    assert _by_name(catalogue, "llm")["anthropic"]["configured"] is True

    # the masked key sent back keeps the stored one
    again = await client.put(
        _url(workspace, "anthropic"), json={"api_key": "****1234"}, headers=headers
    )
    assert again.status_code == 200
    await row.refresh_from_db()
    assert decrypt_secret(settings, row.api_key_encrypted) == KEY

    deleted = await client.delete(_url(workspace, "anthropic"), headers=headers)
    assert deleted.status_code == 204
    assert not await WorkspaceProvider.filter(workspace_id=workspace.id).exists()
    catalogue = await (await client.get("/providers", headers=headers)).get_json()
    assert _by_name(catalogue, "llm")["anthropic"]["configured"] is False
    assert (await client.delete(_url(workspace, "anthropic"), headers=headers)).status_code == 404


async def test_one_key_serves_every_kind_of_its_vendor(client, settings, admin, monkeypatch):
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    user, workspace = admin
    headers = auth_headers(settings, user)
    response = await client.put(
        _url(workspace, "deepgram"), json={"api_key": "dg-workspace"}, headers=headers
    )
    assert response.status_code == 200
    catalogue = await (await client.get("/providers", headers=headers)).get_json()
    assert _by_name(catalogue, "stt")["deepgram"]["configured"] is True
    assert _by_name(catalogue, "tts")["deepgram"]["configured"] is True


@pytest.mark.parametrize(
    ("provider", "body", "status", "code"),
    [
        ("anthropic", {}, 400, "API_KEY_REQUIRED"),
        ("anthropic", {"api_key": "k", "base_url": "https://x.example.com"}, 400, None),
        ("ollama", {}, 400, "BASE_URL_REQUIRED"),
        ("ollama", {"base_url": "http://169.254.169.254/v1"}, 400, "URL_NOT_ALLOWED"),
        ("anthropic", {"api_key": " padded "}, 400, "VALIDATION_ERROR"),
        ("anthropic", {"api_key": "k", "colour": "red"}, 400, "VALIDATION_ERROR"),
        ("local", {"api_key": "k"}, 404, "PROVIDER_NOT_FOUND"),
        ("nosuchvendor", {"api_key": "k"}, 404, "PROVIDER_NOT_FOUND"),
    ],
)
async def test_bad_credentials_are_refused_and_nothing_is_stored(
    client, settings, admin, provider, body, status, code
):
    user, workspace = admin
    response = await client.put(
        _url(workspace, provider), json=body, headers=auth_headers(settings, user)
    )
    assert response.status_code == status
    if code is None:
        assert (await response.get_json())["code"] == "BASE_URL_NOT_ACCEPTED"
    else:
        assert (await response.get_json())["code"] == code
    assert not await WorkspaceProvider.all().exists()


async def test_a_self_hosted_server_needs_only_its_address(client, settings, admin):
    user, workspace = admin
    response = await client.put(
        _url(workspace, "ollama"),
        json={"base_url": "https://ollama.example.com/v1"},
        headers=auth_headers(settings, user),
    )
    assert response.status_code == 200
    body = await response.get_json()
    assert body["api_key"] is None and body["base_url"] == "https://ollama.example.com/v1"


async def test_a_stored_key_never_follows_a_new_base_url(client, settings, admin):
    user, workspace = admin
    headers = auth_headers(settings, user)
    first = {"api_key": "vllm-secret-9876", "base_url": "https://vllm.example.com/v1"}
    assert (await client.put(_url(workspace, "vllm"), json=first, headers=headers)).is_json
    moved = {"api_key": "****9876", "base_url": "https://elsewhere.example.com/v1"}
    response = await client.put(_url(workspace, "vllm"), json=moved, headers=headers)
    assert response.status_code == 400
    assert (await response.get_json())["code"] == "SECRET_REQUIRED"


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.MEMBER])
async def test_only_admins_touch_credentials(client, settings, admin, role):
    _, workspace = admin
    other, _ = await make_user(f"{role.value}@example.com", role=role, workspace=workspace)
    headers = auth_headers(settings, other)
    for method in ("get", "put", "delete"):
        response = await getattr(client, method)(
            _url(workspace, "anthropic"), json={"api_key": KEY}, headers=headers
        )
        assert response.status_code == 403
    assert not await WorkspaceProvider.all().exists()


async def test_another_workspaces_credentials_are_not_found(client, settings, admin):
    _, workspace = admin
    stranger, _ = await make_user("stranger@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, stranger)
    response = await client.put(
        _url(workspace, "anthropic"), json={"api_key": KEY}, headers=headers
    )
    assert response.status_code == 404
    assert not await WorkspaceProvider.all().exists()


async def test_a_provider_without_its_extra_is_refused_at_save_naming_the_extra(
    client, settings, admin, monkeypatch
):
    # as if `voxline[elevenlabs]` were not installed: the plugin cannot be found
    monkeypatch.setitem(sys.modules, "livekit.plugins.elevenlabs", None)
    user, _ = admin
    response = await client.post(
        "/agents",
        json={"agent_name": "Voice", "TTS_provider": "elevenlabs"},
        headers=auth_headers(settings, user),
    )
    assert response.status_code == 400
    body = await response.get_json()
    assert "voxline[elevenlabs]" in str(body)
    catalogue = await (await client.get("/providers", headers=auth_headers(settings, user))).json
    entry = _by_name(catalogue, "tts")["elevenlabs"]
    assert entry["installed"] is False and entry["install"] == "pip install 'voxline[elevenlabs]'"


async def test_agent_settings_are_checked_against_the_catalogue(client, settings, admin):
    user, _ = admin
    headers = auth_headers(settings, user)
    body = {"agent_name": "V", "TTS_provider": "elevenlabs"}
    for bad in ({"stability": 2}, {"loudness": 1}, {"use_speaker_boost": "yes"}):
        response = await client.post("/agents", json={**body, "TTS_settings": bad}, headers=headers)
        assert response.status_code == 400, bad
    good = {"stability": 0.3, "similarity_boost": 0.9}
    response = await client.post("/agents", json={**body, "TTS_settings": good}, headers=headers)
    assert response.status_code == 201, await response.get_json()
    assert (await response.get_json())["TTS_settings"] == good
    # a new provider drops the old one's settings
    agent_id = (await response.get_json())["id"]
    changed = await client.put(
        f"/agents/{agent_id}", json={"TTS_provider": "cartesia"}, headers=headers
    )
    assert changed.status_code == 200, await changed.get_json()
    assert (await changed.get_json())["TTS_settings"] == {}


async def test_the_call_spec_carries_the_workspace_credentials_its_agent_uses(
    client, settings, admin
):
    user, workspace = admin
    headers = auth_headers(settings, user)
    for provider, key in (("anthropic", KEY), ("elevenlabs", "el-key"), ("groq", "gsk")):
        response = await client.put(
            _url(workspace, provider), json={"api_key": key}, headers=headers
        )
        assert response.status_code == 200
    agent = await create_agent(
        settings,
        workspace.id,
        {"agent_name": "A", "LLM_provider": "anthropic", "TTS_provider": "elevenlabs"},
    )
    spec = await agent_spec(settings, agent)
    assert set(spec.credentials) == {"anthropic", "elevenlabs"}  # not groq: the agent lacks it
    assert spec.credentials["anthropic"].api_key == KEY
    assert KEY not in repr(spec)


async def test_rotating_keys_reencrypts_provider_credentials(client, settings, admin):
    user, workspace = admin
    await client.put(
        _url(workspace, "anthropic"), json={"api_key": KEY}, headers=auth_headers(settings, user)
    )
    before = (await WorkspaceProvider.get(workspace_id=workspace.id)).api_key_encrypted
    rotated = settings.model_copy(
        update={"encryption_keys": f"a-newer-key-{'y' * 24}, {settings.encryption_key}"}
    )
    result = await rotate_secrets(rotated)
    assert result.rotated >= 1 and not result.unreadable
    row = await WorkspaceProvider.get(workspace_id=workspace.id)
    assert row.api_key_encrypted != before and decrypt_secret(rotated, row.api_key_encrypted) == KEY
