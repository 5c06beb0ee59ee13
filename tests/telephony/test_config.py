"""Telephony settings: the services' own variable names, defaults and production checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from telephony.config import TelephonySettings


def test_settings_read_each_services_own_variable_names(monkeypatch):
    environment = {
        "LIVEKIT_URL": "ws://livekit:7880",
        "LIVEKIT_API_KEY": "key",
        "LIVEKIT_API_SECRET": "secret-from-env",
        "VOXLINE_AGENT_NAME": "night-agent",
        "TWILIO_ACCOUNT_SID": "AC123",
        "TWILIO_AUTH_TOKEN": "token",
        "VONAGE_API_KEY": "vkey",
        "VONAGE_API_SECRET": "vsecret",
        "VONAGE_API_BASE": "http://vonage.test",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TWILIO_API_BASE", raising=False)

    settings = TelephonySettings()

    assert settings.livekit_credentials() == ("ws://livekit:7880", "key", "secret-from-env")
    assert settings.agent_name == "night-agent"
    assert (settings.twilio_account_sid, settings.twilio_auth_token) == ("AC123", "token")
    assert settings.twilio_api_base == "https://api.twilio.com"
    assert (settings.vonage_api_key, settings.vonage_api_base) == ("vkey", "http://vonage.test")


def test_agent_name_default(monkeypatch):
    monkeypatch.delenv("VOXLINE_AGENT_NAME", raising=False)

    assert TelephonySettings().agent_name == "voxline-agent"


@pytest.mark.parametrize("secret", ["secret", "changeme", " Secret "])
def test_production_refuses_a_placeholder_livekit_secret(secret):
    with pytest.raises(ValidationError, match="LIVEKIT_API_SECRET"):
        TelephonySettings(env="production", livekit_api_secret=secret)


def test_production_accepts_a_real_secret():
    settings = TelephonySettings(env="production", livekit_api_secret="s3cr3t-" + "k" * 32)

    assert settings.livekit_api_secret.startswith("s3cr3t-")
