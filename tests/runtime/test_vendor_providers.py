"""Every vendor's livekit plugin, built from the catalogue, against a wire-level stand-in of its
API; and each key going only where its owner sent it (agent, then workspace, then platform)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from livekit.agents import stt as lk_stt
from livekit.agents.utils import http_context

from runtime.audio_io import silence, to_frames
from runtime.chat import chat_turn
from runtime.providers import (
    ModelProviderError,
    ProviderNotConfiguredError,
    build_llm,
    build_pipeline,
    build_stt,
    build_tts,
)
from runtime.simulate import simulate_call
from runtime.spec import AgentSpec, EndReason, ProviderCredential
from tests.fakes.assemblyai_server import FakeAssemblyAI
from tests.fakes.azure_speech_server import FakeAzureSpeech
from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_speak_server import FakeDeepgramSpeak
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.google_speech_server import FakeGoogleOAuth, FakeGoogleSpeech
from tests.fakes.openai_server import tool_call
from tests.fakes.speech_wire import WORD_SECONDS
from tests.runtime.conftest import make_call
from tests.runtime.test_audio import _tone_caller

#: platform keys of every vendor, so that a key sent to the wrong host would be seen
PLATFORM_KEYS = {
    "OPENAI_API_KEY": "sk-platform-openai",
    "ANTHROPIC_API_KEY": "platform-anthropic",
    "GROQ_API_KEY": "platform-groq",
    "GOOGLE_API_KEY": "platform-google",
    "AZURE_OPENAI_API_KEY": "platform-azure",
    "TOGETHER_API_KEY": "platform-together",
    "ELEVEN_API_KEY": "platform-eleven",
    "CARTESIA_API_KEY": "platform-cartesia",
    "DEEPGRAM_API_KEY": "platform-deepgram",
    "ASSEMBLYAI_API_KEY": "platform-assemblyai",
    "AZURE_SPEECH_KEY": "platform-azure-speech",
}


@pytest.fixture
def platform_keys(monkeypatch) -> dict[str, str]:
    for name, value in PLATFORM_KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return PLATFORM_KEYS


def _server(cls):
    @pytest.fixture(scope="module")
    def fixture() -> Iterator:
        server = cls().start()
        yield server
        server.stop()

    return fixture


gemini_server = _server(FakeGemini)
elevenlabs_server = _server(FakeElevenLabs)
cartesia_server = _server(FakeCartesia)
speak_server = _server(FakeDeepgramSpeak)
assemblyai_server = _server(FakeAssemblyAI)
azure_speech = _server(FakeAzureSpeech)


def _agent(**fields) -> AgentSpec:
    return AgentSpec(agent_id="agent-1", name="Sunny", system_prompt="You are Sunny.", **fields)


TURN = {"session_id": "chat-1", "workspace_id": "ws-1", "variables": {}}


# --------------------------------------------------------------------------------------------
# LLMs
# --------------------------------------------------------------------------------------------


async def test_anthropic_answers_and_calls_tools(scripted_anthropic, platform_keys):
    async def retrieve(agent_id: str, query: str, top_k: int):
        return [{"file_name": "menu.md", "position": 1, "page": None, "score": 0.9,
                 "text": "Tuesday is pasta night."}]  # fmt: skip

    scripted_anthropic.on("hello", "Welcome to Acme!")
    scripted_anthropic.on("special", tool_call("lookup_knowledge", query="specials"))
    scripted_anthropic.on_tool("lookup_knowledge", "Good news: {tool_output}")
    agent = _agent(
        llm_provider="anthropic",
        llm_model="claude-haiku-4-5",
        knowledge_ready=True,
        llm_settings={"top_k": 40},
        max_tokens=300,
    )

    first = await chat_turn(agent, "hello", history=[], **TURN)
    second = await chat_turn(
        agent, "Any special?", history=first.messages, retrieve=retrieve, **TURN
    )

    assert first.reply == "Welcome to Acme!"
    assert second.tool_calls[0]["name"] == "lookup_knowledge"
    assert "Tuesday is pasta night." in second.reply
    request = scripted_anthropic.requests[0]
    assert request["model"] == "claude-haiku-4-5" and request["max_tokens"] == 300
    assert request["top_k"] == 40 and request["stream"] is True
    assert request["system"][0]["text"].startswith("You are Sunny.")
    assert "lookup_knowledge" in {tool["name"] for tool in request["tools"]}
    assert set(scripted_anthropic.api_keys) == {"platform-anthropic"}


async def test_keys_resolve_agent_then_workspace_then_platform(scripted_anthropic, platform_keys):
    scripted_anthropic.on("hi", "Hello.")
    workspace = {"anthropic": ProviderCredential(api_key="workspace-anthropic")}
    agents = [
        _agent(llm_provider="anthropic", llm_api_key="agent-anthropic", credentials=workspace),
        _agent(llm_provider="anthropic", credentials=workspace),
        _agent(llm_provider="anthropic"),
    ]
    for agent in agents:
        assert (await chat_turn(agent, "hi", history=[], **TURN)).reply == "Hello."
    assert scripted_anthropic.api_keys == [
        "agent-anthropic",
        "workspace-anthropic",
        "platform-anthropic",
    ]


async def test_groq_through_its_own_plugin(scripted_llm, platform_keys, monkeypatch):
    monkeypatch.setenv("VOXLINE_GROQ_URL", scripted_llm.base_url)
    scripted_llm.on("hello", "Hi from Groq.")
    agent = _agent(llm_provider="groq", llm_model="llama-3.1-8b-instant")
    from livekit.plugins import groq

    assert isinstance(build_llm(agent), groq.LLM)
    assert (await chat_turn(agent, "hello", history=[], **TURN)).reply == "Hi from Groq."
    assert scripted_llm.requests[-1]["model"] == "llama-3.1-8b-instant"
    assert scripted_llm.authorizations == ["Bearer platform-groq"]


async def test_gemini_answers_and_calls_tools(gemini_server, platform_keys, monkeypatch):
    async def retrieve(agent_id: str, query: str, top_k: int):
        return [{"file_name": "menu.md", "position": 1, "page": None, "score": 0.9,
                 "text": "Tuesday is pasta night."}]  # fmt: skip

    gemini_server.reset()
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini_server.url)
    gemini_server.on("hello", "Hi from Gemini.")
    gemini_server.on("special", tool_call("lookup_knowledge", query="specials"))
    gemini_server.on_tool("lookup_knowledge", "Good news: {tool_output}")
    workspace = {"google": ProviderCredential(api_key="workspace-google")}
    agent = _agent(llm_provider="google", knowledge_ready=True, credentials=workspace)

    first = await chat_turn(agent, "hello", history=[], **TURN)
    second = await chat_turn(
        agent, "Any special?", history=first.messages, retrieve=retrieve, **TURN
    )

    assert first.reply == "Hi from Gemini."
    assert second.tool_calls[0]["name"] == "lookup_knowledge"
    assert "Tuesday is pasta night." in second.reply
    assert gemini_server.requests[0]["model"] == "gemini-2.5-flash"
    assert set(gemini_server.api_keys) == {"workspace-google"}


async def test_azure_openai_at_the_workspaces_resource(scripted_llm, platform_keys, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://platform.openai.azure.com")
    scripted_llm.on("hello", "Hi from Azure.")
    resource = {"azure": ProviderCredential(api_key="workspace-azure", base_url=scripted_llm.url)}
    agent = _agent(llm_provider="azure", llm_model="my-gpt-4o", credentials=resource)

    reply = await chat_turn(agent, "hello", history=[], allow_private_urls=True, **TURN)

    assert reply.reply == "Hi from Azure."
    assert scripted_llm.api_key_headers == ["workspace-azure"]  # not the platform's key
    assert scripted_llm.authorizations == [None]
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT")
    with pytest.raises(
        ProviderNotConfiguredError, match="AZURE_OPENAI_API_KEY and AZURE_OPENAI_END"
    ):
        build_llm(_agent(llm_provider="azure"))  # no resource anywhere


@pytest.mark.parametrize(
    ("preset", "variable", "key"),
    [
        ("together", "VOXLINE_TOGETHER_URL", "Bearer platform-together"),
        ("deepseek", "VOXLINE_DEEPSEEK_URL", "Bearer workspace-deepseek"),
    ],
)
async def test_a_hosted_openai_compatible_preset(
    scripted_llm, platform_keys, monkeypatch, preset, variable, key
):
    monkeypatch.setenv(variable, scripted_llm.base_url)  # the operator's endpoint for it
    scripted_llm.on("hello", f"Hi from {preset}.")
    credentials = {"deepseek": ProviderCredential(api_key="workspace-deepseek")}
    agent = _agent(llm_provider=preset, llm_model="any-model-name", credentials=credentials)

    assert (await chat_turn(agent, "hello", history=[], **TURN)).reply == f"Hi from {preset}."
    assert scripted_llm.requests[-1]["model"] == "any-model-name"
    assert scripted_llm.authorizations == [key]


async def test_a_self_hosted_server_at_the_workspaces_address(scripted_llm, platform_keys):
    scripted_llm.on("hello", "Hi from Ollama.")
    credentials = {"ollama": ProviderCredential(base_url=scripted_llm.base_url)}
    agent = _agent(llm_provider="ollama", llm_model="llama3.2", credentials=credentials)

    reply = await chat_turn(agent, "hello", history=[], allow_private_urls=True, **TURN)

    assert reply.reply == "Hi from Ollama."
    assert scripted_llm.authorizations == [None]  # no one's key: neither OpenAI's nor Together's


async def test_no_platform_key_goes_to_another_vendor_or_an_agents_host(
    scripted_llm, platform_keys, monkeypatch
):
    scripted_llm.on("hello", "Hi.")
    # the workspace's OpenAI key is for OpenAI: an agent's own endpoint gets no key at all
    credentials = {"openai": ProviderCredential(api_key="workspace-openai")}
    agent = _agent(llm_base_url=scripted_llm.base_url, credentials=credentials)
    await chat_turn(agent, "hello", history=[], allow_private_urls=True, **TURN)
    assert scripted_llm.authorizations == [None]

    # Together's platform key never reaches an address the workspace chose for Ollama
    ollama = {"ollama": ProviderCredential(base_url=scripted_llm.base_url)}
    await chat_turn(
        _agent(llm_provider="ollama", credentials=ollama),
        "hello",
        history=[],
        allow_private_urls=True,
        **TURN,
    )
    assert scripted_llm.authorizations == [None, None]

    # without Together's key, a Together agent does not borrow OpenAI's: it is not configured
    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(ProviderNotConfiguredError, match=r"\(together\).*TOGETHER_API_KEY"):
        build_llm(_agent(llm_provider="together"))


def test_a_missing_key_is_provider_not_configured_naming_the_provider(monkeypatch):
    for name in PLATFORM_KEYS:
        monkeypatch.delenv(name, raising=False)
    cases = [
        (build_llm, _agent(llm_provider="anthropic"), "anthropic"),
        (build_llm, _agent(llm_provider="groq"), "groq"),
        (build_llm, _agent(llm_provider="vllm"), "vllm"),  # a server nobody placed
        (build_llm, _agent(llm_provider="google"), "google"),
        (build_llm, _agent(llm_provider="azure"), "azure"),
        (build_tts, _agent(tts_provider="elevenlabs"), "elevenlabs"),
        (build_tts, _agent(tts_provider="cartesia"), "cartesia"),
        (build_tts, _agent(tts_provider="deepgram"), "deepgram"),
        (build_stt, _agent(stt_provider="assemblyai"), "assemblyai"),
        (build_tts, _agent(tts_provider="google"), "google"),
        (build_tts, _agent(tts_provider="azure"), "azure"),
        (build_stt, _agent(stt_provider="google"), "google"),
        (build_pipeline, _agent(llm_provider="anthropic"), "anthropic"),
    ]
    for build, agent, provider in cases:
        with pytest.raises(ProviderNotConfiguredError) as caught:
            build(agent)
        assert caught.value.provider == provider
        assert caught.value.end_reason == EndReason.PROVIDER_NOT_CONFIGURED
    # a workspace key is enough
    workspace = {"anthropic": ProviderCredential(api_key="workspace-anthropic")}
    assert build_llm(_agent(llm_provider="anthropic", credentials=workspace)) is not None


# --------------------------------------------------------------------------------------------
# Voices
# --------------------------------------------------------------------------------------------


async def _speak(tts, text: str) -> float:
    """Streams `text` through a TTS as a call does; the seconds of audio that came back."""
    async with http_context.open():  # a worker job provides this; a test opens its own
        stream = tts.stream()
        stream.push_text(text)
        stream.flush()
        stream.end_input()
        seconds = 0.0

        async def collect() -> None:
            nonlocal seconds
            async for event in stream:
                seconds += event.frame.duration

        await asyncio.wait_for(collect(), 10)
        await stream.aclose()
        await tts.aclose()
    return seconds


SENTENCE = "Your table for two is booked for seven tonight."


async def test_elevenlabs_speaks_with_the_agents_voice_settings(
    elevenlabs_server, platform_keys, monkeypatch
):
    monkeypatch.setenv("VOXLINE_ELEVENLABS_URL", elevenlabs_server.base_url)
    agent = _agent(
        tts_provider="elevenlabs",
        tts_voice="21m00Tcm4TlvDq8ikWAM",
        tts_model="eleven_flash_v2_5",
        tts_settings={"stability": 0.3, "similarity_boost": 0.9, "speed": 1.1},
        credentials={"elevenlabs": ProviderCredential(api_key="workspace-eleven")},
    )
    seconds = await _speak(build_tts(agent), SENTENCE)

    assert seconds >= len(SENTENCE.split()) * WORD_SECONDS * 0.9
    [connection] = elevenlabs_server.connections
    assert connection.path == "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/multi-stream-input"
    assert connection.params["model_id"] == "eleven_flash_v2_5"
    assert connection.params["output_format"] == "pcm_24000"
    assert connection.headers["xi-api-key"] == "workspace-eleven"
    settings = next(p["voice_settings"] for p in connection.received if "voice_settings" in p)
    assert settings["stability"] == 0.3 and settings["similarity_boost"] == 0.9
    assert settings["speed"] == 1.1
    assert "seven tonight" in connection.text("text")


async def test_cartesia_speaks_with_speed_and_emotion(cartesia_server, platform_keys, monkeypatch):
    monkeypatch.setenv("VOXLINE_CARTESIA_URL", cartesia_server.url)
    agent = _agent(
        tts_provider="cartesia",
        tts_model="sonic-2",
        tts_settings={"speed": "slow", "emotion": "Calm"},
    )
    seconds = await _speak(build_tts(agent), SENTENCE)

    assert seconds >= len(SENTENCE.split()) * WORD_SECONDS * 0.9
    [connection] = cartesia_server.connections
    assert connection.headers["X-API-Key"] == "platform-cartesia"
    packet = connection.received[0]
    assert packet["model_id"] == "sonic-2" and packet["language"] == "en"
    assert packet["voice"]["id"] == "f786b574-daa5-4673-aa0c-cbe3e8534c02"
    assert "seven tonight" in connection.text("transcript")


async def test_deepgram_aura_speaks(speak_server, platform_keys, monkeypatch):
    monkeypatch.setenv("VOXLINE_DEEPGRAM_SPEAK_URL", speak_server.speak_url)
    agent = _agent(tts_provider="deepgram", tts_model="aura-2-thalia-en")
    seconds = await _speak(build_tts(agent), SENTENCE)

    assert seconds >= len(SENTENCE.split()) * WORD_SECONDS * 0.9
    [connection] = speak_server.connections
    assert connection.params["model"] == "aura-2-thalia-en"
    assert connection.headers["Authorization"] == "Token platform-deepgram"
    assert "seven tonight" in connection.text("text")


async def test_azure_speaks_in_the_workspaces_region_with_rate_and_style(
    azure_speech, platform_keys, monkeypatch
):
    azure_speech.reset()
    monkeypatch.setenv("VOXLINE_AZURE_TTS_URL", azure_speech.tts_url)  # the operator's proxy
    agent = _agent(
        tts_provider="azure",
        tts_voice="en-GB-SoniaNeural",
        tts_settings={"rate": 1.2, "style": "cheerful"},
        language="en-GB",
        credentials={"azure": ProviderCredential(api_key="workspace-speech", region="uksouth")},
    )
    tts = build_tts(agent)
    async with http_context.open():
        frames = [event.frame async for event in tts.synthesize(SENTENCE)]
    seconds = sum(frame.duration for frame in frames)

    assert seconds >= len(SENTENCE.split()) * WORD_SECONDS * 0.9
    [connection] = azure_speech.connections
    assert connection.headers["Ocp-Apim-Subscription-Key"] == "workspace-speech"
    assert connection.headers["X-Microsoft-OutputFormat"] == "raw-24khz-16bit-mono-pcm"
    [sent] = connection.received
    assert sent["voice"] == "en-GB-SoniaNeural" and sent["lang"] == "en-GB"
    assert sent["rate"] == "1.2" and sent["style"] == "cheerful"
    assert "seven tonight" in sent["text"]


def test_azure_speech_goes_to_the_regions_host_only(platform_keys, monkeypatch):
    monkeypatch.delenv("VOXLINE_AZURE_TTS_URL", raising=False)
    monkeypatch.delenv("AZURE_SPEECH_REGION", raising=False)
    with pytest.raises(ProviderNotConfiguredError):  # the platform's key, but no region
        build_tts(_agent(tts_provider="azure"))
    monkeypatch.setenv("AZURE_SPEECH_REGION", "eastus")
    tts = build_tts(_agent(tts_provider="azure"))
    assert tts._opts.get_endpoint_url() == (
        "https://eastus.tts.speech.microsoft.com/cognitiveservices/v1"
    )
    # a workspace's region is a region name, never a way to put the key on another host
    sneaky = {"azure": ProviderCredential(api_key="k", region="evil.example/x?")}
    with pytest.raises(ModelProviderError, match="not a region name"):
        build_tts(_agent(tts_provider="azure", credentials=sneaky))


# --------------------------------------------------------------------------------------------
# Ears
# --------------------------------------------------------------------------------------------


def _tone(seconds: float, sample_rate: int = 16000) -> bytes:
    import numpy as np

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).tobytes()


async def _final_transcript(stt) -> str:
    """What `stt` makes of 0.6 s of tone then 0.6 s of silence: its first final transcript."""
    async with http_context.open():
        stream = stt.stream()
        for frame in [*to_frames(_tone(0.6), 16000), *silence(0.6)]:
            stream.push_frame(frame)

        async def final() -> str:
            async for event in stream:
                if event.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT:
                    return event.alternatives[0].text
            return ""

        try:
            return await asyncio.wait_for(final(), 10)
        finally:
            await stream.aclose()
            await stt.aclose()


def _vendor_call(llm: str, stt: str, tts: str):
    """A call to the Harbor Cafe greeting agent on these vendors (their default models)."""
    return make_call(
        "",
        llm_provider=llm,
        llm_model=None,
        llm_base_url=None,
        stt_provider=stt,
        tts_provider=tts,
        first_message="Hello, Harbor Cafe.",
    )


async def _spoken_call(call):
    """The call hears "What time do you open?" (a tone the scripted STT transcribes) and must
    greet, then answer "We open at seven."; its report."""
    result = await simulate_call(call, ["What time do you open?"], speak=_tone_caller, speed=4.0)
    report = result.report
    said = [entry["text"] for entry in report.transcript if entry["role"] == "assistant"]
    assert said == ["Hello, Harbor Cafe.", "We open at seven."]
    heard = [entry["text"] for entry in report.transcript if entry["role"] == "user"]
    assert heard == ["What time do you open?"]
    assert result.agent_audio_seconds > 0.3
    return report


async def test_assemblyai_transcribes(assemblyai_server, platform_keys, monkeypatch):
    assemblyai_server.script("Book a table for two.")
    monkeypatch.setenv("VOXLINE_ASSEMBLYAI_URL", assemblyai_server.url.replace("http", "ws"))
    agent = _agent(
        stt_provider="assemblyai",
        stt_settings={"end_of_turn_confidence_threshold": 0.6},
        credentials={"assemblyai": ProviderCredential(api_key="workspace-assemblyai")},
    )
    text = await _final_transcript(build_stt(agent))

    assert text == "Book a table for two."
    [connection] = assemblyai_server.connections
    assert connection.headers["Authorization"] == "workspace-assemblyai"
    assert connection.params["speech_model"] == "universal-streaming-english"
    assert connection.params["end_of_turn_confidence_threshold"] == "0.6"


# --------------------------------------------------------------------------------------------
# Spoken calls: every vendor LLM and TTS, hearing through AssemblyAI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("llm", "tts"),
    [("anthropic", "elevenlabs"), ("google", "cartesia"), ("groq", "deepgram"), ("groq", "azure")],
)
async def test_a_spoken_call_through_each_vendor(
    llm, tts, platform_keys, monkeypatch, scripted_anthropic, gemini_server, scripted_llm,
    elevenlabs_server, cartesia_server, speak_server, assemblyai_server, azure_speech,
):  # fmt: skip
    monkeypatch.setenv("VOXLINE_ASSEMBLYAI_URL", assemblyai_server.url.replace("http", "ws"))
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini_server.url)
    monkeypatch.setenv("VOXLINE_GROQ_URL", scripted_llm.base_url)
    monkeypatch.setenv("VOXLINE_ELEVENLABS_URL", elevenlabs_server.base_url)
    monkeypatch.setenv("VOXLINE_CARTESIA_URL", cartesia_server.url)
    monkeypatch.setenv("VOXLINE_DEEPGRAM_SPEAK_URL", speak_server.speak_url)
    monkeypatch.setenv("VOXLINE_AZURE_TTS_URL", azure_speech.tts_url)
    for server in (gemini_server, elevenlabs_server, cartesia_server, speak_server, azure_speech):
        server.reset()
    assemblyai_server.reset()
    assemblyai_server.script("What time do you open?")
    brain = {"anthropic": scripted_anthropic, "google": gemini_server, "groq": scripted_llm}[llm]
    brain.on("open", "We open at seven.")
    voice = {
        "elevenlabs": elevenlabs_server,
        "cartesia": cartesia_server,
        "deepgram": speak_server,
        "azure": azure_speech,
    }
    call = _vendor_call(llm, "assemblyai", tts)

    report = await _spoken_call(call)
    spoken = "".join(c.text("text") + c.text("transcript") for c in voice[tts].connections)
    assert "open at seven" in spoken
    assert [row["llm_provider"] for row in report.latencies] == [llm]
    assert [row["tts_provider"] for row in report.latencies] == [tts]


# --------------------------------------------------------------------------------------------
# Google Cloud speech (gRPC): speaking, hearing, and a spoken call through both
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def google_speech() -> Iterator[FakeGoogleSpeech]:
    server = FakeGoogleSpeech().start()
    yield server
    server.stop()


@pytest.fixture
def google_endpoints(google_speech, monkeypatch) -> FakeGoogleSpeech:
    monkeypatch.setenv("VOXLINE_GOOGLE_TTS_URL", google_speech.address)
    monkeypatch.setenv("VOXLINE_GOOGLE_STT_URL", google_speech.address)
    google_speech.reset()
    return google_speech


def _spoken_text(connection) -> str:
    return "".join((packet.get("input") or {}).get("text", "") for packet in connection.received)


async def test_google_tts_speaks_with_the_agents_voice(google_endpoints, platform_keys):
    agent = _agent(
        tts_provider="google",
        tts_voice="en-US-Chirp3-HD-Aoede",
        tts_settings={"speaking_rate": 1.25},
        language="en",
        credentials={"google": ProviderCredential(api_key="workspace-google")},
    )
    seconds = await _speak(build_tts(agent), SENTENCE)

    assert seconds >= len(SENTENCE.split()) * WORD_SECONDS * 0.9
    [connection] = google_endpoints.connections
    assert connection.path == "/google.cloud.texttospeech.v1.TextToSpeech/StreamingSynthesize"
    assert connection.headers["x-goog-api-key"] == "workspace-google"
    config = connection.received[0]["streaming_config"]
    assert config["voice"]["name"] == "en-US-Chirp3-HD-Aoede"
    assert config["voice"]["language_code"] == "en-US"
    assert config["streaming_audio_config"]["speaking_rate"] == 1.25
    assert "seven tonight" in _spoken_text(connection)


async def test_google_stt_transcribes(google_endpoints, platform_keys):
    google_endpoints.script("Book a table for two.")
    agent = _agent(stt_provider="google", stt_model="latest_short", language="en-GB")
    text = await _final_transcript(build_stt(agent))

    assert text == "Book a table for two."
    [connection] = google_endpoints.connections
    assert connection.path == "/google.cloud.speech.v1.Speech/StreamingRecognize"
    assert connection.headers["x-goog-api-key"] == "platform-google"
    config = connection.received[0]["streaming_config"]["config"]
    assert config["model"] == "latest_short" and config["language_code"] == "en-GB"


async def test_a_spoken_call_through_google_speech(
    google_endpoints, scripted_anthropic, platform_keys
):
    google_endpoints.script("What time do you open?")
    scripted_anthropic.on("open", "We open at seven.")
    call = _vendor_call("anthropic", "google", "google")

    report = await _spoken_call(call)
    spoken = "".join(_spoken_text(c) for c in google_endpoints.connections)
    assert "open at seven" in spoken
    assert [row["tts_provider"] for row in report.latencies] == ["google"]


async def test_azure_stt_transcribes_through_the_speech_sdk(
    azure_speech, platform_keys, monkeypatch
):
    azure_speech.reset()
    azure_speech.script("Book a table for two.")
    monkeypatch.setenv("VOXLINE_AZURE_STT_URL", azure_speech.stt_host)
    agent = _agent(
        stt_provider="azure",
        stt_settings={"segmentation_silence_timeout_ms": 400},
        language="en-GB",
        credentials={"azure": ProviderCredential(api_key="workspace-speech", region="uksouth")},
    )
    text = await _final_transcript(build_stt(agent))

    assert text == "Book a table for two."
    connection = azure_speech.connections[0]
    assert connection.path == "/speech/recognition/conversation/cognitiveservices/v1"
    assert connection.params["language"] == "en-GB"
    assert connection.headers["Ocp-Apim-Subscription-Key"] == "workspace-speech"
    config = next(sent for sent in connection.received if sent["path"] == "speech.config")
    assert config["context"]["system"]["name"] == "SpeechSDK"


async def test_a_spoken_call_through_azure_speech(
    azure_speech, scripted_llm, platform_keys, monkeypatch
):
    azure_speech.reset()
    azure_speech.script("What time do you open?")
    monkeypatch.setenv("VOXLINE_AZURE_STT_URL", azure_speech.stt_host)
    monkeypatch.setenv("VOXLINE_AZURE_TTS_URL", azure_speech.tts_url)
    monkeypatch.setenv("VOXLINE_GROQ_URL", scripted_llm.base_url)
    scripted_llm.on("open", "We open at seven.")
    call = _vendor_call("groq", "azure", "azure")

    report = await _spoken_call(call)
    spoken = "".join(c.text("text") for c in azure_speech.connections)
    assert "open at seven" in spoken
    assert [row["tts_provider"] for row in report.latencies] == ["azure"]


async def test_google_speech_with_a_service_account_key(
    google_endpoints, platform_keys, monkeypatch
):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    oauth = FakeGoogleOAuth().start()
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "acme-voice",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": "voxline@acme-voice.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://169.254.169.254/not-here",  # not followed: Google's, or the operator's
    }
    monkeypatch.setenv("VOXLINE_GOOGLE_TOKEN_URL", f"{oauth.url}/token")
    credentials = {"google": ProviderCredential(api_key=json.dumps(account))}
    try:
        await _speak(build_tts(_agent(tts_provider="google", credentials=credentials)), SENTENCE)
    finally:
        oauth.stop()

    [connection] = google_endpoints.connections
    assert connection.headers["authorization"] == "Bearer access-1"
    assert "x-goog-api-key" not in connection.headers
    [claims] = oauth.assertions
    assert claims["iss"] == "voxline@acme-voice.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
