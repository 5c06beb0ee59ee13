"""A Cartesia stand-in: the TTS websocket (`/tts/websocket`) livekit's plugin streams over.

Each transcript packet of a context is answered with a `chunk` (`data`: base64 PCM at the
`output_format`'s rate), and the packet with `continue: false` with `done`. Connections without
the `X-API-Key` header are refused (401). `connections` records the headers, the query and every
packet (model, voice, language, and the voice controls: speed, emotion).
"""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from tests.fakes.speech_wire import Connection, WebSocketStandIn, tone_b64


class FakeCartesia(WebSocketStandIn):
    path = "/tts/websocket"
    auth_header = "X-API-Key"
    refusal = {"error": "missing API key"}

    async def converse(
        self, request: web.Request, ws: web.WebSocketResponse, connection: Connection
    ) -> None:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            packet = json.loads(message.data)
            connection.received.append(packet)
            context = packet.get("context_id")
            sample_rate = int((packet.get("output_format") or {}).get("sample_rate", 24000))
            if str(packet.get("transcript") or "").strip():
                chunk = {
                    "type": "chunk",
                    "context_id": context,
                    "data": tone_b64(packet["transcript"], sample_rate),
                    "done": False,
                }
                await ws.send_str(json.dumps(chunk))
            if packet.get("continue") is False:
                await ws.send_str(json.dumps({"type": "done", "context_id": context, "done": True}))
