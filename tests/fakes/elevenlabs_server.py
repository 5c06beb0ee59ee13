"""An ElevenLabs stand-in: the multi-stream-input websocket
(`/v1/text-to-speech/{voice_id}/multi-stream-input`) livekit's plugin streams speech over.

Each text packet of a context is answered with `{"audio": <base64 PCM>, "contextId"}` (the
`output_format` asked, `pcm_<rate>`), and `close_context` with `{"isFinal": true}`. Connections
without the `xi-api-key` header are refused (401). `connections` records what was sent: the
path (voice), the query (model, format, language), the headers and every JSON packet, among
them the context's first packet with its `voice_settings`.
"""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from tests.fakes.speech_wire import Connection, WebSocketStandIn, tone_b64


class FakeElevenLabs(WebSocketStandIn):
    path = "/v1/text-to-speech/{voice}/multi-stream-input"
    auth_header = "xi-api-key"
    refusal = {"detail": {"status": "invalid_api_key"}}

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def converse(
        self, request: web.Request, ws: web.WebSocketResponse, connection: Connection
    ) -> None:
        output = request.query.get("output_format", "pcm_24000")
        sample_rate = int(output.split("_")[1]) if output.startswith("pcm_") else 24000
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            packet = json.loads(message.data)
            connection.received.append(packet)
            context = packet.get("context_id")
            if packet.get("close_context"):
                await ws.send_str(json.dumps({"isFinal": True, "contextId": context}))
            elif packet.get("close_socket"):
                break
            elif str(packet.get("text") or "").strip():
                audio = tone_b64(packet["text"], sample_rate)
                await ws.send_str(json.dumps({"audio": audio, "contextId": context}))
