"""The conversation's common moves, answered from the agent's settings (`runtime.moves`)."""

from __future__ import annotations

import asyncio
import json

import pytest

from runtime.agent import CallRecorder, CallState, VoxlineAgent, create_session
from runtime.call_control import CallControl
from runtime.moves import Profile, classify
from runtime.providers import build_pipeline
from runtime.spec import CallStatus, EndReason, provider_info
from tests.runtime.conftest import make_call, text_call
from tests.runtime.test_call_control import CALLER_IDENTITY, DESTINATIONS, ROOM

PROMPT = (
    "You are the friendly phone assistant of Harbor Cafe. Answer in one or two short sentences. "
    "Opening hours: weekdays 7 am to 6 pm. Address: 12 Pier Street."
)
KNOWLEDGE = [
    {"file_name": "cafe.md", "position": 1, "page": None, "score": 0.2,
     "text": "## Menu\n\nWe serve coffee and a soup of the day."},
    {"file_name": "cafe.md", "position": 0, "page": None, "score": 0.1,
     "text": "# Harbor Cafe\n\n## Opening hours\n\nWe open at 7 am on weekdays."},
]  # fmt: skip


def asked_by_this_agent(scripted_llm, prompt: str = PROMPT) -> list[dict]:
    """The LLM requests with this test's prompt (a call of an earlier test's server may still
    be analysed through the same scripted LLM)."""
    return [r for r in scripted_llm.requests if prompt in json.dumps(r["messages"][:1])]


async def retrieve(agent_id: str, query: str, top_k: int):
    return KNOWLEDGE[:top_k]


@pytest.mark.parametrize(
    ("line", "move"),
    [
        ("Hello, good morning.", "greeting"),
        ("Hi, what can you help me with?", "capabilities"),
        ("Are you a robot?", "identity"),
        ("Sorry, could you say that again?", "repeat"),
        ("Can I speak to a real person?", "person"),
        ("Great, thank you.", "thanks"),
        ("Okay, thank you, goodbye.", "goodbye"),
        ("How are you today?", "chat"),
        # questions about the business are not moves: the knowledge and the LLM answer them
        ("What are your opening hours?", None),
        ("Are you open on Mondays?", None),
        ("What can you tell me about parking?", None),
        ("Thanks! And when do you close?", None),
    ],
)
def test_the_caller_s_move_is_recognised(line, move):
    assert classify(line) == move


def test_the_profile_comes_from_the_prompt_and_the_knowledge_headings():
    profile = Profile.of(agent_name="Demo", prompt=PROMPT, passages=KNOWLEDGE[::-1])
    assert profile.organisation == "Harbor Cafe"
    # the knowledge's sections (not its title), then the facts the prompt labels
    assert profile.topics == ("opening hours", "menu", "address")
    assert Profile.of(agent_name="Sunny", prompt="Be kind.").organisation == "Sunny"


async def test_the_moves_come_from_the_settings_not_the_llm(scripted_llm):
    scripted_llm.on(".", "Theres no price, time or product.")
    call = make_call(
        scripted_llm.base_url,
        system_prompt=PROMPT,
        first_message="Hello, Harbor Cafe.",
        knowledge_ready=True,
    )
    async with text_call(call, small_talk=True, ground=True, retrieve=retrieve) as tc:

        async def say(line: str) -> str:
            result = await tc.session.run(user_input=line)
            return result.expect.next_event().is_message(role="assistant").event().item.text_content

        assert "opening hours" in await say("Hi, what can you help me with?")
        who = await say("Who am I speaking to?")
        assert "Harbor Cafe" in who and "AI" in who
        assert "no one else is available" in await say("I want to talk to a manager.")
        again = await say("Sorry, can you repeat that?")
        assert again.startswith("I'm sorry, no one else is available")
        # a question neither a move nor the knowledge answers: no guess
        assert "don't know" in await say("Do you have a loyalty card?")
        assert "welcome" in await say("Thanks a lot.")
        assert tc.state.end_reason is None
        assert "Goodbye" in await say("Thank you, goodbye.")
        await asyncio.wait_for(tc.recorder.closed.wait(), 10)  # the goodbye ends the call
    assert tc.state.end_reason == EndReason.AGENT_HANGUP
    assert not asked_by_this_agent(scripted_llm)  # the LLM was never asked


async def test_what_is_not_a_move_still_goes_to_the_llm(scripted_llm):
    scripted_llm.on("lunch", "Lunch sounds lovely.")
    call = make_call(scripted_llm.base_url, system_prompt=PROMPT)
    async with text_call(call, small_talk=True) as tc:
        result = await tc.session.run(user_input="I'm thinking about lunch.")
        reply = result.expect.next_event().is_message(role="assistant").event().item
    assert reply.text_content == "Lunch sounds lovely."
    assert len(asked_by_this_agent(scripted_llm)) == 1


async def test_an_llm_that_calls_tools_answers_the_moves_itself(scripted_llm):
    assert provider_info("llm", "openai").calls_tools
    scripted_llm.on("hello", "Hi from the model.")
    async with text_call(make_call(scripted_llm.base_url)) as tc:
        result = await tc.session.run(user_input="Hello!")
        reply = result.expect.next_event().is_message(role="assistant").event().item
    assert reply.text_content == "Hi from the model."


async def test_asking_for_a_person_hands_a_phone_caller_to_the_destination_named(
    scripted_llm, livekit, livekit_api
):
    livekit.add_participant(ROOM, CALLER_IDENTITY)
    call = make_call(scripted_llm.base_url, transfer_destinations=DESTINATIONS)
    call = call.replace(room_name=ROOM)
    state = CallState(call=call)
    pipeline = build_pipeline(call.agent, audio=False, allow_private_urls=True)
    session = create_session(call, pipeline, state)
    recorder = CallRecorder(session, state)
    control = CallControl(call, state, session, api=livekit_api)
    await session.start(VoxlineAgent(call, state=state, control=control, small_talk=True))
    control.answered()
    try:
        session.generate_reply(user_input="Can I talk to someone about my payments?")
        await asyncio.wait_for(recorder.closed.wait(), 10)
    finally:
        await session.aclose()
    [transfer] = livekit.calls("TransferSIPParticipant")
    assert dict(transfer.request)["transfer_to"] == "tel:+16505550100"  # billing: "payments"
    report = recorder.report()
    assert (report.status, report.end_reason) == (CallStatus.COMPLETED, EndReason.TRANSFERRED)
    assert not asked_by_this_agent(scripted_llm, "You are Sunny")
