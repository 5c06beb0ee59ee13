"""Bodies the app cannot take are the client's error, never a 500: bytes that are not UTF-8 and
JSON nested too deeply are a 400, and a body over its route's limit is a 413 whatever its
Content-Type says, before it is read whole."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE, DataSource

from control.http.request import MAX_JSON_DEPTH, UPLOAD_ATTRIBUTE, json_depth
from control.models import Role
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user
from tests.control.test_outages import DOCUMENTATION_ENDPOINTS, WORKSPACE_RULE, _path_for

NOT_UTF8 = bytes.fromhex("EA1F48")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
MIB = 1024 * 1024
# Quart's test client waits on the app's answer; an app that buffers a chunked body until it
# ends never answers before the body ends, which these tests never send.
ANSWER_SECONDS = 30


def _reads_json(view) -> bool:
    schema = getattr(view, QUART_SCHEMA_REQUEST_ATTRIBUTE, None)
    return schema is not None and schema[1] == DataSource.JSON


def _takes_upload(view) -> bool:
    return getattr(view, UPLOAD_ATTRIBUTE, False)


@dataclass
class Answer:
    method: str
    path: str
    view: Any
    status: int
    body: Any
    text: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} {self.text[:200]}"


async def walk_body_routes(
    client,
    settings,
    data: bytes,
    content_type: str,
    *,
    email: str = "admin@example.com",
    sized: bool = False,
) -> list[Answer]:
    """Send `data` to every route that takes a body, logged in as a new admin `email` (the
    service token on `/internal`), DELETEs last and the workspace's own very last, so the rows
    the walk needs survive it. `sized` sends a `Content-Length` (Quart's test client sends
    none, as a chunked body has none)."""
    user, workspace = await make_user(email, role=Role.ADMIN)
    agent = await create_agent(settings, workspace.id, {"agent_name": "Bodies"})
    body_headers = {"Content-Type": content_type}
    if sized:
        body_headers["Content-Length"] = str(len(data))
    headers = {**auth_headers(settings, user), **body_headers}
    service = {"Authorization": f"Bearer {settings.service_token}", **body_headers}
    values = {"workspace_id": str(workspace.id), "agent_id": str(agent.id)}
    app = client.app
    calls = [
        (rule, app.view_functions[rule.endpoint], method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in DOCUMENTATION_ENDPOINTS
        for method in sorted(rule.methods & set(BODY_METHODS))
    ]
    calls.sort(key=lambda call: (call[2] == "DELETE", call[0].rule == WORKSPACE_RULE))
    answers = []
    for rule, view, method in calls:
        caller = service if rule.rule.startswith("/internal") else headers
        path = _path_for(rule, values)
        response = await client.open(path, method=method, data=data, headers=caller)
        text = await response.get_data(as_text=True)
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        answers.append(Answer(method, path, view, response.status_code, body, text))
    return answers


def _is_error(answer: Answer, status: int, code: str | None = None) -> bool:
    body = answer.body if isinstance(answer.body, dict) else {}
    return (
        answer.status == status
        and {"detail", "code"} <= set(body)
        and (code is None or body["code"] == code)
    )


async def test_bytes_that_are_not_utf8_get_400_on_every_json_route(client, settings):
    answers = await walk_body_routes(client, settings, NOT_UTF8, "application/json")
    json_routes = [answer for answer in answers if _reads_json(answer.view)]
    assert len(json_routes) >= 15, "the walk should reach every JSON route"
    offenders = [str(answer) for answer in answers if answer.status >= 500]
    assert offenders == [], "undecodable bodies answered 5xx:\n" + "\n".join(offenders)
    not_400 = [str(answer) for answer in json_routes if not _is_error(answer, 400)]
    assert not_400 == [], "JSON routes not answering 400 {detail, code}:\n" + "\n".join(not_400)


async def test_undecodable_body_names_the_problem(client):
    response = await client.post(
        "/auth/login", data=NOT_UTF8, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert await response.get_json() == {
        "detail": "The request body is not valid UTF-8 text.",
        "code": "BAD_REQUEST",
    }


async def test_a_large_body_is_413_on_every_route_but_uploads_whatever_its_content_type(
    client, settings
):
    # An upload's Content-Type on a JSON route (the signed campaign webhook among them) used
    # to skip the JSON limit: 50 MiB, parsed before its signature was checked.
    large = b"[" + b"0," * MIB + b"0]"  # 2 MiB of JSON
    assert len(large) > settings.max_json_bytes
    # With a Content-Length (refused before anything is read) and without (read up to the limit).
    for content_type, sized in (
        ("multipart/form-data; boundary=x", True),
        ("audio/wav", False),
        ("audio/ogg", True),
    ):
        email = f"admin-{content_type.partition(';')[0].replace('/', '-')}@example.com"
        answers = await walk_body_routes(
            client, settings, large, content_type, email=email, sized=sized
        )
        json_routes = [answer for answer in answers if not _takes_upload(answer.view)]
        assert any(answer.path == "/api/v/webhook/" for answer in json_routes)
        not_413 = [
            str(answer) for answer in json_routes if not _is_error(answer, 413, "PAYLOAD_TOO_LARGE")
        ]
        assert not_413 == [], f"{content_type}: not refused:\n" + "\n".join(not_413)
        # An upload route takes as much (and answers what it makes of it, never a 5xx).
        uploads = [answer for answer in answers if _takes_upload(answer.view)]
        assert len(uploads) >= 3
        wrong = [
            str(answer) for answer in uploads if answer.status in (413,) or answer.status >= 500
        ]
        assert wrong == [], "\n".join(wrong)


async def test_a_chunked_body_is_cut_at_its_routes_limit_as_it_streams(client, settings):
    # No Content-Length: the 413 comes once the limit is crossed, while the client is still
    # sending (the body never ends here), not after buffering up to the upload limit.
    chunk = b"0," * (32 * 1024)
    async with client.request(
        "/auth/login", method="POST", headers={"Content-Type": "application/json"}
    ) as connection:
        await connection.send(b"[")
        for _ in range(settings.max_json_bytes // len(chunk) + 2):
            await connection.send(chunk)
        first = await asyncio.wait_for(connection.receive(), ANSWER_SECONDS)
        assert connection.status_code == 413
        assert json.loads(first)["code"] == "PAYLOAD_TOO_LARGE"
        await connection.disconnect()


async def test_json_nested_too_deeply_is_a_400_on_every_json_route(client, settings):
    # `"[" * 100000` used to raise RecursionError from the parser: a 500 and a traceback.
    answers = await walk_body_routes(client, settings, b"[" * 100_000, "application/json")
    offenders = [str(answer) for answer in answers if answer.status >= 500]
    assert offenders == [], "deep bodies answered 5xx:\n" + "\n".join(offenders)
    json_routes = [answer for answer in answers if _reads_json(answer.view)]
    not_400 = [str(answer) for answer in json_routes if not _is_error(answer, 400, "JSON_TOO_DEEP")]
    assert not_400 == [], "\n".join(not_400)


async def test_the_depth_bound_is_exact_and_strings_do_not_count(client):
    def nested(depth: int) -> bytes:
        # brackets, braces and escapes inside strings are text, not nesting
        inner = json.dumps({"text": '[[{{"\\\\"'})
        return ('{"email": ' + "[" * (depth - 2) + inner + "]" * (depth - 2) + "}").encode()

    assert json_depth(nested(MAX_JSON_DEPTH)) == MAX_JSON_DEPTH
    headers = {"Content-Type": "application/json"}
    deepest = await client.post("/auth/login", data=nested(MAX_JSON_DEPTH), headers=headers)
    assert deepest.status_code == 400
    assert (await deepest.get_json())["code"] == "VALIDATION_ERROR"  # parsed, then refused
    deeper = await client.post("/auth/login", data=nested(MAX_JSON_DEPTH + 1), headers=headers)
    assert deeper.status_code == 400
    assert await deeper.get_json() == {
        "detail": f"The JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
        "code": "JSON_TOO_DEEP",
    }


async def test_json_text_with_a_nul_is_a_400_on_every_json_route(client, settings):
    # PostgreSQL text holds no NUL: a `name` with one used to fail at the insert (a 500) on the
    # models without their own check (workspaces, API keys), after what came before it.
    body = json.dumps({"name": "night\x00shift"})
    answers = await walk_body_routes(client, settings, body.encode(), "application/json")
    offenders = [str(answer) for answer in answers if answer.status >= 500]
    assert offenders == [], "NUL answered 5xx:\n" + "\n".join(offenders)
    json_routes = [answer for answer in answers if _reads_json(answer.view)]
    not_400 = [
        str(answer)
        for answer in json_routes
        if not (
            _is_error(answer, 400, "VALIDATION_ERROR")
            and answer.body["errors"][0]["field"] == "body"
        )
    ]
    assert not_400 == [], "\n".join(not_400)
    # An escaped backslash before `u0000` is text, not a NUL.
    text = json.dumps({"email": "a@example.com", "password": "back\\u0000slash"})
    login = await client.post(
        "/auth/login", data=text.encode(), headers={"Content-Type": "application/json"}
    )
    assert login.status_code == 401  # read, and the password was simply wrong
