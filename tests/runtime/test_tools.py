"""Custom-function HTTP calls against a real local server: methods, headers, errors, SSRF."""

import json

import pytest
from livekit.agents.llm import ToolError

from runtime.spec import CustomFunctionSpec
from runtime.tools import (
    RESPONSE_LIMIT,
    build_end_call_tool,
    build_http_tool,
    build_knowledge_tool,
    build_tools,
    call_custom_function,
    format_passages,
)
from tests.runtime.conftest import make_call


def _function(url: str, **changes) -> CustomFunctionSpec:
    fields = dict(name="fn", url=url, method="GET", timeout=2.0)
    fields.update(changes)
    return CustomFunctionSpec(**fields)


async def test_get_sends_arguments_as_query_string(backend):
    spec = _function(backend.url + "/weather?units=metric")
    result = await call_custom_function(
        spec, {"city": "Paris", "days": 3, "tags": ["a", "b"], "exact": True}, allow_private=True
    )
    assert json.loads(result) == {"city": "Paris", "forecast": "sunny", "celsius": 21}
    (request,) = backend.requests
    assert request["method"] == "GET"
    assert request["query"] == {
        "units": ["metric"],
        "city": ["Paris"],
        "days": ["3"],
        "tags": ["a", "b"],
        "exact": ["true"],
    }
    assert request["body"] == ""


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_other_methods_send_a_json_body_with_stored_headers(backend, method):
    spec = _function(
        backend.url + "/book",
        method=method,
        headers={"Authorization": "Bearer s3cret", "X-Tenant": "acme"},
    )
    result = await call_custom_function(spec, {"date": "2025-05-01", "seats": 2}, True)
    (request,) = backend.requests
    assert request["method"] == method
    assert json.loads(request["body"]) == {"date": "2025-05-01", "seats": 2}
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["X-Tenant"] == "acme"
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert request["query"] == {}
    assert json.loads(result)["booked"] is True


async def test_timeout_becomes_tool_error(backend):
    spec = _function(backend.url + "/slow?delay=3", timeout=0.3)
    with pytest.raises(ToolError, match="did not answer within 0.3 seconds"):
        await call_custom_function(spec, {}, True)


async def test_non_2xx_becomes_tool_error_with_the_body(backend):
    with pytest.raises(ToolError, match="HTTP 503.*database down"):
        await call_custom_function(_function(backend.url + "/fail"), {}, True)


async def test_unreachable_becomes_tool_error():
    spec = _function("http://127.0.0.1:9/nothing-listens-here")
    with pytest.raises(ToolError, match="could not be reached"):
        await call_custom_function(spec, {}, True)


async def test_large_response_is_trimmed(backend):
    result = await call_custom_function(_function(backend.url + "/big"), {}, True)
    assert len(result) < RESPONSE_LIMIT + 100
    assert result.startswith("x" * 100)
    assert "truncated" in result


async def test_redirects_are_followed(backend):
    result = await call_custom_function(
        _function(backend.url + "/redirect?to=/weather%3Fcity%3DOslo"), {}, True
    )
    assert json.loads(result)["city"] == "Oslo"
    assert [r["path"] for r in backend.requests] == ["/redirect", "/weather"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_address_refused_at_call_time(backend, host):
    port = backend.url.rsplit(":", 1)[1]
    spec = _function(f"http://{host}:{port}/weather")
    with pytest.raises(ToolError, match="not allowed"):
        await call_custom_function(spec, {"city": "Paris"}, allow_private=False)
    assert backend.requests == []  # nothing left the worker


async def test_tool_schema_comes_from_the_spec(backend):
    spec = _function(
        backend.url + "/weather",
        name="get_weather",
        description="Weather for a city",
        parameters={"city": {"type": "string", "description": "City"}},
    )
    tool = build_http_tool(spec, allow_private=True)
    assert tool.info.name == "get_weather"
    assert tool.info.raw_schema["description"] == "Weather for a city"
    assert tool.info.raw_schema["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City"}},
        "required": ["city"],
    }


def test_build_tools_per_agent(backend):
    functions = (_function(backend.url, name="a"), _function(backend.url, name="b"))
    names = [t.info.name for t in build_tools(make_call("http://x/v1", functions=functions))]
    assert names == ["a", "b", "end_call"]
    call = make_call("http://x/v1", functions=functions, knowledge_ready=True)
    assert [t.info.name for t in build_tools(call, end_call=False)] == [
        "a",
        "b",
        "lookup_knowledge",
    ]


def test_format_passages():
    text = format_passages(
        [
            {"file_name": "faq.md", "page": None, "text": "We open at 9.", "score": 0.9},
            {"file_name": "guide.pdf", "page": 3, "text": "Parking is free.", "score": 0.5},
        ]
    )
    assert text == "[1] (faq.md) We open at 9.\n\n[2] (guide.pdf, page 3) Parking is free."
    assert "No passage" in format_passages([])


def test_knowledge_and_end_call_tools_have_schemas():
    knowledge_tool = build_knowledge_tool("agent-1")
    assert knowledge_tool.info.raw_schema["parameters"]["required"] == ["query"]
    assert build_end_call_tool().info.raw_schema["parameters"]["properties"] == {}
