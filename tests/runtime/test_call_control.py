"""Call control on a room-less text session: transfers against the LiveKit stand-in, keypad
handlers with rtc events and a recorded `publish_dtmf`, voicemail by tool, beep and monologue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from livekit import api as lk
from livekit import rtc
from livekit.agents.voice.events import UserStateChangedEvent

from runtime.agent import CallRecorder, CallState, VoxlineAgent, create_session
from runtime.audio_io import silence, to_frames
from runtime.call_control import BeepDetector, CallControl
from runtime.providers import build_pipeline
from runtime.simulate import tone
from runtime.spec import CallSpec, CallStatus, EndReason, TransferDestinationSpec
from tests.fakes.openai_server import FakeOpenAI, tool_call
from tests.runtime.conftest import make_call

ROOM = "call-room-1"
CALLER_IDENTITY = "sip-caller-1"
DESTINATIONS = (
    TransferDestinationSpec(
        name="billing", destination="+16505550100", description="Invoices and payments"
    ),
    TransferDestinationSpec(
        name="support", destination="sip:help@pbx.example.com", description="Technical help"
    ),
)


@dataclass
class ControlledCall:
    session: Any
    state: CallState
    recorder: CallRecorder
    control: CallControl


class RecordedKeypad:
    """Stands in for `rtc.LocalParticipant.publish_dtmf`: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def publish_dtmf(self, *, code: int, digit: str) -> None:
        self.sent.append((code, digit))


@contextlib.asynccontextmanager
async def controlled_call(call: CallSpec, **control_options: Any) -> AsyncIterator[ControlledCall]:
    state = CallState(call=call)
    pipeline = build_pipeline(call.agent, audio=False, allow_private_urls=True)
    session = create_session(call, pipeline, state)
    recorder = CallRecorder(session, state)
    control = CallControl(call, state, session, **control_options)
    agent = VoxlineAgent(call, state=state, control=control)
    await session.start(agent)
    if agent.greeting is not None:
        await agent.greeting
    control.answered()
    try:
        yield ControlledCall(session, state, recorder, control)
    finally:
        await session.aclose()


def _transfer_call(scripted_llm: FakeOpenAI, **changes: Any) -> CallSpec:
    call = make_call(scripted_llm.base_url, transfer_destinations=DESTINATIONS)
    return call.replace(room_name=ROOM, **changes)


def _tool_schema(scripted_llm: FakeOpenAI, name: str) -> dict:
    [tool] = [t for t in scripted_llm.requests[0]["tools"] if t["function"]["name"] == name]
    return tool["function"]


# ------------------------------------------------------------------------------------------
# Cold transfer
# ------------------------------------------------------------------------------------------


async def test_transfer_call_refers_the_sip_caller_to_the_named_destination(
    scripted_llm, livekit, livekit_api
):
    livekit.add_participant(ROOM, CALLER_IDENTITY)
    scripted_llm.on("billing", tool_call("transfer_call", destination="billing"))
    told: list[list[str]] = []

    async def on_transfers(transfers: list[dict]) -> None:
        told.append([transfer["outcome"] for transfer in transfers])

    async with controlled_call(
        _transfer_call(scripted_llm),
        api=livekit_api,
        clock=lambda: 1_700_000_000.0,
        on_transfers=on_transfers,
    ) as cc:
        await cc.session.run(user_input="Put me through to billing please")
        await asyncio.wait_for(cc.recorder.closed.wait(), 5)

    schema = _tool_schema(scripted_llm, "transfer_call")
    assert schema["parameters"]["properties"]["destination"]["enum"] == ["billing", "support"]
    assert "billing: Invoices and payments" in schema["description"]
    [transfer] = livekit.calls("TransferSIPParticipant")
    assert transfer.error is None
    request = dict(transfer.request)
    request.pop("ringing_timeout", None)  # livekit-api pins its own ring window
    assert request == {
        "room_name": ROOM,
        "participant_identity": CALLER_IDENTITY,
        "transfer_to": "tel:+16505550100",
    }
    assert CALLER_IDENTITY not in livekit.participants[ROOM]
    report = cc.recorder.report()
    assert (report.status, report.end_reason) == (CallStatus.COMPLETED, EndReason.TRANSFERRED)
    assert report.transfers == [
        {
            "destination_name": "billing",
            "destination": "+1650***0100",
            "type": "cold",
            "at": "2023-11-14T22:13:20+00:00",
            "outcome": "succeeded",
        }
    ]
    assert told == [["initiated"], ["succeeded"]]  # as it happened, for the live events
    said = [turn["text"] for turn in report.transcript if turn["role"] == "assistant"]
    assert said[-1] == "One moment please, I'm transferring you to billing now."
    assert len(scripted_llm.requests) == 1  # after the handover nothing more is generated


async def test_a_refused_refer_keeps_the_caller_with_the_agent(scripted_llm, livekit, livekit_api):
    livekit.add_participant(ROOM, CALLER_IDENTITY)
    livekit.fail_transfer(603)
    scripted_llm.on("support", tool_call("transfer_call", destination="support"))
    scripted_llm.on_tool("transfer_call", "Sorry, I could not transfer you. How else can I help?")
    async with controlled_call(_transfer_call(scripted_llm), api=livekit_api) as cc:
        result = await cc.session.run(user_input="I need technical support")
        result.expect.next_event().is_function_call(name="transfer_call")
        handover = result.expect.next_event().is_message(role="assistant").event().item
        assert handover.text_content == "One moment please, I'm transferring you to support now."
        output = result.expect.next_event().is_function_call_output()
        assert output.event().item.is_error
        assert "still on the line" in output.event().item.output
        message = result.expect.next_event().is_message(role="assistant")
        assert message.event().item.text_content.startswith("Sorry, I could not transfer you")
        assert not cc.recorder.closed.is_set()
        report = cc.recorder.report()

    [transfer] = livekit.calls("TransferSIPParticipant")
    assert transfer.request["transfer_to"] == "sip:help@pbx.example.com"
    assert transfer.error == "permission_denied"
    assert CALLER_IDENTITY in livekit.participants[ROOM]
    [record] = report.transfers
    assert record["outcome"] == "failed" and record["sip_status"] == 603
    assert record["destination"] == "sip:***lp@pbx.example.com"
    assert report.end_reason != EndReason.TRANSFERRED


async def test_a_web_caller_cannot_be_transferred(scripted_llm, livekit, livekit_api):
    call = _transfer_call(scripted_llm, call_type="web", direction="web")
    livekit.add_participant(ROOM, "web-visitor", kind=lk.ParticipantInfo.Kind.STANDARD)
    scripted_llm.on("billing", tool_call("transfer_call", destination="billing"))
    scripted_llm.on_tool("transfer_call", "I can't transfer you from here.")
    async with controlled_call(call, api=livekit_api) as cc:
        result = await cc.session.run(user_input="billing please")
        result.expect.next_event().is_function_call(name="transfer_call")
        output = result.expect.next_event().is_function_call_output().event().item
        assert output.is_error and "not possible on this call" in output.output
        report = cc.recorder.report()
    assert livekit.calls("TransferSIPParticipant") == []
    assert report.transfers == []
    # a web call has no keypad either
    assert "send_dtmf" not in [t["function"]["name"] for t in scripted_llm.requests[0]["tools"]]


async def test_without_destinations_there_is_no_transfer_tool(scripted_llm):
    scripted_llm.on("hi", "Hello!")
    async with controlled_call(make_call(scripted_llm.base_url)) as cc:
        await cc.session.run(user_input="hi")
    names = [t["function"]["name"] for t in scripted_llm.requests[0].get("tools", [])]
    assert "transfer_call" not in names and "detected_answering_machine" not in names


# ------------------------------------------------------------------------------------------
# Keypad
# ------------------------------------------------------------------------------------------


async def test_send_dtmf_publishes_each_key_in_order(scripted_llm):
    keypad = RecordedKeypad()
    scripted_llm.on("menu", tool_call("send_dtmf", digits="1 2#"))
    scripted_llm.on_tool("send_dtmf", "Done.")
    async with controlled_call(
        make_call(scripted_llm.base_url), dtmf_sender=keypad, dtmf_gap=0
    ) as cc:
        result = await cc.session.run(user_input="the menu says press 1 2 then pound")
        result.expect.next_event().is_function_call(name="send_dtmf")
        output = result.expect.next_event().is_function_call_output().event().item
        assert not output.is_error
    assert keypad.sent == [(1, "1"), (2, "2"), (11, "#")]
    assert _tool_schema(scripted_llm, "send_dtmf")["parameters"]["properties"]["digits"]["pattern"]


async def test_send_dtmf_refuses_what_is_not_a_key(scripted_llm):
    keypad = RecordedKeypad()
    scripted_llm.on("menu", tool_call("send_dtmf", digits="1A"))
    scripted_llm.on_tool("send_dtmf", "I could not press that.")
    async with controlled_call(make_call(scripted_llm.base_url), dtmf_sender=keypad) as cc:
        result = await cc.session.run(user_input="menu")
        result.expect.next_event().is_function_call(name="send_dtmf")
        assert result.expect.next_event().is_function_call_output().event().item.is_error
    assert keypad.sent == []


async def test_a_pressed_key_reaches_the_agent_with_its_menu_instruction(scripted_llm):
    call = make_call(scripted_llm.base_url, dtmf_menu={"1": "Ask which invoice they mean."})
    scripted_llm.on("pressed", "Which invoice do you mean?")
    async with controlled_call(call) as cc:
        answered = _answered(cc)
        cc.control.on_dtmf(rtc.SipDTMF(code=1, digit="1"))
        await asyncio.wait_for(answered.wait(), 5)
        cc.control.on_dtmf(rtc.SipDTMF(code=12, digit="A"))  # not a phone key: ignored
        await asyncio.sleep(0)

    [request] = scripted_llm.requests
    last = request["messages"][-1]
    assert last["role"] == "user"
    assert last["content"] == (
        "The caller pressed 1 on their keypad. Keypad menu: 1 means: Ask which invoice they mean."
    )


async def test_an_unmapped_key_is_still_input(scripted_llm):
    scripted_llm.on("pressed", "You pressed nine.")
    async with controlled_call(make_call(scripted_llm.base_url)) as cc:
        answered = _answered(cc)
        cc.control.on_dtmf(rtc.SipDTMF(code=9, digit="9"))
        await asyncio.wait_for(answered.wait(), 5)
    pressed = scripted_llm.requests[0]["messages"][-1]["content"]
    assert pressed == "The caller pressed 9 on their keypad."


def _answered(cc: ControlledCall) -> asyncio.Event:
    """Set when the agent has answered (an assistant message was added)."""
    answered = asyncio.Event()
    cc.session.on(
        "conversation_item_added",
        lambda event: answered.set() if event.item.role == "assistant" else None,
    )
    return answered


# ------------------------------------------------------------------------------------------
# Voicemail
# ------------------------------------------------------------------------------------------


def _outbound(scripted_llm: FakeOpenAI, **agent_fields: Any) -> CallSpec:
    call = make_call(
        scripted_llm.base_url,
        voicemail_detection=True,
        dynamic_variables={"first_name": "Ana"},
        **agent_fields,
    )
    return call.replace(direction="outbound")


async def _frames(frames: list[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    for frame in frames:
        yield frame


async def test_answering_machine_tool_hangs_up(scripted_llm):
    scripted_llm.on("leave a message", tool_call("detected_answering_machine"))
    async with controlled_call(_outbound(scripted_llm, voicemail_action="hang_up")) as cc:
        await cc.session.run(user_input="Hi, this is Sam, please leave a message")
        await asyncio.wait_for(cc.recorder.closed.wait(), 5)
    report = cc.recorder.report()
    assert report.end_reason == EndReason.VOICEMAIL and report.status == CallStatus.COMPLETED
    assert cc.control.voicemail_source == "llm"
    assert [t for t in report.transcript if t["role"] == "assistant"] == []
    system = scripted_llm.requests[0]["messages"][0]["content"]
    assert "call detected_answering_machine" in system


async def test_leave_message_waits_for_the_beep_then_speaks_the_rendered_message(scripted_llm):
    call = _outbound(
        scripted_llm,
        voicemail_action="leave_message",
        voicemail_message="Hi {{first_name}}, this is {{agent_name}}. Please call us back.",
    )
    scripted_llm.on("leave a message", tool_call("detected_answering_machine"))
    async with controlled_call(call) as cc:
        await cc.session.run(user_input="You have reached Sam, leave a message after the tone")
        await asyncio.sleep(0.2)
        assert not cc.recorder.closed.is_set()  # waiting for the beep
        assert cc.control.beep_heard.is_set() is False
        audio = silence(0.3) + tone(1000, 0.4) + silence(0.3)
        passed = [frame async for frame in cc.control.listen(_frames(audio))]
        await asyncio.wait_for(cc.recorder.closed.wait(), 5)
    assert len(passed) == len(audio)  # the audio still reaches the STT
    assert cc.control.beep_heard.is_set()
    report = cc.recorder.report()
    assert report.end_reason == EndReason.VOICEMAIL
    said = [t["text"] for t in report.transcript if t["role"] == "assistant"]
    assert said == ["Hi Ana, this is Sunny. Please call us back."]


async def test_a_beep_alone_means_voicemail(scripted_llm):
    async with controlled_call(_outbound(scripted_llm, voicemail_action="hang_up")) as cc:
        async for _ in cc.control.listen(_frames(tone(1400, 0.3))):
            pass
        await asyncio.wait_for(cc.recorder.closed.wait(), 5)
    assert cc.control.voicemail_source == "beep"
    assert cc.recorder.report().end_reason == EndReason.VOICEMAIL


async def test_a_long_monologue_at_the_start_means_voicemail(scripted_llm):
    call = _outbound(scripted_llm, voicemail_action="hang_up")
    async with controlled_call(call, monologue_seconds=0.05) as cc:
        # a short "hello?" is a person
        cc.control._on_user_state(
            UserStateChangedEvent(old_state="listening", new_state="speaking")
        )
        cc.control._on_user_state(
            UserStateChangedEvent(old_state="speaking", new_state="listening")
        )
        await asyncio.sleep(0.1)
        assert cc.control.voicemail_source is None
        cc.control._on_user_state(
            UserStateChangedEvent(old_state="listening", new_state="speaking")
        )
        await asyncio.wait_for(cc.recorder.closed.wait(), 5)
    assert cc.control.voicemail_source == "monologue"
    assert cc.recorder.report().end_reason == EndReason.VOICEMAIL


async def test_voicemail_detection_is_for_outbound_calls_only(scripted_llm):
    call = make_call(scripted_llm.base_url, voicemail_detection=True)  # inbound
    scripted_llm.on("hi", "Hello!")
    async with controlled_call(call) as cc:
        await cc.session.run(user_input="hi")
        async for _ in cc.control.listen(_frames(tone(1000, 0.5))):
            pass
        await asyncio.sleep(0.05)
        assert not cc.recorder.closed.is_set()
    names = [t["function"]["name"] for t in scripted_llm.requests[0]["tools"]]
    assert "detected_answering_machine" not in names
    assert "detected_answering_machine" not in scripted_llm.requests[0]["messages"][0]["content"]


def _detects(frames: list[rtc.AudioFrame]) -> bool:
    detector = BeepDetector()
    return any([detector.push(frame) for frame in frames])


@pytest.mark.parametrize("hz", [440.0, 1000.0, 2000.0])
def test_beep_detector_hears_a_steady_tone_of_200_ms(hz):
    assert _detects(silence(0.2) + tone(hz, 0.24))
    assert not _detects(silence(0.2) + tone(hz, 0.12) + silence(0.2) + tone(hz, 0.12))


def test_beep_detector_ignores_noise_sweeps_and_speech():
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 3000, 16000)).astype(np.int16).tobytes()
    assert not _detects(to_frames(noise, 16000))
    t = np.arange(16000) / 16000
    sweep = (np.sin(2 * np.pi * (500 + 1500 * t) * t) * 8000).astype(np.int16).tobytes()
    assert not _detects(to_frames(sweep, 16000))
    piper = pytest.importorskip("piper")
    assert piper
    from runtime.simulate import piper_caller

    pcm, rate = piper_caller()("Hello, you have reached Sam. I can't take your call right now.")
    assert not _detects(to_frames(pcm, rate))
