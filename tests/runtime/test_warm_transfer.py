"""Warm transfer in the caller's own room, driven through the call's handlers against the
LiveKit stand-in, which records every room-service call and who hears whom after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from livekit import api as lk
from livekit import rtc
from livekit.agents import StopResponse, llm
from livekit.agents.voice.events import UserInputTranscribedEvent

from runtime.agent import CallRecorder, CallState, VoxlineAgent, create_session
from runtime.call_control import CallControl
from runtime.providers import build_pipeline
from runtime.spec import CallSpec, CallStatus, EndReason, TransferDestinationSpec
from runtime.warm_transfer import decision_of
from tests.fakes.livekit_server import FakeLiveKit
from tests.fakes.openai_server import FakeOpenAI, tool_call
from tests.runtime.conftest import make_call

ROOM = "call-room-warm"
CALLER = "sip-caller-1"
AGENT = "agent-participant"
HUMAN = "transfer-billing-1"
TRUNK = "ST_warm"
BRIEFING = "Ann wants a refund for order twelve."
BILLING = TransferDestinationSpec(
    name="billing",
    destination="+16505550100",
    description="Refunds",
    type="warm",
    ring_timeout=5,
    briefing_instructions="Say the order number.",
    fallback_message="Billing cannot take your call right now.",
)


class RecordedHold:
    """Stands in for the hold track a real room publishes: kept frames, a track at LiveKit."""

    def __init__(self, livekit: FakeLiveKit) -> None:
        self.livekit = livekit
        self.frames: list[rtc.AudioFrame] = []
        self.sid: str | None = None
        self.stopped = 0

    async def start(self, frames: list[rtc.AudioFrame]) -> str:
        self.frames = list(frames)
        self.sid = self.livekit.publish_track(ROOM, AGENT, "hold-audio")
        return self.sid

    async def stop(self) -> None:
        if self.sid is not None:
            self.livekit.unpublish_track(ROOM, AGENT, self.sid)
            self.sid = None
        self.stopped += 1


@dataclass
class WarmCall:
    session: Any
    state: CallState
    recorder: CallRecorder
    control: CallControl
    hold: RecordedHold
    told: list[list[str]]
    #: (what the agent said, who heard what at that moment)
    said: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    briefed: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def warm_call(
    scripted_llm: FakeOpenAI, livekit: FakeLiveKit, livekit_api: lk.LiveKitAPI
) -> AsyncIterator[WarmCall]:
    livekit.add_participant(ROOM, CALLER, tracks=("audio",))
    livekit.add_participant(ROOM, AGENT, kind=lk.ParticipantInfo.Kind.AGENT, tracks=("voice",))
    livekit.outbound_trunks[TRUNK] = lk.SIPOutboundTrunkInfo(sip_trunk_id=TRUNK)
    call: CallSpec = make_call(scripted_llm.base_url, transfer_destinations=(BILLING,))
    call = call.replace(room_name=ROOM, sip_trunk_id=TRUNK)
    # the summary is asked for first, so its rule goes first
    scripted_llm.on(r"^Conversation so far", BRIEFING)
    scripted_llm.on("refund", tool_call("transfer_call", destination="billing"))
    scripted_llm.on_tool("transfer_call", "I'm sorry about that. How else can I help?")
    state = CallState(call=call)
    pipeline = build_pipeline(call.agent, audio=False, allow_private_urls=True)
    session = create_session(call, pipeline, state)
    recorder = CallRecorder(session, state)
    hold = RecordedHold(livekit)
    told: list[list[str]] = []

    async def on_transfers(transfers: list[dict]) -> None:
        told.append([transfer["outcome"] for transfer in transfers])

    control = CallControl(
        call,
        state,
        session,
        api=livekit_api,
        room_name=ROOM,
        caller_identity=CALLER,
        agent_identity=AGENT,
        hold_player=hold,
        on_transfers=on_transfers,
        clock=lambda: 1_700_000_000.0,
    )
    warm = WarmCall(session, state, recorder, control, hold, told)

    def on_item(event: Any) -> None:
        text = getattr(event.item, "text_content", None)
        if getattr(event.item, "role", None) == "assistant" and text:
            warm.said.append((text, livekit.hearing(ROOM)))
            if text.startswith("Hello, this is the assistant"):
                warm.briefed.set()

    session.on("conversation_item_added", on_item)
    await session.start(VoxlineAgent(call, state=state, control=control))
    try:
        yield warm
    finally:
        await session.aclose()


def requests_made(livekit: FakeLiveKit) -> list[tuple[str, dict[str, Any]]]:
    return [(r.method, r.request) for r in livekit.calls()]


def transfer_tool_output(warm: WarmCall) -> dict[str, Any]:
    [output] = [t for t in warm.recorder.transcript if t["role"] == "tool_result"]
    return output


HOLD_STEPS = [
    ("GetParticipant", {"room": ROOM, "identity": AGENT}),
    ("UpdateSubscriptions", {"room": ROOM, "identity": CALLER, "track_sids": ["<voice>"]}),
    (
        "UpdateSubscriptions",
        {"room": ROOM, "identity": CALLER, "track_sids": ["<hold-audio>"], "subscribe": True},
    ),
    (
        "UpdateParticipant",
        {"room": ROOM, "identity": CALLER, "attributes": {"voxline.transfer": "on_hold"}},
    ),
]


def _named(livekit: FakeLiveKit, steps: list[tuple[str, dict[str, Any]]]) -> list[tuple]:
    """The recorded requests with track sids replaced by `<track name>` (sids are random)."""
    names = {}
    for recorded in livekit.calls("GetParticipant"):
        for track in (recorded.response or {}).get("tracks", []):
            names[track["sid"]] = f"<{track['name']}>"
    named = []
    for method, request in steps:
        request = dict(request)
        if "track_sids" in request:
            request["track_sids"] = [names.get(sid, sid) for sid in request["track_sids"]]
        named.append((method, request))
    return named


def _dial_request(request: dict[str, Any]) -> dict[str, Any]:
    return {
        key: request.get(key)
        for key in (
            "room_name",
            "sip_trunk_id",
            "sip_call_to",
            "sip_number",
            "participant_identity",
            "wait_until_answered",
            "ringing_timeout",
        )
    }


async def _until_briefed(warm: WarmCall, run: asyncio.Future) -> None:
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(warm.briefed.wait()), run],
        timeout=15,
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert warm.briefed.is_set(), f"no briefing; the run ended: {run in done}"


# ------------------------------------------------------------------------------------------
# Accepted
# ------------------------------------------------------------------------------------------


async def test_warm_transfer_accepted_by_speech_bridges_caller_and_human(
    scripted_llm, livekit, livekit_api
):
    async with warm_call(scripted_llm, livekit, livekit_api) as warm:
        run = asyncio.ensure_future(warm.session.run(user_input="I want a refund, get me billing"))
        await _until_briefed(warm, run)
        # what the human says while briefed gets no answer from the LLM ...
        agent = warm.session.current_agent
        heard = llm.ChatMessage(role="user", content=["Yes, put them through."])
        with pytest.raises(StopResponse):
            await agent.on_user_turn_completed(agent.chat_ctx, heard)
        # ... it decides: the human says yes
        warm.control.on_transcript(
            UserInputTranscribedEvent(transcript="Yes, put them through.", is_final=True)
        )
        await asyncio.wait_for(run, 15)
        await asyncio.wait_for(warm.recorder.closed.wait(), 5)

    steps = _named(livekit, requests_made(livekit))
    assert steps[:4] == HOLD_STEPS
    [dial] = livekit.calls("CreateSIPParticipant")
    assert _dial_request(dial.request) == {
        "room_name": ROOM,
        "sip_trunk_id": TRUNK,
        "sip_call_to": "+16505550100",
        "sip_number": "+14155550000",
        "participant_identity": HUMAN,
        "wait_until_answered": True,
        "ringing_timeout": "5s",
    }
    assert [method for method, _ in steps] == [
        *(method for method, _ in HOLD_STEPS),
        "CreateSIPParticipant",
        "GetParticipant",
        "GetParticipant",
        "UpdateSubscriptions",
        "UpdateSubscriptions",
        # briefed; the human said yes
        "GetParticipant",
        "GetParticipant",
        "UpdateSubscriptions",
        "UpdateSubscriptions",
        "UpdateSubscriptions",
        "UpdateParticipant",
    ]
    assert steps[7:9] == [
        (
            "UpdateSubscriptions",
            {"room": ROOM, "identity": HUMAN, "track_sids": ["<audio>", "<hold-audio>"]},
        ),
        ("UpdateSubscriptions", {"room": ROOM, "identity": CALLER, "track_sids": ["<audio>"]}),
    ]
    assert steps[-1] == (
        "UpdateParticipant",
        {"room": ROOM, "identity": CALLER, "attributes": {"voxline.transfer": "bridged"}},
    )
    hearing = [r.hearing for r in livekit.calls()]
    # on hold: the caller hears the hold audio and nothing else
    assert hearing[3][CALLER] == [f"{AGENT}/hold-audio"]
    # while the human is briefed, neither hears the other; the human hears the agent
    assert hearing[8][CALLER] == [f"{AGENT}/hold-audio"]
    assert hearing[8][HUMAN] == [f"{AGENT}/voice"]
    # bridged: each hears the other (and the caller no hold audio)
    assert hearing[-1][CALLER] == [f"{HUMAN}/audio"]
    assert f"{CALLER}/audio" in hearing[-1][HUMAN]
    # the hold audio was played, and stopped
    assert warm.hold.frames and warm.hold.stopped == 1
    # the briefing went to the human alone, and says what the LLM wrote
    [(briefing, heard_then)] = [(text, h) for text, h in warm.said if BRIEFING in text]
    assert "Will you take the call?" in briefing
    assert heard_then[CALLER] == [f"{AGENT}/hold-audio"]
    assert f"{AGENT}/voice" in heard_then[HUMAN]
    summary_request = next(
        r for r in scripted_llm.requests if "Conversation so far" in str(r["messages"])
    )
    assert "Say the order number." in summary_request["messages"][0]["content"]
    # the caller heard the hold line before going on hold
    assert warm.said[0][0] == "One moment please, I'm connecting you to billing. Please hold."
    assert f"{AGENT}/voice" in warm.said[0][1][CALLER]
    report = warm.recorder.report()
    assert (report.status, report.end_reason) == (CallStatus.COMPLETED, EndReason.TRANSFERRED)
    assert report.transfers == [
        {
            "destination_name": "billing",
            "destination": "+1650***0100",
            "type": "warm",
            "at": "2023-11-14T22:13:20+00:00",
            "outcome": "succeeded",
            "briefing": BRIEFING,
            "reason": "accepted",
        }
    ]
    assert warm.told == [["initiated"], ["succeeded"]]
    # the human's "yes" was never answered by the LLM
    assert not any("Yes, put them through" in str(r["messages"]) for r in scripted_llm.requests)


# ------------------------------------------------------------------------------------------
# Declined, unanswered, refused
# ------------------------------------------------------------------------------------------


def _assert_caller_back_with_agent(livekit: FakeLiveKit, warm: WarmCall) -> None:
    assert HUMAN not in livekit.participants[ROOM]
    assert livekit.hearing(ROOM)[CALLER] == [f"{AGENT}/voice"]
    attributes = livekit.participants[ROOM][CALLER].attributes
    assert attributes.get("voxline.transfer") is None
    assert warm.hold.sid is None  # the hold track is gone
    assert not warm.recorder.closed.is_set()


async def test_warm_transfer_declined_by_key_brings_the_caller_back(
    scripted_llm, livekit, livekit_api
):
    async with warm_call(scripted_llm, livekit, livekit_api) as warm:
        run = asyncio.ensure_future(warm.session.run(user_input="I want a refund please"))
        await _until_briefed(warm, run)
        # a key from the caller on hold is not the human's answer
        warm.control.on_dtmf(
            rtc.SipDTMF(code=2, digit="2", participant=SimpleNamespace(identity=CALLER))
        )
        assert not run.done()
        warm.control.on_dtmf(
            rtc.SipDTMF(code=2, digit="2", participant=SimpleNamespace(identity=HUMAN))
        )
        await asyncio.wait_for(run, 15)
        _assert_caller_back_with_agent(livekit, warm)
        report = warm.recorder.report()

    methods = livekit.methods()
    assert methods[-5:] == [
        "RemoveParticipant",
        "UpdateSubscriptions",  # off hold
        "GetParticipant",
        "UpdateSubscriptions",  # the agent's voice again
        "UpdateParticipant",
    ]
    [record] = report.transfers
    assert (record["outcome"], record["reason"], record["type"]) == (
        "failed",
        "declined_by_key",
        "warm",
    )
    assert record["briefing"] == BRIEFING
    assert warm.told == [["initiated"], ["failed"]]
    output = transfer_tool_output(warm)
    assert output["is_error"] and "declined by key" in output["result"]
    said = [text for text, _ in warm.said]
    # the fallback message, said to the caller once they hear the agent again
    fallback = [h for text, h in warm.said if text == BILLING.fallback_message]
    assert fallback and fallback[0][CALLER] == [f"{AGENT}/voice"]
    assert said[-1] == "I'm sorry about that. How else can I help?"
    assert report.end_reason != EndReason.TRANSFERRED


async def test_warm_transfer_ring_timeout_when_the_human_never_answers(
    scripted_llm, livekit, livekit_api
):
    livekit.fail_dial(480)  # LiveKit's answer once the ringing timed out
    async with warm_call(scripted_llm, livekit, livekit_api) as warm:
        await asyncio.wait_for(warm.session.run(user_input="refund please"), 15)
        _assert_caller_back_with_agent(livekit, warm)
        report = warm.recorder.report()
    [dial] = livekit.calls("CreateSIPParticipant")
    assert dial.error == "resource_exhausted"
    assert "RemoveParticipant" not in livekit.methods()  # nobody to remove
    [record] = report.transfers
    assert (record["outcome"], record["reason"], record["sip_status"]) == (
        "failed",
        "no_answer",
        480,
    )
    assert "briefing" not in record
    assert "no answer" in transfer_tool_output(warm)["result"]


async def test_warm_transfer_human_silent_after_briefing_times_out(
    scripted_llm, livekit, livekit_api
):
    async with warm_call(scripted_llm, livekit, livekit_api) as warm:
        run = asyncio.ensure_future(warm.session.run(user_input="refund please"))
        await _until_briefed(warm, run)
        # an unclear answer decides nothing; then the ring timeout (5 s) runs out
        warm.control.on_transcript(UserInputTranscribedEvent(transcript="Hmm.", is_final=True))
        await asyncio.wait_for(run, 20)
        _assert_caller_back_with_agent(livekit, warm)
        [record] = warm.recorder.report().transfers
    assert (record["outcome"], record["reason"]) == ("failed", "no_answer")
    assert livekit.calls("RemoveParticipant")[0].request == {"room": ROOM, "identity": HUMAN}


async def test_warm_transfer_human_hanging_up_declines(scripted_llm, livekit, livekit_api):
    async with warm_call(scripted_llm, livekit, livekit_api) as warm:
        run = asyncio.ensure_future(warm.session.run(user_input="refund please"))
        await _until_briefed(warm, run)
        warm.control.on_participant_left(SimpleNamespace(identity=HUMAN))
        await asyncio.wait_for(run, 15)
        [record] = warm.recorder.report().transfers
    assert (record["outcome"], record["reason"]) == ("failed", "hung_up")


async def test_warm_transfer_caller_hanging_up_on_hold_ends_the_call(
    scripted_llm, livekit, livekit_api
):
    async with warm_call(scripted_llm, livekit, livekit_api) as warm:
        run = asyncio.ensure_future(warm.session.run(user_input="refund please"))
        await _until_briefed(warm, run)
        warm.control.on_participant_left(SimpleNamespace(identity=CALLER))
        await asyncio.wait_for(warm.recorder.closed.wait(), 15)
        report = warm.recorder.report()
    assert HUMAN not in livekit.participants[ROOM]  # nobody is left waiting for the caller
    assert report.end_reason == EndReason.USER_HANGUP
    [record] = report.transfers
    assert (record["outcome"], record["reason"]) == ("failed", "caller_hung_up")


async def test_warm_transfer_refused_create_sip_participant_never_leaves_the_caller_on_hold(
    scripted_llm, livekit, livekit_api
):
    livekit.fail("CreateSIPParticipant", code="permission_denied", message="no SIP grant")
    async with warm_call(scripted_llm, livekit, livekit_api) as warm:
        await asyncio.wait_for(warm.session.run(user_input="refund please"), 15)
        _assert_caller_back_with_agent(livekit, warm)
        report = warm.recorder.report()
    assert livekit.methods() == [
        *(method for method, _ in HOLD_STEPS),
        "CreateSIPParticipant",
        "UpdateSubscriptions",
        "GetParticipant",
        "UpdateSubscriptions",
        "UpdateParticipant",
    ]
    restore = _named(livekit, [(r.method, r.request) for r in livekit.calls()][-4:])
    assert restore[0] == (
        "UpdateSubscriptions",
        {"room": ROOM, "identity": CALLER, "track_sids": ["<hold-audio>"]},
    )
    assert restore[2] == (
        "UpdateSubscriptions",
        {"room": ROOM, "identity": CALLER, "track_sids": ["<voice>"], "subscribe": True},
    )
    [record] = report.transfers
    assert (record["outcome"], record["reason"]) == ("failed", "failed")
    assert "permission_denied" in record["error"]
    assert warm.told == [["initiated"], ["failed"]]


def test_warm_decisions_from_what_the_human_says():
    assert decision_of("Yes, I'll take it") is True
    assert decision_of("Sure, put them through") is True
    assert decision_of("No, I can't right now") is False
    assert decision_of("Hmm") is None
    assert decision_of("No problem, yes") is None  # both: ask again (or wait for a key)


async def test_warm_hold_audio_is_fetched_once_checked_and_falls_back_to_the_tone():
    import io
    import wave

    from aiohttp import web

    from runtime.warm_transfer import SAMPLE_RATE, hold_audio, hold_tone

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:  # one second of a 440 Hz tone, stereo, 8 kHz
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        t = np.arange(8000) / 8000
        mono = (np.sin(2 * np.pi * 440 * t) * 4000).astype(np.int16)
        writer.writeframes(np.repeat(mono, 2).tobytes())
    served: list[str] = []

    async def hold(request: web.Request) -> web.Response:
        served.append(request.path)
        return web.Response(body=buffer.getvalue(), content_type="audio/wav")

    async def not_audio(request: web.Request) -> web.Response:
        return web.Response(text="<html>")

    app = web.Application()
    app.router.add_get("/hold.wav", hold)
    app.router.add_get("/not-audio.wav", not_audio)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        url = f"http://127.0.0.1:{port}/hold.wav"
        # a private address is refused unless the platform allows it: the built-in tone plays
        refused = await hold_audio(url, allow_private=False)
        assert len(refused) == len(hold_tone()) and served == []
        frames = await hold_audio(url, allow_private=True)
        again = await hold_audio(url, allow_private=True)
        assert again is frames and served == ["/hold.wav"]  # fetched once, then cached
        assert {(f.sample_rate, f.num_channels) for f in frames} == {(SAMPLE_RATE, 1)}
        assert abs(sum(f.samples_per_channel for f in frames) / SAMPLE_RATE - 1.0) < 0.03
        broken = await hold_audio(f"http://127.0.0.1:{port}/not-audio.wav", allow_private=True)
        assert len(broken) == len(hold_tone())
    finally:
        await runner.cleanup()
