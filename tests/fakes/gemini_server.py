"""A scripted Gemini API (Google AI): `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`.

Speaks the documented stream: server-sent `GenerateContentResponse` chunks whose candidate parts
carry `text` or a `functionCall`, the last one with `finishReason` and `usageMetadata`. The real
`google-genai` client, and livekit's Google plugin on top of it, run against it unchanged
(`GOOGLE_GEMINI_BASE_URL`, the SDK's own variable, or a per-request base URL).

`requests` holds each request's JSON body (with its "model"), `api_keys` its `x-goog-api-key`
header; `fail_with` makes the next requests answer those HTTP statuses.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from tests.fakes.scripted_vendor import ScriptedVendorLLM


def _last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents", [])):
        if content.get("role") == "user":
            text = " ".join(part.get("text", "") for part in content.get("parts", []))
            if text.strip():
                return text
    return ""


def _tool_result(body: dict[str, Any]) -> tuple[str, str] | None:
    contents = body.get("contents", [])
    if not contents:
        return None
    for part in contents[-1].get("parts", []):
        if "functionResponse" in part:
            response = part["functionResponse"]
            return response.get("name", ""), json.dumps(response.get("response", {}))
    return None


class FakeGemini(ScriptedVendorLLM):
    last_user_text = staticmethod(_last_user_text)
    tool_result = staticmethod(_tool_result)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{version}/models/{call}", self._generate)
        return app

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].partition(":")
        body = await request.json()
        self.requests.append({"model": model, **body})
        self.api_keys.append(request.headers.get("x-goog-api-key"))
        if self.fail_with:
            error = {"code": 503, "message": "scripted failure", "status": "UNAVAILABLE"}
            return web.json_response({"error": error}, status=self.fail_with.pop(0))
        if method != "streamGenerateContent":
            return web.json_response({"error": {"message": f"no {method} here"}}, status=404)
        reply = self.choose(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(parts: list[dict[str, Any]], finish: str | None = None) -> None:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
            if finish:
                candidate["finishReason"] = finish
                prompt = len(_last_user_text(body).split())
                chunk["usageMetadata"] = {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": len(reply.text.split()),
                    "totalTokenCount": prompt + len(reply.text.split()),
                }
            await response.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())

        words = re.findall(r"\S+\s*", reply.text)
        for word in words:
            await send([{"text": word}])
        calls = [{"functionCall": {"name": c.name, "args": c.arguments}} for c in reply.tool_calls]
        await send(calls or [{"text": ""}], finish="STOP")
        await response.write_eof()
        return response
