"""`voxline simulate --voicemail-greeting`: an answering machine takes an outbound call, and the
agent leaves its (templated) message after the beep; the call log says `voicemail`."""

import asyncio
import subprocess
import sys

import pytest

from control.models import Call
from tests.conftest import offline_spoken_agent

# `voxline serve` in a child process
from tests.control.test_simulate import control_plane  # noqa: F401
from tests.fakes.openai_server import tool_call

pytest.importorskip("faster_whisper", reason="offline speech (faster-whisper) is not installed")
pytest.importorskip("piper", reason="offline speech (Piper) is not installed")

GREETING = "Hi, you have reached Sam. Please leave a message after the tone."


async def test_simulate_leaves_the_voicemail_message_after_the_beep(
    control_plane,  # noqa: F811
    scripted_llm,
    settings,
):
    _, agent = await offline_spoken_agent(
        settings,
        scripted_llm,
        agent_name="Harbor Cafe",
        voicemail_detection=True,
        voicemail_action="leave_message",
        voicemail_message="Hello, this is {{agent_name}}. Please call us back.",
    )
    # by turn, not by words: the first thing heard is the machine's greeting
    scripted_llm.on(r".", tool_call("detected_answering_machine"), times=1)

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "voxline", "simulate", "--agent", str(agent.id), "--fast"]
        + ["--voicemail-greeting", GREETING],
        env=control_plane,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(voicemail)" in result.stdout, result.stdout
    call = await Call.get(id=result.stdout.strip().splitlines()[-1])
    assert (call.call_direction, call.status, call.end_reason) == (
        "outbound",
        "completed",
        "voicemail",
    )
    said = [turn["text"] for turn in call.transcript if turn["role"] == "assistant"]
    assert said == ["Hello, this is Harbor Cafe. Please call us back."]
