"""A scripted OpenAI-compatible server: chat completions (SSE), tool calls, speech, embeddings.

Point the real OpenAI client (or livekit's OpenAI plugin) at `server.base_url`. Replies are
chosen by rules matched against the last user message, or against the tool whose result was
just sent back; each rule may stream text or call tools, after a simulated time to first token.

    server = FakeOpenAI().start()  # served from its own thread and event loop
    server.on("weather", tool_call("get_weather", city="Paris"))
    server.on_tool("get_weather", "It is {tool_output} in Paris.")

Embeddings are hashed word counts (`bag_of_words_vector`), so texts sharing words are similar.
Set `api_key` to refuse requests without it (401), and `fail_with` to fail the next requests.

Fixtures, registered for every test by tests/conftest.py: `openai_server` (one per session) and
`scripted_llm` (the same server, reset for the test).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import re
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.background import BackgroundServer

logger = logging.getLogger(__name__)

#: The length of the embeddings served.
DIMENSIONS = 64


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


def tool_call(name: str, **arguments: Any) -> ToolCall:
    """A scripted tool call (arguments as keyword arguments)."""
    return ToolCall(name=name, arguments=arguments)


@dataclass
class Reply:
    """What the model answers: text (may hold {tool_output}) and/or tool calls."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    ttft: float | None = None
    status: int = 200  # anything else answers an OpenAI-style error


Matcher = Callable[[dict[str, Any]], bool]


@dataclass
class Rule:
    matcher: Matcher
    reply: Reply | Callable[[dict[str, Any]], Reply]
    times: int | None = None  # None: forever


def _as_reply(value: str | ToolCall | list[ToolCall] | Reply, ttft: float | None) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, ToolCall):
        return Reply(tool_calls=[value], ttft=ttft)
    if isinstance(value, list):
        return Reply(tool_calls=value, ttft=ttft)
    return Reply(text=value, ttft=ttft)


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def last_tool_result(body: dict[str, Any]) -> tuple[str, str] | None:
    """(tool name, output) of the latest tool result after the last user message, else None.

    Agents may say something (a filler line) between a tool result and the next request, so the
    result is not always the very last message.
    """
    messages = body.get("messages", [])
    for message in reversed(messages):
        role = message.get("role")
        if role == "user":
            return None
        if role != "tool":
            continue
        call_id = message.get("tool_call_id")
        name = ""
        for other in messages:
            for call in other.get("tool_calls") or []:
                if call.get("id") == call_id:
                    name = call["function"]["name"]
        return name, _content_text(message.get("content"))
    return None


def bag_of_words_vector(text: str) -> list[float]:
    """A deterministic embedding: hashed word counts, so texts sharing words are similar."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    return vector


class FakeOpenAI(BackgroundServer):
    """The server. Inspect `requests` (JSON bodies of chat requests) in assertions,
    `authorizations` (each chat request's Authorization header, None when it had none),
    `speech_requests` and `embedding_requests` (bodies, with the "path" and "headers")."""

    def __init__(self, *, ttft: float = 0.0, default_reply: str = "Sorry, I did not get that."):
        super().__init__()
        self._initial_ttft = ttft
        self.default_reply = default_reply
        self.rules: list[Rule] = []
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        #: each chat request's `api-key` header (Azure OpenAI's), None when it had none
        self.api_key_headers: list[str | None] = []
        self.speech_requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.reset()

    # -- script ---------------------------------------------------------------------------

    def on(
        self,
        pattern: str,
        reply: str | ToolCall | list[ToolCall] | Reply | Callable[[dict], Reply],
        *,
        ttft: float | None = None,
        times: int | None = None,
    ) -> None:
        """Answer user messages matching `pattern` (a case-insensitive regex)."""
        regex = re.compile(pattern, re.IGNORECASE)

        def matcher(body: dict[str, Any]) -> bool:
            return last_tool_result(body) is None and bool(regex.search(last_user_text(body)))

        value = reply if callable(reply) else _as_reply(reply, ttft)
        self.rules.append(Rule(matcher, value, times))

    def on_tool(
        self,
        name: str,
        reply: str | ToolCall | Reply | Callable[[dict], Reply],
        *,
        ttft: float | None = None,
    ) -> None:
        """Answer the result of tool `name`; `{tool_output}` in the text is replaced by it."""

        def matcher(body: dict[str, Any]) -> bool:
            result = last_tool_result(body)
            return result is not None and result[0] == name

        value = reply if callable(reply) else _as_reply(reply, ttft)
        self.rules.append(Rule(matcher, value))

    def reset(self) -> None:
        """Forgets the rules, the recorded requests, the key and the failures to come."""
        self.ttft = self._initial_ttft
        #: When set, every request must carry `Authorization: Bearer <api_key>`.
        self.api_key: str | None = None
        #: The statuses the next requests answer (an OpenAI-style error), first one first.
        self.fail_with: list[int] = []
        self.rules.clear()
        self.requests.clear()
        self.authorizations.clear()
        self.api_key_headers.clear()
        self.speech_requests.clear()
        self.embedding_requests.clear()

    def _choose(self, body: dict[str, Any]) -> Reply:
        for rule in self.rules:
            if rule.times is not None and rule.times <= 0:
                continue
            if rule.matcher(body):
                if rule.times is not None:
                    rule.times -= 1
                reply = rule.reply(body) if callable(rule.reply) else rule.reply
                result = last_tool_result(body)
                if result is not None and "{tool_output}" in reply.text:
                    reply = dataclasses.replace(
                        reply, text=reply.text.replace("{tool_output}", result[1])
                    )
                return reply
        return Reply(text=self.default_reply)

    # -- server ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._key_and_failures])
        app.router.add_post("/v1/chat/completions", self._chat)
        # Azure OpenAI: the deployment in the path, the key in an `api-key` header
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        return app

    @web.middleware
    async def _key_and_failures(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Refuses a request without the key (when one is set), then fails it if told to."""
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=401)
        if self.fail_with:
            error = {"message": "scripted failure", "type": "server_error"}
            return web.json_response({"error": error}, status=self.fail_with.pop(0))
        return await handler(request)

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("Authorization"))
        self.api_key_headers.append(request.headers.get("api-key"))
        reply = self._choose(body)
        ttft = self.ttft if reply.ttft is None else reply.ttft
        completion_id = f"chatcmpl-{next(self._ids)}"
        prompt_tokens = sum(
            len(_content_text(m.get("content")).split()) for m in body.get("messages", [])
        )
        completion_tokens = len(reply.text.split()) + 5 * len(reply.tool_calls)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        finish = "tool_calls" if reply.tool_calls else "stop"
        if ttft:
            await asyncio.sleep(ttft)
        if reply.status != 200:
            error = {"message": reply.text or "scripted failure", "type": "server_error"}
            return web.json_response({"error": error}, status=reply.status)

        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": f"call_{next(self._ids)}",
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in reply.tool_calls
                ]
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "gpt-4o"),
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(choices: list[dict[str, Any]], extra: dict | None = None) -> None:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model", "gpt-4o"),
                "choices": choices,
                **(extra or {}),
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        def delta(content: dict[str, Any], finish_reason: str | None = None) -> list[dict]:
            return [{"index": 0, "delta": content, "finish_reason": finish_reason}]

        await send(delta({"role": "assistant", "content": ""}))
        for word in re.findall(r"\S+\s*", reply.text):
            await send(delta({"content": word}))
        for index, call in enumerate(reply.tool_calls):
            arguments = json.dumps(call.arguments)
            header = {
                "index": index,
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            await send(delta({"tool_calls": [header]}))
            for start in range(0, len(arguments), 16):  # arguments stream in pieces
                piece = {"index": index, "function": {"arguments": arguments[start : start + 16]}}
                await send(delta({"tool_calls": [piece]}))
        await send(delta({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            await send([], {"usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        """Embeddings of one text or a list, listed in reverse: clients must order by index."""
        body = await request.json()
        self.embedding_requests.append(
            {"path": request.path, "headers": dict(request.headers), **body}
        )
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": index, "embedding": bag_of_words_vector(text)}
            for index, text in reversed(list(enumerate(inputs)))
        ]
        return web.json_response({"object": "list", "data": data, "model": body["model"]})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        """TTS: a quiet 220 Hz tone, 24 kHz 16-bit mono PCM, 60 ms per word."""
        body = await request.json()
        self.speech_requests.append(body)
        words = max(len(str(body.get("input", "")).split()), 1)
        samples = int(24000 * 0.06 * words)
        pcm = b"".join(
            struct.pack("<h", int(1000 * math.sin(2 * math.pi * 220 * i / 24000)))
            for i in range(samples)
        )
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        for start in range(0, len(pcm), 4800):
            await response.write(pcm[start : start + 4800])
        await response.write_eof()
        return response


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeOpenAI]:
    """One scripted OpenAI server for the test session."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def scripted_llm(openai_server: FakeOpenAI) -> FakeOpenAI:
    """The session's scripted OpenAI server, reset for this test: no rules, no requests."""
    openai_server.reset()
    return openai_server
