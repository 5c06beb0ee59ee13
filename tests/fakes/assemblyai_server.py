"""An AssemblyAI stand-in: the v3 streaming STT websocket (`/v3/ws`) livekit's plugin uses.

It cannot recognise speech, so it detects it: 16-bit PCM louder than a threshold is speech, and
once 0.3 s of quiet follows, it answers the next scripted transcript as a `Turn` with
`end_of_turn` (the documented message, words with millisecond times). `Begin` opens a session,
`Terminate` ends it with `Termination`. Connections without an `Authorization` header are
refused (401). `connections` records the query (speech_model, sample_rate) and the headers.
"""

from __future__ import annotations

import json
import time
import uuid

from aiohttp import WSMsgType, web

from tests.fakes.speech_wire import Connection, ScriptedEars, WebSocketStandIn

QUIET_SECONDS = 0.3


class FakeAssemblyAI(ScriptedEars, WebSocketStandIn):
    path = "/v3/ws"
    refusal = {"error": "Missing authorization"}

    async def converse(
        self, request: web.Request, ws: web.WebSocketResponse, connection: Connection
    ) -> None:
        sample_rate = int(request.query.get("sample_rate", "16000"))
        begin = {"type": "Begin", "id": str(uuid.uuid4()), "expires_at": int(time.time()) + 600}
        await ws.send_str(json.dumps(begin))
        heard = 0.0
        speaking, speech_start, quiet, turn = False, 0.0, 0.0, 0
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                duration = len(message.data) / 2 / sample_rate
                start, heard = heard, heard + duration
                if self.heard(message.data):
                    quiet = 0.0
                    if not speaking:
                        speaking, speech_start = True, start
                elif speaking:
                    quiet += duration
                    if quiet >= QUIET_SECONDS:
                        speaking = False
                        text = self.next_transcript()
                        turn_message = _turn(turn, text, speech_start, heard - quiet)
                        await ws.send_str(json.dumps(turn_message))
                        turn += 1
            elif message.type == WSMsgType.TEXT:
                packet = json.loads(message.data)
                connection.received.append(packet)
                if packet.get("type") == "Terminate":
                    done = {
                        "type": "Termination",
                        "audio_duration_seconds": heard,
                        "session_duration_seconds": heard,
                    }
                    await ws.send_str(json.dumps(done))
                    await ws.close()
                    break


def _turn(order: int, text: str, start: float, end: float) -> dict:
    words = text.split()
    step = (end - start) / max(len(words), 1)
    return {
        "type": "Turn",
        "turn_order": order,
        "turn_is_formatted": True,
        "end_of_turn": True,
        "end_of_turn_confidence": 0.9,
        "transcript": text,
        "utterance": "",
        "language_code": "en",
        "words": [
            {
                "text": word,
                "start": int((start + i * step) * 1000),
                "end": int((start + (i + 1) * step) * 1000),
                "confidence": 0.95,
                "word_is_final": True,
            }
            for i, word in enumerate(words)
        ],
    }
