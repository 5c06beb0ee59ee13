"""Tests for the call-spec contract: catalogue, URL policy, templates, parameters, JSON."""

import json
import socket
from datetime import UTC, datetime, timedelta, timezone

import pytest

from runtime.spec import (
    PROVIDERS,
    AgentSpec,
    CallReport,
    CallSpec,
    CallStatus,
    CustomFunctionSpec,
    EndReason,
    UnknownProviderError,
    URLNotAllowedError,
    address_allowed,
    builtin_variables,
    call_variables,
    check_url_allowed,
    check_url_allowed_async,
    mask_phone,
    normalise_parameters,
    normalise_provider,
    render_template,
    resolve_provider,
)

# --- provider catalogue -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai", "OpenAI", "open ai", " Open-AI ", "open_ai"])
def test_normalise_provider_spellings(name):
    assert normalise_provider(name) == "openai"


def test_catalogue_knows_required_providers():
    assert {"openai", "local"} <= set(PROVIDERS["llm"])
    assert {"deepgram", "local"} <= set(PROVIDERS["stt"])
    assert {"openai", "local"} <= set(PROVIDERS["tts"])
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"} <= set(
        PROVIDERS["llm"]["openai"].models
    )
    assert {"nova-3", "nova-2"} <= set(PROVIDERS["stt"]["deepgram"].models)
    assert {"alloy", "echo", "fable", "onyx", "nova", "shimmer"} <= set(
        PROVIDERS["tts"]["openai"].voices
    )
    for kind, providers in PROVIDERS.items():
        for name, info in providers.items():
            assert info.kind == kind and info.name == name
            assert ":" in info.factory
            assert info.models, f"{kind}/{name} has no default model"
            if info.name == "local":
                assert info.extra == "local" and info.api_key_env is None


def test_resolve_fills_defaults():
    assert resolve_provider("LLM", "Open AI") == ("openai", "gpt-4o", None)
    tts = resolve_provider("tts", "openai")
    assert (tts.model, tts.voice) == ("gpt-4o-mini-tts", "alloy")
    assert resolve_provider("stt", "Deepgram").model == "nova-3"
    assert resolve_provider("stt", "local").model == "tiny.en"
    assert resolve_provider("tts", "local").voice == "en_US-joe-medium"


def test_resolve_canonicalises_case():
    assert resolve_provider("tts", "openai", "TTS-1", "Nova") == ("openai", "tts-1", "nova")


def test_unknown_provider_lists_allowed():
    with pytest.raises(UnknownProviderError) as info:
        resolve_provider("llm", "foo")
    assert str(info.value).startswith("unknown LLM provider 'foo'; allowed: anthropic, azure,")
    assert ", local, " in str(info.value) and ", openai, " in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_model_and_voice_list_allowed():
    with pytest.raises(UnknownProviderError, match="unknown STT model 'whisper-9'.*nova-3"):
        resolve_provider("stt", "deepgram", "whisper-9")
    with pytest.raises(UnknownProviderError, match="unknown TTS voice 'bob'.*alloy"):
        resolve_provider("tts", "openai", voice="bob")


def test_base_url_opens_the_model_list():
    with pytest.raises(UnknownProviderError):
        resolve_provider("llm", "openai", "llama3.2")
    resolved = resolve_provider("llm", "openai", "llama3.2", base_url="http://localhost:11434/v1")
    assert resolved.model == "llama3.2"
    with pytest.raises(ValueError, match="base_url"):
        resolve_provider("stt", "deepgram", base_url="http://x")


def test_unknown_kind():
    with pytest.raises(ValueError, match="allowed: llm, stt, tts"):
        resolve_provider("vad", "silero")


# --- URL policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
        "http://2130706433/",  # 127.0.0.1 as a decimal, resolved by getaddrinfo
    ],
)
def test_private_addresses_refused(url):
    with pytest.raises(URLNotAllowedError):
        check_url_allowed(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8/", "https://1.1.1.1:8443/x?y=1", "http://[2606:4700::1111]/"]
)
def test_public_addresses_allowed(url):
    check_url_allowed(url, allow_private=False)


def test_allow_private_lets_loopback_through():
    check_url_allowed("http://127.0.0.1:9/", allow_private=True)
    check_url_allowed("http://localhost/", allow_private=True)


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/", "file:///etc/passwd", "gopher://x", "8.8.8.8"])
def test_only_http_schemes(url):
    with pytest.raises(URLNotAllowedError, match="scheme"):
        check_url_allowed(url, allow_private=True)


@pytest.mark.parametrize("url", ["", "http://", "http://[::1/", "http://x:99999/"])
def test_malformed_urls_refused(url):
    with pytest.raises(URLNotAllowedError):
        check_url_allowed(url, allow_private=True)


def test_unresolvable_host_refused():
    with pytest.raises(URLNotAllowedError, match="does not resolve"):
        check_url_allowed("http://no-such-host.invalid/", allow_private=False)


def test_hostname_resolving_to_loopback_refused_by_name():
    # "localhost" is a name, not a literal: the refusal comes from the DNS answer.
    assert socket.getaddrinfo("localhost", 80)
    with pytest.raises(URLNotAllowedError, match="'localhost'"):
        check_url_allowed("http://localhost/", allow_private=False)


async def test_async_variant_matches():
    with pytest.raises(URLNotAllowedError):
        await check_url_allowed_async("http://localhost:1234/", allow_private=False)
    with pytest.raises(URLNotAllowedError):
        await check_url_allowed_async("http://[::ffff:169.254.169.254]/", allow_private=False)
    await check_url_allowed_async("https://8.8.4.4/", allow_private=False)
    await check_url_allowed_async("http://localhost:1234/", allow_private=True)


def test_address_allowed_rejects_garbage():
    assert not address_allowed("not-an-ip", allow_private=True)
    assert address_allowed("8.8.8.8", allow_private=False)
    assert not address_allowed("fe80::1%eth0", allow_private=False)


# --- templates -----------------------------------------------------------------------------------


def test_render_template_fills_and_blanks():
    text = "Hi {{name}}, {{ plan }} / {{  missing }}! {{Name}}"
    assert render_template(text, {"name": "Ana", "plan": "gold"}) == "Hi Ana, gold / ! Ana"


def test_render_template_never_raises():
    assert render_template(None, {"x": 1}) == ""
    assert render_template("{{x}} {{", None) == " {{"
    assert render_template("{{ x }}", {"x": 3}) == "3"
    assert render_template("{{a}}{{b}}", {"a": None, "b": object.__name__}) == "object"
    assert render_template("{single} {{}} {{ }}", {}) == "{single} {{}} {{ }}"


def _call(direction="inbound", **changes) -> CallSpec:
    agent = AgentSpec(agent_id="ag1", name="Sunny")
    fields = dict(
        call_id="call-1",
        workspace_id="ws-1",
        direction=direction,
        call_type="phone",
        from_number="+16505551234",
        to_number="+14155550000",
        dynamic_variables={"first_name": "Ana", "call_id": "spoofed"},
        agent=agent,
    )
    fields.update(changes)
    return CallSpec(**fields)


def test_builtin_variables():
    now = datetime(2025, 3, 4, 15, 30, tzinfo=UTC)
    values = builtin_variables(_call(), now)
    assert values["now"] == "2025-03-04 15:30 UTC"
    assert values["today"] == "2025-03-04"
    assert values["caller_number"] == "+16505551234"
    assert values["called_number"] == "+14155550000"
    assert values["call_id"] == "call-1"
    assert values["agent_name"] == "Sunny"
    assert values["customer_number"] == "+16505551234"
    assert builtin_variables(_call("outbound"), now)["customer_number"] == "+14155550000"


def test_builtin_now_keeps_offset_and_naive_is_utc():
    paris = datetime(2025, 3, 4, 16, 30, tzinfo=timezone(timedelta(hours=1)))
    assert builtin_variables(_call(), paris)["now"].startswith("2025-03-04 16:30")
    assert builtin_variables(_call(), datetime(2025, 1, 1))["now"] == "2025-01-01 00:00 UTC"


def test_call_variables_builtins_win():
    values = call_variables(_call(), datetime(2025, 1, 1, tzinfo=UTC))
    assert values["first_name"] == "Ana"
    assert values["call_id"] == "call-1"
    rendered = render_template("Hello {{first_name}} on {{ today }}", values)
    assert rendered == "Hello Ana on 2025-01-01"


def test_mask_phone():
    assert mask_phone("+16505551234") == "+1650***1234"
    assert mask_phone(None) == ""
    assert "5551" not in mask_phone("+16505551234")


# --- parameters ----------------------------------------------------------------------------------


def test_parameters_empty():
    expected = {"type": "object", "properties": {}, "required": []}
    assert normalise_parameters({}) == expected
    assert normalise_parameters(None) == expected


def test_parameters_flat_form():
    schema = normalise_parameters(
        {
            "city": {"type": "string", "description": "City name"},
            "days": {"type": "integer", "required": False},
            "tags": {"type": "array"},
            "note": "string",
        }
    )
    assert schema["type"] == "object"
    assert schema["properties"]["city"] == {"type": "string", "description": "City name"}
    assert schema["properties"]["days"] == {"type": "integer"}
    assert schema["properties"]["tags"]["items"] == {"type": "string"}
    assert schema["required"] == ["city", "tags", "note"]


def test_parameters_flat_param_named_type():
    schema = normalise_parameters({"type": {"type": "string"}})
    assert schema["properties"] == {"type": {"type": "string"}}


def test_parameters_json_schema_kept():
    source = {
        "type": "object",
        "properties": {"q": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "number"}},
        "required": ["q"],
        "additionalProperties": False,
    }
    schema = normalise_parameters(source)
    assert schema == source
    assert normalise_parameters(schema) == schema  # idempotent


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([1, 2], "must be an object"),
        ({"type": "string"}, "object schema"),
        ({"city": {"type": "text"}}, "unknown type 'text'"),
        ({"city": 5}, "parameter 'city' must be an object"),
        ({"bad name!": {"type": "string"}}, "parameter name"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "not in properties"),
        ({"type": "object", "properties": [1]}, "'properties' must be an object"),
        ({"type": "object", "properties": {}, "required": "x"}, "'required' must be a list"),
        ({"a": {"type": "string", "required": "yes"}}, "'required' must be true or false"),
    ],
)
def test_parameters_nonsense(params, message):
    with pytest.raises(ValueError, match=message):
        normalise_parameters(params)


# --- dataclasses ---------------------------------------------------------------------------------


def _function(**changes) -> CustomFunctionSpec:
    fields = dict(
        name="get_weather",
        description="Weather for a city",
        url="https://api.example.com/weather",
        method="get",
        parameters={"city": {"type": "string"}},
        headers={"Authorization": "Bearer s3cret"},
        speak_during="One moment.",
        timeout=5,
    )
    fields.update(changes)
    return CustomFunctionSpec(**fields)


def test_custom_function_normalises():
    function = _function()
    assert function.method == "GET"
    assert function.timeout == 5.0
    assert function.parameters["required"] == ["city"]
    assert "s3cret" not in repr(function)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "end_call"}, "reserved"),
        ({"method": "TRACE"}, "method"),
        ({"timeout": 0}, "timeout"),
        ({"parameters": {"x": {"type": "blob"}}}, "unknown type"),
    ],
)
def test_custom_function_rejects(changes, message):
    with pytest.raises(ValueError, match=message):
        _function(**changes)


def test_call_spec_json_round_trip():
    agent = AgentSpec(
        agent_id="ag1",
        name="Sunny",
        llm_provider="openai",
        llm_model="gpt-4o-mini",
        system_prompt="You help {{first_name}}.",
        end_call_phrases=["goodbye", "bye"],
        custom_functions=[_function(), _function(name="book", method="POST")],
        idle_warning_after=10,
        knowledge_ready=True,
    )
    call = _call(agent=agent, dynamic_variables={"first_name": "Ana", "n": 3})
    assert call.dynamic_variables["n"] == "3"
    payload = json.loads(json.dumps(call.to_dict()))
    assert payload["agent"]["custom_functions"][0]["headers"] == {"Authorization": "Bearer s3cret"}
    assert payload["agent"]["end_call_phrases"] == ["goodbye", "bye"]
    restored = CallSpec.from_dict(payload)
    assert restored == call
    assert isinstance(restored.agent.custom_functions, tuple)
    assert isinstance(restored.agent.custom_functions[1], CustomFunctionSpec)
    assert restored.agent.custom_functions[1].method == "POST"


def test_from_dict_ignores_unknown_keys_and_validates():
    payload = _call().to_dict()
    payload["future_field"] = 1
    payload["agent"]["also_new"] = True
    assert CallSpec.from_dict(payload) == _call()
    payload["direction"] = "sideways"
    with pytest.raises(ValueError, match="direction"):
        CallSpec.from_dict(payload)
    bad_function = _function().to_dict() | {"method": "TRACE"}
    with pytest.raises(ValueError, match="method"):
        CustomFunctionSpec.from_dict(bad_function)


def test_agent_rejects_duplicate_function_names():
    with pytest.raises(ValueError, match="duplicate"):
        AgentSpec(agent_id="a", custom_functions=(_function(), _function()))


def test_agent_resolves_providers():
    agent = AgentSpec(agent_id="a", llm_provider="Open AI", tts_provider="local")
    assert agent.resolved_llm().model == "gpt-4o"
    assert agent.resolved_tts() == ("local", "piper", "en_US-joe-medium")


def test_call_report_round_trip_and_vocabulary():
    assert {status.value for status in CallStatus} == {
        "queued", "dialing", "ringing", "in_progress", "completed",
        "failed", "no_answer", "busy", "rejected",
    }  # fmt: skip
    assert {reason.value for reason in EndReason} == {
        "user_hangup", "agent_hangup", "max_duration_reached", "inactivity",
        "voicemail", "transferred", "dial_failed", "provider_not_configured", "error",
    }  # fmt: skip
    report = CallReport(
        call_id="c1",
        status="completed",
        end_reason="agent_hangup",
        started_at="2025-01-01T10:00:00+00:00",
        answered_at="2025-01-01T10:00:02+00:00",
        ended_at="2025-01-01T10:01:02.500000+00:00",
        transcript=[{"role": "assistant", "text": "Hi", "started_at": "2025-01-01T10:00:02+00:00"}],
        usage={
            "llm_prompt_tokens": 12,
            "llm_completion_tokens": 3,
            "stt_seconds": 1.5,
            "tts_characters": 2,
        },  # fmt: skip
        latencies=[
            {
                "turn": 1,
                "end_of_utterance_ms": 500.0,
                "llm_ttft_ms": 300.0,
                "tts_ttfb_ms": 120.0,
                "end_to_end_ms": 950.0,
            }
        ],  # fmt: skip
    )
    assert report.status is CallStatus.COMPLETED
    assert report.duration_seconds == 60.5
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["status"] == "completed" and payload["end_reason"] == "agent_hangup"
    assert payload["usage"]["llm_prompt_tokens"] == 12
    assert isinstance(payload["usage"]["llm_prompt_tokens"], int)
    assert CallReport.from_dict(payload) == report
    with pytest.raises(ValueError):
        CallReport(call_id="c1", status="done")
    with pytest.raises(ValueError):
        CallReport.from_dict({"call_id": "c1", "status": "completed", "end_reason": "bored"})
