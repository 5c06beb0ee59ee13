"""Call control in spoken simulated calls (faster-whisper, Piper, the scripted LLM): a caller who
asks for billing is transferred through the LiveKit stand-in; an answering machine is hung up on.

The scripted LLM chooses its tool call by turn, never by the words whisper heard.
"""

from __future__ import annotations

import pytest

from runtime.simulate import simulate_call
from runtime.spec import CallStatus, EndReason, TransferDestinationSpec
from tests.fakes.openai_server import tool_call
from tests.runtime.conftest import make_call

pytest.importorskip("faster_whisper", reason="the 'local' extra is not installed")
pytest.importorskip("piper", reason="the 'local' extra is not installed")

ROOM = "call-spoken-1"
FAST = 4.0


async def test_a_caller_asking_for_billing_is_transferred_there(scripted_llm, livekit, livekit_api):
    livekit.add_participant(ROOM, "sip-caller")
    call = make_call(
        scripted_llm.base_url,
        stt_provider="local",
        tts_provider="local",
        transfer_destinations=(
            TransferDestinationSpec(name="sales", destination="+16505550111"),
            TransferDestinationSpec(name="billing", destination="+16505550100"),
        ),
    ).replace(room_name=ROOM)
    scripted_llm.on(".", tool_call("transfer_call", destination="billing"), times=1)

    result = await simulate_call(
        call, ["Transfer me to billing, please."], speed=FAST, livekit_api=livekit_api
    )

    [transfer] = livekit.calls("TransferSIPParticipant")
    assert (
        transfer.request["room_name"],
        transfer.request["participant_identity"],
        transfer.request["transfer_to"],
    ) == (ROOM, "sip-caller", "tel:+16505550100")
    report = result.report
    assert (report.status, report.end_reason) == (CallStatus.COMPLETED, EndReason.TRANSFERRED)
    assert [t["outcome"] for t in report.transfers] == ["succeeded"]
    assert [e["role"] for e in report.transcript][0] == "user"  # heard, then transferred
    assert result.agent_audio_seconds > 0.5  # the handover line was spoken


async def test_an_answering_machine_is_hung_up_on(scripted_llm):
    call = make_call(
        scripted_llm.base_url,
        stt_provider="local",
        tts_provider="local",
        voicemail_detection=True,
        voicemail_action="hang_up",
    ).replace(direction="outbound")
    scripted_llm.on(".", tool_call("detected_answering_machine"), times=1)

    result = await simulate_call(
        call,
        speed=FAST,
        voicemail_greeting="Hi, you have reached Sam. Please leave a message after the tone.",
    )

    report = result.report
    assert (report.status, report.end_reason) == (CallStatus.COMPLETED, EndReason.VOICEMAIL)
    assert [e for e in report.transcript if e["role"] == "assistant"] == []
    assert result.agent_audio_seconds == 0
