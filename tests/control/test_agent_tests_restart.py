"""A test run outlives its control plane: `voxline serve` killed with SIGKILL mid-run, started
again, finishes the run once, with no case run or counted twice."""

from __future__ import annotations

import httpx
import pytest

from control.models import Role, TestRun, WebhookDelivery
from control.services import webhooks
from control.services.agents import create_agent
from control.services.workspaces import create_api_key
from tests.conftest import make_user, scripted_agent_config
from tests.fakes.openai_server import Reply
from tests.servers import ControlPlaneProcess
from tests.waiting import until

FIRST_LINE = "What are your opening hours?"
SECOND_LINE = "Do you deliver on Sundays?"


def serve(settings, log) -> ControlPlaneProcess:
    return ControlPlaneProcess(
        settings,
        log,
        VOXLINE_BACKGROUND_WORKERS="true",
        VOXLINE_JOBS_POLL_SECONDS="0.1",
        VOXLINE_JOBS_LEASE_SECONDS="1.5",  # a dead server's job is taken over within 1.5 s
        VOXLINE_JWT_SECRET=settings.jwt_secret,
        VOXLINE_ENCRYPTION_KEY=settings.encryption_key,
        VOXLINE_ALLOW_PRIVATE_URLS="true",
        VOXLINE_TEST_JUDGE_LOCAL="false",
        OPENAI_API_KEY="",
    )


@pytest.mark.postgres_only(reason="the server and the test share the database")
async def test_a_run_killed_mid_run_completes_once_after_a_restart(
    settings, db, scripted_llm, tmp_path
):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    _, secret = await create_api_key(workspace.id, user, "ci", Role.DEVELOPER)
    local = settings.model_copy(update={"allow_private_urls": True})  # stand-ins on loopback
    await webhooks.set_endpoint(local, workspace.id, "http://127.0.0.1:9/")
    agent = await create_agent(
        local,
        workspace.id,
        scripted_agent_config(scripted_llm, agent_name="Shop"),
    )
    scripted_llm.on("opening hours", "We are open 9 to 5 every day.")
    # The second case's first answer never comes before the kill; once restarted, it does.
    scripted_llm.on("sundays", Reply(text="Yes, on Sundays too.", ttft=600), times=1)
    scripted_llm.on("sundays", "Yes, on Sundays too.")
    headers = {"Authorization": f"Bearer {secret}"}
    log = tmp_path / "serve.log"
    server = serve(settings, log)
    server.start()
    try:
        await server.wait_until_up()
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as api:
            for name, line, text in (
                ("hours", FIRST_LINE, "9 to 5"),
                ("sundays", SECOND_LINE, "sundays"),
            ):
                case = {"name": name, "turns": [{"user": line, "expect": [
                    {"type": "reply_contains", "text": text}
                ]}]}  # fmt: skip
                created = await api.post(f"/agents/{agent.id}/tests", json=case)
                assert created.status_code == 201, created.text
            started = await api.post(f"/agents/{agent.id}/test-runs", json={})
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]

            def asked(text: str) -> int:
                return sum(text in str(body["messages"]) for body in scripted_llm.requests)

            # Mid-run: the first case stored, the second waiting on the LLM.
            await until(lambda: asked(SECOND_LINE), seconds=60)
            run = await TestRun.get(id=run_id)
            assert run.status == "running" and len(run.cases[0]["attempts"]) == 1
            server.kill()

            restarted = serve(settings, log)
            server = restarted
            server.start()
            await server.wait_until_up()

            async def finished() -> dict | None:
                body = (await api.get(f"{server.url}/test-runs/{run_id}")).json()
                return body if body["status"] not in ("queued", "running") else None

            result = await until(finished, seconds=120, every=0.2)
    finally:
        server.stop()

    assert result["status"] == "passed", (result, server.log_tail())
    assert [len(case["attempts"]) for case in result["cases"]] == [1, 1]
    assert (result["passed"], result["failed"]) == (2, 0)
    assert asked(FIRST_LINE) == 1  # the finished case was not run again
    events = await WebhookDelivery.filter(event_type="test_run.completed").count()
    assert events == 1
