"""Google Cloud Text-to-Speech and Speech-to-Text, through livekit's Google plugin, at an
endpoint Voxline chooses.

The plugin builds its gRPC clients itself, always for Google's own host; these subclasses build
them instead with `client_options.api_endpoint` set to the endpoint the catalogue resolved
(Google's, or the operator's `VOXLINE_GOOGLE_TTS_URL` / `VOXLINE_GOOGLE_STT_URL`) and the
credentials resolved for the call. An `https://` (or bare `host[:port]`) endpoint is reached over
TLS; an `http://` one, which must be on this machine (a local proxy, the tests' stand-in), over
gRPC's local credentials, which still carry the call's key.

A workspace's `google` key is either an API key (the one the Gemini LLM uses too) or a
service-account key, the JSON text Google hands out.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.api_core.client_options import ClientOptions
from google.auth import api_key
from google.oauth2 import service_account
from livekit.plugins import google as google_plugin

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"


def google_credentials(key: str) -> Any:
    """A `google.auth` credentials object for a workspace's (or the platform's) Google key:
    a service-account key when it is JSON, otherwise an API key."""
    text = key.strip()
    if text.startswith("{"):
        try:
            info = json.loads(text)
        except ValueError as e:
            raise ValueError("the Google key looks like JSON but does not parse") from e
        if not isinstance(info, dict):
            raise ValueError("the Google service-account key is not a JSON object")
        # the token comes from Google (or the operator's endpoint), never from an address the
        # key's own `token_uri` names: a workspace's key must not make the workers call out
        info["token_uri"] = os.environ.get("VOXLINE_GOOGLE_TOKEN_URL") or GOOGLE_TOKEN_URL
        return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    return api_key.Credentials(text)


def _gapic_client(client_cls: Any, endpoint: str, credentials: Any) -> Any:
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    address = f"{host}:{port}"
    if parts.scheme != "http":
        return client_cls(
            credentials=credentials, client_options=ClientOptions(api_endpoint=address)
        )
    transport = client_cls.get_transport_class("grpc_asyncio")(
        host=address,
        credentials=credentials,
        ssl_channel_credentials=grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
    )
    return client_cls(transport=transport)


class GoogleTTS(google_plugin.TTS):
    """The plugin's TTS, its client at `endpoint` with `credentials`."""

    def __init__(self, *, endpoint: str, credentials: Any, **kwargs: Any) -> None:
        super().__init__(credentials=credentials, **kwargs)
        self._endpoint = endpoint

    def _ensure_client(self) -> Any:
        if self._client is None:
            from google.cloud import texttospeech

            self._client = _gapic_client(
                texttospeech.TextToSpeechAsyncClient, self._endpoint, self._credentials
            )
        return self._client


class GoogleSTT(google_plugin.STT):
    """The plugin's STT, its clients at `endpoint` with `credentials`."""

    def __init__(self, *, endpoint: str, credentials: Any, **kwargs: Any) -> None:
        self._endpoint = endpoint
        super().__init__(credentials=credentials, **kwargs)

    async def _create_client(self, timeout: float) -> Any:  # noqa: ASYNC109 (the plugin's)
        from google.cloud import speech_v1

        # the catalogue offers the v1 models only: v2's need a project, which API keys lack
        return _gapic_client(speech_v1.SpeechAsyncClient, self._endpoint, self._credentials)
