"""`voxline demo` and `voxline simulate`: a whole spoken call with no LiveKit server, read back."""

import asyncio
import re
import subprocess
import sys

import pytest

from control.models import Agent, Call, KnowledgeFile, Role, User
from control.services import demo
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user, offline_spoken_agent
from tests.servers import SERVICE_TOKEN, ControlPlaneProcess
from tests.speech import word_error_rate

pytest.importorskip("faster_whisper", reason="offline speech (faster-whisper) is not installed")
pytest.importorskip("piper", reason="offline speech (Piper) is not installed")


@pytest.fixture
async def control_plane(settings, db, tmp_path):
    """`voxline serve` in a child process on the test database: what `simulate` talks to."""
    # the scripted LLM listens on loopback: private URLs allowed
    server = ControlPlaneProcess(
        settings, tmp_path / "serve.log", VOXLINE_ALLOW_PRIVATE_URLS="true"
    )
    server.start()
    try:
        await server.wait_until_up()
        yield {**server.env, "VOXLINE_API_URL": server.url}
    finally:
        server.stop()


async def test_demo_seed_is_idempotent(db, settings):
    first = await demo.seed(settings)
    again = await demo.seed(settings)
    assert first.password and again.password is None
    assert await User.filter(email=demo.DEMO_EMAIL).count() == 1
    assert await Agent.filter(agent_name=demo.DEMO_AGENT_NAME).count() == 1
    agent = await Agent.get(id=first.agent.id)
    assert (
        agent.config["LLM_provider"],
        agent.config["STT_provider"],
        agent.config["TTS_provider"],
    ) == ("local",) * 3
    file = await KnowledgeFile.get(agent_id=agent.id)
    assert file.status == "ready" and file.chunk_count > 0


async def test_simulate_runs_a_spoken_call_and_stores_its_log(
    control_plane, scripted_llm, settings, client
):
    user, agent = await offline_spoken_agent(
        settings, scripted_llm, agent_name="Cafe", first_message="Hello, Harbor Cafe."
    )
    # Chosen by turn, not by exact words: whisper may mishear a word on a loaded machine.
    scripted_llm.on(r"bye|thank|good", "Goodbye!", times=1)
    scripted_llm.on(r".", "We open at seven every weekday.", times=1)
    lines = ["What are your opening hours?", "Thank you, goodbye."]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "voxline", "simulate", "--agent", str(agent.id)]
        + [argument for line in lines for argument in ("--line", line)]
        + ["--fast"],
        env=control_plane,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    call_id = result.stdout.strip().splitlines()[-1]
    assert "caller: What are your opening hours?" in result.stdout, result.stdout
    assert "Per-turn latency" in result.stdout, result.stdout
    # Every answered turn shows its four figures (scripts read these rows), then p50 and p95;
    # with --fast the table says its figures are not real time.
    rows = re.findall(r"^  turn +(\d+): (.*)$", result.stdout, re.MULTILINE)
    assert rows, result.stdout
    for _, cells in rows:
        assert re.fullmatch(r" *\d+ \| +\d+ \| +\d+ \| +\d+", cells), result.stdout
    for name in ("p50", "p95"):
        assert re.search(rf"^  {name} +: +\d+ \| +\d+ \| +\d+ \| +\d+$", result.stdout, re.M)
    assert "not real time" in result.stdout, result.stdout

    call = await Call.get(id=call_id)
    assert call.status == "completed" and call.agent_id == agent.id
    roles = [turn["role"] for turn in call.transcript]
    assert roles[0] == "assistant" and "user" in roles, roles
    # Both sides in order: the greeting, the caller, then the agent answering the caller.
    assert "assistant" in roles[roles.index("user") :], roles
    heard = " ".join(turn["text"] for turn in call.transcript if turn["role"] == "user")
    assert word_error_rate(" ".join(lines), heard) <= 0.5, heard
    # What the LLM was sent is what the pipeline heard, and its answer was spoken (perhaps
    # cut short by the caller's next line under load, so only its start is checked).
    assert scripted_llm.requests, "the LLM was never asked"
    after_caller = call.transcript[roles.index("user") :]
    answers = [turn["text"] for turn in after_caller if turn["role"] == "assistant"]
    assert any(
        "We open at seven every weekday.".startswith(text.strip()) or text.startswith("Goodbye")
        for text in answers
        if text.strip()
    ), answers
    assert call.usage["tts_characters"] > 0 and call.usage["stt_seconds"] > 0
    assert call.latencies

    # recordings are made in real time: none with --fast (tests/control/test_recordings.py
    # records a real-time simulated call and checks both voices)
    assert "Recording: none with --fast" in result.stdout, result.stdout
    headers = auth_headers(settings, user)
    detail = await (await client.get(f"/calls/{call_id}", headers=headers)).get_json()
    assert detail["recording_url"] is None


async def test_internal_recording_upload_refuses_non_wav(client, db, settings):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(settings, workspace.id, {"agent_name": "A"})
    opened = await client.post(
        f"/internal/agents/{agent.id}/calls",
        json={},
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
    )
    call_id = (await opened.get_json())["call_id"]
    response = await client.put(
        f"/internal/calls/{call_id}/recording",
        data=b"not a wav",
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}", "Content-Type": "audio/wav"},
    )
    assert response.status_code == 400
    missing = await client.get(f"/calls/{call_id}/recording", headers=auth_headers(settings, user))
    assert missing.status_code == 404
