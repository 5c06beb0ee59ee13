"""`/health`, OpenAPI and the error body."""

from control.config import Settings
from control.http.app import create_app


async def test_health_reports_database_and_redis(client):
    response = await client.get("/health")
    assert response.status_code == 200
    body = await response.get_json()
    assert (body["status"], body["database"], body["redis"]) == ("ok", "ok", "ok")
    assert body["jobs"] == {"due": 0, "scheduled": 0, "running": 0, "failed": 0}


async def test_openapi_lists_the_routes(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = (await response.get_json())["paths"]
    assert "/auth/login" in paths and "/workspaces/{workspace_id}/api-keys" in paths
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_unknown_route_uses_the_error_body(client):
    response = await client.get("/no-such-thing")
    assert response.status_code == 404
    assert await response.get_json() == {"detail": "No such endpoint.", "code": "NOT_FOUND"}


async def test_redis_down_is_reported_and_login_refuses_safely(db, settings):
    broken = Settings(**{**settings.model_dump(), "redis_url": "redis://127.0.0.1:1/0"})
    degraded_app = create_app(broken)
    # The database is already initialised by the session app; reuse its connections.
    client = degraded_app.test_client()
    health = await client.get("/health")
    assert health.status_code == 503
    assert (await health.get_json())["redis"] == "unavailable"
    login = await client.post(
        "/auth/login", json={"email": "someone@example.com", "password": "whatever-123"}
    )
    assert login.status_code == 503
    assert (await login.get_json())["code"] == "SERVICE_UNAVAILABLE"
