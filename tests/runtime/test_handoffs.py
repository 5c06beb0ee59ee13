"""Agents handing a call to each other in one session (livekit-agents' own agent hand-off), on
text with the scripted LLM: who answers, with what context, the call log's record, the bound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from runtime.agent import CallRecorder, CallState, VoxlineAgent, create_session
from runtime.call_control import CallControl
from runtime.providers import build_pipeline
from runtime.spec import AgentSpec, CallReport, CallSpec, HandoffDestinationSpec
from tests.fakes.openai_server import FakeOpenAI, Reply, ToolCall
from tests.runtime.conftest import make_call

SUNNY, MAX = "agent-1", "agent-2"
SUNNY_PROMPT = "You are Sunny, the assistant of Acme."
MAX_PROMPT = "You are Max, who sells Acme plans."


def handoff_to(name: str, reason: str | None = None) -> ToolCall:
    """The scripted LLM calling `handoff` (its argument `name` is the tool_call helper's own)."""
    return ToolCall(
        name="handoff", arguments={"name": name, **({"reason": reason} if reason else {})}
    )


def _system(body: dict[str, Any]) -> str:
    return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")


def by_agent(sunny: str | ToolCall, max_: str | ToolCall) -> Callable[[dict], Reply]:
    """A reply chosen by which agent asks (its prompt)."""

    def choose(body: dict[str, Any]) -> Reply:
        reply = sunny if SUNNY_PROMPT in _system(body) else max_
        return Reply(text=reply) if isinstance(reply, str) else Reply(tool_calls=[reply])

    return choose


def handoff_call(
    scripted_llm: FakeOpenAI,
    *,
    carry: str = "transcript",
    greet: bool = False,
    back: bool = False,
    max_handoffs: int = 5,
) -> CallSpec:
    to_max = HandoffDestinationSpec(
        agent_id=MAX, name="sales", description="Plans and prices", carry=carry,
        greet_on_handoff=greet,
    )  # fmt: skip
    to_sunny = HandoffDestinationSpec(agent_id=SUNNY, name="front_desk")
    max_spec = AgentSpec(
        agent_id=MAX,
        name="Max",
        llm_provider="openai",
        llm_model="gpt-4o-mini",
        llm_base_url=scripted_llm.base_url,
        system_prompt=MAX_PROMPT,
        first_message="Max from sales here!",
        handoff_destinations=(to_sunny,) if back else (),
    )
    call = make_call(
        scripted_llm.base_url,
        system_prompt=SUNNY_PROMPT,
        handoff_destinations=(to_max,),
        max_handoffs=max_handoffs,
    )
    return call.replace(handoff_agents={MAX: max_spec})


@contextlib.asynccontextmanager
async def text_call(call: CallSpec) -> AsyncIterator[tuple[Any, CallRecorder]]:
    state = CallState(call=call)
    pipeline = build_pipeline(call.agent, audio=False, allow_private_urls=True)
    session = create_session(call, pipeline, state)
    recorder = CallRecorder(session, state)
    control = CallControl(call, state, session)
    await session.start(VoxlineAgent(call, state=state, control=control, greet_on_enter=False))
    try:
        yield session, recorder
    finally:
        await session.aclose()


async def _said_by(recorder: CallRecorder, agent_id: str, count: int = 1) -> list[str]:
    """Waits until `agent_id` has said `count` things; returns what it said."""

    def said() -> list[str]:
        return [
            e["text"]
            for e in recorder.transcript
            if e["role"] == "assistant" and e.get("agent_id") == agent_id
        ]

    for _ in range(200):
        if len(said()) >= count:
            return said()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{agent_id} said {said()}; transcript: {recorder.transcript}")


async def test_handoff_to_another_agent_who_answers_with_its_own_prompt_and_the_transcript(
    scripted_llm,
):
    scripted_llm.on("premium", by_agent("Let me check.", "Premium is 20 dollars a month."))
    scripted_llm.on("plan", by_agent(handoff_to("sales", "buying a plan"), "Max here."))
    async with text_call(handoff_call(scripted_llm)) as (session, recorder):
        await session.run(user_input="I would like to buy a plan")
        assert await _said_by(recorder, MAX) == ["Max here."]
        await session.run(user_input="The premium one please")
        await _said_by(recorder, MAX, 2)
        report: CallReport = recorder.report()

    handoff_tool = next(
        t["function"]
        for t in scripted_llm.requests[0]["tools"]
        if t["function"]["name"] == "handoff"
    )
    assert handoff_tool["parameters"]["properties"]["name"]["enum"] == ["sales"]
    assert "sales: Plans and prices" in handoff_tool["description"]
    # Max answers with his own prompt, the conversation so far, and none of Sunny's tools
    max_requests = [r for r in scripted_llm.requests if MAX_PROMPT in _system(r)]
    assert max_requests and SUNNY_PROMPT not in str(max_requests[0]["messages"])
    assert "I would like to buy a plan" in str(max_requests[0]["messages"])
    assert "handoff" not in [t["function"]["name"] for t in max_requests[0].get("tools", [])]
    # one transcript, each turn attributed to the agent that spoke (or heard) it
    turns = [
        (e["role"], e["agent_id"]) for e in report.transcript if e["role"] in ("user", "assistant")
    ]
    assert turns == [
        ("user", SUNNY),
        ("assistant", MAX),
        ("user", MAX),
        ("assistant", MAX),
    ]
    [handoff] = report.handoffs
    assert (handoff["from_agent_id"], handoff["to_agent_id"], handoff["name"]) == (
        SUNNY,
        MAX,
        "sales",
    )
    assert handoff["reason"] == "buying a plan" and handoff["at"]
    assert report.final_agent_id == MAX
    # the first message is not said on a hand-off unless asked for
    assert "Max from sales here!" not in [e["text"] for e in report.transcript]


async def test_handoff_with_summary_carries_a_summary_not_the_transcript(scripted_llm):
    scripted_llm.on(r"^Conversation so far", "The caller wants to buy a plan.")
    scripted_llm.on("plan", by_agent(handoff_to("sales"), "Max here."))
    async with text_call(handoff_call(scripted_llm, carry="summary")) as (session, recorder):
        await session.run(user_input="I would like to buy a plan")
        await _said_by(recorder, MAX)
    max_request = next(r for r in scripted_llm.requests if MAX_PROMPT in _system(r))
    assert "The caller wants to buy a plan." in str(max_request["messages"])
    assert "I would like to buy a plan" not in str(max_request["messages"])


async def test_handoff_with_greet_on_handoff_says_the_first_message(scripted_llm):
    scripted_llm.on("plan", by_agent(handoff_to("sales"), "unused"))
    async with text_call(handoff_call(scripted_llm, greet=True)) as (session, recorder):
        await session.run(user_input="I would like to buy a plan")
        assert await _said_by(recorder, MAX) == ["Max from sales here!"]


async def test_max_handoffs_stops_two_agents_passing_a_caller_back_and_forth(scripted_llm):
    # each agent hands the caller straight to the other, for ever
    scripted_llm.on(
        "plan",
        by_agent(handoff_to("sales"), handoff_to("front_desk")),
    )
    scripted_llm.on_tool("handoff", "I will help you myself.")
    call = handoff_call(scripted_llm, back=True, max_handoffs=3)
    async with text_call(call) as (session, recorder):
        await session.run(user_input="I would like to buy a plan")
        for _ in range(200):
            said = [e["text"] for e in recorder.transcript if e["role"] == "assistant"]
            if "I will help you myself." in said:
                break
            await asyncio.sleep(0.05)
        report = recorder.report()
    assert [(h["from_agent_id"], h["to_agent_id"]) for h in report.handoffs] == [
        (SUNNY, MAX),
        (MAX, SUNNY),
        (SUNNY, MAX),
    ]
    refused = [e for e in report.transcript if e["role"] == "tool_result" and e["is_error"]]
    assert refused and "cannot be handed over again" in refused[0]["result"]
    assert report.final_agent_id == MAX


async def test_no_handoff_tool_when_no_destination_agent_can_run_here(scripted_llm):
    # a chat, or an agent since deleted: the call spec carries no such agent
    scripted_llm.on("plan", "Let me help you with that.")
    call = handoff_call(scripted_llm).replace(handoff_agents={})
    async with text_call(call) as (session, recorder):
        await session.run(user_input="I would like to buy a plan")
    names = [t["function"]["name"] for t in scripted_llm.requests[0].get("tools", [])]
    assert "handoff" not in names
