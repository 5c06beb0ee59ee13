"""A scripted Anthropic Messages API: `POST /v1/messages`, streamed as server-sent events.

Speaks the documented stream (message_start, content_block_start/delta/stop with text_delta or
input_json_delta for tool use, message_delta, message_stop), so the real `anthropic` SDK, and
livekit's Anthropic plugin on top of it, run against it unchanged:

    server = FakeAnthropic().start()
    server.on("weather", tool_call("get_weather", city="Paris"))
    server.on_tool("get_weather", "It is {tool_output}.")
    # ANTHROPIC_BASE_URL=server.url

`requests` holds each request's JSON body and `api_keys` its `x-api-key` header (None when
absent); `fail_with` makes the next requests answer those HTTP statuses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.scripted_vendor import ScriptedVendorLLM


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        block.get("text", "")
        for block in content or []
        if isinstance(block, dict) and block.get("type") == "text"
    )


def _tool_result(body: dict[str, Any]) -> tuple[str, str] | None:
    """(tool name, its output) when the last message answers a tool use."""
    messages = body.get("messages", [])
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    results = [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"]
    if not isinstance(content, list) or not results:
        return None
    names = {
        block["id"]: block["name"]
        for message in messages
        if message.get("role") == "assistant" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    }
    result = results[-1]
    output = result.get("content")
    return names.get(result.get("tool_use_id"), ""), _text(output) if output else ""


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            text = _text(message.get("content"))
            if text:
                return text
    return ""


class FakeAnthropic(ScriptedVendorLLM):
    last_user_text = staticmethod(_last_user_text)
    tool_result = staticmethod(_tool_result)

    def __init__(self, *, default_reply: str = "Sorry, I did not get that.") -> None:
        super().__init__(default_reply=default_reply)
        self._ids = itertools.count(1)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.api_keys.append(request.headers.get("x-api-key"))
        if self.fail_with:
            error = {"type": "overloaded_error", "message": "scripted failure"}
            return web.json_response(
                {"type": "error", "error": error}, status=self.fail_with.pop(0)
            )
        reply = self.choose(body)
        message_id = f"msg_{next(self._ids)}"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            await asyncio.sleep(0)

        input_tokens = sum(len(_text(m.get("content")).split()) for m in body["messages"])
        await send(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": body.get("model"),
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        )
        index = 0
        if reply.text:
            block = {"type": "text", "text": ""}
            await send(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
            for word in re.findall(r"\S+\s*", reply.text):
                delta = {"type": "text_delta", "text": word}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for call in reply.tool_calls:
            block = {"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": call.name}
            await send(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
            )
            arguments = json.dumps(call.arguments)
            for start in range(0, len(arguments), 12):
                delta = {"type": "input_json_delta", "partial_json": arguments[start : start + 12]}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        stop = "tool_use" if reply.tool_calls else "end_turn"
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": len(reply.text.split()) + 5 * len(reply.tool_calls)},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def scripted_anthropic(anthropic_server: FakeAnthropic, monkeypatch) -> FakeAnthropic:
    """The session's Anthropic stand-in, reset, with `ANTHROPIC_BASE_URL` pointing at it."""
    anthropic_server.reset()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_server.url)
    return anthropic_server
