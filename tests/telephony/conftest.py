"""Fixtures for telephony tests: the LiveKit, Twilio and Vonage stand-ins and settings for them."""

from __future__ import annotations

import pytest

from telephony.config import TelephonySettings
from tests.fakes.livekit_server import FakeLiveKit, livekit, livekit_server  # noqa: F401
from tests.fakes.twilio_server import FakeTwilio, twilio, twilio_server  # noqa: F401
from tests.fakes.vonage_server import FakeVonage, vonage, vonage_server  # noqa: F401

AGENT_NAME = "voxline-test-agent"


@pytest.fixture
def telephony_settings(
    livekit: FakeLiveKit,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
    vonage: FakeVonage,  # noqa: F811
) -> TelephonySettings:
    """Settings pointing every client at the stand-ins (each emptied for the test)."""
    return TelephonySettings(
        env="test",
        livekit_url=livekit.url,
        livekit_api_key=livekit.api_key,
        livekit_api_secret=livekit.api_secret,
        agent_name=AGENT_NAME,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_api_base=twilio.url,
        twilio_pricing_api_base=twilio.url,
        vonage_api_key=vonage.api_key,
        vonage_api_secret=vonage.api_secret,
        vonage_api_base=vonage.url,
        provider_timeout_seconds=5.0,
    )
