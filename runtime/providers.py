"""The one provider registry: builds STT, LLM, TTS, VAD and turn detection from an AgentSpec.

The catalogue (names, models, voices, factories) lives in `runtime.spec.PROVIDERS`, which the
control plane validates against. This module turns a catalogue entry into a livekit plugin
instance: it imports the entry's factory and its `factory_kwargs` function lazily (so a worker
without the `local` extra still runs cloud agents). The `*_kwargs` functions below are the ones
the catalogue names: they map an agent's settings onto a factory's keyword arguments.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runtime.config import RuntimeSettings
from runtime.spec import (
    PROVIDERS,
    AgentSpec,
    ProviderInfo,
    ResolvedProvider,
    URLNotAllowedError,
    address_allowed,
    check_url_allowed,
    literal_ip,
    pinned_http_transport,
    provider_info,
)
from runtime.spec.providers import install_advice

logger = logging.getLogger(__name__)


class ModelProviderError(Exception):
    """An AI model provider (STT, LLM, TTS) that cannot be built for this agent (bad
    configuration, missing key)."""

    retryable = False


class MissingExtraError(ModelProviderError, ImportError):
    """A provider whose optional dependencies are not installed."""


def _import_attribute(reference: str) -> Any:
    """The attribute a "module:attribute" reference names, importing its module."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def load_factory(info: ProviderInfo) -> Callable[..., Any]:
    """Import a provider's factory ("module:attribute").

    Raises:
        MissingExtraError: when the import fails; the message names the extra to install.
    """
    try:
        return _import_attribute(info.factory)
    except ImportError as e:
        raise MissingExtraError(
            f"the {info.label} {info.kind.upper()} provider needs packages that are not "
            f"installed ({e.name or e}); install them with: {install_advice(info.extra)}"
        ) from e


def _api_key(info: ProviderInfo, base_url: str | None) -> str:
    assert info.api_key_env is not None
    key = os.environ.get(info.api_key_env, "")
    if key:
        return key
    if base_url:
        # OpenAI-compatible servers (Ollama, vLLM, llama.cpp) usually take no key, but the
        # client insists on one.
        return "no-key"
    raise ModelProviderError(
        f"the {info.label} {info.kind.upper()} provider needs an API key: set {info.api_key_env}"
    )


# --------------------------------------------------------------------------------------------
# An agent's own OpenAI-compatible endpoint
# --------------------------------------------------------------------------------------------

#: The hosts that may receive the platform's OPENAI_API_KEY, besides the operator's own
#: OPENAI_BASE_URL.
OPENAI_HOSTS = frozenset({"api.openai.com"})


def _origin(url: str | None) -> tuple[str, str, int] | None:
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        return None
    return scheme, (parts.hostname or "").lower(), port


def platform_endpoint(base_url: str | None) -> bool:
    """Whether the platform's key may go to `base_url`: OpenAI's own host or OPENAI_BASE_URL."""
    if not base_url:
        return True
    origin = _origin(base_url)
    if origin is None:
        return False
    if origin[0] == "https" and origin[1] in OPENAI_HOSTS and origin[2] == 443:
        return True
    operator = os.environ.get("OPENAI_BASE_URL")
    return bool(operator) and origin == _origin(operator)


def guarded_openai_client(base_url: str, api_key: str | None, allow_private: bool):
    """An OpenAI client for an agent's own endpoint: only the agent's key (or no
    Authorization at all), and every connection checked against the SSRF policy.

    Raises:
        ModelProviderError: the URL is refused outright (scheme, or a literal address not
            allowed).
    """
    import httpx
    import openai

    # The scheme and literal addresses now; host names when connecting (the pinned transport).
    try:
        check_url_allowed(base_url, allow_private=True)  # scheme and host syntax, no DNS
        host = (urlsplit(base_url.strip()).hostname or "").split("%", 1)[0]
        if literal_ip(host) is not None and not address_allowed(host, allow_private):
            raise URLNotAllowedError(f"{host} is a private, loopback or reserved address")
    except URLNotAllowedError as e:
        raise ModelProviderError(f"the agent's LLM_base_url is not allowed: {e}") from e
    http_client = httpx.AsyncClient(
        transport=pinned_http_transport(allow_private),
        timeout=httpx.Timeout(connect=15.0, read=5.0, write=5.0, pool=5.0),
        follow_redirects=False,
        trust_env=False,
    )
    return openai.AsyncClient(
        api_key=api_key or "no-key",  # not sent: see `no_authorization`
        base_url=base_url,
        max_retries=0,
        # openai's hints name only its own httpx2 client; at run time it takes an httpx one too
        http_client=http_client,  # type: ignore[arg-type]
    )


def no_authorization() -> dict[str, Any]:
    """Request headers that make the OpenAI client send no Authorization header at all."""
    import openai

    return {"Authorization": openai.Omit()}


# --------------------------------------------------------------------------------------------
# Keyword arguments per provider (named by each catalogue entry's `factory_kwargs`)
# --------------------------------------------------------------------------------------------


def openai_llm_kwargs(
    agent: AgentSpec, resolved: ResolvedProvider, settings: RuntimeSettings
) -> dict:
    info = provider_info("llm", "openai")
    kwargs: dict[str, Any] = {"model": resolved.model, "temperature": agent.temperature}
    if agent.max_tokens:
        kwargs["max_completion_tokens"] = agent.max_tokens
    if agent.llm_base_url and not platform_endpoint(agent.llm_base_url):
        # The agent's own endpoint: its own key or none; never the platform's.
        kwargs["client"] = guarded_openai_client(
            agent.llm_base_url, agent.llm_api_key, settings.allow_private_urls
        )
        if not agent.llm_api_key:
            kwargs["extra_headers"] = no_authorization()
        return kwargs
    if agent.llm_api_key:
        kwargs["api_key"] = agent.llm_api_key
    else:
        kwargs["api_key"] = _api_key(info, agent.llm_base_url or os.environ.get("OPENAI_BASE_URL"))
    if agent.llm_base_url:
        kwargs["base_url"] = agent.llm_base_url
    return kwargs


def local_llm_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {
        "model": resolved.model,
        "temperature": agent.temperature,
        "max_tokens": agent.max_tokens,
        "reply_schema": agent.reply_schema,
    }


def deepgram_stt_kwargs(
    agent: AgentSpec, resolved: ResolvedProvider, settings: RuntimeSettings
) -> dict:
    return {
        "model": resolved.model,
        "language": agent.language or "en",
        "api_key": _api_key(provider_info("stt", "deepgram"), None),
        "base_url": settings.deepgram_url,
    }


def local_stt_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {"model": resolved.model, "language": agent.language or "en"}


def openai_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    base_url = os.environ.get("OPENAI_BASE_URL")
    return {
        "model": resolved.model,
        "voice": resolved.voice,
        "api_key": _api_key(provider_info("tts", "openai"), base_url),
    }


def local_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {"voice": resolved.voice}


def _build(kind: str, name: str, agent: AgentSpec, resolved: ResolvedProvider, settings) -> Any:
    info = provider_info(kind, name)
    if info.factory_kwargs is None:  # a catalogue entry without one is a programming error
        raise ModelProviderError(f"no factory_kwargs for {kind} provider {info.name!r}")
    factory = load_factory(info)
    factory_kwargs = _import_attribute(info.factory_kwargs)
    return factory(**factory_kwargs(agent, resolved, settings or RuntimeSettings()))


def build_llm(
    agent: AgentSpec,
    settings: RuntimeSettings | None = None,
    *,
    allow_private_urls: bool | None = None,
):
    """The agent's LLM as a `livekit.agents.llm.LLM`.

    `allow_private_urls` (default: the settings') lets an agent's own `llm_base_url` reach
    private addresses, as for custom functions.
    """
    settings = settings or RuntimeSettings()
    if allow_private_urls is not None:
        settings = settings.model_copy(update={"allow_private_urls": allow_private_urls})
    return _build("llm", agent.llm_provider, agent, agent.resolved_llm(), settings)


def build_stt(agent: AgentSpec, settings: RuntimeSettings | None = None):
    """The agent's STT as a `livekit.agents.stt.STT`."""
    return _build("stt", agent.stt_provider, agent, agent.resolved_stt(), settings)


def build_tts(agent: AgentSpec, settings: RuntimeSettings | None = None):
    """The agent's TTS as a `livekit.agents.tts.TTS`."""
    return _build("tts", agent.tts_provider, agent, agent.resolved_tts(), settings)


_VAD: Any = None


class InlineExecutor(concurrent.futures.Executor):
    """Runs each job at once, on the submitting thread.

    For the VAD's 32 ms windows: the native Silero model takes about 15 µs of CPU a window,
    far less than handing each window to a thread and waking the loop when it is done (the
    Silero plugin's ONNX model plus that hand-off cost a third more CPU per call).
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any):
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def build_vad():
    """Silero VAD, the native build in `livekit-local-inference` (its model ships in the wheel),
    with the Silero plugin's defaults; one instance per process, a stream per call."""
    global _VAD
    if _VAD is None:
        from livekit.agents import inference

        _VAD = inference.VAD(
            min_speech_duration=0.05,
            min_silence_duration=0.55,
            prefix_padding_duration=0.5,
            activation_threshold=0.5,
            executor=InlineExecutor(),
        )
    return _VAD


# --------------------------------------------------------------------------------------------
# End of turn: one model per process, every call's predictions batched through it
# --------------------------------------------------------------------------------------------

#: How long a call waits for its end-of-turn prediction before it falls back to VAD endpointing.
#: The framework asks when the caller has been silent 200 ms and needs the answer when VAD ends
#: the speech (Silero's 550 ms of silence), so 300 ms is what a prediction can take unseen.
EOT_DEADLINE_SECONDS = 0.3
#: The most requests one pass of the inference thread takes.
EOT_MAX_BATCH = 32
#: What a late or failed prediction answers: "the turn ended", the framework's own default for
#: a prediction it has no answer to, so the session commits after `min_endpointing_delay`
#: (VAD endpointing) instead of waiting `max_endpointing_delay`.
EOT_FALLBACK_PROBABILITY = 1.0

BatchRunner = Callable[[list[Any]], list[float]]


def native_eot_runner() -> BatchRunner:
    """The end-of-turn model of `livekit-local-inference` (loaded once; about 108 MB).

    Its API takes one 1.2 s window per call (no batch dimension), and releases the GIL.
    """
    from livekit.local_inference import EOT, init_eot

    init_eot()
    model = EOT()

    def run(windows: list[Any]) -> list[float]:
        return [float(model.predict(window)) for window in windows]

    return run


class _Request:
    __slots__ = ("window", "deadline", "future")

    def __init__(self, window: Any, deadline: float) -> None:
        self.window = window
        self.deadline = deadline
        self.future: concurrent.futures.Future[float] = concurrent.futures.Future()


class TurnPredictor:
    """The process's one end-of-turn inference path, shared by every call it runs.

    Calls submit 16 kHz windows from their own event loops (one per job thread, or one for
    all); a single inference thread takes whatever has queued up as one batch and answers each
    request's future. A request whose deadline passed while it waited is not run at all: its
    call has already fallen back to VAD endpointing, and skipping it sheds load when the
    process is behind.
    """

    def __init__(
        self, runner: BatchRunner | None = None, *, max_batch: int = EOT_MAX_BATCH
    ) -> None:
        """`runner` defaults to the native model (loaded here, on the caller's thread)."""
        self._runner = runner or native_eot_runner()
        self.max_batch = max_batch
        self._queue: collections.deque[_Request] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        #: size of every batch run so far, newest last (bounded)
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=1000)
        self.expired = 0
        self._thread = threading.Thread(target=self._serve, name="voxline-eot", daemon=True)
        self._thread.start()

    def submit(self, window: Any, *, deadline: float) -> concurrent.futures.Future[float]:
        """Queue one prediction; `deadline` is a `time.monotonic()` instant."""
        request = _Request(window, deadline)
        with self._ready:
            if self._closed:
                raise RuntimeError("the turn predictor is closed")
            self._queue.append(request)
            self._ready.notify()
        return request.future

    async def predict(self, window: Any, *, within: float = EOT_DEADLINE_SECONDS) -> float | None:
        """The end-of-turn probability of `window`, or None when it is not ready `within` s."""
        future = self.submit(window, deadline=time.monotonic() + within)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), within)
        except TimeoutError:
            future.cancel()
            return None

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _take_batch(self) -> list[_Request] | None:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            batch: list[_Request] = []
            now = time.monotonic()
            while self._queue and len(batch) < self.max_batch:
                request = self._queue.popleft()
                if request.deadline < now:
                    request.future.cancel()  # its call has fallen back already
                if not request.future.set_running_or_notify_cancel():
                    self.expired += 1
                    continue
                batch.append(request)
            return batch

    def _serve(self) -> None:
        while (batch := self._take_batch()) is not None:
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                probabilities = self._runner([request.window for request in batch])
            except Exception as error:
                logger.exception("end-of-turn batch of %d failed", len(batch))
                for request in batch:
                    request.future.set_exception(error)
                continue
            for request, probability in zip(batch, probabilities, strict=True):
                request.future.set_result(probability)


_PREDICTOR: TurnPredictor | None = None
_PREDICTOR_LOCK = threading.Lock()


def turn_predictor() -> TurnPredictor:
    """The process's shared `TurnPredictor` (model loaded on first use; `preload_models`)."""
    global _PREDICTOR
    with _PREDICTOR_LOCK:
        if _PREDICTOR is None:
            _PREDICTOR = TurnPredictor()
        return _PREDICTOR


@functools.cache
def _batched_transport_class():
    from livekit.agents.inference.eot.transports import _LocalTransport

    class BatchedLocalTransport(_LocalTransport):
        """The framework's local transport, predicting through the shared `TurnPredictor`.

        Keeps its per-call audio window; only the model run is shared. A prediction later than
        the deadline answers `EOT_FALLBACK_PROBABILITY`.
        """

        def __init__(self, *, opts: Any, predictor: TurnPredictor, deadline: float) -> None:
            # the parent's __init__ would open a native model handle per call: set up by hand
            from livekit.agents import utils
            from livekit.agents.inference.eot.base import DEFAULT_SAMPLE_RATE
            from livekit.agents.inference.eot.transports import _CLIENT_BUFFER_SAMPLES

            self._opts = opts
            self._buf = utils.AudioArrayBuffer(
                buffer_size=_CLIENT_BUFFER_SAMPLES, sample_rate=DEFAULT_SAMPLE_RATE
            )
            self._stream_ref = None
            self._tasks = set()
            self._predictor = predictor
            self._deadline = deadline

        async def _predict(self, request_id: str, pcm_snapshot: Any) -> None:
            started = time.monotonic()
            try:
                probability = await self._predictor.predict(pcm_snapshot, within=self._deadline)
            except Exception:
                logger.exception("end-of-turn prediction failed")
                probability = None
            if probability is None:
                from runtime import metrics

                metrics.turn_predictions_late.inc()
                probability = EOT_FALLBACK_PROBABILITY
            stream = self._stream_ref() if self._stream_ref is not None else None
            if stream is not None:
                stream._resolve_prediction(
                    request_id, probability, inference_duration=time.monotonic() - started
                )

    return BatchedLocalTransport


def build_turn_detector(
    predictor: TurnPredictor | None = None, *, deadline: float = EOT_DEADLINE_SECONDS
):
    """LiveKit's local end-of-turn model (`turn-detector-v1-mini`), which runs offline.

    It listens to the audio itself (it is not a text model), so it only helps with audio
    input. The separate turn-detector plugin downloads from a model hub and is not used.
    Every call's predictions go through the process's one `TurnPredictor` (batched, on its
    own thread), and one later than `deadline` seconds falls back to VAD endpointing.
    """
    return _shared_detector_class()(predictor or turn_predictor(), deadline)


@functools.cache
def _shared_detector_class():
    from livekit.agents import inference
    from livekit.agents.inference.eot.base import _BaseStreamingTurnDetectorStream

    transport_class = _batched_transport_class()

    class SharedTurnDetector(inference.TurnDetector):
        """`TurnDetector("v1-mini")` whose streams predict through a shared `TurnPredictor`."""

        def __init__(self, predictor: TurnPredictor, deadline: float) -> None:
            super().__init__(version="v1-mini")
            self.predictor = predictor
            self.deadline = deadline

        def stream(self, **_: Any) -> _BaseStreamingTurnDetectorStream:
            transport = transport_class(
                opts=self._opts, predictor=self.predictor, deadline=self.deadline
            )
            return _BaseStreamingTurnDetectorStream(
                detector=self, opts=self._opts, transport=transport, model=self._model
            )

    return SharedTurnDetector


def preload_models(*, local: bool = False) -> None:
    """Load what every call shares, once per process, before the first call arrives.

    Imports the cloud plugins (importing openai alone blocked the event loop for most of a
    second when a call did it), loads Silero VAD and the end-of-turn model, and, with
    `local`, the offline STT and TTS plugins when the `local` extra is installed (their models
    load once, on first use, through `runtime.local`).
    """
    for providers in PROVIDERS.values():
        for info in providers.values():
            if info.extra and not local:
                continue
            try:
                load_factory(info)
            except MissingExtraError as error:
                logger.info("not preloaded: %s", error)
    # The openai client imports these on its first request: 0.3 s on a call's event loop.
    for module in ("openai.pagination", "openai.resources.chat", "openai.resources.audio"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    build_vad()
    turn_predictor()


@dataclass
class Pipeline:
    """The models one call runs: STT, LLM, TTS, VAD and turn detection."""

    llm: Any
    stt: Any = None
    tts: Any = None
    vad: Any = None
    turn_detection: Any = None

    def session_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `AgentSession(...)` (stt, llm, tts, vad)."""
        return {"stt": self.stt, "llm": self.llm, "tts": self.tts, "vad": self.vad}


def build_pipeline(
    agent: AgentSpec,
    *,
    audio: bool = True,
    settings: RuntimeSettings | None = None,
    allow_private_urls: bool | None = None,
) -> Pipeline:
    """Build every model a call needs; with `audio=False` only the LLM (text chats).

    Raises:
        UnknownProviderError: the agent names a provider, model or voice the catalogue lacks.
        MissingExtraError: a provider's optional dependencies are not installed.
        ModelProviderError: a provider is misconfigured (for example its API key is missing).
    """
    settings = settings or RuntimeSettings()
    llm = build_llm(agent, settings, allow_private_urls=allow_private_urls)
    if not audio:
        return Pipeline(llm=llm)
    return Pipeline(
        llm=llm,
        stt=build_stt(agent, settings),
        tts=build_tts(agent, settings),
        vad=build_vad(),
        turn_detection=build_turn_detector(),
    )
