"""Room tokens: a JWT that lets one participant join one room and do nothing else."""

from __future__ import annotations

import logging
from datetime import timedelta

from livekit import api as lk

from telephony.config import TelephonySettings, get_settings

logger = logging.getLogger(__name__)


def mint_room_token(
    room_name: str,
    identity: str,
    ttl_seconds: int = 600,
    name: str | None = None,
    *,
    settings: TelephonySettings | None = None,
) -> str:
    """A token that can join `room_name` only, and nothing else (no room admin, create or list).

    Args:
        room_name: the one room the token opens.
        identity: the participant's identity in the room.
        ttl_seconds: how long the token may be used to join.
        name: the participant's display name.
        settings: telephony settings; the environment's by default.

    Returns:
        The signed JWT.
    """
    _, key, secret = (settings or get_settings()).livekit_credentials()
    token = (
        lk.AccessToken(key, secret)
        .with_identity(identity)
        .with_ttl(timedelta(seconds=ttl_seconds))
        .with_grants(lk.VideoGrants(room_join=True, room=room_name))
    )
    if name:
        token.with_name(name)
    return token.to_jwt()
