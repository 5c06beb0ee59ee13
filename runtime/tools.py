"""LLM tools of a call: custom functions (HTTP), the knowledge lookup and end_call.

Every failure inside a tool becomes `llm.ToolError`, whose message the LLM sees, so that it can
tell the caller and the call goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from livekit.agents import llm
from livekit.agents.llm import ToolError, function_tool
from livekit.agents.voice import RunContext
from yarl import URL

from runtime.spec import (
    AgentSpec,
    CallSpec,
    CustomFunctionSpec,
    EndReason,
    URLNotAllowedError,
    check_url_allowed_async,
    pinned_resolver,
)

logger = logging.getLogger(__name__)

#: Characters of a response body handed to the LLM.
RESPONSE_LIMIT = 4000
MAX_REDIRECTS = 3
USER_AGENT = "Voxline/0.1 (custom function)"

KNOWLEDGE_TOOL = "lookup_knowledge"
END_CALL_TOOL = "end_call"

Retrieve = Callable[[str, str, int], Awaitable[Sequence[Any]]]


# --------------------------------------------------------------------------------------------
# Custom functions
# --------------------------------------------------------------------------------------------


def _query_pairs(arguments: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in arguments.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif isinstance(item, dict | list):
                text = json.dumps(item, separators=(",", ":"))
            else:
                text = str(item)
            pairs.append((str(key), text))
    return pairs


def trim_body(text: str, limit: int = RESPONSE_LIMIT) -> str:
    """Shorten a response body for the LLM, saying that it was cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[response truncated: {len(text)} characters in total]"


async def _read_body(response: aiohttp.ClientResponse) -> str:
    raw = await response.content.read(RESPONSE_LIMIT * 4 + 1)
    text = raw.decode(response.get_encoding() if response.charset else "utf-8", errors="replace")
    if "json" in (response.content_type or ""):
        try:  # compact JSON says more within the limit
            text = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
        except ValueError:
            pass
    return trim_body(text)


async def call_custom_function(
    spec: CustomFunctionSpec, arguments: dict[str, Any], allow_private: bool
) -> str:
    """Call a custom function's endpoint and return the (trimmed) response body.

    GET sends the arguments as the query string, other methods as a JSON body. The URL is
    checked against the SSRF policy before connecting, again on every redirect, and the
    addresses actually connected to are checked by the resolver. The stored headers (secrets
    among them) go to the function's own origin only: from a redirect to another scheme, host
    or port on, they are left out, and no cookie is kept between hops.

    Raises:
        ToolError: on a refused URL, a timeout, a connection failure or a non-2xx answer; the
            message tells the LLM what happened.
    """
    url = URL(spec.url)
    origin = url.origin()
    anyone_may_see = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json, text/plain;q=0.9, */*;q=0.5",
    }
    headers = {**anyone_may_see, **spec.headers}
    request: dict[str, Any] = {"headers": headers, "allow_redirects": False}
    if spec.method == "GET":
        url = url.extend_query(_query_pairs(arguments))
    else:
        request["json"] = arguments

    connector = aiohttp.TCPConnector(resolver=pinned_resolver(allow_private), force_close=True)
    timeout = aiohttp.ClientTimeout(total=spec.timeout)
    method = spec.method
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
        ) as http:
            for _ in range(MAX_REDIRECTS + 1):
                await check_url_allowed_async(str(url), allow_private)
                if url.origin() != origin:  # from here on, the function's headers stay behind
                    request["headers"] = anyone_may_see
                async with http.request(method, url, **request) as response:
                    if response.status in (301, 302, 303, 307, 308) and response.headers.get(
                        "Location"
                    ):
                        url = url.join(URL(response.headers["Location"]))
                        if response.status == 303:
                            method = "GET"
                            request.pop("json", None)
                        continue
                    body = await _read_body(response)
                    if 200 <= response.status < 300:
                        logger.info("custom function %s answered %s", spec.name, response.status)
                        return body or f"(the request succeeded with HTTP {response.status})"
                    logger.warning("custom function %s answered %s", spec.name, response.status)
                    raise ToolError(
                        f"The {spec.name} service answered with HTTP {response.status}"
                        + (f": {body[:500]}" if body else "")
                        + ". Tell the caller it could not be done right now."
                    )
            raise ToolError(f"The {spec.name} service redirected too many times.")
    except URLNotAllowedError as e:
        logger.warning("custom function %s refused by the URL policy: %s", spec.name, e)
        raise ToolError(
            f"The {spec.name} function is not allowed to call its address ({e}). "
            "Tell the caller it is unavailable."
        ) from e
    except aiohttp.ClientConnectorError as e:
        logger.warning("custom function %s could not connect: %s", spec.name, e)
        raise ToolError(
            f"The {spec.name} service could not be reached. Tell the caller to try again later."
        ) from e
    except TimeoutError as e:
        logger.warning("custom function %s timed out after %ss", spec.name, spec.timeout)
        raise ToolError(
            f"The {spec.name} service did not answer within {spec.timeout:g} seconds. "
            "Tell the caller it is taking too long and offer to try again."
        ) from e
    except aiohttp.ClientError as e:
        logger.warning("custom function %s failed: %s", spec.name, e)
        raise ToolError(f"The {spec.name} service failed ({type(e).__name__}).") from e


def mocked_answer(name: str, mock: dict[str, Any]) -> str:
    """What a mocked custom function answers: its `response` as JSON (a string as is).

    Raises:
        ToolError: the mock is `{"error": ...}`.
    """
    if "error" in mock:
        raise ToolError(str(mock["error"]) or f"The {name} service failed.")
    response = mock.get("response")
    return trim_body(response if isinstance(response, str) else json.dumps(response))


def build_http_tool(
    spec: CustomFunctionSpec, allow_private: bool, mock: dict[str, Any] | None = None
) -> llm.RawFunctionTool:
    """An LLM tool that calls a custom function's HTTP endpoint.

    `speak_during` is said (once, when the agent is otherwise quiet) while the request runs;
    `speak_after` is said when it succeeded. With a `mock` (agent tests), the endpoint is never
    called: the tool answers as `mocked_answer` says.
    """

    async def handler(raw_arguments: dict[str, object], context: RunContext) -> str:
        arguments = dict(raw_arguments or {})
        if mock is not None:
            return mocked_answer(spec.name, mock)
        if spec.speak_during:
            async with context.with_filler(spec.speak_during):
                result = await call_custom_function(spec, arguments, allow_private)
        else:
            result = await call_custom_function(spec, arguments, allow_private)
        if spec.speak_after:
            context.session.say(spec.speak_after)
        return result

    handler.__name__ = spec.name
    return function_tool(
        handler,
        raw_schema={
            "name": spec.name,
            "description": spec.description or f"Call the {spec.name} service.",
            "parameters": spec.parameters,
        },
    )


# --------------------------------------------------------------------------------------------
# Knowledge lookup
# --------------------------------------------------------------------------------------------


def _default_retrieve() -> Retrieve:
    try:
        import knowledge
    except ImportError as e:  # the knowledge package is part of voxline; this is a broken install
        raise ToolError("The knowledge base is unavailable right now.") from e
    return knowledge.retrieve


def _passage_dict(passage: Any) -> dict[str, Any]:
    fields = ("file_name", "position", "page", "score", "text")
    if isinstance(passage, dict):
        return {name: passage.get(name) for name in fields}
    return {name: getattr(passage, name, None) for name in fields}


def format_passages(passages: Sequence[dict[str, Any]]) -> str:
    """Passages as numbered, sourced text for the LLM."""
    if not passages:
        return "No passage in the knowledge base matches this question."
    lines = []
    for index, passage in enumerate(passages, start=1):
        where = passage["file_name"] or "document"
        if passage.get("page") is not None:
            where += f", page {passage['page']}"
        lines.append(f"[{index}] ({where}) {passage['text']}")
    return "\n\n".join(lines)


async def lookup_passages(
    agent_id: str, query: str, top_k: int, retrieve: Retrieve | None = None
) -> list[dict[str, Any]]:
    """The agent's knowledge passages that best answer `query`, as dicts (best first).

    Raises:
        ToolError: the knowledge base could not be searched.
    """
    search = retrieve or _default_retrieve()
    try:
        found = await search(agent_id, query, top_k)
    except ToolError:
        raise
    except Exception as e:
        logger.exception("knowledge lookup failed for agent %s", agent_id)
        raise ToolError("The knowledge base could not be searched right now.") from e
    return [_passage_dict(passage) for passage in found]


def build_knowledge_tool(
    agent_id: str, *, retrieve: Retrieve | None = None, top_k: int = 4
) -> llm.RawFunctionTool:
    """The knowledge lookup tool, backed by `knowledge.retrieve` (the `/query` function).

    Passages found are also appended to `context.userdata.sources` when the userdata has it,
    which chats return as their `sources`.
    """

    async def lookup_knowledge(raw_arguments: dict[str, object], context: RunContext) -> str:
        query = str(raw_arguments.get("query") or "").strip()
        if not query:
            raise ToolError("Give a question to look up.")
        passages = await lookup_passages(agent_id, query, top_k, retrieve)
        sources = getattr(context.userdata, "sources", None) if _has_userdata(context) else None
        if isinstance(sources, list):
            sources.extend(passages)
        return format_passages(passages)

    return function_tool(
        lookup_knowledge,
        raw_schema={
            "name": KNOWLEDGE_TOOL,
            "description": (
                "Search the knowledge base (the documents uploaded for this agent) for facts "
                "needed to answer the caller. Use it before saying you do not know."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look up, as a question"}
                },
                "required": ["query"],
            },
        },
    )


def _has_userdata(context: RunContext) -> bool:
    try:
        context.userdata  # noqa: B018 - raises when the session has no userdata
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# end_call
# --------------------------------------------------------------------------------------------

END_CALL_DESCRIPTION = (
    "End the call. Use it when the caller says goodbye or clearly has nothing more to ask, or "
    "when the conversation is complete. Do not use it when the caller asks to hold or to be "
    "transferred, or when their intent is unclear."
)


def build_end_call_tool(on_end: Callable[[EndReason], None] | None = None) -> llm.RawFunctionTool:
    """The `end_call` tool: the agent says a short goodbye and the session closes after it.

    Args:
        on_end: called with `EndReason.AGENT_HANGUP` when the tool runs (the call's state
            records why the call ended).
    """

    async def end_call(raw_arguments: dict[str, object], context: RunContext) -> str:
        logger.info("the agent ends the call")
        if on_end is not None:
            on_end(EndReason.AGENT_HANGUP)
        # The goodbye the LLM generates from this output reuses the same speech handle, so
        # closing when that handle is done lets the goodbye play out first.
        context.speech_handle.add_done_callback(lambda _: context.session.shutdown(drain=True))
        return "The call will end now. Say a short, friendly goodbye and nothing else."

    return function_tool(
        end_call,
        raw_schema={
            "name": END_CALL_TOOL,
            "description": END_CALL_DESCRIPTION,
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    )


def build_tools(
    call: CallSpec,
    *,
    on_end: Callable[[EndReason], None] | None = None,
    retrieve: Retrieve | None = None,
    allow_private: bool | None = None,
    end_call: bool = True,
) -> list[llm.RawFunctionTool]:
    """All tools of a call: its custom functions, knowledge lookup (when ready) and end_call.

    Text chats pass `end_call=False`: there is no call to end.
    """
    agent: AgentSpec = call.agent
    private = call.allow_private_urls if allow_private is None else allow_private
    tools = [
        build_http_tool(function, private, call.function_mocks.get(function.name))
        for function in agent.custom_functions
    ]
    if agent.knowledge_ready:
        tools.append(build_knowledge_tool(agent.agent_id, retrieve=retrieve))
    if end_call:
        tools.append(build_end_call_tool(on_end))
    return tools
