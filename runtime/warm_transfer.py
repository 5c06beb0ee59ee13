"""Warm transfer inside the caller's own room, with the room-service calls self-hosted LiveKit has.

LiveKit's own warm-transfer example briefs the human in a side room and bridges with
`MoveParticipant`, which only LiveKit Cloud serves. Here everything happens in the call's room,
and who hears whom is set with `UpdateSubscriptions`:

1. the agent says a handover line, then the caller is put on hold: the agent publishes a hold
   track (the destination's `hold_audio_url`, else a built-in tone) and the caller is
   unsubscribed from the agent's voice and subscribed to the hold track (`UpdateParticipant`
   marks the caller `voxline.transfer=on_hold`);
2. the human is dialled into the same room with their own identity (`CreateSIPParticipant`,
   `wait_until_answered`, `ringing_timeout`); caller and human are unsubscribed from each other
   and the human from the hold track; the agent listens to the human;
3. the agent says a briefing the LLM wrote from the conversation (shaped by the destination's
   `briefing_instructions`) and asks whether they take the call: yes (said, or key 1) or no
   (said, key 2, hanging up, or no answer within `ring_timeout`);
4. accepted: caller and human are subscribed to each other, the hold track goes, the agent
   leaves (the call ends `transferred`). Declined, or a LiveKit call refused at any step: the
   human is removed, the caller comes off hold and hears the agent again, which says so (the
   destination's `fallback_message` when set) and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import wave
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from livekit import api as lk
from livekit import rtc
from livekit.agents import AgentSession

from runtime.spec import CallSpec, TransferDestinationSpec, check_url_allowed_async
from runtime.summaries import current_llm, summarise

if TYPE_CHECKING:
    from runtime.call_control import CallControl

logger = logging.getLogger(__name__)

BRIEFING_OPENING = "Hello, this is the assistant with a caller for {name}."
BRIEFING_QUESTION = (
    "Will you take the call? Say yes or press 1 to be connected, say no or press 2 to decline."
)
#: The participant attribute that says where a caller is in a warm transfer.
TRANSFER_ATTRIBUTE = "voxline.transfer"
HOLD_TRACK_NAME = "hold-audio"
SAMPLE_RATE = 16000
#: How long the briefing may take to say, beyond the human's `ring_timeout` to decide.
BRIEFING_SECONDS = 60.0
HOLD_AUDIO_MAX_BYTES = 5 * 1024 * 1024
HOLD_AUDIO_SECONDS = 10.0
#: Why an attempt ended when the caller hung up while on hold.
CALLER_HUNG_UP = "caller_hung_up"
#: SIP answers that mean the human did not pick up (as opposed to refusing the call).
NO_ANSWER_STATUSES = frozenset({408, 480, 487})

_YES = re.compile(
    r"\b(yes|yeah|yep|sure|okay|ok|accept|i'?ll take|i will take|put (them|him|her) through|"
    r"connect (them|him|her|me))\b",
    re.IGNORECASE,
)
_NO = re.compile(r"\b(no|nope|not now|can'?t|cannot|decline|busy)\b", re.IGNORECASE)

#: Hold audio fetched once per process: URL -> 16 kHz mono frames.
_HOLD_CACHE: dict[str, list[rtc.AudioFrame]] = {}
_HOLD_CACHE_SIZE = 16


class TransferStepFailed(Exception):
    """A LiveKit call a warm transfer needed was refused, or the human did not take the call."""

    def __init__(self, reason: str, detail: str = "", sip_status: int | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason
        self.sip_status = sip_status


class HoldPlayer(Protocol):
    """Plays hold audio in the room as a track of its own (`RoomHoldPlayer` in a real room)."""

    async def start(self, frames: list[rtc.AudioFrame]) -> str:
        """Publish the hold track, looping `frames`; returns the track's sid."""
        ...

    async def stop(self) -> None: ...


class RoomHoldPlayer:
    """Hold audio as a local audio track of the agent's participant, looped until stopped."""

    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self._task: asyncio.Task | None = None
        self._sid: str | None = None

    async def start(self, frames: list[rtc.AudioFrame]) -> str:
        source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track(HOLD_TRACK_NAME, source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_UNKNOWN)
        publication = await self.room.local_participant.publish_track(track, options)
        self._sid = publication.sid

        async def loop() -> None:
            while True:
                for frame in frames:
                    await source.capture_frame(frame)

        self._task = asyncio.create_task(loop(), name="hold-audio")
        return publication.sid

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sid is not None:
            with contextlib.suppress(Exception):
                await self.room.local_participant.unpublish_track(self._sid)
            self._sid = None


def hold_tone(seconds: float = 4.0, sample_rate: int = SAMPLE_RATE) -> list[rtc.AudioFrame]:
    """The built-in hold audio: two soft notes, then quiet, as 20 ms frames (loops cleanly)."""
    t = np.arange(int(0.4 * sample_rate)) / sample_rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    notes = [np.sin(2 * np.pi * hz * t) * fade * 3000 for hz in (523.25, 659.25)]
    quiet = np.zeros(int(max(seconds - 0.8, 0.2) * sample_rate))
    return _frames(np.concatenate([*notes, quiet]).astype(np.int16), sample_rate)


def _frames(samples: np.ndarray, sample_rate: int) -> list[rtc.AudioFrame]:
    size = sample_rate // 50
    padded = np.concatenate([samples, np.zeros(-len(samples) % size, dtype=np.int16)])
    return [
        rtc.AudioFrame(padded[i : i + size].tobytes(), sample_rate, 1, size)
        for i in range(0, len(padded), size)
    ]


def decode_wav(data: bytes) -> list[rtc.AudioFrame]:
    """A 16-bit PCM WAV file as 16 kHz mono frames (at most `HOLD_AUDIO_SECONDS` long).

    Raises:
        ValueError: not a 16-bit PCM WAV file.
    """
    try:
        with wave.open(io.BytesIO(data)) as reader:
            if reader.getsampwidth() != 2:
                raise ValueError("hold audio must be 16-bit PCM")
            rate, channels = reader.getframerate(), reader.getnchannels()
            pcm = reader.readframes(int(rate * HOLD_AUDIO_SECONDS))
    except (wave.Error, EOFError) as error:
        raise ValueError(f"hold audio is not a WAV file: {error}") from error
    samples = np.frombuffer(pcm, dtype=np.int16)[::channels].astype(np.float32)
    if rate != SAMPLE_RATE and len(samples):
        positions = np.arange(0, len(samples), rate / SAMPLE_RATE)
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    if not len(samples):
        raise ValueError("hold audio is empty")
    return _frames(samples.astype(np.int16), SAMPLE_RATE)


async def hold_audio(url: str | None, *, allow_private: bool) -> list[rtc.AudioFrame]:
    """The frames of a destination's hold audio (fetched once per process, after the SSRF
    check), else the built-in tone. Never raises: audio that cannot be had is the tone."""
    if not url:
        return hold_tone()
    cached = _HOLD_CACHE.get(url)
    if cached is not None:
        return cached
    try:
        import httpx

        from runtime.spec import pinned_http_transport

        await check_url_allowed_async(url, allow_private)
        async with httpx.AsyncClient(
            transport=pinned_http_transport(allow_private), timeout=10.0
        ) as client:
            response = await client.get(url)
            response.raise_for_status()
            if len(response.content) > HOLD_AUDIO_MAX_BYTES:
                raise ValueError("hold audio is larger than 5 MB")
            frames = decode_wav(response.content)
    except Exception as error:
        logger.warning("hold audio %s not used (%s); the built-in tone plays", url, error)
        return hold_tone()
    if len(_HOLD_CACHE) >= _HOLD_CACHE_SIZE:
        _HOLD_CACHE.pop(next(iter(_HOLD_CACHE)))
    _HOLD_CACHE[url] = frames
    return frames


def decision_of(text: str) -> bool | None:
    """What a human said to "will you take the call?": True yes, False no, None unclear."""
    yes, no = bool(_YES.search(text or "")), bool(_NO.search(text or ""))
    return yes if yes != no else None


class WarmTransfer:
    """One warm-transfer attempt; `CallControl.transfer` runs it for `"type": "warm"`.

    Args:
        control: the call's control (API, room name, session, state, recording of attempts).
        destination: the warm destination.
        caller: the caller's SIP participant identity.
        agent_identity: the agent's own participant (whose voice the caller must not hear).
        record: this attempt's entry in `state.transfers`, updated as it goes.
    """

    def __init__(
        self,
        control: CallControl,
        destination: TransferDestinationSpec,
        *,
        caller: str,
        agent_identity: str,
        record: dict[str, Any],
        hold_player: HoldPlayer,
        listen_to: Callable[[str], None] | None,
    ) -> None:
        self.control = control
        self.call: CallSpec = control.call
        self.api: lk.LiveKitAPI = control.api  # type: ignore[assignment]  # checked by caller
        self.room_name: str = control.room_name  # type: ignore[assignment]
        self.session: AgentSession = control.session
        self.destination = destination
        self.caller = caller
        self.agent_identity = agent_identity
        self.record = record
        self.hold_player = hold_player
        self.listen_to = listen_to
        attempt = len(control.state.transfers)
        self.human = f"transfer-{destination.name}-{attempt}"
        self.hold_sid: str | None = None
        self.dialled = False
        self.briefed = False
        self._decision: asyncio.Future[tuple[bool, str]] = (
            asyncio.get_running_loop().create_future()
        )

    # -- what the room tells it ----------------------------------------------------------------

    def _decide(self, accepted: bool, reason: str) -> None:
        if not self._decision.done():
            logger.info(
                "call %s: %s %s the call (%s)",
                self.call.call_id,
                self.destination.name,
                "accepted" if accepted else "declined",
                reason,
            )
            self._decision.set_result((accepted, reason))

    def keypad(self, digit: str, identity: str | None) -> bool:
        """A key pressed in the room; True when it was the human's (and so handled here)."""
        if identity != self.human:
            return False
        if self.briefed and digit in ("1", "2"):
            self._decide(digit == "1", "accepted_by_key" if digit == "1" else "declined_by_key")
        return True

    def heard(self, text: str) -> None:
        """What the human said (the agent listens to them during the briefing)."""
        if not self.briefed:
            return
        decision = decision_of(text)
        if decision is not None:
            self._decide(decision, "accepted" if decision else "declined")

    def left(self, identity: str) -> None:
        """A participant left the room: the human hanging up declines; the caller hanging up
        ends the attempt (and the call)."""
        if identity == self.human and self.dialled:
            self._decide(False, "hung_up")
        elif identity == self.caller:
            self._decide(False, CALLER_HUNG_UP)

    @property
    def listening(self) -> bool:
        """While the human is being briefed, their words decide, and the agent answers none."""
        return self.dialled and not self._decision.done()

    # -- the steps -------------------------------------------------------------------------

    async def run(self) -> bool:
        """Hold, dial, brief, then bridge or bring the caller back; True when bridged.

        Raises:
            TransferStepFailed: declined, unanswered or refused; the caller is back with the
                agent by then.
        """
        try:
            await self._hold()
            await self._dial()
            if not self._decision.done():  # (a caller who hung up meanwhile needs no briefing)
                await self._brief()
            accepted, reason = await asyncio.wait_for(
                asyncio.shield(self._decision), self.destination.ring_timeout
            )
        except TimeoutError:
            accepted, reason = False, "no_answer"
        except TransferStepFailed:
            await self._back_to_agent()
            raise
        except Exception as error:
            await self._back_to_agent()
            raise TransferStepFailed("failed", _error_text(error)) from error
        if not accepted:
            await self._back_to_agent()
            raise TransferStepFailed(reason)
        try:
            await self._bridge()
        except Exception as error:
            await self._back_to_agent()
            raise TransferStepFailed("failed", _error_text(error)) from error
        self.record["reason"] = reason
        return True

    async def _step(self, what: str, request: Any) -> Any:
        try:
            return await request
        except lk.TwirpError as error:
            status = getattr(error, "sip_status_code", None)
            raise TransferStepFailed(
                "failed", f"{what}: {error.code} {error.message}", int(status) if status else None
            ) from error

    async def _tracks(self, identity: str) -> list[str]:
        info = await self._step(
            "GetParticipant",
            self.api.room.get_participant(
                lk.RoomParticipantIdentity(room=self.room_name, identity=identity)
            ),
        )
        return [track.sid for track in info.tracks]

    async def _subscribe(self, identity: str, track_sids: Iterable[str], subscribe: bool) -> None:
        sids = [sid for sid in track_sids if sid]
        if not sids:
            return
        await self._step(
            "UpdateSubscriptions",
            self.api.room.update_subscriptions(
                lk.UpdateSubscriptionsRequest(
                    room=self.room_name, identity=identity, track_sids=sids, subscribe=subscribe
                )
            ),
        )

    async def _mark_caller(self, where: str) -> None:
        await self._step(
            "UpdateParticipant",
            self.api.room.update_participant(
                lk.UpdateParticipantRequest(
                    room=self.room_name,
                    identity=self.caller,
                    attributes={TRANSFER_ATTRIBUTE: where},
                )
            ),
        )

    async def _agent_voice(self) -> list[str]:
        return [sid for sid in await self._tracks(self.agent_identity) if sid != self.hold_sid]

    async def _hold(self) -> None:
        frames = await hold_audio(
            self.destination.hold_audio_url, allow_private=self.call.allow_private_urls
        )
        self.hold_sid = await self.hold_player.start(frames)
        await self._subscribe(self.caller, await self._agent_voice(), False)
        await self._subscribe(self.caller, [self.hold_sid], True)
        await self._mark_caller("on_hold")

    async def _dial(self) -> None:
        call = self.call
        if not call.sip_trunk_id:
            raise TransferStepFailed("failed", "no outbound SIP trunk to dial the human on")
        logger.info("call %s: dialling %s", call.call_id, self.destination.masked)
        number = call.to_number if call.direction == "inbound" else call.from_number
        request = lk.CreateSIPParticipantRequest(
            room_name=self.room_name,
            sip_trunk_id=call.sip_trunk_id,
            sip_call_to=self.destination.destination.removeprefix("tel:"),
            sip_number=number or "",
            participant_identity=self.human,
            participant_name=self.destination.name,
            participant_attributes={TRANSFER_ATTRIBUTE: "human"},
            wait_until_answered=True,
            ringing_timeout=_duration(self.destination.ring_timeout),
        )
        try:
            await asyncio.wait_for(
                self._step("CreateSIPParticipant", self.api.sip.create_sip_participant(request)),
                self.destination.ring_timeout + 5,
            )
        except TimeoutError as error:
            raise TransferStepFailed("no_answer") from error
        except TransferStepFailed as failed:
            if failed.sip_status in NO_ANSWER_STATUSES:
                raise TransferStepFailed("no_answer", failed.detail, failed.sip_status) from None
            if failed.sip_status in (486, 600, 603):
                raise TransferStepFailed("busy", failed.detail, failed.sip_status) from None
            raise
        self.dialled = True
        caller_tracks = await self._tracks(self.caller)
        human_tracks = await self._tracks(self.human)
        await self._subscribe(self.human, [*caller_tracks, self.hold_sid or ""], False)
        await self._subscribe(self.caller, human_tracks, False)
        if self.listen_to is not None:
            self.listen_to(self.human)

    async def _brief(self) -> None:
        briefing = await summarise(
            current_llm(self.session),
            self.session.history,
            instructions=self.destination.briefing_instructions,
        )
        self.record["briefing"] = briefing
        name = self.destination.name.replace("_", " ")
        text = f"{BRIEFING_OPENING.format(name=name)} {briefing} {BRIEFING_QUESTION}"
        self.briefed = True  # a key pressed during the briefing counts
        handle = self.session.say(text, allow_interruptions=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handle.wait_for_playout(), BRIEFING_SECONDS)

    async def _bridge(self) -> None:
        caller_tracks = await self._tracks(self.caller)
        human_tracks = await self._tracks(self.human)
        await self._subscribe(self.caller, human_tracks, True)
        await self._subscribe(self.human, caller_tracks, True)
        await self._subscribe(self.caller, [self.hold_sid or ""], False)
        await self.hold_player.stop()
        await self._mark_caller("bridged")

    async def _back_to_agent(self) -> None:
        """Undo what was done, each step on its own: the caller never stays on hold."""
        if self.dialled:
            await _quietly(
                self.api.room.remove_participant(
                    lk.RoomParticipantIdentity(room=self.room_name, identity=self.human)
                ),
                "RemoveParticipant",
            )
        if self.listen_to is not None:
            self.listen_to(self.caller)
        if self.hold_sid is not None:
            await _quietly(self._subscribe(self.caller, [self.hold_sid], False), "unhold")
            with contextlib.suppress(Exception):
                await self.hold_player.stop()
            voice = await _quietly(self._agent_voice(), "GetParticipant")
            await _quietly(self._subscribe(self.caller, voice or [], True), "UpdateSubscriptions")
            await _quietly(self._mark_caller(""), "UpdateParticipant")
        if not self._decision.done():
            self._decision.cancel()


def _duration(seconds: float) -> Any:
    from google.protobuf.duration_pb2 import Duration

    return Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


def _error_text(error: BaseException) -> str:
    return (getattr(error, "message", None) or str(error) or type(error).__name__)[:300]


async def _quietly(step: Any, what: str) -> Any:
    try:
        return await step
    except Exception as error:  # best effort: the next undo step still runs
        logger.warning("warm transfer: %s while restoring the caller failed: %s", what, error)
        return None
