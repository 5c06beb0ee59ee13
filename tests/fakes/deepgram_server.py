"""A Deepgram-compatible streaming STT websocket (`/v1/listen`) with scripted transcripts.

It cannot recognise speech, so it detects it: 16-bit PCM whose loudness crosses a threshold is
speech, and once `endpointing_ms` of quiet follows, it answers the next scripted transcript as a
final `Results` message with `speech_final`, the way Deepgram does. `Finalize` flushes a pending
utterance; `CloseStream` ends the connection. Point livekit's Deepgram plugin at
`server.listen_url` (its `base_url`).
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from tests.fakes.background import BackgroundServer
from tests.fakes.speech_wire import ScriptedEars

logger = logging.getLogger(__name__)


@dataclass
class Connection:
    """One client connection: its query parameters and headers, as received."""

    params: dict[str, str]
    headers: dict[str, str]
    audio_seconds: float = 0.0
    sent: list[dict[str, Any]] = field(default_factory=list)


class FakeDeepgram(ScriptedEars, BackgroundServer):
    def __init__(self, *, threshold: int = 500, default_transcript: str = "hello") -> None:
        super().__init__(threshold=threshold, default_transcript=default_transcript)
        self.connections: list[Connection] = []
        self._ids = itertools.count(1)

    @property
    def listen_url(self) -> str:
        return f"{self.url}/v1/listen"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/listen", self._websocket)
        return app

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("Authorization", "").startswith("Token "):
            return web.json_response({"err_code": "INVALID_AUTH"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = Connection(params=dict(request.query), headers=dict(request.headers))
        self.connections.append(connection)
        sample_rate = int(request.query.get("sample_rate", "16000"))
        endpointing = request.query.get("endpointing", "25")
        quiet_needed = 0.3 if endpointing == "false" else max(int(endpointing), 300) / 1000
        vad_events = request.query.get("vad_events") == "true"

        speaking = False
        speech_start = 0.0
        quiet = 0.0

        async def send(message: dict[str, Any]) -> None:
            connection.sent.append(message)
            await ws.send_str(json.dumps(message))

        async def final(end: float) -> None:
            text = self.next_transcript()
            await send(self._results(text, speech_start, end))

        async for message in ws:
            if message.type == WSMsgType.BINARY:
                samples = np.frombuffer(message.data, dtype=np.int16)
                duration = len(samples) / sample_rate
                start = connection.audio_seconds
                connection.audio_seconds += duration
                if self.heard(message.data):
                    quiet = 0.0
                    if not speaking:
                        speaking, speech_start = True, start
                        if vad_events:
                            await send(
                                {"type": "SpeechStarted", "channel": [0], "timestamp": start}
                            )
                elif speaking:
                    quiet += duration
                    if quiet >= quiet_needed:
                        speaking = False
                        await final(connection.audio_seconds - quiet)
            elif message.type == WSMsgType.TEXT:
                kind = json.loads(message.data).get("type")
                if kind == "Finalize" and speaking:
                    speaking = False
                    await final(connection.audio_seconds)
                elif kind == "CloseStream":
                    await send({"type": "Metadata", "request_id": str(uuid.uuid4())})
                    await ws.close()
                    break
        return ws

    def _results(self, text: str, start: float, end: float) -> dict[str, Any]:
        words = text.split()
        step = (end - start) / max(len(words), 1)
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": end - start,
            "start": start,
            "is_final": True,
            "speech_final": True,
            "from_finalize": False,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": 0.99,
                        "words": [
                            {
                                "word": word.strip(".,?!").lower(),
                                "punctuated_word": word,
                                "start": start + i * step,
                                "end": start + (i + 1) * step,
                                "confidence": 0.99,
                            }
                            for i, word in enumerate(words)
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": f"fake-{next(self._ids)}",
                "model_info": {"name": "fake", "version": "1", "arch": "fake"},
                "model_uuid": str(uuid.uuid4()),
            },
        }
