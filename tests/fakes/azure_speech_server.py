"""An Azure AI Speech stand-in: the two endpoints livekit's Azure plugin reaches.

Text to speech: `POST /cognitiveservices/v1` with an SSML body answers raw 16-bit PCM at the rate
its `X-Microsoft-OutputFormat` names (`raw-24khz-16bit-mono-pcm` …): a quiet tone whose length
follows the words, as the other TTS stand-ins do.

Speech to text: the websocket the Speech SDK (native, in `azure-cognitiveservices-speech`) opens
at `/speech/recognition/conversation/cognitiveservices/v1` with the `USP` subprotocol, as it does
for a Speech container given `host="ws://…"`. Text frames are `Name:value` header lines, a blank
line and a JSON body (`speech.config`, `speech.context`); audio frames are binary, a 2-byte
big-endian header length, the headers (`Path:audio`), then the audio (the first with a WAV
header, an empty one ending the turn). It tells speech from silence by loudness, as the
AssemblyAI stand-in does, and answers `turn.start`, `speech.startDetected`, a `speech.phrase`
with the next scripted transcript (offsets in 100 ns ticks), `speech.endDetected` and, when the
audio ends, `turn.end`.

A request or connection without `Ocp-Apim-Subscription-Key` (or a bearer token) is refused
(401). `connections` records each: its path, query, headers, and what was sent (the SSML with
the voice, prosody rate, style and text read from it; the JSON bodies of the text frames).
"""

from __future__ import annotations

import html
import json
import re

from aiohttp import WSMsgType, web

from tests.fakes.background import BackgroundServer
from tests.fakes.speech_wire import Connection, ScriptedEars, tone

QUIET_SECONDS = 0.3
TICKS = 10_000_000  # 100 ns units a second

_RATES = {"8khz": 8000, "16khz": 16000, "22050hz": 22050, "24khz": 24000, "44100hz": 44100}


def _attribute(ssml: str, tag: str, name: str) -> str | None:
    match = re.search(rf"<{tag}\b[^>]*\b{name}=\"([^\"]*)\"", ssml)
    return match.group(1) if match else None


def _authorised(request: web.Request) -> bool:
    return bool(request.headers.get("Ocp-Apim-Subscription-Key")) or request.headers.get(
        "Authorization", ""
    ).startswith("Bearer ")


def _frame(data: bytes) -> tuple[dict[str, str], bytes]:
    """A binary USP frame's headers and body."""
    length = int.from_bytes(data[:2], "big")
    return _headers(data[2 : 2 + length].decode()), data[2 + length :]


def _headers(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.split("\r\n") if ":" in line)
    return {name.strip(): value.strip() for name, value in pairs}


class FakeAzureSpeech(ScriptedEars, BackgroundServer):
    def __init__(self, *, threshold: int = 500, default_transcript: str = "hello") -> None:
        super().__init__(threshold=threshold, default_transcript=default_transcript)
        self.connections: list[Connection] = []

    @property
    def stt_host(self) -> str:
        """What the Speech SDK takes as `host`."""
        return self.url.replace("http://", "ws://")

    @property
    def tts_url(self) -> str:
        return f"{self.url}/cognitiveservices/v1"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cognitiveservices/v1", self._synthesize)
        app.router.add_get("/speech/recognition/{mode}/cognitiveservices/v1", self._recognize)
        return app

    async def _recognize(self, request: web.Request) -> web.StreamResponse:
        if not _authorised(request):
            return web.json_response({"error": "Access denied"}, status=401)
        ws = web.WebSocketResponse(protocols=("USP",))
        await ws.prepare(request)
        connection = Connection(request.path, dict(request.query), dict(request.headers))
        self.connections.append(connection)
        sample_rate = 16000
        request_id = ""
        heard = 0.0
        started, speaking, speech_start, quiet = False, False, 0.0, 0.0

        async def send(path: str, body: dict) -> None:
            head = f"X-RequestId:{request_id}\r\nContent-Type:application/json; charset=utf-8"
            await ws.send_str(f"{head}\r\nPath:{path}\r\n\r\n{json.dumps(body)}")

        async for message in ws:
            if message.type == WSMsgType.TEXT:
                head, _, body = message.data.partition("\r\n\r\n")
                headers = _headers(head)
                connection.received.append(
                    {"path": headers.get("Path"), **json.loads(body or "{}")}
                )
                continue
            if message.type != WSMsgType.BINARY:
                continue
            headers, audio = _frame(message.data)
            request_id = headers.get("X-RequestId", request_id)
            if not audio:  # the client ended its audio
                await send("turn.end", {})
                started = False
                continue
            if not started:
                started = True
                await send("turn.start", {"context": {"serviceTag": "stand-in"}})
            if audio[:4] == b"RIFF":  # the stream's WAV header: its rate, then the audio
                sample_rate = int.from_bytes(audio[24:28], "little")
                audio = audio[44:]
            duration = len(audio) / 2 / sample_rate
            start, heard = heard, heard + duration
            if self.heard(audio):
                quiet = 0.0
                if not speaking:
                    speaking, speech_start = True, start
                    await send("speech.startDetected", {"Offset": int(start * TICKS)})
            elif speaking:
                quiet += duration
                if quiet >= QUIET_SECONDS:
                    speaking = False
                    end = heard - quiet
                    phrase = {
                        "RecognitionStatus": "Success",
                        "Offset": int(speech_start * TICKS),
                        "Duration": int((end - speech_start) * TICKS),
                        "DisplayText": self.next_transcript(),
                    }
                    await send("speech.phrase", phrase)
                    await send("speech.endDetected", {"Offset": int(end * TICKS)})
        return ws

    async def _synthesize(self, request: web.Request) -> web.StreamResponse:
        if not _authorised(request):
            return web.json_response(
                {"error": {"code": "401", "message": "Access denied"}}, status=401
            )
        output = request.headers.get("X-Microsoft-OutputFormat", "")
        match = re.fullmatch(r"raw-(\w+)-16bit-mono-pcm", output)
        if not match or match.group(1) not in _RATES:
            return web.Response(status=400, text=f"unsupported output format {output!r}")
        ssml = await request.text()
        text = html.unescape(re.sub(r"<[^>]+>", "", ssml)).strip()
        connection = Connection(request.path, dict(request.query), dict(request.headers))
        connection.received.append(
            {
                "ssml": ssml,
                "voice": _attribute(ssml, "voice", "name"),
                "lang": _attribute(ssml, "speak", "xml:lang"),
                "rate": _attribute(ssml, "prosody", "rate"),
                "style": _attribute(ssml, "mstts:express-as", "style"),
                "text": text,
            }
        )
        self.connections.append(connection)
        return web.Response(
            body=tone(text, _RATES[match.group(1)]), content_type="application/octet-stream"
        )
