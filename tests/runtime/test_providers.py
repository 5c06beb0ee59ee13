"""The provider registry: factories, keys, missing extras, and the plugins it builds."""

import pytest
from livekit.agents import APIConnectionError, APIConnectOptions
from livekit.agents import llm as lk_llm
from livekit.agents import stt as lk_stt
from livekit.plugins import deepgram, openai

from runtime.config import RuntimeSettings
from runtime.providers import (
    MissingExtraError,
    ModelProviderError,
    build_llm,
    build_pipeline,
    build_stt,
    build_tts,
    build_turn_detector,
    build_vad,
    load_factory,
)
from runtime.spec import PROVIDERS, AgentSpec, ProviderInfo, UnknownProviderError
from tests.runtime.conftest import make_call


def test_every_core_factory_imports():
    for providers in PROVIDERS.values():
        for info in providers.values():
            if info.extra is None:
                assert callable(load_factory(info))


def test_missing_dependency_names_the_extra():
    info = ProviderInfo(
        kind="tts", name="x", label="X", models=("m",), factory="no_such_module:TTS", extra="local"
    )
    with pytest.raises(MissingExtraError, match=r"install them with: make setup-local") as caught:
        load_factory(info)
    assert isinstance(caught.value, ImportError)


def test_openai_llm_with_base_url_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = AgentSpec(
        agent_id="a", llm_model="llama3.2", llm_base_url="http://127.0.0.1:11434/v1", max_tokens=99
    )
    llm = build_llm(agent, allow_private_urls=True)  # a local Ollama: private URLs allowed
    assert isinstance(llm, openai.LLM)
    assert llm.model == "llama3.2"
    assert llm._opts.max_completion_tokens == 99


def test_openai_without_key_says_which_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelProviderError, match="OPENAI_API_KEY"):
        build_llm(AgentSpec(agent_id="a"))
    with pytest.raises(ModelProviderError, match="OPENAI_API_KEY"):
        build_tts(AgentSpec(agent_id="a"))


def test_deepgram_stt_uses_configured_endpoint(monkeypatch):
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-key")
    settings = RuntimeSettings(deepgram_url="http://127.0.0.1:1/v1/listen")
    stt = build_stt(AgentSpec(agent_id="a", stt_model="nova-2", language="en"), settings)
    assert isinstance(stt, deepgram.STT)
    assert stt.model == "nova-2"
    assert stt._opts.endpoint_url == "http://127.0.0.1:1/v1/listen"
    monkeypatch.delenv("DEEPGRAM_API_KEY")
    with pytest.raises(ModelProviderError, match="DEEPGRAM_API_KEY"):
        build_stt(AgentSpec(agent_id="a"))


def test_openai_tts_voice_and_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    tts = build_tts(AgentSpec(agent_id="a", tts_model="tts-1", tts_voice="Nova"))
    assert isinstance(tts, openai.TTS)
    assert (tts._opts.model, tts._opts.voice) == ("tts-1", "nova")


def test_unknown_provider_is_refused_before_any_import():
    with pytest.raises(UnknownProviderError, match="allowed: anthropic, .*openai"):
        build_llm(AgentSpec(agent_id="a", llm_provider="no-such-vendor"))


def test_vad_and_turn_detector_run_offline():
    vad = build_vad()
    assert vad is build_vad()  # loaded once per process
    assert build_turn_detector().model == "turn-detector-v1-mini"


def test_text_pipeline_has_only_an_llm(scripted_llm):
    agent = make_call(scripted_llm.base_url).agent
    pipeline = build_pipeline(agent, audio=False, allow_private_urls=True)
    assert pipeline.stt is None and pipeline.tts is None and pipeline.vad is None
    assert isinstance(pipeline.llm, openai.LLM)


def test_local_providers_build(monkeypatch):
    pytest.importorskip("faster_whisper", reason="the 'local' extra is not installed")
    pytest.importorskip("piper", reason="the 'local' extra is not installed")
    agent = AgentSpec(agent_id="a", stt_provider="local", tts_provider="local")
    stt = build_stt(agent)
    assert isinstance(stt, lk_stt.STT) and stt.model == "tiny.en"
    assert build_tts(agent).sample_rate == 22050


async def _say_hello(llm) -> str:
    chat_ctx = lk_llm.ChatContext.empty()
    chat_ctx.add_message(role="user", content="hello")
    text = ""
    once = APIConnectOptions(max_retry=0)
    async with llm.chat(chat_ctx=chat_ctx, conn_options=once) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                text += chunk.delta.content
    return text


async def test_the_platform_key_never_goes_to_an_agents_own_endpoint(scripted_llm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform-secret")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    scripted_llm.on("hello", "Hi there.")
    agent = AgentSpec(agent_id="a", llm_model="scripted", llm_base_url=scripted_llm.base_url)
    assert await _say_hello(build_llm(agent, allow_private_urls=True)) == "Hi there."
    assert scripted_llm.authorizations == [None]  # no key at all, certainly not the platform's

    own = agent.replace(llm_api_key="sk-agent-own")
    assert "sk-agent-own" not in repr(own)
    await _say_hello(build_llm(own, allow_private_urls=True))
    assert scripted_llm.authorizations[-1] == "Bearer sk-agent-own"


async def test_the_operators_own_base_url_gets_the_platform_key(scripted_llm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_llm.base_url)
    scripted_llm.on("hello", "Hi there.")
    await _say_hello(build_llm(AgentSpec(agent_id="a", llm_model="gpt-4o")))
    await _say_hello(build_llm(AgentSpec(agent_id="a", llm_base_url=scripted_llm.base_url)))
    assert scripted_llm.authorizations == ["Bearer sk-platform-secret"] * 2


def test_a_metadata_address_as_llm_base_url_is_refused(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform-secret")
    agent = AgentSpec(agent_id="a", llm_base_url="http://169.254.169.254/latest/v1")
    with pytest.raises(ModelProviderError, match="not allowed"):
        build_llm(agent)
    with pytest.raises(ModelProviderError, match="not allowed"):
        build_llm(agent.replace(llm_base_url="file:///etc/passwd"), allow_private_urls=True)


async def test_an_llm_host_name_is_checked_when_connecting(scripted_llm, monkeypatch):
    """A name that resolves to a loopback address is refused at connect time (pinned)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform-secret")
    scripted_llm.on("hello", "Hi there.")
    base_url = scripted_llm.base_url.replace("127.0.0.1", "localhost")
    llm = build_llm(AgentSpec(agent_id="a", llm_model="scripted", llm_base_url=base_url))
    with pytest.raises(APIConnectionError, match="private, loopback or reserved"):
        await _say_hello(llm)
    assert scripted_llm.requests == []
