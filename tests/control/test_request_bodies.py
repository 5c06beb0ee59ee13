"""Bodies the app cannot decode are the client's error: a 400 with `{detail, code}`, never a 500."""

from __future__ import annotations

from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE, DataSource

from control.models import Role
from control.services.agents import create_agent
from tests.conftest import auth_headers, make_user
from tests.control.test_outages import DOCUMENTATION_ENDPOINTS, WORKSPACE_RULE, _path_for

NOT_UTF8 = bytes.fromhex("EA1F48")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _reads_json(view) -> bool:
    schema = getattr(view, QUART_SCHEMA_REQUEST_ATTRIBUTE, None)
    return schema is not None and schema[1] == DataSource.JSON


async def test_bytes_that_are_not_utf8_get_400_on_every_json_route(client, settings):
    user, workspace = await make_user("admin@example.com", role=Role.ADMIN)
    agent = await create_agent(settings, workspace.id, {"agent_name": "Bytes"})
    headers = {**auth_headers(settings, user), "Content-Type": "application/json"}
    service = {
        "Authorization": f"Bearer {settings.service_token}",
        "Content-Type": "application/json",
    }
    values = {"workspace_id": str(workspace.id), "agent_id": str(agent.id)}
    app = client.app
    calls = [
        (rule, app.view_functions[rule.endpoint], method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in DOCUMENTATION_ENDPOINTS
        for method in sorted(rule.methods & set(BODY_METHODS))
    ]
    # DELETEs last, the workspace's own very last, so the rows the walk needs survive it.
    calls.sort(key=lambda call: (call[2] == "DELETE", call[0].rule == WORKSPACE_RULE))
    offenders, not_400 = [], []
    json_routes = 0
    for rule, view, method in calls:
        caller = service if rule.rule.startswith("/internal") else headers
        path = _path_for(rule, values)
        response = await client.open(path, method=method, data=NOT_UTF8, headers=caller)
        answer = await response.get_data(as_text=True)
        if response.status_code >= 500:
            offenders.append(f"{method} {path} -> {response.status_code} {answer[:200]}")
        if _reads_json(view):
            json_routes += 1
            body = await response.get_json()
            if response.status_code != 400 or not {"detail", "code"} <= set(body or {}):
                not_400.append(f"{method} {path} -> {response.status_code} {answer[:200]}")
    assert json_routes >= 15, "the walk should reach every JSON route"
    assert offenders == [], "undecodable bodies answered 5xx:\n" + "\n".join(offenders)
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
