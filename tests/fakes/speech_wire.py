"""What the speech vendors' stand-ins share: a record of each connection, and tone audio.

The TTS stand-ins (ElevenLabs, Cartesia, Deepgram Aura) answer text with a quiet tone whose
length follows the words, the way `FakeOpenAI` answers speech; the STT stand-ins (Deepgram,
AssemblyAI, Azure, Google) tell speech from silence by loudness and answer scripted transcripts
(`ScriptedEars`).
"""

from __future__ import annotations

import base64
import collections
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from tests.fakes.background import BackgroundServer

#: seconds of audio per word spoken
WORD_SECONDS = 0.06


@dataclass
class Connection:
    """One client connection: its path, query parameters, headers and the messages it sent."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    received: list[dict[str, Any]] = field(default_factory=list)

    def text(self, key: str) -> str:
        """Every `key` value of the JSON messages received, joined (what was asked to be said)."""
        return "".join(str(message.get(key) or "") for message in self.received)


def tone(text: str, sample_rate: int) -> bytes:
    """16-bit mono PCM: a quiet 220 Hz tone, `WORD_SECONDS` per word (at least one word)."""
    words = max(len(text.split()), 1)
    t = np.arange(int(sample_rate * WORD_SECONDS * words)) / sample_rate
    return (np.sin(2 * np.pi * 220 * t) * 1000).astype(np.int16).tobytes()


def tone_b64(text: str, sample_rate: int) -> str:
    return base64.b64encode(tone(text, sample_rate)).decode()


def loud(pcm: bytes, threshold: int) -> bool:
    """Whether 16-bit PCM is louder (RMS) than `threshold`: speech, for a stand-in."""
    samples = np.frombuffer(pcm, dtype=np.int16)
    return (
        bool(samples.size) and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > threshold
    )


class ScriptedEars:
    """What a speech-to-text stand-in "hears": audio louder than `threshold` is speech, and each
    utterance is the next scripted transcript (`default_transcript` when none is left).

    A mixin, first among the stand-in's bases: `reset` also forgets its `connections`.
    """

    connections: list[Any]

    def __init__(self, *, threshold: int = 500, default_transcript: str = "hello") -> None:
        super().__init__()
        self.threshold = threshold
        self.default_transcript = default_transcript
        self.transcripts: collections.deque[str] = collections.deque()

    def script(self, *transcripts: str) -> None:
        """Queue what the next utterances "said" (one per detected utterance)."""
        self.transcripts.extend(transcripts)

    def reset(self) -> None:
        self.connections.clear()
        self.transcripts.clear()

    def heard(self, pcm: bytes) -> bool:
        return loud(pcm, self.threshold)

    def next_transcript(self) -> str:
        return (self.transcripts.popleft() if self.transcripts else "") or self.default_transcript


class WebSocketStandIn(BackgroundServer):
    """A vendor's websocket at `path`: refuses a connection without the `auth_header` (401,
    `refusal`), records each one in `connections`, and hands it to `converse`."""

    path = "/"
    auth_header = "Authorization"
    auth_prefix = ""
    refusal: dict[str, Any] = {"error": "unauthorized"}

    def __init__(self) -> None:
        super().__init__()
        self.connections: list[Connection] = []

    def reset(self) -> None:
        self.connections.clear()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.path, self._accept)
        return app

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        credential = request.headers.get(self.auth_header, "")
        if not credential or not credential.startswith(self.auth_prefix):
            return web.json_response(self.refusal, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = Connection(request.path, dict(request.query), dict(request.headers))
        self.connections.append(connection)
        await self.converse(request, ws, connection)
        return ws

    async def converse(
        self, request: web.Request, ws: web.WebSocketResponse, connection: Connection
    ) -> None:
        raise NotImplementedError
