"""Call control on phone calls: cold transfer (SIP REFER), the keypad (DTMF), voicemail detection.

`CallControl` is what an agent can do to the call itself beyond talking, with the LiveKit side
passed in (the server API, the room); its tools (`transfer_call`, `send_dtmf`,
`detected_answering_machine`) are made by the factories at the bottom. Without a room or a SIP
participant (web rooms, simulations, text) each tool answers that it is not possible here.

A warm transfer (`"type": "warm"`) runs in the caller's own room with the room-service calls
self-hosted LiveKit has; `runtime.warm_transfer` does its steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from livekit import api as lk
from livekit import rtc
from livekit.agents import AgentSession, llm
from livekit.agents.llm import ToolError, function_tool
from livekit.agents.voice import RunContext
from livekit.agents.voice.events import (
    CloseEvent,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
)

from runtime.spec import (
    DTMF_DIGITS,
    AgentSpec,
    CallSpec,
    EndReason,
    TransferDestinationSpec,
    call_variables,
    render_template,
)
from runtime.warm_transfer import (
    CALLER_HUNG_UP,
    HoldPlayer,
    RoomHoldPlayer,
    TransferStepFailed,
    WarmTransfer,
)

if TYPE_CHECKING:
    from runtime.agent import CallState

logger = logging.getLogger(__name__)

TRANSFER_TOOL = "transfer_call"
SEND_DTMF_TOOL = "send_dtmf"
VOICEMAIL_TOOL = "detected_answering_machine"

HANDOVER_LINE = "One moment please, I'm transferring you to {name} now."
HOLD_LINE = "One moment please, I'm connecting you to {name}. Please hold."
#: How long the handover line may take before the transfer goes ahead regardless.
HANDOVER_SECONDS = 10.0
TRANSFER_TIMEOUT = 30.0
#: Seconds between two keypad tones (what LiveKit's own send_dtmf tool waits).
DTMF_GAP_SECONDS = 0.3
MAX_DTMF_DIGITS = 32
#: RFC 4733 event codes of the keys that are not digits.
DTMF_CODES = {"*": 10, "#": 11}

VOICEMAIL_PROMPT = (
    "This is an outbound call. If an answering machine or a voicemail greeting answers instead "
    f"of a person, call {VOICEMAIL_TOOL} at once and say nothing else."
)
#: With `leave_message`, how long to wait for the beep before speaking anyway.
BEEP_WAIT_SECONDS = 20.0
#: Voicemail is only decided in the call's first seconds (after the answer).
DETECTION_WINDOW_SECONDS = 30.0
#: A callee talking this long without a pause, at the start, is taken for a recorded greeting.
MONOLOGUE_SECONDS = 12.0
MESSAGE_SECONDS = 60.0


class TransferRefused(Exception):
    """LiveKit answered a transfer with the status "failed" (the REFER was refused)."""

    def __init__(self, reason: str, sip_status: int | None) -> None:
        super().__init__(reason)
        self.sip_status = sip_status or None


class DtmfSender(Protocol):
    """What sends keypad tones: `rtc.LocalParticipant` in a room."""

    async def publish_dtmf(self, *, code: int, digit: str) -> None: ...


def dtmf_code(digit: str) -> int:
    """The RFC 4733 event code of a keypad key ("0"-"9", "*", "#")."""
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise ValueError(f"{digit!r} is not a keypad key")
    return DTMF_CODES.get(digit) or int(digit)


def _now_iso(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat()


# --------------------------------------------------------------------------------------------
# The beep of an answering machine
# --------------------------------------------------------------------------------------------


class BeepDetector:
    """Finds an answering machine's beep in audio: one steady tone for at least `min_seconds`.

    The audio is cut into `window` second slices; a slice is tonal when one frequency between
    `low_hz` and `high_hz` holds most of its energy and it is loud enough. Consecutive tonal
    slices at the same frequency (within `tolerance`) add up to a beep. Speech spreads its
    energy over many harmonics and moves, so it does not pass.
    """

    def __init__(
        self,
        *,
        min_seconds: float = 0.2,
        low_hz: float = 350.0,
        high_hz: float = 2500.0,
        window: float = 0.04,
        min_peak_share: float = 0.6,
        min_rms: float = 300.0,
        tolerance: float = 0.04,
    ) -> None:
        self.min_seconds = min_seconds
        self.low_hz = low_hz
        self.high_hz = high_hz
        self.window = window
        self.min_peak_share = min_peak_share
        self.min_rms = min_rms
        self.tolerance = tolerance
        self._pending = np.zeros(0, dtype=np.float32)
        self._rate: int | None = None
        self._tone_hz: float | None = None
        self._tone_seconds = 0.0
        self.heard = False
        self.frequency: float | None = None

    def push(self, frame: rtc.AudioFrame) -> bool:
        """Add one frame (16-bit PCM, any rate; the first channel is used); True once a beep is
        heard."""
        if self.heard:
            return True
        samples = np.frombuffer(bytes(frame.data), dtype=np.int16)
        if frame.num_channels > 1:
            samples = samples[:: frame.num_channels]
        if self._rate != frame.sample_rate:
            self._rate = frame.sample_rate
            self._pending = np.zeros(0, dtype=np.float32)
        self._pending = np.concatenate([self._pending, samples.astype(np.float32)])
        rate = frame.sample_rate
        size = max(int(rate * self.window), 64)
        while len(self._pending) >= size and not self.heard:
            self._slice(self._pending[:size], size, rate)
            self._pending = self._pending[size:]
        return self.heard

    def _tone_of(self, chunk: np.ndarray, size: int, rate: int) -> float | None:
        if float(np.sqrt(np.mean(chunk**2))) < self.min_rms:
            return None
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(size))) ** 2
        spectrum[0] = 0.0
        peak = int(np.argmax(spectrum))
        total = float(spectrum.sum())
        if total <= 0:
            return None
        share = float(spectrum[max(peak - 2, 0) : peak + 3].sum()) / total
        hz = peak * rate / size
        if share < self.min_peak_share or not self.low_hz <= hz <= self.high_hz:
            return None
        return hz

    def _slice(self, chunk: np.ndarray, size: int, rate: int) -> None:
        hz = self._tone_of(chunk, size, rate)
        if hz is None:
            self._tone_hz, self._tone_seconds = None, 0.0
            return
        if self._tone_hz is not None and abs(hz - self._tone_hz) <= self._tone_hz * self.tolerance:
            self._tone_seconds += size / rate
        else:
            self._tone_hz, self._tone_seconds = hz, size / rate
        if self._tone_seconds >= self.min_seconds - 1e-9:
            self.heard = True
            self.frequency = self._tone_hz


# --------------------------------------------------------------------------------------------
# Call control
# --------------------------------------------------------------------------------------------


class CallControl:
    """Transfers, keypad and voicemail handling of one call; see the module docstring.

    Args:
        call: the call's spec (its agent's destinations, keypad menu and voicemail settings).
        state: the call's state: `end()` records why it ended, `transfers` each attempt.
        session: the call's session (says the handover line, hears keypad input, closes).
        api: LiveKit's server API (SIP REFER); None where there is no LiveKit.
        room: the call's room (its SIP participant, keypad tones); None for room-less calls.
        room_name: the room's name, when `room` is None but the API is there (tests).
        caller_identity: the SIP participant to transfer; by default the room's SIP participant.
        dtmf_sender: sends keypad tones; by default the room's local participant.
        clock: the wall clock of the transfer records.
        dtmf_gap: seconds between keypad tones.
        on_transfers: told the call's transfer attempts so far as each starts and ends (the
            worker sends them to the control plane, so their events fire as they happen).
        agent_identity: the agent's own participant (warm transfers keep its voice from the
            caller on hold); by default the room's local participant.
        hold_player: plays hold audio in the room; by default a track of the room's local
            participant.
        on_bridged: called once a warm transfer joined caller and human, before the agent
            leaves (the worker keeps the room open for them).
    """

    def __init__(
        self,
        call: CallSpec,
        state: CallState,
        session: AgentSession,
        *,
        api: lk.LiveKitAPI | None = None,
        room: rtc.Room | None = None,
        room_name: str | None = None,
        caller_identity: str | None = None,
        dtmf_sender: DtmfSender | None = None,
        clock: Callable[[], float] = time.time,
        dtmf_gap: float = DTMF_GAP_SECONDS,
        on_transfers: Callable[[list[dict[str, Any]]], Awaitable[Any]] | None = None,
        beep_wait: float = BEEP_WAIT_SECONDS,
        monologue_seconds: float = MONOLOGUE_SECONDS,
        agent_identity: str | None = None,
        hold_player: HoldPlayer | None = None,
        on_bridged: Callable[[], None] | None = None,
    ) -> None:
        self.call = call
        self.spec = call.agent
        self.state = state
        self.session = session
        self.api = api
        self.room = room
        self.room_name = room_name or (room.name if room is not None else call.room_name)
        self._caller_identity = caller_identity
        self._dtmf_sender = dtmf_sender
        self.clock = clock
        self.dtmf_gap = dtmf_gap
        self._on_transfers = on_transfers
        self.beep_wait = beep_wait
        self.monologue_seconds = monologue_seconds
        self.beeps = BeepDetector()
        self.beep_heard = asyncio.Event()
        self.voicemail_source: str | None = None
        self._voicemail_task: asyncio.Task | None = None
        self._monologue_task: asyncio.Task | None = None
        self._detect_until: float | None = None
        self._agent_identity = agent_identity
        self._hold_player = hold_player
        self._on_bridged = on_bridged
        #: the warm transfer under way, if any
        self.warm: WarmTransfer | None = None
        self._close_on_disconnect: bool | None = None
        if room is not None:
            room.on("sip_dtmf_received", self.on_dtmf)
            room.on("participant_disconnected", self.on_participant_left)
        session.on("user_input_transcribed", self.on_transcript)
        if self.detects_voicemail:
            session.on("user_state_changed", self._on_user_state)
        session.on("close", self._on_close)

    # -- what the call offers ---------------------------------------------------------------

    def hand_to(self, spec: AgentSpec) -> None:
        """Another agent took the call over: its destinations, keypad menu and settings apply."""
        self.spec = spec

    @property
    def detects_voicemail(self) -> bool:
        return self.spec.voicemail_detection and self.call.direction == "outbound"

    def tools(self) -> list[llm.RawFunctionTool]:
        """The call-control tools this call's agent gets."""
        tools = []
        if self.spec.transfer_destinations:
            tools.append(build_transfer_tool(self))
        if self.call.call_type == "phone":
            tools.append(build_send_dtmf_tool(self))
        if self.detects_voicemail:
            tools.append(build_voicemail_tool(self))
        return tools

    def instructions(self) -> str:
        """What the prompt gains for these tools (empty when nothing)."""
        return VOICEMAIL_PROMPT if self.detects_voicemail else ""

    def answered(self) -> None:
        """The callee picked up: voicemail is decided from now, for a while."""
        self._detect_until = time.monotonic() + DETECTION_WINDOW_SECONDS

    def _room_sip_participant(self) -> str | None:
        if self._caller_identity or self.room is None:
            return self._caller_identity
        for participant in self.room.remote_participants.values():
            if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP:
                return participant.identity
        return None

    async def caller_identity(self) -> str | None:
        """The caller's SIP participant, or None (web callers have none).

        Found in the room the session joined, else through LiveKit's API (room-less runs).
        """
        identity = self._room_sip_participant()
        if identity or self.room is not None or self.api is None or not self.room_name:
            return identity
        try:
            listed = await self.api.room.list_participants(
                lk.ListParticipantsRequest(room=self.room_name)
            )
        except Exception as error:  # no such room: no SIP participant either
            logger.info("call %s: participants not listed: %s", self.call.call_id, error)
            return None
        for participant in listed.participants:
            if participant.kind == lk.ParticipantInfo.Kind.SIP:
                return participant.identity
        return None

    # -- cold transfer ----------------------------------------------------------------------

    def destination(self, name: str) -> TransferDestinationSpec:
        for destination in self.spec.transfer_destinations:
            if destination.name == name:
                return destination
        names = ", ".join(d.name for d in self.spec.transfer_destinations)
        raise ToolError(f"There is no transfer destination {name!r}; choose one of: {names}.")

    async def transfer(self, name: str) -> None:
        """Say a handover line and move the caller to the named destination with a SIP REFER.

        Returns when the caller has been handed over (the session then closes). Each attempt is
        recorded in `state.transfers`.

        Raises:
            ToolError: no such destination, no phone caller to transfer, or the REFER failed;
                the caller stays with the agent, which is told to say so.
        """
        destination = self.destination(name)
        identity = await self.caller_identity() if self.api is not None else None
        if identity is None or self.api is None or not self.room_name:
            raise ToolError(
                "Transferring is not possible on this call: the caller is not on a phone line. "
                "Tell the caller you cannot transfer them from here and offer other help."
            )
        record: dict[str, Any] = {
            "destination_name": destination.name,
            "destination": destination.masked,
            "type": destination.type,
            "at": _now_iso(self.clock),
            "outcome": "initiated",
        }
        self.state.transfers.append(record)
        await self._tell_transfers()
        if destination.type == "warm":
            await self._warm_transfer(destination, identity, record)
            return
        logger.info(
            "call %s: transferring the caller to %s (%s)",
            self.call.call_id,
            destination.name,
            destination.masked,
        )
        await self._say_handover(destination)
        try:
            outcome = await self.api.sip.transfer_sip_participant(
                lk.TransferSIPParticipantRequest(
                    room_name=self.room_name,
                    participant_identity=identity,
                    transfer_to=destination.transfer_to,
                    play_dialtone=False,
                ),
                timeout=TRANSFER_TIMEOUT,
            )
            # Servers that predate the transfer status answer an empty (ongoing) response.
            if outcome.status == lk.SIPTransferStatus.STS_TRANSFER_FAILED:
                raise TransferRefused(
                    lk.SIPTransferReason.Name(outcome.reason).removeprefix("STR_").lower(),
                    outcome.sip_status.code if outcome.HasField("sip_status") else None,
                )
        except Exception as error:  # refused, a Twirp error, a timeout, LiveKit unreachable
            reason = getattr(error, "message", None) or str(error) or type(error).__name__
            status = getattr(error, "sip_status_code", None) or getattr(error, "sip_status", None)
            record.update(outcome="failed", error=reason[:300], sip_status=status)
            await self._tell_transfers()
            logger.warning(
                "call %s: the transfer to %s failed: %s", self.call.call_id, name, reason
            )
            raise ToolError(
                f"The transfer to {destination.name} failed. The caller is still on the line "
                "with you: tell them you could not transfer them and offer to help or try again."
            ) from error
        record["outcome"] = "succeeded"
        await self._tell_transfers()
        logger.info("call %s: the caller was transferred to %s", self.call.call_id, name)
        self.state.end(EndReason.TRANSFERRED)
        self.session.shutdown(drain=False)

    async def _warm_transfer(
        self, destination: TransferDestinationSpec, caller: str, record: dict[str, Any]
    ) -> None:
        """Hold, dial, brief, then bridge (the session closes) or bring the caller back."""
        agent_identity = self._agent_identity or (
            self.room.local_participant.identity if self.room is not None else None
        )
        hold_player = self._hold_player or (
            RoomHoldPlayer(self.room) if self.room is not None else None
        )
        if agent_identity is None or hold_player is None:
            record.update(outcome="failed", reason="failed", error="no room to hold the caller in")
            await self._tell_transfers()
            raise ToolError("A warm transfer is not possible on this call. Offer other help.")
        await self._say_line(HOLD_LINE.format(name=destination.name.replace("_", " ")))
        self.warm = WarmTransfer(
            self,
            destination,
            caller=caller,
            agent_identity=agent_identity,
            record=record,
            hold_player=hold_player,
            listen_to=self._listen_to if self.room is not None else None,
        )
        try:
            await self.warm.run()
        except TransferStepFailed as failed:
            error = failed.detail[:300] if failed.detail != failed.reason else None
            record.update(
                outcome="failed", reason=failed.reason, error=error, sip_status=failed.sip_status
            )
            await self._tell_transfers()
            logger.info(
                "call %s: warm transfer to %s failed: %s",
                self.call.call_id,
                destination.name,
                failed.reason,
            )
            if failed.reason == CALLER_HUNG_UP:
                self.state.end(EndReason.USER_HANGUP)
                self.session.shutdown(drain=False)
                return
            fallback = destination.fallback_message.strip()
            if fallback:
                await self._say_line(fallback)
            told = f" You have told them: {fallback!r}." if fallback else ""
            raise ToolError(
                f"{destination.name} did not take the call ({failed.reason.replace('_', ' ')}). "
                f"The caller is back on the line with you.{told} Tell them briefly if you have "
                "not, and offer to help or take a message."
            ) from failed
        finally:
            self.warm = None
        record["outcome"] = "succeeded"
        await self._tell_transfers()
        logger.info("call %s: warm transfer to %s bridged", self.call.call_id, destination.name)
        self.state.end(EndReason.TRANSFERRED)
        if self._on_bridged is not None:
            self._on_bridged()
        self.session.shutdown(drain=False)

    def _listen_to(self, identity: str) -> None:
        """The agent hears `identity` (a warm transfer's human while briefed, else the caller).

        While it hears the human, the human hanging up must not close the session (it declines
        the call); the session's own rule applies again once it hears the caller.
        """
        with contextlib.suppress(RuntimeError):
            room_io = self.session.room_io
            options = room_io._options  # livekit-agents has no public switch once started
            if self.warm is not None and identity == self.warm.human:
                self._close_on_disconnect = options.close_on_disconnect
                options.close_on_disconnect = False
            elif self._close_on_disconnect is not None:
                options.close_on_disconnect = self._close_on_disconnect
                self._close_on_disconnect = None
            room_io.set_participant(identity)

    @property
    def briefing_human(self) -> bool:
        """A warm transfer's human is being briefed: the agent answers nothing they say."""
        return self.warm is not None and self.warm.listening

    def on_transcript(self, event: UserInputTranscribedEvent) -> None:
        """`user_input_transcribed`: during a briefing, the human's words decide."""
        if self.warm is not None and event.is_final:
            self.warm.heard(event.transcript)

    def on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        """`participant_disconnected`: a briefed human hanging up declines."""
        if self.warm is not None:
            self.warm.left(participant.identity)

    async def _tell_transfers(self) -> None:
        """Pass the attempts so far on; a failure to do so never stops the transfer (the
        end-of-call report carries them too)."""
        if self._on_transfers is None:
            return
        try:
            await self._on_transfers([dict(record) for record in self.state.transfers])
        except Exception as error:  # the control plane unreachable, say
            logger.warning("call %s: transfers not sent yet: %s", self.call.call_id, error)

    async def _say_handover(self, destination: TransferDestinationSpec) -> None:
        await self._say_line(HANDOVER_LINE.format(name=destination.name.replace("_", " ")))

    async def _say_line(self, line: str) -> None:
        try:
            handle = self.session.say(line, allow_interruptions=False)
            await asyncio.wait_for(handle.wait_for_playout(), HANDOVER_SECONDS)
        except (RuntimeError, TimeoutError):
            logger.warning("call %s: the handover line was not said", self.call.call_id)

    # -- keypad -----------------------------------------------------------------------------

    def _sender(self) -> DtmfSender | None:
        if self._dtmf_sender is not None:
            return self._dtmf_sender
        return self.room.local_participant if self.room is not None else None

    async def send_dtmf(self, digits: str) -> str:
        """Press keys on the line (to navigate a phone menu); returns what was sent.

        Raises:
            ToolError: the digits are not keypad keys, or there is no phone line to send on.
        """
        digits = "".join(str(digits or "").split())
        if not digits or len(digits) > MAX_DTMF_DIGITS or any(d not in DTMF_DIGITS for d in digits):
            raise ToolError(
                f"Send between 1 and {MAX_DTMF_DIGITS} keypad keys: digits 0-9, * and # only."
            )
        sender = self._sender()
        if sender is None or self.call.call_type != "phone":
            raise ToolError("Keypad tones cannot be sent on this call: it is not a phone line.")
        for index, digit in enumerate(digits):
            if index:
                await asyncio.sleep(self.dtmf_gap)
            try:
                await sender.publish_dtmf(code=dtmf_code(digit), digit=digit)
            except Exception as error:
                logger.warning("call %s: keypad tone not sent: %s", self.call.call_id, error)
                raise ToolError(f"The keypad tones stopped after {digits[:index]!r}.") from error
        logger.info("call %s: sent %d keypad tone(s)", self.call.call_id, len(digits))
        return f"Pressed {' '.join(digits)} on the keypad."

    def keypad_input(self, digit: str) -> str:
        """The text the agent gets for a key the caller pressed, with its menu instruction."""
        text = f"The caller pressed {digit} on their keypad."
        instruction = self.spec.dtmf_menu.get(digit)
        if instruction:
            text += f" Keypad menu: {digit} means: {instruction}"
        return text

    def on_dtmf(self, event: rtc.SipDTMF) -> None:
        """`sip_dtmf_received`: the caller pressed a key; the agent answers it as input."""
        digit = str(event.digit or "")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            logger.info("call %s: ignoring keypad event %r", self.call.call_id, event.digit)
            return
        sender = event.participant.identity if event.participant is not None else None
        if self.warm is not None:
            self.warm.keypad(digit, sender)  # the human answering; the caller is on hold
            return
        caller = self._room_sip_participant()
        if caller and sender is not None and sender != caller:
            return
        logger.info("call %s: the caller pressed a key", self.call.call_id)
        with contextlib.suppress(RuntimeError):
            self.session.interrupt()
        try:
            self.session.generate_reply(user_input=self.keypad_input(digit))
        except RuntimeError as error:  # the session is closing
            logger.info("call %s: keypad input after the end: %s", self.call.call_id, error)

    # -- voicemail --------------------------------------------------------------------------

    @property
    def at_voicemail(self) -> bool:
        return self.voicemail_source is not None

    async def listen(self, audio: AsyncIterable[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
        """Pass the callee's audio on, listening for a beep in the first seconds."""
        async for frame in audio:
            if (
                self.detects_voicemail
                and not self.beep_heard.is_set()
                and isinstance(frame, rtc.AudioFrame)
                and self._detecting()
                and self.beeps.push(frame)
            ):
                logger.info("call %s: a %.0f Hz beep", self.call.call_id, self.beeps.frequency or 0)
                self.beep_heard.set()
                self.voicemail_detected("beep")
            yield frame

    def _detecting(self) -> bool:
        if self.at_voicemail:
            return True  # waiting for the beep to speak after it
        return self._detect_until is None or time.monotonic() < self._detect_until

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "speaking" and self._detecting() and not self.at_voicemail:
            if self._monologue_task is None:
                self._monologue_task = asyncio.create_task(self._monologue())
        elif event.new_state != "speaking" and self._monologue_task is not None:
            self._monologue_task.cancel()
            self._monologue_task = None

    async def _monologue(self) -> None:
        await asyncio.sleep(self.monologue_seconds)
        self._monologue_task = None
        self.voicemail_detected("monologue")

    def voicemail_detected(self, source: str) -> None:
        """An answering machine took the call (`source`: llm, beep or monologue): hang up, or
        leave the message after the beep, as the agent says. Only the first call counts."""
        if self.at_voicemail or self.state.end_reason is not None:
            return
        self.voicemail_source = source
        logger.info(
            "call %s: answering machine (%s); %s",
            self.call.call_id,
            source,
            self.spec.voicemail_action,
        )
        with contextlib.suppress(RuntimeError):
            self.session.interrupt(force=True)
        self._voicemail_task = asyncio.create_task(self._after_voicemail())

    async def _after_voicemail(self) -> None:
        message = render_template(self.spec.voicemail_message, call_variables(self.call)).strip()
        if self.spec.voicemail_action == "leave_message" and message:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.beep_heard.wait(), self.beep_wait)
            with contextlib.suppress(RuntimeError):
                self.session.interrupt(force=True)
            try:
                handle = self.session.say(message, allow_interruptions=False)
                await asyncio.wait_for(handle.wait_for_playout(), MESSAGE_SECONDS)
            except (RuntimeError, TimeoutError):
                logger.warning("call %s: the voicemail message was cut", self.call.call_id)
        self.state.end(EndReason.VOICEMAIL)
        self.session.shutdown(drain=True)

    def _on_close(self, _: CloseEvent) -> None:
        if self.room is not None:
            self.room.off("sip_dtmf_received", self.on_dtmf)
            self.room.off("participant_disconnected", self.on_participant_left)
        if self._monologue_task is not None:
            self._monologue_task.cancel()


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------


def build_transfer_tool(control: CallControl) -> llm.RawFunctionTool:
    """`transfer_call`: the LLM names one of the agent's destinations (an enum it sees)."""
    destinations = control.spec.transfer_destinations
    listed = "\n".join(f"- {d.name}: {d.description or 'no description'}" for d in destinations)

    async def transfer_call(raw_arguments: dict[str, object], context: RunContext) -> None:
        name = str(raw_arguments.get("destination") or "")
        if control.destination(name).type == "warm":
            # the caller speaking on hold must not cancel the transfer
            context.disallow_interruptions()
        await control.transfer(name)

    return function_tool(
        transfer_call,
        raw_schema={
            "name": TRANSFER_TOOL,
            "description": (
                "Transfer the caller to a person or department when they ask for it or when "
                "their request is for one of these destinations. You say a short handover line "
                f"yourself; do not say goodbye first.\n{listed}"
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "destination": {
                        "type": "string",
                        "enum": [d.name for d in destinations],
                        "description": "The name of the destination",
                    }
                },
                "required": ["destination"],
            },
        },
    )


def build_send_dtmf_tool(control: CallControl) -> llm.RawFunctionTool:
    """`send_dtmf`: press keys on the line, to navigate a phone menu on outbound calls."""

    async def send_dtmf(raw_arguments: dict[str, object], context: RunContext) -> str:
        return await control.send_dtmf(str(raw_arguments.get("digits") or ""))

    return function_tool(
        send_dtmf,
        raw_schema={
            "name": SEND_DTMF_TOOL,
            "description": (
                "Press keys on the telephone keypad (DTMF), for example to choose an option of "
                "an automated phone menu you hear."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "digits": {
                        "type": "string",
                        "pattern": f"^[0-9*#]{{1,{MAX_DTMF_DIGITS}}}$",
                        "description": "The keys to press in order: digits 0-9, * and #",
                    }
                },
                "required": ["digits"],
            },
        },
    )


def build_voicemail_tool(control: CallControl) -> llm.RawFunctionTool:
    """`detected_answering_machine`, after LiveKit's outbound-caller example."""

    async def detected_answering_machine(
        raw_arguments: dict[str, object], context: RunContext
    ) -> None:
        control.voicemail_detected("llm")

    return function_tool(
        detected_answering_machine,
        raw_schema={
            "name": VOICEMAIL_TOOL,
            "description": (
                "Call this when an answering machine or voicemail greeting answered instead of a "
                "person, as soon as you hear its greeting."
            ),
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    )
