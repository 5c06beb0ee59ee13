"""A Google Cloud speech stand-in: the gRPC services livekit's Google plugin calls.

`TextToSpeech` (`/google.cloud.texttospeech.v1.TextToSpeech/StreamingSynthesize` and
`SynthesizeSpeech`) answers each text input with a quiet tone whose length follows the words;
`Speech` v1 (`/google.cloud.speech.v1.Speech/StreamingRecognize`) tells speech from silence by
loudness, as the AssemblyAI stand-in does, and answers each utterance with the next scripted
transcript as a final result (words timed, voice-activity events when asked for). Messages are
(de)serialised with the proto classes the google-cloud-* packages ship, on the real method paths.

It listens on 127.0.0.1 with gRPC's local credentials, which (unlike a plain insecure port)
carry per-call credentials, so a call's `x-goog-api-key` or `authorization` metadata arrives as
it would at Google; a call without either is refused (`UNAUTHENTICATED`). `connections` records
each call: its method, metadata and every request (as dicts).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from aiohttp import web
from google.cloud import speech_v1, texttospeech_v1

from tests.fakes.background import BackgroundServer
from tests.fakes.speech_wire import Connection, ScriptedEars, tone

QUIET_SECONDS = 0.3
TTS_SERVICE = "google.cloud.texttospeech.v1.TextToSpeech"
STT_SERVICE = "google.cloud.speech.v1.Speech"


class FakeGoogleSpeech(ScriptedEars):
    """Serves both services on one port; `address` is "http://127.0.0.1:<port>"."""

    def __init__(self, *, threshold: int = 500, default_transcript: str = "hello") -> None:
        super().__init__(threshold=threshold, default_transcript=default_transcript)
        self.connections: list[Connection] = []
        self.address = ""
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    def start(self) -> FakeGoogleSpeech:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        tts = grpc.method_handlers_generic_handler(
            TTS_SERVICE,
            {
                "StreamingSynthesize": grpc.stream_stream_rpc_method_handler(
                    self._synthesize_stream,
                    request_deserializer=texttospeech_v1.StreamingSynthesizeRequest.deserialize,
                    response_serializer=texttospeech_v1.StreamingSynthesizeResponse.serialize,
                ),
                "SynthesizeSpeech": grpc.unary_unary_rpc_method_handler(
                    self._synthesize,
                    request_deserializer=texttospeech_v1.SynthesizeSpeechRequest.deserialize,
                    response_serializer=texttospeech_v1.SynthesizeSpeechResponse.serialize,
                ),
            },
        )
        stt = grpc.method_handlers_generic_handler(
            STT_SERVICE,
            {
                "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
                    self._recognize_stream,
                    request_deserializer=speech_v1.StreamingRecognizeRequest.deserialize,
                    response_serializer=speech_v1.StreamingRecognizeResponse.serialize,
                ),
            },
        )
        server.add_generic_rpc_handlers((tts, stt))
        local = grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        port = server.add_secure_port("127.0.0.1:0", local)
        server.start()
        self._server = server
        self.address = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)

    # -- plumbing ------------------------------------------------------------------------------

    def _accept(self, context: grpc.ServicerContext, method: str) -> Connection:
        metadata = {key: value for key, value in context.invocation_metadata()}
        if not metadata.get("x-goog-api-key") and not metadata.get("authorization"):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "API key not valid")
        connection = Connection(path=f"/{method}", params={}, headers=metadata)
        with self._lock:
            self.connections.append(connection)
        return connection

    # -- TextToSpeech ----------------------------------------------------------------------------

    def _synthesize_stream(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        connection = self._accept(context, f"{TTS_SERVICE}/StreamingSynthesize")
        sample_rate = 24000
        for request in requests:
            connection.received.append(_as_dict(request))
            if "streaming_config" in request:
                audio = request.streaming_config.streaming_audio_config
                sample_rate = audio.sample_rate_hertz or sample_rate
            text = request.input.text if "input" in request else ""
            if text.strip():
                yield texttospeech_v1.StreamingSynthesizeResponse(
                    audio_content=tone(text, sample_rate)
                )

    def _synthesize(self, request: Any, context: grpc.ServicerContext) -> Any:
        connection = self._accept(context, f"{TTS_SERVICE}/SynthesizeSpeech")
        connection.received.append(_as_dict(request))
        sample_rate = request.audio_config.sample_rate_hertz or 24000
        return texttospeech_v1.SynthesizeSpeechResponse(
            audio_content=tone(request.input.text, sample_rate)
        )

    # -- Speech v1 ---------------------------------------------------------------------------------

    def _recognize_stream(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        connection = self._accept(context, f"{STT_SERVICE}/StreamingRecognize")
        events = speech_v1.StreamingRecognizeResponse.SpeechEventType
        sample_rate, activity_events = 16000, False
        heard = 0.0
        speaking, speech_start, quiet = False, 0.0, 0.0
        for request in requests:
            if "streaming_config" in request:
                connection.received.append(_as_dict(request))
                sample_rate = request.streaming_config.config.sample_rate_hertz or sample_rate
                activity_events = request.streaming_config.enable_voice_activity_events
                continue
            audio = request.audio_content
            duration = len(audio) / 2 / sample_rate
            start, heard = heard, heard + duration
            if self.heard(audio):
                quiet = 0.0
                if not speaking:
                    speaking, speech_start = True, start
                    if activity_events:
                        yield speech_v1.StreamingRecognizeResponse(
                            speech_event_type=events.SPEECH_ACTIVITY_BEGIN
                        )
            elif speaking:
                quiet += duration
                if quiet >= QUIET_SECONDS:
                    speaking = False
                    with self._lock:
                        text = self.next_transcript()
                    yield _final(text, speech_start, heard - quiet)
                    if activity_events:
                        yield speech_v1.StreamingRecognizeResponse(
                            speech_event_type=events.SPEECH_ACTIVITY_END
                        )


def _as_dict(message: Any) -> dict[str, Any]:
    return type(message).to_dict(message, preserving_proto_field_name=True)


def _final(text: str, start: float, end: float) -> Any:
    words = text.split()
    step = (end - start) / max(len(words), 1)
    return speech_v1.StreamingRecognizeResponse(
        results=[
            speech_v1.StreamingRecognitionResult(
                is_final=True,
                language_code="en-us",
                result_end_time={"seconds": int(end), "nanos": int(end % 1 * 1e9)},
                alternatives=[
                    speech_v1.SpeechRecognitionAlternative(
                        transcript=text,
                        confidence=0.95,
                        words=[
                            speech_v1.WordInfo(
                                word=word,
                                start_time=_duration(start + i * step),
                                end_time=_duration(start + (i + 1) * step),
                            )
                            for i, word in enumerate(words)
                        ],
                    )
                ],
            )
        ]
    )


def _duration(seconds: float) -> dict[str, int]:
    return {"seconds": int(seconds), "nanos": int(seconds % 1 * 1e9)}


class FakeGoogleOAuth(BackgroundServer):
    """Google's OAuth token endpoint (`POST /token`), as a service account's key names it in
    `token_uri`: a JWT-bearer grant gets an access token; `assertions` records each JWT's claims
    (unverified: the stand-in has no way to know the account's public key)."""

    def __init__(self) -> None:
        super().__init__()
        self.assertions: list[dict[str, Any]] = []

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        claims = str(form.get("assertion", "")).split(".")[1]
        self.assertions.append(json.loads(base64.urlsafe_b64decode(claims + "==")))
        token = f"access-{len(self.assertions)}"
        return web.json_response({"access_token": token, "expires_in": 3600})
