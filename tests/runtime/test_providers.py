"""The provider registry: factories, keys, missing extras, and the plugins it builds."""

import pytest
from livekit.agents import stt as lk_stt
from livekit.plugins import deepgram, openai

from runtime.config import RuntimeSettings
from runtime.providers import (
    MissingExtraError,
    ProviderError,
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
    with pytest.raises(MissingExtraError, match=r"pip install 'voxline\[local\]'") as caught:
        load_factory(info)
    assert isinstance(caught.value, ImportError)


def test_openai_llm_with_base_url_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = AgentSpec(
        agent_id="a", llm_model="llama3.2", llm_base_url="http://127.0.0.1:11434/v1", max_tokens=99
    )
    llm = build_llm(agent)
    assert isinstance(llm, openai.LLM)
    assert llm.model == "llama3.2"
    assert llm._opts.max_completion_tokens == 99


def test_openai_without_key_says_which_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        build_llm(AgentSpec(agent_id="a"))
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        build_tts(AgentSpec(agent_id="a"))


def test_deepgram_stt_uses_configured_endpoint(monkeypatch):
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-key")
    settings = RuntimeSettings(deepgram_url="http://127.0.0.1:1/v1/listen")
    stt = build_stt(AgentSpec(agent_id="a", stt_model="nova-2", language="en"), settings)
    assert isinstance(stt, deepgram.STT)
    assert stt.model == "nova-2"
    assert stt._opts.endpoint_url == "http://127.0.0.1:1/v1/listen"
    monkeypatch.delenv("DEEPGRAM_API_KEY")
    with pytest.raises(ProviderError, match="DEEPGRAM_API_KEY"):
        build_stt(AgentSpec(agent_id="a"))


def test_openai_tts_voice_and_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    tts = build_tts(AgentSpec(agent_id="a", tts_model="tts-1", tts_voice="Nova"))
    assert isinstance(tts, openai.TTS)
    assert (tts._opts.model, tts._opts.voice) == ("tts-1", "nova")


def test_unknown_provider_is_refused_before_any_import():
    with pytest.raises(UnknownProviderError, match="allowed: local, openai"):
        build_llm(AgentSpec(agent_id="a", llm_provider="anthropic"))


def test_vad_and_turn_detector_run_offline():
    vad = build_vad()
    assert vad is build_vad()  # loaded once per process
    assert build_turn_detector().model == "turn-detector-v1-mini"


def test_text_pipeline_has_only_an_llm(fake_llm):
    pipeline = build_pipeline(make_call(fake_llm.base_url).agent, audio=False)
    assert pipeline.stt is None and pipeline.tts is None and pipeline.vad is None
    assert isinstance(pipeline.llm, openai.LLM)


def test_local_providers_build(monkeypatch):
    pytest.importorskip("faster_whisper", reason="the 'local' extra is not installed")
    pytest.importorskip("piper", reason="the 'local' extra is not installed")
    agent = AgentSpec(agent_id="a", stt_provider="local", tts_provider="local")
    stt = build_stt(agent)
    assert isinstance(stt, lk_stt.STT) and stt.model == "tiny.en"
    assert build_tts(agent).sample_rate == 22050
