"""The agent on a room-less text session, against the scripted OpenAI server and a real backend."""

import asyncio
import json

from livekit.agents import APIConnectOptions
from livekit.agents.voice.agent_session import SessionConnectOptions

from runtime.spec import CallStatus, CustomFunctionSpec, EndReason
from tests.fakes.openai_server import Reply, tool_call
from tests.runtime.conftest import make_call, text_call


def _weather(base: str, **changes) -> CustomFunctionSpec:
    fields = dict(
        name="get_weather",
        description="Current weather for a city",
        url=base + "/weather",
        method="GET",
        parameters={"city": {"type": "string", "description": "City name"}},
    )
    fields.update(changes)
    return CustomFunctionSpec(**fields)


async def test_prompt_and_first_message_render_variables(scripted_llm):
    scripted_llm.on("hello", "Hi, how can I help?")
    call = make_call(
        scripted_llm.base_url,
        system_prompt="Help {{ first_name }} (calling from {{caller_number}}). Plan: {{plan}}.",
        first_message="Hello {{first_name}}, this is {{agent_name}}!",
        dynamic_variables={"first_name": "Ana"},
    )
    async with text_call(call) as tc:
        result = await tc.session.run(user_input="hello")
        result.expect.next_event().is_message(role="assistant")
        result.expect.no_more_events()

    system = scripted_llm.requests[0]["messages"][0]
    assert system["role"] in ("system", "developer")
    assert system["content"].startswith("Help Ana (calling from +16505551234). Plan: .")
    greeting = tc.recorder.report().transcript[0]
    assert greeting["role"] == "assistant"
    assert greeting["text"] == "Hello Ana, this is Sunny!"
    assert scripted_llm.requests[0]["model"] == "gpt-4o-mini"


async def test_get_tool_call_reaches_backend_and_answer_uses_it(scripted_llm, backend):
    scripted_llm.on("weather", tool_call("get_weather", city="Paris"))
    scripted_llm.on_tool("get_weather", "Right now: {tool_output}")
    call = make_call(scripted_llm.base_url, functions=(_weather(backend.url),))
    async with text_call(call) as tc:
        result = await tc.session.run(user_input="What's the weather in Paris?")
        result.expect.next_event().is_function_call(name="get_weather", arguments={"city": "Paris"})
        output = result.expect.next_event().is_function_call_output()
        assert not output.event().item.is_error
        message = result.expect.next_event().is_message(role="assistant")
        assert "sunny" in message.event().item.text_content
        result.expect.no_more_events()

    assert [r["query"] for r in backend.requests] == [{"city": ["Paris"]}]
    tools = scripted_llm.requests[0]["tools"]
    schema = next(t["function"] for t in tools if t["function"]["name"] == "get_weather")
    assert schema["parameters"]["properties"]["city"]["type"] == "string"
    assert {t["function"]["name"] for t in tools} == {"get_weather", "end_call"}

    report = tc.recorder.report()
    roles = [entry["role"] for entry in report.transcript]
    assert roles == ["user", "tool_call", "tool_result", "assistant"]
    assert report.transcript[1]["arguments"] == {"city": "Paris"}
    assert json.loads(report.transcript[2]["result"])["forecast"] == "sunny"
    assert report.usage["llm_prompt_tokens"] > 0 and report.usage["llm_completion_tokens"] > 0
    assert report.latencies[0]["turn"] == 1
    assert report.latencies[0]["llm_ttft_ms"] is not None


async def test_post_tool_sends_json_body_and_speaks_during_and_after(scripted_llm, backend):
    book = CustomFunctionSpec(
        name="book_table",
        url=backend.url + "/slow?delay=0.5",
        method="POST",
        parameters={"seats": {"type": "integer"}, "day": {"type": "string"}},
        headers={"X-Api-Key": "k-123"},
        speak_during="One moment while I book that.",
        speak_after="Your table is booked.",
    )
    scripted_llm.on("book", tool_call("book_table", seats=4, day="Friday"))
    scripted_llm.on_tool("book_table", "Anything else?")
    call = make_call(scripted_llm.base_url, functions=(book,))
    async with text_call(call) as tc:
        result = await tc.session.run(user_input="Book a table for four on Friday")
        said = [
            event.item.text_content
            for event in result.events
            if event.type == "message" and event.item.role == "assistant"
        ]
    assert said[0] == "One moment while I book that."
    assert "Your table is booked." in said
    assert said[-1] == "Anything else?" or "Anything else?" in said
    (request,) = backend.requests
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == {"seats": 4, "day": "Friday"}
    assert request["headers"]["X-Api-Key"] == "k-123"


async def test_timeout_is_a_tool_error_and_the_conversation_continues(scripted_llm, backend):
    slow = _weather(backend.url, url=backend.url + "/slow?delay=3", timeout=0.3)
    scripted_llm.on("weather", tool_call("get_weather", city="Rome"))
    scripted_llm.on_tool("get_weather", "Sorry, the weather service is slow today.")
    scripted_llm.on("thanks", "You're welcome!")
    call = make_call(scripted_llm.base_url, functions=(slow,))
    async with text_call(call) as tc:
        result = await tc.session.run(user_input="weather in Rome?")
        result.expect.next_event().is_function_call(name="get_weather")
        output = result.expect.next_event().is_function_call_output().event().item
        assert output.is_error
        assert "did not answer within 0.3 seconds" in output.output
        result.expect.next_event().is_message(role="assistant")

        follow_up = await tc.session.run(user_input="thanks")
        follow_up.expect.next_event().is_message(role="assistant")
    # the LLM saw the error text as the tool's output
    tool_message = scripted_llm.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert "did not answer" in tool_message["content"]
    assert tc.recorder.report().transcript[2]["is_error"] is True


async def test_private_url_refused_at_call_time(scripted_llm, backend):
    scripted_llm.on("weather", tool_call("get_weather", city="Oslo"))
    scripted_llm.on_tool("get_weather", "I can't check the weather right now.")
    call = make_call(
        scripted_llm.base_url, functions=(_weather(backend.url),), allow_private_urls=False
    )
    async with text_call(call) as tc:
        result = await tc.session.run(user_input="weather in Oslo?")
        result.expect.next_event().is_function_call(name="get_weather")
        output = result.expect.next_event().is_function_call_output().event().item
        assert output.is_error and "not allowed" in output.output
        result.expect.next_event().is_message(role="assistant")
    assert backend.requests == []


async def test_end_call_tool_says_goodbye_and_closes(scripted_llm):
    scripted_llm.on("bye", tool_call("end_call"))
    scripted_llm.on_tool("end_call", "Goodbye, have a nice day!")
    async with text_call(make_call(scripted_llm.base_url)) as tc:
        result = await tc.session.run(user_input="that's all, bye")
        result.expect.next_event().is_function_call(name="end_call")
        result.expect.next_event().is_function_call_output()
        result.expect.next_event().is_message(role="assistant")
        await asyncio.wait_for(tc.recorder.closed.wait(), 5)
    report = tc.recorder.report()
    assert report.end_reason == EndReason.AGENT_HANGUP
    assert report.status == CallStatus.COMPLETED
    assert report.transcript[-1]["text"] == "Goodbye, have a nice day!"


async def test_end_call_phrase_in_agent_reply_closes(scripted_llm):
    scripted_llm.on("done", "Thanks for calling, goodbye!")
    call = make_call(scripted_llm.base_url, end_call_phrases=("Goodbye",))
    async with text_call(call) as tc:
        await tc.session.run(user_input="I'm done")
        await asyncio.wait_for(tc.recorder.closed.wait(), 5)
    assert tc.recorder.report().end_reason == EndReason.AGENT_HANGUP


async def test_max_duration_says_goodbye_and_ends(scripted_llm):
    call = make_call(
        scripted_llm.base_url, max_call_duration=1, max_duration_message="Time is up, goodbye."
    )
    async with text_call(call) as tc:
        await asyncio.wait_for(tc.recorder.closed.wait(), 5)
    report = tc.recorder.report()
    assert report.end_reason == EndReason.MAX_DURATION_REACHED
    assert report.status == CallStatus.COMPLETED
    assert report.transcript[-1] == {
        "role": "assistant",
        "text": "Time is up, goodbye.",
        "started_at": report.transcript[-1]["started_at"],
    }


async def test_idle_caller_is_nudged_then_hung_up_on(scripted_llm):
    call = make_call(
        scripted_llm.base_url,
        idle_warning_after=0.3,
        idle_warning_message="Are you still there?",
        idle_hangup_after=0.9,
    )
    async with text_call(call) as tc:
        await asyncio.wait_for(tc.recorder.closed.wait(), 5)
    report = tc.recorder.report()
    assert report.end_reason == EndReason.INACTIVITY
    assert [entry["text"] for entry in report.transcript] == ["Are you still there?"]


async def test_llm_failure_ends_the_call_with_a_failed_report(scripted_llm):
    scripted_llm.on(".*", Reply(status=500, text="boom"))
    no_retry = SessionConnectOptions(
        llm_conn_options=APIConnectOptions(max_retry=0), max_unrecoverable_errors=0
    )
    call = make_call(scripted_llm.base_url)
    async with text_call(call, session_overrides={"conn_options": no_retry}) as tc:
        tc.session.generate_reply(user_input="hello?")
        await asyncio.wait_for(tc.recorder.closed.wait(), 10)
    report = tc.recorder.report()
    assert report.status == CallStatus.FAILED
    assert report.end_reason == EndReason.ERROR
    assert report.error
    assert report.ended_at is not None


async def test_knowledge_tool_answers_from_passages(scripted_llm):
    asked: list[tuple[str, str, int]] = []

    async def retrieve(agent_id: str, query: str, top_k: int):
        asked.append((agent_id, query, top_k))
        return [{"file_name": "hours.md", "position": 0, "page": None, "score": 0.8,
                 "text": "We are open 9 to 5."}]  # fmt: skip

    scripted_llm.on("open", tool_call("lookup_knowledge", query="opening hours"))
    scripted_llm.on_tool("lookup_knowledge", "From our docs: {tool_output}")
    call = make_call(scripted_llm.base_url, knowledge_ready=True)
    async with text_call(call, retrieve=retrieve) as tc:
        result = await tc.session.run(user_input="When are you open?")
        result.expect.next_event().is_function_call(name="lookup_knowledge")
        result.expect.next_event().is_function_call_output()
        reply = result.expect.next_event().is_message(role="assistant").event().item
    assert asked == [("agent-1", "opening hours", 4)]
    assert "We are open 9 to 5." in reply.text_content
    assert tc.state.sources[0]["file_name"] == "hours.md"


async def test_latency_reflects_the_llm_time_to_first_token(scripted_llm):
    scripted_llm.on("slow", "A slow answer.", ttft=0.4)
    scripted_llm.on("fast", "A fast answer.")
    async with text_call(make_call(scripted_llm.base_url)) as tc:
        await tc.session.run(user_input="slow please")
        await tc.session.run(user_input="fast please")
    slow, fast = tc.recorder.report().latencies
    assert (slow["turn"], fast["turn"]) == (1, 2)
    assert slow["llm_ttft_ms"] >= 400
    assert fast["llm_ttft_ms"] < slow["llm_ttft_ms"] - 200
