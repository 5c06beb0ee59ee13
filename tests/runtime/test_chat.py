"""Text chats: the agent's prompt, tools and knowledge, across turns with stored history."""

from runtime.chat import chat_turn
from runtime.spec import CustomFunctionSpec
from tests.fakes.openai_server import tool_call
from tests.runtime.conftest import make_call


async def test_chat_across_turns_with_a_tool_and_knowledge(scripted_llm, backend):
    async def retrieve(agent_id: str, query: str, top_k: int):
        assert agent_id == "agent-1"
        return [{"file_name": "menu.md", "position": 2, "page": None, "score": 0.7,
                 "text": "Tuesday is pasta night."}]  # fmt: skip

    weather = CustomFunctionSpec(
        name="get_weather",
        url=backend.url + "/weather",
        method="GET",
        parameters={"city": {"type": "string"}},
    )
    agent = make_call(
        scripted_llm.base_url,
        functions=(weather,),
        knowledge_ready=True,
        system_prompt="You are the host of {{restaurant}}.",
    ).agent
    scripted_llm.on("hello", "Welcome! How can I help?")
    scripted_llm.on("terrace", tool_call("get_weather", city="Lyon"))
    scripted_llm.on_tool("get_weather", "The terrace is open: {tool_output}")
    scripted_llm.on("special", tool_call("lookup_knowledge", query="specials"))
    scripted_llm.on_tool("lookup_knowledge", "Good news: {tool_output}")

    history: list[dict] = []
    turn = {"session_id": "chat-1", "workspace_id": "ws-1", "variables": {"restaurant": "Chez Ana"}}
    turn["allow_private_urls"] = True

    first = await chat_turn(agent, "hello", history=history, retrieve=retrieve, **turn)
    assert first.reply == "Welcome! How can I help?"
    assert first.tool_calls == [] and first.sources == []
    history += first.messages

    second = await chat_turn(agent, "Is the terrace open?", history=history, **turn)
    assert second.reply.startswith("The terrace is open:")
    assert "sunny" in second.reply
    assert second.tool_calls[0]["name"] == "get_weather"
    assert second.tool_calls[0]["arguments"] == {"city": "Lyon"}
    assert second.tool_calls[0]["is_error"] is False
    history += second.messages

    third = await chat_turn(agent, "Any special today?", history=history, retrieve=retrieve, **turn)
    assert "Tuesday is pasta night." in third.reply
    assert third.sources == [
        {"file_name": "menu.md", "position": 2, "page": None, "score": 0.7,
         "text": "Tuesday is pasta night."}
    ]  # fmt: skip
    assert third.usage["llm_prompt_tokens"] > 0

    last_request = scripted_llm.requests[-1]
    system = last_request["messages"][0]["content"]
    assert system.startswith("You are the host of Chez Ana.")
    said = [(m["role"], m.get("content")) for m in last_request["messages"][1:5]]
    assert said == [
        ("user", "hello"),
        ("assistant", "Welcome! How can I help?"),
        ("user", "Is the terrace open?"),
        ("assistant", second.reply),
    ]
    tool_names = {t["function"]["name"] for t in last_request["tools"]}
    assert tool_names == {"get_weather", "lookup_knowledge"}  # no end_call in a chat
    assert [r["query"] for r in backend.requests] == [{"city": ["Lyon"]}]
