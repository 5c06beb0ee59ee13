"""A LiveKit server-API stand-in speaking Twirp: SIP, agent dispatch and rooms, with state.

Point livekit-api's real `LiveKitAPI` (or `curl`) at `server.url` with `server.api_key` and
`server.api_secret`. Requests are POSTs to `/twirp/livekit.<Service>/<Method>` in
`application/protobuf` or `application/json`, as real Twirp accepts; the bearer JWT must be
signed with the test secret and carry the grants LiveKit requires. Every decoded request is
recorded, so tests assert exactly what was created, updated and deleted:

    livekit = FakeLiveKit().start()
    ...
    assert livekit.methods() == ["CreateSIPInboundTrunk", "CreateSIPOutboundTrunk", ...]
    assert livekit.calls("CreateSIPDispatchRule")[0].request["dispatch_rule"]["trunk_ids"] == [...]
    livekit.fail("CreateSIPDispatchRule")          # the next such request answers an error
    livekit.fail_dial(486)                          # the next call is busy
    livekit.add_participant("call-1", "sip-caller")  # a SIP caller already in a room
    livekit.fail_transfer(603)                      # the next transfer's REFER is declined
    gate = livekit.hold("CreateRoom")               # such requests hang until gate.set()
    livekit.publish_track("call-1", "agent", "voice")  # a participant publishes a track
    livekit.hearing("call-1")  # who hears what: {identity: ["agent/voice", ...]}

Participants subscribe to every track of the others as LiveKit's auto-subscribe does (on joining,
and when a track is published); `UpdateSubscriptions` changes that, and each recorded request
keeps `hearing`, the room's subscriptions right after it.

Fixtures for other test packages: `livekit_server` (one per session), `livekit` (the same
server, emptied for the test) and `livekit_api` (livekit-api's client on it). tests/conftest.py
registers them for every test. `server.webhook("room_started", room_name=...)` builds a
webhook body and `Authorization` header signed exactly as LiveKit signs them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit import api as lk

from tests.fakes.background import BackgroundServer

logger = logging.getLogger(__name__)

TEST_API_KEY = "APIvoxlinetest"
TEST_API_SECRET = "voxline-livekit-test-secret-0123456789abcdef"

#: The LiveKit releases this stand-in follows: their server API (SIP trunks updated in place,
#: SIP participants and transfers, agent dispatch, rooms) as livekit-api 1.2 / livekit-protocol
#: 1.1.29 speak it. docker-compose.yml pins the same images (tests/test_deployment.py checks).
LIVEKIT_SERVER_IMAGE = "livekit/livekit-server:v1.13.5"
LIVEKIT_SIP_IMAGE = "livekit/sip:v1.26.0"

#: Twirp error code -> HTTP status (twitchtv/twirp's ServerHTTPStatusFromErrorCode).
TWIRP_STATUS = {
    "canceled": 408,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
    "unknown": 500,
}

#: SIP status -> (reason phrase, Twirp code), after livekit/protocol's SIPStatus.GRPCStatus.
SIP_STATUSES = {
    403: ("Forbidden", "permission_denied"),
    404: ("Not Found", "not_found"),
    408: ("Request Timeout", "deadline_exceeded"),
    480: ("Temporarily Unavailable", "resource_exhausted"),
    486: ("Busy Here", "resource_exhausted"),
    487: ("Request Terminated", "aborted"),
    500: ("Server Internal Error", "failed_precondition"),
    503: ("Service Unavailable", "failed_precondition"),
    600: ("Busy Everywhere", "resource_exhausted"),
    603: ("Decline", "permission_denied"),
}


class TwirpFailure(Exception):
    """A Twirp error the stand-in answers with."""

    def __init__(self, code: str, msg: str, meta: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.meta = meta or {}


@dataclass
class Recorded:
    """One request the stand-in decoded.

    Attributes:
        service: "SIP", "AgentDispatchService" or "RoomService".
        method: the Twirp method, e.g. "CreateSIPInboundTrunk".
        request: the request as a dict with proto field names (defaults omitted).
        message: the decoded protobuf request.
        content_type: "application/protobuf" or "application/json".
        error: the Twirp code answered, or None when the request succeeded.
        response: what the method produced, as a dict with proto field names (also when an
            injected `after_apply` failure hid it from the client), or None.
    """

    service: str
    method: str
    request: dict[str, Any]
    message: Message
    content_type: str
    error: str | None = None
    response: dict[str, Any] | None = None
    #: who hears what in the request's room right after it (see `FakeLiveKit.hearing`)
    hearing: dict[str, list[str]] | None = None


@dataclass
class _Failure:
    code: str
    message: str
    after_apply: bool
    remaining: int | None
    meta: dict[str, str] = field(default_factory=dict)


Grant = Callable[[lk.access_token.Claims, Message], bool]


def _sip_admin(claims: lk.access_token.Claims, _: Message) -> bool:
    return bool(claims.sip and claims.sip.admin)


def _sip_call(claims: lk.access_token.Claims, _: Message) -> bool:
    return bool(claims.sip and claims.sip.call)


def _room_admin(claims: lk.access_token.Claims, request: Message) -> bool:
    video = claims.video
    return bool(video and video.room_admin and video.room == request.room)


def _sip_transfer(claims: lk.access_token.Claims, request: Message) -> bool:
    # LiveKit wants both: the SIP call grant and room admin of the caller's room.
    video = claims.video
    room_admin = bool(video and video.room_admin and video.room == request.room_name)
    return room_admin and bool(claims.sip and claims.sip.call)


def _room_create(claims: lk.access_token.Claims, _: Message) -> bool:
    return bool(claims.video and claims.video.room_create)


def _room_list(claims: lk.access_token.Claims, _: Message) -> bool:
    return bool(claims.video and claims.video.room_list)


def _apply_list(current: Any, update: lk.ListUpdate) -> list[str]:
    """LiveKit's applyListUpdate: clear, or set, then add and remove."""
    values = list(current)
    if update.clear:
        values = []
    elif update.set:
        values = list(update.set)
    values += [value for value in update.add if value not in values]
    return [value for value in values if value not in set(update.remove)]


def _apply_optional(target: Message, update: Message, names: tuple[str, ...]) -> None:
    for name in names:
        if update.HasField(name):
            setattr(target, name, getattr(update, name))


class FakeLiveKit(BackgroundServer):
    """The LiveKit server API, in memory. See the module docstring."""

    def __init__(self, api_key: str = TEST_API_KEY, api_secret: str = TEST_API_SECRET) -> None:
        super().__init__()
        self.api_key = api_key
        self.api_secret = api_secret
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._methods: dict[tuple[str, str], tuple[type[Message], Grant, Callable]] = {
            ("SIP", "CreateSIPInboundTrunk"): (
                lk.CreateSIPInboundTrunkRequest, _sip_admin, self._create_inbound
            ),
            ("SIP", "CreateSIPOutboundTrunk"): (
                lk.CreateSIPOutboundTrunkRequest, _sip_admin, self._create_outbound
            ),
            ("SIP", "UpdateSIPInboundTrunk"): (
                lk.UpdateSIPInboundTrunkRequest, _sip_admin, self._update_inbound
            ),
            ("SIP", "UpdateSIPOutboundTrunk"): (
                lk.UpdateSIPOutboundTrunkRequest, _sip_admin, self._update_outbound
            ),
            ("SIP", "ListSIPInboundTrunk"): (
                lk.ListSIPInboundTrunkRequest, _sip_admin, self._list_inbound
            ),
            ("SIP", "ListSIPOutboundTrunk"): (
                lk.ListSIPOutboundTrunkRequest, _sip_admin, self._list_outbound
            ),
            ("SIP", "DeleteSIPTrunk"): (lk.DeleteSIPTrunkRequest, _sip_admin, self._delete_trunk),
            ("SIP", "CreateSIPDispatchRule"): (
                lk.CreateSIPDispatchRuleRequest, _sip_admin, self._create_rule
            ),
            ("SIP", "UpdateSIPDispatchRule"): (
                lk.UpdateSIPDispatchRuleRequest, _sip_admin, self._update_rule
            ),
            ("SIP", "ListSIPDispatchRule"): (
                lk.ListSIPDispatchRuleRequest, _sip_admin, self._list_rules
            ),
            ("SIP", "DeleteSIPDispatchRule"): (
                lk.DeleteSIPDispatchRuleRequest, _sip_admin, self._delete_rule
            ),
            ("SIP", "CreateSIPParticipant"): (
                lk.CreateSIPParticipantRequest, _sip_call, self._create_participant
            ),
            ("SIP", "TransferSIPParticipant"): (
                lk.TransferSIPParticipantRequest, _sip_transfer, self._transfer_participant
            ),
            ("AgentDispatchService", "CreateDispatch"): (
                lk.CreateAgentDispatchRequest, _room_admin, self._create_dispatch
            ),
            ("AgentDispatchService", "DeleteDispatch"): (
                lk.DeleteAgentDispatchRequest, _room_admin, self._delete_dispatch
            ),
            ("AgentDispatchService", "ListDispatch"): (
                lk.ListAgentDispatchRequest, _room_admin, self._list_dispatch
            ),
            ("RoomService", "CreateRoom"): (lk.CreateRoomRequest, _room_create, self._create_room),
            ("RoomService", "ListRooms"): (lk.ListRoomsRequest, _room_list, self._list_rooms),
            ("RoomService", "DeleteRoom"): (lk.DeleteRoomRequest, _room_create, self._delete_room),
            ("RoomService", "ListParticipants"): (
                lk.ListParticipantsRequest, _room_admin, self._list_participants
            ),
            ("RoomService", "GetParticipant"): (
                lk.RoomParticipantIdentity, _room_admin, self._get_participant
            ),
            ("RoomService", "RemoveParticipant"): (
                lk.RoomParticipantIdentity, _room_admin, self._remove_participant
            ),
            ("RoomService", "UpdateParticipant"): (
                lk.UpdateParticipantRequest, _room_admin, self._update_participant
            ),
            ("RoomService", "UpdateSubscriptions"): (
                lk.UpdateSubscriptionsRequest, _room_admin, self._update_subscriptions
            ),
        }  # fmt: skip
        self.reset()

    # ---------------------------------------------------------------------------------------
    # Test controls
    # ---------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forgets every object, recorded request and injected failure."""
        with self._lock:
            self.requests: list[Recorded] = []
            self.unauthorized = 0
            self.inbound_trunks: dict[str, lk.SIPInboundTrunkInfo] = {}
            self.outbound_trunks: dict[str, lk.SIPOutboundTrunkInfo] = {}
            self.dispatch_rules: dict[str, lk.SIPDispatchRuleInfo] = {}
            self.rooms: dict[str, lk.Room] = {}
            self.dispatches: dict[str, lk.AgentDispatch] = {}
            self.participants: dict[str, dict[str, lk.ParticipantInfo]] = {}
            #: room -> participant identity -> the track sids it is subscribed to
            self.subscriptions: dict[str, dict[str, set[str]]] = {}
            self._failures: dict[str, _Failure] = {}
            for gate in getattr(self, "_holds", {}).values():
                gate.set()  # nothing stays held past a test
            self._holds: dict[str, threading.Event] = {}
            self._held: dict[str, int] = {}

    def fail(
        self,
        method: str,
        *,
        code: str = "internal",
        message: str = "injected failure",
        after_apply: bool = False,
        times: int | None = 1,
        meta: dict[str, str] | None = None,
    ) -> None:
        """Makes the next `times` requests to `method` answer a Twirp error (None: all).

        With `after_apply`, the request takes effect first and only the answer is an error,
        like a server that fails after committing (the client cannot know the object exists).
        """
        if code not in TWIRP_STATUS:
            raise ValueError(f"unknown Twirp code {code!r}")
        with self._lock:
            self._failures[method] = _Failure(code, message, after_apply, times, meta or {})

    def hold(self, method: str) -> threading.Event:
        """Makes requests to `method` hang, neither applied nor answered, until the returned
        event is set (a server that stops answering); `held(method)` counts them."""
        gate = threading.Event()
        with self._lock:
            self._holds[method] = gate
        return gate

    def held(self, method: str) -> int:
        """How many requests to `method` were held by `hold` so far."""
        with self._lock:
            return self._held.get(method, 0)

    def fail_dial(self, sip_status: int, reason: str | None = None, *, times: int = 1) -> None:
        """Makes the next CreateSIPParticipant fail as LiveKit does with that SIP status."""
        self._fail_sip("CreateSIPParticipant", sip_status, reason, times)

    def fail_transfer(self, sip_status: int, reason: str | None = None) -> None:
        """Makes the next TransferSIPParticipant fail as LiveKit does when the REFER is refused."""
        self._fail_sip("TransferSIPParticipant", sip_status, reason, 1)

    def _fail_sip(self, method: str, sip_status: int, reason: str | None, times: int) -> None:
        default_reason, code = SIP_STATUSES.get(sip_status, ("Error", "failed_precondition"))
        reason = reason or default_reason
        self.fail(
            method,
            code=code,
            message=f"sip status {sip_status}: {reason}",
            times=times,
            meta={"sip_status_code": str(sip_status), "sip_status": reason},
        )

    def add_participant(
        self,
        room_name: str,
        identity: str,
        kind: int = lk.ParticipantInfo.Kind.SIP,
        tracks: tuple[str, ...] = (),
    ) -> None:
        """Puts a participant (a SIP caller by default) in a room, creating the room; it
        publishes an audio track for each name in `tracks`."""
        with self._lock:
            self._join(room_name, identity, kind=kind)
            for name in tracks:
                self._publish(room_name, identity, name)

    def publish_track(self, room_name: str, identity: str, name: str) -> str:
        """The participant publishes an audio track; returns its sid (the others subscribe)."""
        with self._lock:
            return self._publish(room_name, identity, name)

    def unpublish_track(self, room_name: str, identity: str, sid: str) -> None:
        """The participant stops publishing a track (subscribers lose it)."""
        with self._lock:
            participant = self.participants[room_name][identity]
            kept = [track for track in participant.tracks if track.sid != sid]
            del participant.tracks[:]
            participant.tracks.extend(kept)
            for subscribed in self.subscriptions.get(room_name, {}).values():
                subscribed.discard(sid)

    def hearing(self, room_name: str) -> dict[str, list[str]]:
        """Who hears what in a room: identity -> sorted `"<publisher>/<track name>"`."""
        with self._lock:
            return self._hearing(room_name)

    def _hearing(self, room_name: str) -> dict[str, list[str]]:
        names = {
            track.sid: f"{identity}/{track.name}"
            for identity, participant in self.participants.get(room_name, {}).items()
            for track in participant.tracks
        }
        return {
            identity: sorted(names[sid] for sid in sids if sid in names)
            for identity, sids in self.subscriptions.get(room_name, {}).items()
        }

    def _join(self, room_name: str, identity: str, **fields: Any) -> lk.ParticipantInfo:
        room = self._ensure_room(room_name)
        participants = self.participants.setdefault(room_name, {})
        participant = participants[identity] = lk.ParticipantInfo(
            sid=self._new_id("PA"),
            identity=identity,
            state=lk.ParticipantInfo.State.ACTIVE,
            joined_at=int(time.time()),
            **fields,
        )
        room.num_participants = len(participants)
        # auto-subscribe: the newcomer hears every track already published
        self.subscriptions.setdefault(room_name, {})[identity] = {
            track.sid
            for other, info in participants.items()
            if other != identity
            for track in info.tracks
        }
        return participant

    def _publish(self, room_name: str, identity: str, name: str) -> str:
        participant = self.participants[room_name][identity]
        sid = self._new_id("TR")
        participant.tracks.append(
            lk.TrackInfo(
                sid=sid, type=lk.TrackType.AUDIO, name=name, source=lk.TrackSource.MICROPHONE
            )
        )
        for other, subscribed in self.subscriptions.get(room_name, {}).items():
            if other != identity:
                subscribed.add(sid)
        return sid

    def _leave(self, room_name: str, identity: str) -> None:
        participants = self.participants.get(room_name, {})
        participant = participants.pop(identity, None)
        subscriptions = self.subscriptions.get(room_name, {})
        subscriptions.pop(identity, None)
        for track in participant.tracks if participant is not None else ():
            for subscribed in subscriptions.values():
                subscribed.discard(track.sid)
        if room_name in self.rooms:
            self.rooms[room_name].num_participants = len(participants)

    def calls(self, method: str | None = None) -> list[Recorded]:
        """Recorded requests, oldest first, optionally only those to `method`."""
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    def methods(self) -> list[str]:
        """The methods called, oldest first."""
        return [r.method for r in self.calls()]

    def sign_webhook(self, body: str) -> str:
        """The `Authorization` header LiveKit sends with `body`."""
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        return lk.AccessToken(self.api_key, self.api_secret).with_sha256(digest).to_jwt()

    def webhook(
        self,
        event: str,
        *,
        room_name: str | None = None,
        participant_identity: str | None = None,
        participant_kind: int = lk.ParticipantInfo.Kind.STANDARD,
        participant_attributes: dict[str, str] | None = None,
        event_id: str | None = None,
        created_at: int | None = None,
        **extra: Any,
    ) -> tuple[str, str]:
        """A webhook (body, Authorization header) as LiveKit would post it.

        Args:
            event: "room_started", "room_finished", "participant_joined", ...
            room_name: the room the event is about (its sid is derived from the name).
            participant_identity: the participant, for participant events.
            participant_kind: e.g. `lk.ParticipantInfo.Kind.SIP` for a phone caller.
            participant_attributes: e.g. `{"sip.callStatus": "ringing"}` for a callee whose
                phone rings.
            event_id: the event's unique id; random when None.
            created_at: unix seconds; now when None.
            **extra: more WebhookEvent fields, as in its JSON form.
        """
        message: dict[str, Any] = {
            "event": event,
            "id": event_id or f"EV_{secrets.token_hex(6)}",
            "createdAt": str(created_at if created_at is not None else int(time.time())),
            **extra,
        }
        if room_name is not None:
            sid = "RM_" + hashlib.sha1(room_name.encode()).hexdigest()[:12]
            message["room"] = {"sid": sid, "name": room_name}
        if participant_identity is not None:
            message["participant"] = {
                "sid": "PA_" + hashlib.sha1(participant_identity.encode()).hexdigest()[:12],
                "identity": participant_identity,
                "kind": lk.ParticipantInfo.Kind.Name(participant_kind),
            }
            if participant_attributes:
                message["participant"]["attributes"] = dict(participant_attributes)
        event_message = json_format.ParseDict(message, lk.WebhookEvent())
        body = json_format.MessageToJson(event_message, indent=None)
        return body, self.sign_webhook(body)

    # ---------------------------------------------------------------------------------------
    # HTTP
    # ---------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twirp/livekit.{service}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        service, method = request.match_info["service"], request.match_info["method"]
        with self._lock:
            gate = self._holds.get(method)
            if gate is not None and gate.is_set():
                gate = None
            if gate is not None:
                self._held[method] = self._held.get(method, 0) + 1
        if gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        content_type = request.content_type
        try:
            spec = self._methods.get((service, method))
            if spec is None:
                raise TwirpFailure("bad_route", f"no handler for {service}/{method}")
            if content_type not in ("application/protobuf", "application/json"):
                raise TwirpFailure("bad_route", f"unexpected Content-Type: {content_type}")
            claims = self._verify(request.headers.get("Authorization", ""))
            request_class, grant, handler = spec
            message = self._decode(request_class, await request.read(), content_type)
        except TwirpFailure as failure:
            return _twirp_error(failure)
        record = Recorded(
            service=service,
            method=method,
            request=json_format.MessageToDict(message, preserving_proto_field_name=True),
            message=message,
            content_type=content_type,
        )
        with self._lock:
            self.requests.append(record)
            try:
                if not grant(claims, message):
                    raise TwirpFailure("permission_denied", f"{method} needs another grant")
                injected = self._take_failure(method)
                if injected is not None and not injected.after_apply:
                    raise TwirpFailure(injected.code, injected.message, injected.meta)
                response = handler(message)
                record.response = json_format.MessageToDict(
                    response, preserving_proto_field_name=True
                )
                room_name = getattr(message, "room_name", None) or getattr(message, "room", None)
                if isinstance(room_name, str) and room_name in self.rooms:
                    record.hearing = self._hearing(room_name)
                if injected is not None:
                    raise TwirpFailure(injected.code, injected.message, injected.meta)
            except TwirpFailure as failure:
                record.error = failure.code
                return _twirp_error(failure)
        if content_type == "application/json":
            body = json_format.MessageToJson(response, preserving_proto_field_name=True)
            return web.Response(body=body.encode(), content_type="application/json")
        return web.Response(body=response.SerializeToString(), content_type="application/protobuf")

    def _verify(self, header: str) -> lk.access_token.Claims:
        token = header.removeprefix("Bearer ").strip()
        try:
            return lk.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except Exception as e:
            with self._lock:
                self.unauthorized += 1
            raise TwirpFailure("unauthenticated", f"invalid token: {e}") from e

    @staticmethod
    def _decode(request_class: type[Message], body: bytes, content_type: str) -> Message:
        message = request_class()
        try:
            if content_type == "application/json":
                json_format.Parse(body or b"{}", message)
            else:
                message.ParseFromString(body)
        except (DecodeError, json_format.ParseError) as e:
            raise TwirpFailure("malformed", f"the request body could not be decoded: {e}") from e
        return message

    def _take_failure(self, method: str) -> _Failure | None:
        failure = self._failures.get(method)
        if failure is None:
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                del self._failures[method]
        return failure

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}{secrets.token_hex(4)}"

    # ---------------------------------------------------------------------------------------
    # SIP trunks and dispatch rules (validation as in livekit/protocol)
    # ---------------------------------------------------------------------------------------

    @staticmethod
    def _check_inbound(trunk: lk.SIPInboundTrunkInfo) -> None:
        if not (trunk.auth_username or trunk.auth_password or trunk.allowed_addresses):
            if not trunk.numbers:
                raise TwirpFailure(
                    "invalid_argument",
                    "for security, one of the fields must be set: "
                    "AuthUsername+AuthPassword, AllowedAddresses or Numbers",
                )

    @staticmethod
    def _check_outbound(trunk: lk.SIPOutboundTrunkInfo) -> None:
        if not trunk.numbers:
            raise TwirpFailure("invalid_argument", "no trunk numbers specified")
        if not trunk.address:
            raise TwirpFailure("invalid_argument", "no outbound address specified")
        if "transport=" in trunk.address:
            raise TwirpFailure(
                "invalid_argument", "trunk transport should be set as a field, not a URI parameter"
            )
        if any(c in trunk.address for c in "@;") or trunk.address.startswith(("sip:", "sips:")):
            raise TwirpFailure(
                "invalid_argument", "trunk address should be a hostname or IP, not SIP URI"
            )

    def _check_numbers_free(self, numbers: Any, except_id: str = "") -> None:
        for trunk_id, trunk in self.inbound_trunks.items():
            clash = set(trunk.numbers) & set(numbers)
            if trunk_id != except_id and clash:
                raise TwirpFailure(
                    "already_exists",
                    f"conflicting inbound SIP trunks: {trunk_id} already has {sorted(clash)}",
                )

    def _create_inbound(self, request: lk.CreateSIPInboundTrunkRequest) -> Message:
        if request.trunk.sip_trunk_id:
            raise TwirpFailure("invalid_argument", "trunk id must not be set")
        trunk = lk.SIPInboundTrunkInfo()
        trunk.CopyFrom(request.trunk)
        self._check_inbound(trunk)
        self._check_numbers_free(trunk.numbers)
        trunk.sip_trunk_id = self._new_id("ST")
        self.inbound_trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _create_outbound(self, request: lk.CreateSIPOutboundTrunkRequest) -> Message:
        if request.trunk.sip_trunk_id:
            raise TwirpFailure("invalid_argument", "trunk id must not be set")
        trunk = lk.SIPOutboundTrunkInfo()
        trunk.CopyFrom(request.trunk)
        self._check_outbound(trunk)
        trunk.sip_trunk_id = self._new_id("ST")
        self.outbound_trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _update_inbound(self, request: lk.UpdateSIPInboundTrunkRequest) -> Message:
        current = self._existing(self.inbound_trunks, request.sip_trunk_id, "sip trunk")
        trunk = lk.SIPInboundTrunkInfo()
        action = request.WhichOneof("action")
        if action == "replace":
            trunk.CopyFrom(request.replace)
        elif action == "update":
            trunk.CopyFrom(current)
            update = request.update
            for name in ("numbers", "allowed_addresses", "allowed_numbers"):
                if update.HasField(name):
                    values = _apply_list(getattr(trunk, name), getattr(update, name))
                    del getattr(trunk, name)[:]
                    getattr(trunk, name).extend(values)
            _apply_optional(trunk, update, ("auth_username", "auth_password", "name", "metadata"))
        else:
            raise TwirpFailure("invalid_argument", "missing or unsupported update action")
        trunk.sip_trunk_id = request.sip_trunk_id
        self._check_inbound(trunk)
        self._check_numbers_free(trunk.numbers, except_id=request.sip_trunk_id)
        self.inbound_trunks[request.sip_trunk_id] = trunk
        return trunk

    def _update_outbound(self, request: lk.UpdateSIPOutboundTrunkRequest) -> Message:
        current = self._existing(self.outbound_trunks, request.sip_trunk_id, "sip trunk")
        trunk = lk.SIPOutboundTrunkInfo()
        action = request.WhichOneof("action")
        if action == "replace":
            trunk.CopyFrom(request.replace)
        elif action == "update":
            trunk.CopyFrom(current)
            update = request.update
            if update.HasField("numbers"):
                values = _apply_list(trunk.numbers, update.numbers)
                del trunk.numbers[:]
                trunk.numbers.extend(values)
            _apply_optional(
                trunk,
                update,
                ("address", "transport", "auth_username", "auth_password", "name", "metadata"),
            )
        else:
            raise TwirpFailure("invalid_argument", "missing or unsupported update action")
        trunk.sip_trunk_id = request.sip_trunk_id
        self._check_outbound(trunk)
        self.outbound_trunks[request.sip_trunk_id] = trunk
        return trunk

    def _list_inbound(self, request: lk.ListSIPInboundTrunkRequest) -> Message:
        items = [
            trunk
            for trunk in self.inbound_trunks.values()
            if (not request.trunk_ids or trunk.sip_trunk_id in request.trunk_ids)
            and (not request.numbers or set(trunk.numbers) & set(request.numbers))
        ]
        return lk.ListSIPInboundTrunkResponse(items=items)

    def _list_outbound(self, request: lk.ListSIPOutboundTrunkRequest) -> Message:
        items = [
            trunk
            for trunk in self.outbound_trunks.values()
            if (not request.trunk_ids or trunk.sip_trunk_id in request.trunk_ids)
            and (not request.numbers or set(trunk.numbers) & set(request.numbers))
        ]
        return lk.ListSIPOutboundTrunkResponse(items=items)

    def _delete_trunk(self, request: lk.DeleteSIPTrunkRequest) -> Message:
        trunk_id = request.sip_trunk_id
        trunk = self.inbound_trunks.pop(trunk_id, None) or self.outbound_trunks.pop(trunk_id, None)
        if trunk is None:
            raise TwirpFailure("not_found", f"requested sip trunk {trunk_id} does not exist")
        return lk.SIPTrunkInfo(sip_trunk_id=trunk_id, name=trunk.name)

    def _create_rule(self, request: lk.CreateSIPDispatchRuleRequest) -> Message:
        rule = lk.SIPDispatchRuleInfo()
        if request.HasField("dispatch_rule"):
            rule.CopyFrom(request.dispatch_rule)
        else:  # the legacy flat fields
            rule.rule.CopyFrom(request.rule)
            rule.trunk_ids.extend(request.trunk_ids)
            rule.name, rule.metadata = request.name, request.metadata
            rule.room_config.CopyFrom(request.room_config)
        if rule.sip_dispatch_rule_id:
            raise TwirpFailure("invalid_argument", "rule id must not be set")
        self._check_rule(rule)
        rule.sip_dispatch_rule_id = self._new_id("SDR")
        self.dispatch_rules[rule.sip_dispatch_rule_id] = rule
        return rule

    def _check_rule(self, rule: lk.SIPDispatchRuleInfo) -> None:
        if rule.rule.WhichOneof("rule") is None:
            raise TwirpFailure("invalid_argument", "missing dispatch rule")
        for trunk_id in rule.trunk_ids:
            if trunk_id not in self.inbound_trunks:
                raise TwirpFailure("invalid_argument", f"unknown inbound trunk {trunk_id}")

    def _update_rule(self, request: lk.UpdateSIPDispatchRuleRequest) -> Message:
        rule_id = request.sip_dispatch_rule_id
        current = self._existing(self.dispatch_rules, rule_id, "sip dispatch rule")
        rule = lk.SIPDispatchRuleInfo()
        action = request.WhichOneof("action")
        if action == "replace":
            rule.CopyFrom(request.replace)
        elif action == "update":
            rule.CopyFrom(current)
            update = request.update
            if update.HasField("trunk_ids"):
                values = _apply_list(rule.trunk_ids, update.trunk_ids)
                del rule.trunk_ids[:]
                rule.trunk_ids.extend(values)
            if update.HasField("rule"):
                rule.rule.CopyFrom(update.rule)
            _apply_optional(rule, update, ("name", "metadata"))
            for key, value in update.attributes.items():
                rule.attributes[key] = value
        else:
            raise TwirpFailure("invalid_argument", "missing or unsupported update action")
        rule.sip_dispatch_rule_id = rule_id
        self._check_rule(rule)
        self.dispatch_rules[rule_id] = rule
        return rule

    def _list_rules(self, request: lk.ListSIPDispatchRuleRequest) -> Message:
        items = [
            rule
            for rule in self.dispatch_rules.values()
            if (
                not request.dispatch_rule_ids
                or rule.sip_dispatch_rule_id in request.dispatch_rule_ids
            )
            and (not request.trunk_ids or set(rule.trunk_ids) & set(request.trunk_ids))
        ]
        return lk.ListSIPDispatchRuleResponse(items=items)

    def _delete_rule(self, request: lk.DeleteSIPDispatchRuleRequest) -> Message:
        rule = self.dispatch_rules.pop(request.sip_dispatch_rule_id, None)
        if rule is None:
            raise TwirpFailure(
                "not_found", f"sip dispatch rule {request.sip_dispatch_rule_id} does not exist"
            )
        return rule

    @staticmethod
    def _existing(objects: dict[str, Message], object_id: str, kind: str) -> Message:
        if object_id not in objects:
            raise TwirpFailure("not_found", f"requested {kind} {object_id} does not exist")
        return objects[object_id]

    # ---------------------------------------------------------------------------------------
    # Calls, dispatches and rooms
    # ---------------------------------------------------------------------------------------

    def _create_participant(self, request: lk.CreateSIPParticipantRequest) -> Message:
        if not request.sip_trunk_id and not request.HasField("trunk"):
            raise TwirpFailure("invalid_argument", "missing sip trunk id")
        if request.sip_trunk_id and request.sip_trunk_id not in self.outbound_trunks:
            raise TwirpFailure(
                "not_found", f"requested sip trunk {request.sip_trunk_id} does not exist"
            )
        if not request.sip_call_to:
            raise TwirpFailure("invalid_argument", "missing sip callee number")
        if not request.room_name:
            raise TwirpFailure("invalid_argument", "missing room name")
        room = self._ensure_room(request.room_name)
        identity = request.participant_identity or f"sip_{request.sip_call_to}"
        if identity in self.participants.get(room.name, {}):
            raise TwirpFailure("already_exists", f"participant {identity} is in the room")
        participant = self._join(
            room.name,
            identity,
            name=request.participant_name,
            metadata=request.participant_metadata,
            attributes=dict(request.participant_attributes),
            kind=lk.ParticipantInfo.Kind.SIP,
        )
        self._publish(room.name, identity, "audio")  # a SIP participant publishes its audio
        return lk.SIPParticipantInfo(
            participant_id=participant.sid,
            participant_identity=identity,
            room_name=room.name,
            sip_call_id=self._new_id("SCL"),
        )

    def _transfer_participant(self, request: lk.TransferSIPParticipantRequest) -> Message:
        # As LiveKit: the REFER goes to a SIP participant of the room; once the far end
        # accepts it, the caller leaves the room.
        if not request.transfer_to.startswith(("tel:", "sip:", "sips:")):
            raise TwirpFailure("invalid_argument", "transfer_to must be a tel: or sip: URI")
        participants = self.participants.get(request.room_name)
        if request.room_name not in self.rooms or participants is None:
            raise TwirpFailure("not_found", f"room {request.room_name} does not exist")
        participant = participants.get(request.participant_identity)
        if participant is None:
            raise TwirpFailure(
                "not_found", f"participant {request.participant_identity} does not exist"
            )
        if participant.kind != lk.ParticipantInfo.Kind.SIP:
            raise TwirpFailure("failed_precondition", "participant is not a SIP participant")
        self._leave(request.room_name, request.participant_identity)
        return lk.TransferSIPParticipantResponse(
            transfer_id=self._new_id("TR"),
            status=lk.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL,
            reason=lk.SIPTransferReason.STR_COMPLETED,
        )

    def _ensure_room(self, name: str, **fields: Any) -> lk.Room:
        if name not in self.rooms:
            self.rooms[name] = lk.Room(
                sid=self._new_id("RM"), name=name, creation_time=int(time.time()), **fields
            )
        return self.rooms[name]

    def _create_dispatch(self, request: lk.CreateAgentDispatchRequest) -> Message:
        if not request.room:
            raise TwirpFailure("invalid_argument", "room is required")
        self._ensure_room(request.room)
        dispatch = lk.AgentDispatch(
            id=self._new_id("AD"),
            agent_name=request.agent_name,
            room=request.room,
            metadata=request.metadata,
        )
        self.dispatches[dispatch.id] = dispatch
        return dispatch

    def _delete_dispatch(self, request: lk.DeleteAgentDispatchRequest) -> Message:
        dispatch = self.dispatches.get(request.dispatch_id)
        if dispatch is None or dispatch.room != request.room:
            raise TwirpFailure("not_found", f"dispatch {request.dispatch_id} does not exist")
        return self.dispatches.pop(request.dispatch_id)

    def _list_dispatch(self, request: lk.ListAgentDispatchRequest) -> Message:
        found = [
            dispatch
            for dispatch in self.dispatches.values()
            if dispatch.room == request.room
            and (not request.dispatch_id or dispatch.id == request.dispatch_id)
        ]
        return lk.ListAgentDispatchResponse(agent_dispatches=found)

    def _create_room(self, request: lk.CreateRoomRequest) -> Message:
        if not request.name:
            raise TwirpFailure("invalid_argument", "room name is required")
        return self._ensure_room(
            request.name,
            empty_timeout=request.empty_timeout,
            departure_timeout=request.departure_timeout,
            max_participants=request.max_participants,
            metadata=request.metadata,
        )

    def _list_rooms(self, request: lk.ListRoomsRequest) -> Message:
        rooms = [r for n, r in self.rooms.items() if not request.names or n in request.names]
        return lk.ListRoomsResponse(rooms=rooms)

    def _delete_room(self, request: lk.DeleteRoomRequest) -> Message:
        if self.rooms.pop(request.room, None) is None:
            raise TwirpFailure("not_found", f"room {request.room} does not exist")
        self.participants.pop(request.room, None)
        self.subscriptions.pop(request.room, None)
        for dispatch_id in [d.id for d in self.dispatches.values() if d.room == request.room]:
            del self.dispatches[dispatch_id]
        return lk.DeleteRoomResponse()

    def _list_participants(self, request: lk.ListParticipantsRequest) -> Message:
        if request.room not in self.rooms:
            raise TwirpFailure("not_found", f"room {request.room} does not exist")
        return lk.ListParticipantsResponse(
            participants=list(self.participants.get(request.room, {}).values())
        )

    def _participant(self, room_name: str, identity: str) -> lk.ParticipantInfo:
        if room_name not in self.rooms:
            raise TwirpFailure("not_found", f"room {room_name} does not exist")
        participant = self.participants.get(room_name, {}).get(identity)
        if participant is None:
            raise TwirpFailure("not_found", f"participant {identity} does not exist")
        return participant

    def _get_participant(self, request: lk.RoomParticipantIdentity) -> Message:
        return self._participant(request.room, request.identity)

    def _remove_participant(self, request: lk.RoomParticipantIdentity) -> Message:
        self._participant(request.room, request.identity)
        self._leave(request.room, request.identity)
        return lk.RemoveParticipantResponse()

    def _update_participant(self, request: lk.UpdateParticipantRequest) -> Message:
        # As LiveKit: attributes merge, an empty value deletes the key.
        participant = self._participant(request.room, request.identity)
        for key, value in request.attributes.items():
            if value:
                participant.attributes[key] = value
            else:
                participant.attributes.pop(key, None)
        if request.metadata:
            participant.metadata = request.metadata
        if request.name:
            participant.name = request.name
        if request.HasField("permission"):
            participant.permission.CopyFrom(request.permission)
        return participant

    def _update_subscriptions(self, request: lk.UpdateSubscriptionsRequest) -> Message:
        self._participant(request.room, request.identity)
        published = {
            track.sid
            for participant in self.participants[request.room].values()
            for track in participant.tracks
        }
        unknown = [sid for sid in request.track_sids if sid not in published]
        if unknown:
            raise TwirpFailure("not_found", f"no published track {', '.join(unknown)}")
        subscribed = self.subscriptions[request.room].setdefault(request.identity, set())
        if request.subscribe:
            subscribed.update(request.track_sids)
        else:
            subscribed.difference_update(request.track_sids)
        return lk.UpdateSubscriptionsResponse()


def _twirp_error(failure: TwirpFailure) -> web.Response:
    body: dict[str, Any] = {"code": failure.code, "msg": failure.msg}
    if failure.meta:
        body["meta"] = failure.meta
    return web.json_response(body, status=TWIRP_STATUS[failure.code])


def object_count(server: FakeLiveKit) -> int:
    """How many trunks and dispatch rules exist (0 means nothing was left behind)."""
    return len(server.inbound_trunks) + len(server.outbound_trunks) + len(server.dispatch_rules)


@dataclass
class SipCaller:
    """The SIP participant LiveKit puts in the room of an inbound call (its attributes); its
    `join` is what a worker awaits for the caller."""

    attributes: dict[str, str]
    joined: int = 0

    async def join(self) -> SipCaller:
        self.joined += 1
        return self


async def no_caller() -> Any:
    """What a worker awaits for the caller when a job must never wait for one."""
    raise AssertionError("this job must not wait for a SIP caller")


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[FakeLiveKit]:
    """One LiveKit stand-in for the test session."""
    server = FakeLiveKit().start()
    yield server
    server.stop()


@pytest.fixture
def livekit(livekit_server: FakeLiveKit) -> FakeLiveKit:
    """The session's LiveKit stand-in, emptied for this test."""
    livekit_server.reset()
    return livekit_server


@pytest.fixture
async def livekit_api(livekit: FakeLiveKit) -> AsyncIterator[lk.LiveKitAPI]:
    """livekit-api's real client on the emptied stand-in, closed after the test."""
    api = lk.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret)
    yield api
    await api.aclose()


__all__ = [
    "SIP_STATUSES",
    "TEST_API_KEY",
    "TEST_API_SECRET",
    "FakeLiveKit",
    "Recorded",
    "SipCaller",
    "TwirpFailure",
    "livekit",
    "livekit_api",
    "livekit_server",
    "no_caller",
    "object_count",
]
