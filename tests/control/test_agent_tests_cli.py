"""`voxline test` against `voxline serve`: a YAML suite synced by name, run, summarised, written
as JUnit XML, and the exit status CI reads (0 passed, 1 failed, 2 bad usage or file)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
import yaml

from control.models import AgentTestCase, Role
from control.services.agents import create_agent
from control.services.workspaces import create_api_key
from tests.conftest import make_user, scripted_agent_config
from tests.control.test_batch_cli import voxline
from tests.servers import ControlPlaneProcess

HOURS = {"user": "What are your opening hours?"}


def suite(path, *cases) -> str:
    path.write_text(yaml.safe_dump({"tests": list(cases)}))
    return str(path)


def junit_counts(path) -> dict[str, str]:
    suite_element = ElementTree.parse(path).getroot().find("testsuite")
    assert suite_element is not None
    return {name: suite_element.get(name) for name in ("tests", "failures", "errors")}


@pytest.mark.postgres_only(reason="the CLI's server and the test share the database")
async def test_a_suite_runs_from_the_cli_with_junit_and_exit_codes(
    settings, db, scripted_llm, tmp_path
):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    _, secret = await create_api_key(workspace.id, user, "ci", Role.DEVELOPER)
    agent = await create_agent(
        settings.model_copy(update={"allow_private_urls": True}),
        workspace.id,
        scripted_agent_config(scripted_llm, agent_name="Shop"),
    )
    scripted_llm.on("opening hours", "We are open 9 to 5 every day.")
    server = ControlPlaneProcess(
        settings,
        tmp_path / "serve.log",
        VOXLINE_BACKGROUND_WORKERS="true",
        VOXLINE_JOBS_POLL_SECONDS="0.1",
        VOXLINE_JWT_SECRET=settings.jwt_secret,
        VOXLINE_ENCRYPTION_KEY=settings.encryption_key,
        VOXLINE_ALLOW_PRIVATE_URLS="true",
        VOXLINE_TEST_JUDGE_LOCAL="false",
        OPENAI_API_KEY="",
    )
    server.start()
    try:
        await server.wait_until_up()
        env = {"VOXLINE_API_URL": server.url, "VOXLINE_API_KEY": secret}
        agent_id = str(agent.id)
        passing = {**HOURS, "expect": [{"type": "reply_contains", "text": "9 to 5"}]}
        failing = {**HOURS, "expect": [{"type": "reply_contains", "text": "midnight"}]}

        green = suite(tmp_path / "green.yaml", {"name": "hours", "turns": [passing]})
        junit = tmp_path / "junit.xml"
        code, output = await voxline(
            "test", green, "--agent", agent_id, "--junit", str(junit), env=env
        )
        assert code == 0, output + server.log_tail()
        assert "hours" in output and "1 passed, 0 failed" in output
        assert "tested agent version 1" in output
        assert junit_counts(junit) == {"tests": "1", "failures": "0", "errors": "0"}
        code, output = await voxline(
            "test", green, "--agent", agent_id, "--agent-version", "1", env=env
        )
        assert code == 0 and "tested agent version 1" in output, output
        code, output = await voxline(
            "test", green, "--agent", agent_id, "--agent-version", "9", env=env
        )
        assert code == 2 and "VERSION_NOT_FOUND" in output, output

        # The same name updates the stored case; a new name adds one.
        red = suite(
            tmp_path / "red.yaml",
            {"name": "hours", "turns": [failing]},
            {"name": "hours again", "turns": [passing]},
        )
        code, output = await voxline(
            "test", red, "--agent", agent_id, "--junit", str(junit), env=env
        )
        assert code == 1, output + server.log_tail()
        assert "midnight" in output and "1 passed, 1 failed" in output
        assert junit_counts(junit) == {"tests": "2", "failures": "1", "errors": "0"}
        assert sorted(await AgentTestCase.all().values_list("name", flat=True)) == [
            "hours",
            "hours again",
        ]

        # Stored cases alone: still the failing one.
        code, output = await voxline("test", "--agent", agent_id, env=env)
        assert code == 1 and "1 passed, 1 failed" in output, output

        unknown_function = {**HOURS, "expect": [{"type": "tool_called", "name": "launch"}]}
        invalid = suite(tmp_path / "bad.yaml", {"name": "x", "turns": [unknown_function]})
        code, output = await voxline("test", invalid, "--agent", agent_id, env=env)
        assert code == 2 and "tests[0].turns[0].expect[0].name" in output, output

        not_a_suite = tmp_path / "nope.yaml"
        not_a_suite.write_text("hello: [")
        code, output = await voxline("test", str(not_a_suite), "--agent", agent_id, env=env)
        assert code == 2 and "not valid YAML" in output, output
        code, output = await voxline("test", green, "--agent", agent_id, "--repeat", "11", env=env)
        assert code == 2, output
    finally:
        server.stop()
