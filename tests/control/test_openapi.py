"""The OpenAPI document API clients generate SDKs from: valid, named by one convention on every
route, and good for a working Python client (`openapi-python-client`) without a warning.

The conventions test walks every operation, so a route added later that breaks them fails here.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from io import BytesIO
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from openapi_spec_validator import validate

from control.http.openapi import VERBS
from tests.conftest import PASSWORD
from tests.control.conftest import TRUNK_BODY
from tests.servers import ControlPlaneProcess

ROOT = Path(__file__).resolve().parents[2]
GENERATOR_CONFIG = ROOT / "clients" / "openapi-python-client.yaml"
PACKAGE = "voxline_client"  # the config's package_name_override
MAX_MODELS_PER_SCHEMA = 1.3
# verb_noun, lower case; the session's own verbs need no noun.
OPERATION_ID = re.compile(r"[a-z]+(_[a-z0-9]+)+")
SESSION_VERBS = {"login", "logout", "signup", "refresh"}
COMPONENT_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}


async def served_document(client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return await response.get_json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def resolved(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A `#/components/...` reference's target (or the node itself)."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def operation_problems(document: dict[str, Any], where: str, operation: dict[str, Any]):
    """What one operation breaks of the conventions a generated client relies on."""
    operation_id = operation.get("operationId", "")
    if not (OPERATION_ID.fullmatch(operation_id) or operation_id in SESSION_VERBS):
        yield f"{where}: operationId {operation_id!r} is not verb_noun"
    elif operation_id.split("_")[0] not in VERBS:
        yield f"{where}: operationId {operation_id!r} does not start with a verb"
    if len(operation.get("tags", ())) != 1:
        yield f"{where}: {operation.get('tags')} is not exactly one tag"
    summary = operation.get("summary", "")
    if not summary.strip() or "\n" in summary:
        yield f"{where}: no one-line summary (the handler's docstring)"
    bodies = [
        (f"request {media_type}", media["schema"])
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
    ]
    responses = operation.get("responses", {})
    if not any(status.startswith("2") for status in responses):
        yield f"{where}: documents no success"
    if not {"4XX", "5XX"} <= responses.keys():
        yield f"{where}: does not document 4XX and 5XX"
    for status, response in responses.items():
        content = resolved(document, response).get("content", {})
        if status == "204" and content:
            yield f"{where}: a 204 with a body"
        if status.startswith("2") and status != "204" and not content:
            yield f"{where}: {status} documents no body (its media type)"
        if status[0] in "45" and content.get("application/json", {}).get("schema") != ERROR_SCHEMA:
            yield f"{where}: {status} is not the shared Error"
        bodies += [
            (f"{status} {media_type}", media["schema"]) for media_type, media in content.items()
        ]
    for what, schema in bodies:
        if what.endswith(("json", "form-data")) and "$ref" not in schema:
            yield f"{where}: the {what} body is not a named component schema"


async def test_the_served_document_is_valid_openapi(client):
    document = await served_document(client)
    validate(document)  # raises on the first error, naming it
    assert document["openapi"].startswith("3.1")


async def test_every_operation_follows_the_conventions(client):
    document = await served_document(client)
    problems = [
        problem
        for where, operation in operations(document)
        for problem in operation_problems(document, where, operation)
    ]
    ids = Counter(operation.get("operationId") for _, operation in operations(document))
    problems += [
        f"operationId {name!r} is used {count} times" for name, count in ids.items() if count > 1
    ]
    problems += [
        f"component schema {name!r} is not a class name (two models of one name?)"
        for name in document["components"]["schemas"]
        if not COMPONENT_NAME.fullmatch(name)
    ]
    assert len(ids) > 80, "the document lost its operations"
    assert problems == [], "\n".join(problems)


async def test_the_conventions_name_operations_and_types_as_people_would(client):
    document = await served_document(client)
    by_id = {operation["operationId"]: where for where, operation in operations(document)}
    assert by_id["create_agent"] == "POST /agents"
    assert by_id["list_agents"] == "GET /agents"
    assert by_id["delete_agent"] == "DELETE /agents/{agent_id}"
    assert by_id["export_calls"] == "GET /calls/export"
    assert by_id["get_campaign_status"] == "GET /api/v/campaign/{slug}/status/"  # verb added
    tags = {operation["tags"][0] for _, operation in operations(document)}
    assert {"agents", "knowledge", "calls", "phone numbers", "batches", "auth"} <= tags
    agents = document["paths"]["/agents"]
    created = agents["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert agents["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AgentConfig"
    }
    assert created == {"$ref": "#/components/schemas/Agent"}
    assert agents["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AgentPage"
    }
    export = document["paths"]["/calls/export"]["get"]["responses"]["200"]["content"]
    assert list(export) == ["text/csv"]
    assert "content" not in document["paths"]["/agents/{agent_id}"]["delete"]["responses"]["204"]


def test_voxline_openapi_writes_the_document_without_a_server(tmp_path):
    output = tmp_path / "openapi.json"
    env = {**os.environ, "VOXLINE_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
    subprocess.run(
        [sys.executable, "-m", "voxline", "openapi", "--output", str(output)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    document = json.loads(output.read_text())
    validate(document)
    assert document["paths"]["/agents"]["post"]["operationId"] == "create_agent"


def generate_client(url: str, into: Path) -> tuple[str, int]:
    """openapi-python-client's output and the number of model classes it generated."""
    bin_dir = Path(sys.executable).parent  # its post-hooks run `ruff` from the same venv
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            *("generate", "--url", url, "--meta", "none", "--fail-on-warning"),
            *("--output-path", str(into / PACKAGE), "--config", str(GENERATOR_CONFIG)),
        ],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    models = [path for path in (into / PACKAGE / "models").glob("*.py") if path.stem != "__init__"]
    return output, len(models)


@pytest.fixture
async def control_plane(settings, db, mailbox, livekit, tmp_path):
    """`voxline serve` on the test database, with the LiveKit stand-in for SIP trunks."""
    server = ControlPlaneProcess(
        settings,
        tmp_path / "serve.log",
        VOXLINE_JWT_SECRET=settings.jwt_secret,
        VOXLINE_ENCRYPTION_KEY=settings.encryption_key,
        VOXLINE_SMTP_PORT=str(mailbox.port),
        LIVEKIT_URL=livekit.url,
        LIVEKIT_API_KEY=livekit.api_key,
        LIVEKIT_API_SECRET=livekit.api_secret,
    )
    server.start()
    try:
        await server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture
def generated_client(control_plane, tmp_path) -> Iterator[tuple[str, int]]:
    """A Python client generated from the running server's document, importable as PACKAGE."""
    output, models = generate_client(f"{control_plane.url}/openapi.json", tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield output, models
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


AGENT = {
    "agent_name": "Front Desk",
    "phone_number": TRUNK_BODY["phone_number"],
    "LLM_provider": "open ai",
    "LLM_model": "gpt-4o",
    "STT_provider": "deepgram",
    "TTS_provider": "openai",
    "system_prompt": "You answer questions about opening hours.",
    "first_message": "Hello, front desk.",
}


def call(module: str, *args: Any, expect: HTTPStatus, **kwargs: Any) -> Any:
    """`sync_detailed` of the generated `PACKAGE.api.<module>`: its parsed body, once the status
    is `expect`."""
    operation = importlib.import_module(f"{PACKAGE}.api.{module}")
    response = operation.sync_detailed(*args, **kwargs)
    assert response.status_code == expect, (module, response.status_code, response.content[:500])
    return response.parsed


async def test_a_generated_client_does_a_round_trip(control_plane, generated_client):
    output, model_count = generated_client
    assert "warning" not in output.lower(), output
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{control_plane.url}/openapi.json")).json()
    schema_count = len(document["components"]["schemas"])
    assert model_count <= MAX_MODELS_PER_SCHEMA * schema_count, (model_count, schema_count)

    client_module = importlib.import_module(PACKAGE)
    models = importlib.import_module(f"{PACKAGE}.models")
    File = importlib.import_module(f"{PACKAGE}.types").File  # noqa: N806 (a class)
    anonymous = client_module.Client(base_url=control_plane.url, raise_on_unexpected_status=True)

    email = "sdk-user@example.com"
    credentials = {"email": email, "password": PASSWORD}
    signed_up = call(
        "auth.signup",
        client=anonymous,
        body=models.SignupRequest(**credentials, full_name="Sdk User"),
        expect=HTTPStatus.CREATED,
    )
    assert signed_up.user.email == email
    tokens = call(
        "auth.login",
        client=anonymous,
        body=models.LoginRequest(**credentials),
        expect=HTTPStatus.OK,
    )
    api = client_module.AuthenticatedClient(
        base_url=control_plane.url, token=tokens.access_token, raise_on_unexpected_status=True
    )

    number = call(
        "phone_numbers.register_sip_trunk",
        client=api,
        body=models.SipTrunkRequest.from_dict(TRUNK_BODY),
        expect=HTTPStatus.CREATED,
    )
    assert number.phone_number == TRUNK_BODY["phone_number"]

    agent = call(
        "agents.create_agent",
        client=api,
        body=models.AgentConfig.from_dict(AGENT),
        expect=HTTPStatus.CREATED,
    )
    agent_id = UUID(agent.id)
    assert isinstance(agent, models.Agent) and agent.agent_name == "Front Desk"
    fetched = call("agents.get_agent", agent_id, client=api, expect=HTTPStatus.OK)
    assert fetched.id == agent.id and fetched["LLM_model"] == "gpt-4o"
    updated = call(
        "agents.update_agent",
        agent_id,
        client=api,
        body=models.AgentUpdate.from_dict({"agent_name": "Night Desk"}),
        expect=HTTPStatus.OK,
    )
    assert updated.agent_name == "Night Desk"
    listed = call("agents.list_agents", client=api, expect=HTTPStatus.OK)
    assert isinstance(listed, models.AgentPage) and [a.id for a in listed.items] == [agent.id]

    hours = File(
        payload=BytesIO(b"We open at nine."), file_name="hours.txt", mime_type="text/plain"
    )
    uploaded = call(
        "knowledge.upload_files",
        agent_id,
        client=api,
        body=models.UploadForm(files=[hours]),
        expect=HTTPStatus.ACCEPTED,
    )
    assert [file.filename for file in uploaded.files] == ["hours.txt"]
    files = call("knowledge.list_files", agent_id, client=api, expect=HTTPStatus.OK)
    assert [file.filename for file in files.items] == ["hours.txt"]
    call("knowledge.delete_file", agent_id, "hours.txt", client=api, expect=HTTPStatus.NO_CONTENT)
    assert call("knowledge.list_files", agent_id, client=api, expect=HTTPStatus.OK).items == []

    calls = call("calls.list_calls", client=api, expect=HTTPStatus.OK)
    assert isinstance(calls, models.CallSummaryPage) and calls.total == 0
    csv_text = call("calls.export_calls", client=api, expect=HTTPStatus.OK)
    assert csv_text.splitlines()[0].startswith("id,created_at,agent_id")

    leads = File(
        payload=BytesIO(b"phone_number,name\n+14155550100,Ada\n+14155550101,Bob\n"),
        file_name="leads.csv",
        mime_type="text/csv",
    )
    batch = call(
        "batches.upload_batch",
        client=api,
        body=models.BatchUploadForm(
            file=leads,
            name="Reminders",
            agent_id=agent_id,
            agent_phone_number=TRUNK_BODY["phone_number"],
        ),
        expect=HTTPStatus.CREATED,
    )
    assert batch.accepted == 2
    batch_id = UUID(batch.id)
    # A live batch is cancelled (and stays readable); an ended one is deleted.
    cancelled = call("batches.delete_batch", batch_id, client=api, expect=HTTPStatus.OK)
    assert cancelled.status.value == "cancelled"
    call("batches.delete_batch", batch_id, client=api, expect=HTTPStatus.NO_CONTENT)

    call("agents.delete_agent", agent_id, client=api, expect=HTTPStatus.NO_CONTENT)
    # Errors are documented too: a typed `Error`, not an exception for an unexpected status.
    missing = call("agents.get_agent", agent_id, client=api, expect=HTTPStatus.NOT_FOUND)
    assert isinstance(missing, models.Error) and missing.code == "AGENT_NOT_FOUND"
