"""A hand-off in a spoken simulated call (`voxline simulate` with the scripted LLM choosing
`handoff`): the second agent's voice and prompt answer the next turn, the transcript attributes
the turns, and the call log lists the hand-off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from control.models import Call
from control.services.agents import create_agent, update_agent
from tests.conftest import offline_spoken_agent, scripted_agent_config
from tests.control.test_simulate import control_plane  # noqa: F401 (the fixture)
from tests.fakes.openai_server import Reply, ToolCall

FRONT_PROMPT = "You are the front desk of Acme."
SALES_PROMPT = "You are Max, who sells Acme plans."


async def test_handoff_in_a_spoken_simulated_call(
    control_plane,  # noqa: F811 (the fixture)
    scripted_llm,
    settings,
):
    user, front = await offline_spoken_agent(
        settings, scripted_llm, agent_name="Front", system_prompt=FRONT_PROMPT,
        first_message="Hello, Acme.",
    )  # fmt: skip
    # sales speaks with another voice: OpenAI's TTS (the scripted server records each request)
    sales = await create_agent(
        settings.model_copy(update={"allow_private_urls": True}),
        front.workspace_id,
        scripted_agent_config(
            scripted_llm,
            agent_name="Sales",
            system_prompt=SALES_PROMPT,
            STT_provider="local",
            TTS_provider="openai",
            TTS_voice="onyx",
            first_message="Max from sales here!",
        ),
    )
    await update_agent(
        settings.model_copy(update={"allow_private_urls": True}),
        front.workspace_id,
        front.id,
        {"handoff_destinations": [{"agent_id": str(sales.id), "name": "sales"}]},
    )
    sales_replies = iter(["Max here, which plan would you like?", "Premium is twenty dollars."])

    def reply(body: dict[str, Any]) -> Reply:
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        if FRONT_PROMPT in system:
            return Reply(tool_calls=[ToolCall("handoff", {"name": "sales", "reason": "a plan"})])
        return Reply(text=next(sales_replies, "Goodbye."))

    scripted_llm.on(".", reply)  # by agent and by turn, not by words (whisper may mishear)
    lines = ["I would like to buy a plan.", "The premium one, please."]
    env = {**control_plane, "OPENAI_BASE_URL": scripted_llm.base_url, "OPENAI_API_KEY": "sk-test"}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "voxline", "simulate", "--agent", str(front.id)]
        + [argument for line in lines for argument in ("--line", line)]
        + ["--fast"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    call = await Call.get(id=result.stdout.strip().splitlines()[-1])
    assert call.agent_id == front.id and call.final_agent_id == sales.id, (
        result.stdout,
        call.transcript,
    )
    [handoff] = call.handoffs
    assert (handoff["from_agent_id"], handoff["to_agent_id"], handoff["name"]) == (
        str(front.id),
        str(sales.id),
        "sales",
    )
    spoken = [(t["role"], t.get("agent_id"), t["text"]) for t in call.transcript]
    assert spoken[0] == ("assistant", str(front.id), "Hello, Acme.")
    by_sales = [
        text for role, agent, text in spoken if role == "assistant" and agent == str(sales.id)
    ]
    assert by_sales and by_sales[0] == "Max here, which plan would you like?", spoken
    # the first caller turn was heard by the front desk, the next by sales
    heard_by = [agent for role, agent, _ in spoken if role == "user"]
    assert heard_by[0] == str(front.id) and heard_by[-1] == str(sales.id), spoken
    # sales answered with its own prompt and its own voice
    assert any(SALES_PROMPT in str(r["messages"]) for r in scripted_llm.requests)
    voices = {r.get("voice") for r in scripted_llm.speech_requests}
    assert voices == {"onyx"}, voices  # only sales speaks through OpenAI's TTS
    assert any("Max here" in r["input"] for r in scripted_llm.speech_requests)
