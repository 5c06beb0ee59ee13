"""Knowledge in every turn for LLMs that cannot call tools (the small local models)."""

import asyncio

import pytest
from livekit.agents import llm as lk_llm
from livekit.agents.voice.run_result import ChatMessageEvent

from runtime.agent import NO_FACTS_NOTE, VoxlineAgent
from runtime.grounding import ANSWER_SCORE, best_fact, passage_facts
from runtime.local.chat_format import cut_after_sentences, to_llama_messages
from runtime.spec import provider_info
from tests.runtime.conftest import make_call, text_call

MENU = {"file_name": "cafe.md", "position": 1, "page": None, "score": 0.8,
        "text": "A large coffee costs four dollars."}  # fmt: skip


async def retrieve(agent_id: str, query: str, top_k: int):
    return [MENU] if "coffee" in query.lower() else []


async def retrieve_always(agent_id: str, query: str, top_k: int):
    return [MENU]  # a vector store always returns its nearest passages


def test_only_the_llms_that_cannot_call_tools_are_grounded():
    assert provider_info("llm", "local").calls_tools is False
    assert provider_info("llm", "openai").calls_tools is True
    local = make_call("http://unused", llm_provider="local", llm_model=None, knowledge_ready=True)
    assert VoxlineAgent(local)._ground is True
    assert (
        VoxlineAgent(local.replace(agent=local.agent.replace(knowledge_ready=False)))._ground
        is False
    )
    assert VoxlineAgent(make_call("http://unused", knowledge_ready=True))._ground is False


def _reply(result) -> str:
    return "".join(
        event.item.text_content or ""
        for event in result.events
        if isinstance(event, ChatMessageEvent) and event.item.role == "assistant"
    )


async def test_a_close_passage_answers_and_the_llm_takes_the_rest(scripted_llm):
    scripted_llm.on("goodbye", "Thank you for calling, goodbye!")
    call = make_call(scripted_llm.base_url, knowledge_ready=True, first_message="")
    async with text_call(call, ground=True, retrieve=retrieve_always) as session:
        price = await session.session.run(user_input="How much is a large coffee?")
        assert scripted_llm.requests == []  # answered from the passage, not by the LLM
        bye = await session.session.run(user_input="Thanks, goodbye")
        sources = list(session.state.sources)

    assert _reply(price) == "A large coffee costs four dollars."
    assert _reply(bye) == "Thank you for calling, goodbye!"
    assert sources == [MENU]  # only the turn answered from the knowledge has sources
    *_, note, question = scripted_llm.requests[-1]["messages"]
    assert question == {"role": "user", "content": "Thanks, goodbye"}
    assert note == {"role": "system", "content": NO_FACTS_NOTE}


def test_local_messages_keep_one_system_message_and_put_notes_in_the_user_turn():
    chat = lk_llm.ChatContext.empty()
    chat.add_message(role="system", content="You are the cafe's assistant.")
    chat.add_message(role="assistant", content="Hello, how can I help?")
    chat.add_message(role="system", content="Facts: a large coffee costs four dollars.")
    chat.add_message(role="user", content="How much is a coffee?")
    assert to_llama_messages(chat) == [
        {"role": "system", "content": "You are the cafe's assistant."},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user",
         "content": "Facts: a large coffee costs four dollars.\n\nHow much is a coffee?"},
    ]  # fmt: skip


def test_a_close_passage_sentence_is_the_answer_and_a_far_one_is_not():
    text = (
        "# Cafe\n\n## Menu\n\nWe serve tea and cake. A large coffee costs four\ndollars.\n\n"
        "## Location\n\nThe cafe is at 12 Pier Street. It has a ter"
    )
    passages = [{"file_name": "cafe.md", "position": 0, "page": None, "score": 0.5, "text": text}]
    facts = [fact.sentence for fact in passage_facts(passages)]
    assert facts == [
        "We serve tea and cake.",
        "A large coffee costs four dollars.",
        "The cafe is at 12 Pier Street.",
    ]  # the cut-off sentence at the chunk's end is left out
    fact, score = asyncio.run(best_fact("How much is a large coffee?", passages))
    assert fact.sentence == "A large coffee costs four dollars." and score >= ANSWER_SCORE
    fact, score = asyncio.run(best_fact("Where can I find you?", passages))
    assert fact.sentence == "The cafe is at 12 Pier Street." and fact.heading == "Location"
    _, score = asyncio.run(best_fact("Okay, thank you, goodbye.", passages))
    assert score < ANSWER_SCORE


def test_local_replies_stop_after_two_sentences_but_json_is_never_cut():
    text = "We open at 7.30 am. We close at 6 pm. I'm sorry. I'm sorry."
    assert text[: cut_after_sentences(text, 2)] == "We open at 7.30 am. We close at 6 pm."
    assert cut_after_sentences("We open at 7 am. And", 2) is None  # not two yet
    assert cut_after_sentences('{"summary": "Asked. Answered. Left."} ', 2) is None
    rambling = "Hello!\n\nI'm sorry. Me too. "
    assert rambling[: cut_after_sentences(rambling, 2)] == "Hello!\n\nI'm sorry."


async def test_the_local_llm_answers_a_price_from_the_knowledge():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra) is not installed")
    from runtime.chat import chat_turn

    agent = make_call(
        "http://unused",
        llm_provider="local",
        llm_model=None,
        llm_base_url=None,
        temperature=0.0,
        knowledge_ready=True,
        system_prompt="You are the phone assistant of a cafe. Answer in one short sentence.",
    ).agent
    reply = await chat_turn(
        agent, "How much is a large coffee?", session_id="s", workspace_id="w", retrieve=retrieve
    )
    assert "four" in reply.reply.lower() or "4" in reply.reply
    assert reply.sources == [MENU]
