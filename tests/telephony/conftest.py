"""Fixtures for telephony tests: the LiveKit, Twilio and Vonage stand-ins and settings for them."""

from __future__ import annotations

import pytest

from telephony.config import TelephonySettings
from tests.conftest import TEST_AGENT_NAME
from tests.fakes.livekit_server import FakeLiveKit
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.vonage_server import FakeVonage

AGENT_NAME = TEST_AGENT_NAME


@pytest.fixture
def telephony_settings(
    telephony_settings: TelephonySettings,
    livekit: FakeLiveKit,
    twilio: FakeTwilio,
    vonage: FakeVonage,
) -> TelephonySettings:
    """The session's settings for the stand-ins (tests/conftest.py), each stand-in emptied."""
    return telephony_settings
