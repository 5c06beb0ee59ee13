"""A Deepgram Aura stand-in: the streaming TTS websocket (`/v1/speak`) livekit's plugin uses.

`Speak` messages are answered with binary PCM (the `sample_rate` asked, linear16), `Flush`
with `Flushed`, `Close` closes. Connections without `Authorization: Token ...` are refused
(401). `connections` records the query (model), the headers and every JSON message.
"""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from tests.fakes.speech_wire import Connection, WebSocketStandIn, tone


class FakeDeepgramSpeak(WebSocketStandIn):
    path = "/v1/speak"
    auth_prefix = "Token "
    refusal = {"err_code": "INVALID_AUTH"}

    @property
    def speak_url(self) -> str:
        return f"{self.url}/v1/speak"

    async def converse(
        self, request: web.Request, ws: web.WebSocketResponse, connection: Connection
    ) -> None:
        sample_rate = int(request.query.get("sample_rate", "24000"))
        pending = ""
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            packet = json.loads(message.data)
            connection.received.append(packet)
            kind = packet.get("type")
            if kind == "Speak":
                pending += str(packet.get("text") or "")
            elif kind == "Flush":
                if pending.strip():
                    await ws.send_bytes(tone(pending, sample_rate))
                pending = ""
                await ws.send_str(json.dumps({"type": "Flushed", "sequence_id": 0}))
            elif kind == "Close":
                await ws.close()
                break
