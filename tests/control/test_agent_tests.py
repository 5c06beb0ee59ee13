"""Agent tests through the API: cases validated at save, runs on the job queue against the
scripted OpenAI stand-in, mocked functions never called, judged and not judged, cancelled."""

from __future__ import annotations

import json

import pytest

from control import jobs
from control.models import AgentTestCase, Role, TestRun, WebhookDelivery
from control.services import webhooks
from tests.conftest import auth_headers, make_user, scripted_agent_config
from tests.control.conftest import check_inventory
from tests.fakes.openai_server import Reply, tool_call

OPENING_HOURS = {
    "user": "What are your opening hours?",
    "expect": [{"type": "reply_contains", "text": "9 to 5"}, {"type": "no_tool_called"}],
}
IN_STOCK = {
    "user": "Is A-100 in stock?",
    "expect": [
        {"type": "tool_called", "name": "check_inventory", "arguments": {"sku": "A-100"}},
        {"type": "reply_contains", "text": "in_stock"},
        {"type": "max_latency_ms", "value": 60000},
    ],
}
MOCKS = {"check_inventory": {"response": {"in_stock": 3}}}


@pytest.fixture
async def shop(client, settings, redis, scripted_llm, inventory_api, monkeypatch):
    """A developer's agent on the scripted LLM with one custom function, and a job runner."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    local = settings.model_copy(update={"allow_private_urls": True, "test_judge_local": False})
    client.app.config["SETTINGS"] = local
    inventory_api[1].clear()
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    headers = auth_headers(settings, user)
    body = scripted_agent_config(
        scripted_llm,
        agent_name="Shop",
        system_prompt="You are the assistant of Acme Shop.",
        custom_functions=[check_inventory(inventory_api[0])],
    )
    created = await client.post("/agents", json=body, headers=headers)
    assert created.status_code == 201, await created.get_json()
    scripted_llm.on("in stock", tool_call("check_inventory", sku="A-100"))
    scripted_llm.on_tool("check_inventory", "Yes: {tool_output}")
    scripted_llm.on("opening hours", "We are open 9 to 5 every day.")
    yield {
        "id": (await created.get_json())["id"],
        "headers": headers,
        "workspace": workspace,
        "jobs": jobs.JobContext(local, redis),
    }
    client.app.config["SETTINGS"] = settings


async def add_case(client, shop, case: dict) -> dict:
    response = await client.post(f"/agents/{shop['id']}/tests", json=case, headers=shop["headers"])
    body = await response.get_json()
    assert response.status_code == 201, body
    return body


async def run_to_end(client, shop, **request) -> dict:
    started = await client.post(
        f"/agents/{shop['id']}/test-runs", json=request, headers=shop["headers"]
    )
    queued = await started.get_json()
    assert started.status_code == 202, queued
    assert queued["status"] == "queued"
    await jobs.drain(shop["jobs"])
    response = await client.get(f"/test-runs/{queued['id']}", headers=shop["headers"])
    assert response.status_code == 200
    return await response.get_json()


async def test_a_passing_case_passes_and_a_mocked_function_is_never_called(
    client,
    shop,
    inventory_api,
):
    case = await add_case(
        client, shop, {"name": "stock", "turns": [OPENING_HOURS, IN_STOCK], "mocks": MOCKS}
    )
    assert case["kind"] == "scripted" and case["id"]

    run = await run_to_end(client, shop)

    assert run["status"] == "passed", run
    assert (run["passed"], run["failed"], run["not_judged"]) == (1, 0, 0)
    [result] = run["cases"]
    assert result["name"] == "stock" and result["pass_rate"] == 1.0
    [attempt] = result["attempts"]
    assert {e["status"] for e in attempt["expectations"]} == {"passed"}
    tool = next(entry for entry in attempt["transcript"] if entry["role"] == "tool_call")
    assert tool["name"] == "check_inventory" and tool["mocked"] is True
    assert json.loads(tool["result"]) == {"in_stock": 3}
    assert inventory_api[1] == []  # the endpoint behind the mocked function saw nothing
    assert [turn["turn"] for turn in attempt["latencies"]] == [0, 1]


async def test_an_unmocked_function_is_called_as_on_a_call(
    client,
    shop,
    inventory_api,
):
    await add_case(client, shop, {"name": "real stock", "turns": [IN_STOCK]})
    run = await run_to_end(client, shop)
    assert run["status"] == "passed", run
    assert [request["body"] for request in inventory_api[1]] == [{"sku": "A-100"}]


async def test_a_failing_case_fails_with_the_reason(client, shop):
    await add_case(
        client,
        shop,
        {
            "name": "late",
            "turns": [
                {
                    "user": "What are your opening hours?",
                    "expect": [
                        {"type": "reply_contains", "text": "midnight"},
                        {"type": "tool_called", "name": "check_inventory"},
                        {"type": "reply_matches", "pattern": r"\b9 to 5\b"},
                    ],
                }
            ],
        },
    )
    run = await run_to_end(client, shop, repeat=2)
    assert run["status"] == "failed" and (run["passed"], run["failed"]) == (0, 1)
    [result] = run["cases"]
    assert result["status"] == "failed" and result["pass_rate"] == 0.0
    assert len(result["attempts"]) == 2
    contains, called, matches = result["attempts"][0]["expectations"]
    assert contains["status"] == "failed" and "midnight" in contains["reason"]
    assert called["status"] == "failed" and "check_inventory was not called" in called["reason"]
    assert matches["status"] == "passed"


async def test_a_judge_expectation_without_a_judge_is_not_judged(client, shop):
    turn = {**OPENING_HOURS, "expect": [{"type": "judge", "criterion": "The reply is polite"}]}
    await add_case(client, shop, {"name": "polite", "turns": [turn]})
    run = await run_to_end(client, shop)
    assert run["status"] == "failed"  # never counted as passed
    assert (run["passed"], run["not_judged"]) == (0, 1)
    [expectation] = run["cases"][0]["attempts"][0]["expectations"]
    assert expectation["status"] == "not_judged"
    assert any("No judge" in warning for warning in run["warnings"])


async def test_a_scripted_judge_decides_an_expectation_and_a_simulated_case(
    client, shop, scripted_llm, monkeypatch
):
    # The judge and the simulated caller are the platform's OpenAI: the same stand-in.
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    scripted_llm.rules.clear()
    scripted_llm.on(
        r"(?s)^Judge this.*Criterion: The reply gives the hours",
        Reply(text='{"passed": true, "reason": "It says 9 to 5."}'),
    )
    scripted_llm.on(
        r"(?s)^Judge this.*Criterion: The reply is in French",
        Reply(text='{"passed": false, "reason": "It is in English."}'),
    )
    scripted_llm.on(
        r"(?s)^Judge this.*Criterion: The caller learnt",
        Reply(text='{"passed": true, "reason": "The agent gave the hours."}'),
    )
    scripted_llm.on(r"call has connected", "Hi, when are you open?")  # the caller's first line
    scripted_llm.on(r"open 9 to 5", "Great, thanks. Bye! [END]")  # the caller, answered
    scripted_llm.on(r"when are you open", "We are open 9 to 5 every day.")  # the agent
    turn = {
        "user": "When are you open?",
        "expect": [
            {"type": "judge", "criterion": "The reply gives the hours"},
            {"type": "judge", "criterion": "The reply is in French"},
        ],
    }
    await add_case(client, shop, {"name": "judged", "turns": [turn]})
    await add_case(
        client,
        shop,
        {
            "name": "simulated",
            "kind": "simulated",
            "persona": "A busy customer",
            "goal": "Learn the opening hours",
            "max_turns": 4,
            "success": ["The caller learnt the opening hours"],
        },
    )
    run = await run_to_end(client, shop, judge={"provider": "openai", "model": "gpt-4o-mini"})
    cases = {case["name"]: case for case in run["cases"]}
    hours, french = cases["judged"]["attempts"][0]["expectations"]
    assert (hours["status"], hours["reason"]) == ("passed", "It says 9 to 5.")
    assert (french["status"], french["reason"]) == ("failed", "It is in English.")
    simulated = cases["simulated"]["attempts"][0]
    assert simulated["status"] == "passed", simulated
    caller_lines = [entry["text"] for entry in simulated["transcript"] if entry["role"] == "user"]
    assert caller_lines == ["Hi, when are you open?", "Great, thanks. Bye!"]  # then it hung up
    assert simulated["expectations"][0]["reason"] == "The agent gave the hours."
    assert run["status"] == "failed" and (run["passed"], run["failed"]) == (1, 1)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ({"name": "x", "turns": []}, "turns"),
        (
            {"name": "x", "turns": [{"user": "hi", "expect": [{"type": "nope"}]}]},
            "turns[0].expect[0].type",
        ),
        (
            {
                "name": "x",
                "turns": [
                    {"user": "a"},
                    {"user": "b"},
                    {"user": "c", "expect": [{"type": "tool_called", "name": "launch"}]},
                ],
            },
            "turns[2].expect[0].name",
        ),
        (
            {
                "name": "x",
                "turns": [{"user": "a", "expect": [{"type": "reply_matches", "pattern": "("}]}],
            },
            "turns[0].expect[0].pattern",
        ),
        (
            {
                "name": "x",
                "kind": "simulated",
                "persona": "p",
                "goal": "g",
                "success": ["s"],
                "max_turns": 51,
            },
            "max_turns",
        ),
        (
            {
                "name": "x",
                "kind": "simulated",
                "persona": "p",
                "goal": "g",
                "success": ["s"],
                "max_turns": 0,
            },
            "max_turns",
        ),
        (
            {"name": "x", "turns": [{"user": "a"}], "mocks": {"launch": {"response": 1}}},
            "mocks.launch",
        ),
    ],
)
async def test_bad_cases_are_400_naming_the_field(client, shop, case, field):
    response = await client.post(f"/agents/{shop['id']}/tests", json=case, headers=shop["headers"])
    body = await response.get_json()
    assert response.status_code == 400, body
    assert body["code"] == "INVALID_TEST_CASE"
    assert field in [error["field"] for error in body["errors"]]


async def test_cases_are_edited_listed_scoped_and_guarded(client, settings, shop):
    case = await add_case(client, shop, {"name": "hours", "turns": [OPENING_HOURS]})
    path = f"/agents/{shop['id']}/tests/{case['id']}"
    duplicate = await client.post(
        f"/agents/{shop['id']}/tests",
        json={"name": "hours", "turns": [OPENING_HOURS]},
        headers=shop["headers"],
    )
    assert duplicate.status_code == 409
    patched = await client.patch(path, json={"name": "opening"}, headers=shop["headers"])
    assert patched.status_code == 200 and (await patched.get_json())["turns"][0]["user"]
    bad = await client.patch(path, json={"turns": []}, headers=shop["headers"])
    assert bad.status_code == 400

    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=shop["workspace"])
    as_member = auth_headers(settings, member)
    listed = await (await client.get(f"/agents/{shop['id']}/tests", headers=as_member)).get_json()
    assert [item["name"] for item in listed["items"]] == ["opening"] and listed["total"] == 1
    refused = await client.post(
        f"/agents/{shop['id']}/tests",
        json={"name": "m", "turns": [OPENING_HOURS]},
        headers=as_member,
    )
    assert refused.status_code == 403
    run_refused = await client.post(f"/agents/{shop['id']}/test-runs", json={}, headers=as_member)
    assert run_refused.status_code == 403

    outsider, _ = await make_user("outsider@example.com", role=Role.ADMIN)
    as_outsider = auth_headers(settings, outsider)
    assert (await client.get(path, headers=as_outsider)).status_code == 404
    assert (await client.get(f"/agents/{shop['id']}/tests", headers=as_outsider)).status_code == 404

    assert (await client.delete(path, headers=shop["headers"])).status_code == 204
    assert (await client.get(path, headers=shop["headers"])).status_code == 404


async def test_a_run_is_one_at_a_time_cancellable_and_announced_once(client, shop, scripted_llm):
    await webhooks.set_endpoint(shop["jobs"].settings, shop["workspace"].id, "http://127.0.0.1:9/")
    await add_case(client, shop, {"name": "hours", "turns": [OPENING_HOURS]})
    video = await client.post(
        f"/agents/{shop['id']}/test-runs", json={"mode": "video"}, headers=shop["headers"]
    )
    assert video.status_code == 400  # said plainly, not queued
    judge = {"judge": {"provider": "nope"}}
    unknown = await client.post(
        f"/agents/{shop['id']}/test-runs", json=judge, headers=shop["headers"]
    )
    assert unknown.status_code == 400
    assert (await unknown.get_json())["errors"][0]["field"] == "judge.provider"
    first = await client.post(f"/agents/{shop['id']}/test-runs", json={}, headers=shop["headers"])
    run_id = (await first.get_json())["id"]
    second = await client.post(f"/agents/{shop['id']}/test-runs", json={}, headers=shop["headers"])
    assert second.status_code == 409
    assert (await second.get_json())["code"] == "TEST_RUN_IN_PROGRESS"

    cancelled = await client.delete(f"/test-runs/{run_id}", headers=shop["headers"])
    assert cancelled.status_code == 200
    assert (await cancelled.get_json())["status"] == "cancelled"
    await jobs.drain(shop["jobs"])  # the queued job finds the run cancelled and leaves it
    run = await TestRun.get(id=run_id)
    assert run.status == "cancelled" and run.cases[0]["attempts"] == []
    assert scripted_llm.requests == []
    again = await client.delete(f"/test-runs/{run_id}", headers=shop["headers"])
    assert again.status_code == 409

    finished = await run_to_end(client, shop)
    assert finished["status"] == "passed"
    events = await WebhookDelivery.filter(event_type="test_run.completed").values_list(
        "payload", flat=True
    )
    assert sorted(event["data"]["status"] for event in events) == ["cancelled", "passed"]
    listed = await (
        await client.get(f"/agents/{shop['id']}/test-runs", headers=shop["headers"])
    ).get_json()
    assert [item["status"] for item in listed["items"]] == ["passed", "cancelled"]


async def test_a_run_picked_up_again_does_not_repeat_finished_attempts(client, shop, scripted_llm):
    """A restart mid-run: the job's lease runs out and the job runs again; the attempt stored
    before the crash is not run (or counted) twice."""
    await add_case(client, shop, {"name": "hours", "turns": [OPENING_HOURS]})
    started = await client.post(
        f"/agents/{shop['id']}/test-runs", json={"repeat": 2}, headers=shop["headers"]
    )
    run_id = (await started.get_json())["id"]
    await jobs.drain(shop["jobs"])
    run = await TestRun.get(id=run_id)
    first_attempt = run.cases[0]["attempts"][0]
    # As a crash after the first attempt leaves it: running, one attempt stored.
    await TestRun.filter(id=run_id).update(
        status="running",
        finished_at=None,
        cases=[{**run.cases[0], "attempts": [first_attempt], "status": None}],
    )
    asked = len(scripted_llm.requests)
    from control.services.agent_tests import execute_run

    await execute_run(shop["jobs"].settings, run.id)
    run = await TestRun.get(id=run_id)
    assert run.status == "passed"
    assert [a["attempt"] for a in run.cases[0]["attempts"]] == [1, 2]
    assert run.cases[0]["attempts"][0] == first_attempt
    assert len(scripted_llm.requests) == asked + 1  # only the second attempt ran again


async def test_the_demo_agent_gets_a_starter_suite_once(settings, db):
    from control.services import demo

    first = await demo.seed(settings)
    await demo.seed(settings)  # again: nothing added
    names = await AgentTestCase.filter(agent_id=first.agent.id).values_list("name", flat=True)
    assert sorted(names) == sorted(case["name"] for case in demo.DEMO_TESTS)


def test_the_starter_suite_passes_on_the_demo_knowledges_own_answers():
    """The answers the demo agent gives from its knowledge (grounded, as with the local model)
    meet the starter suite's rules; a wrong answer does not."""
    from control.services.agent_tests import check_rule
    from control.services.demo import DEMO_TESTS
    from runtime.chat import ChatReply

    answers = {
        "opening hours": "Harbor Cafe is open Monday to Friday from 7 am to 6 pm.",
        "a price": "A large coffee costs four dollars.",
        "an unknown question": "Sorry, I don't know about that.",
        "goodbye": "Thank you for calling, goodbye!",
    }
    for case in DEMO_TESTS:
        [turn] = case["turns"]
        for expectation in turn["expect"]:
            right = check_rule(expectation, ChatReply(reply=answers[case["name"]]))
            assert right["status"] == "passed", (case["name"], right)
    wrong = check_rule(DEMO_TESTS[1]["turns"][0]["expect"][0], ChatReply(reply="It is free."))
    assert wrong["status"] == "failed"


async def test_runs_of_two_agents_at_once_keep_their_own_transcripts(client, shop, scripted_llm):
    other = await client.post(
        "/agents",
        json=scripted_agent_config(scripted_llm, agent_name="Bakery"),
        headers=shop["headers"],
    )
    bakery = {**shop, "id": (await other.get_json())["id"]}
    scripted_llm.on("bread", "We bake sourdough daily.")
    await add_case(client, shop, {"name": "hours", "turns": [OPENING_HOURS]})
    bread = {"user": "Do you have bread?", "expect": [{"type": "reply_contains", "text": "dough"}]}
    await add_case(client, bakery, {"name": "bread", "turns": [bread]})
    ids = []
    for agent in (shop, bakery):
        started = await client.post(
            f"/agents/{agent['id']}/test-runs", json={}, headers=shop["headers"]
        )
        assert started.status_code == 202
        ids.append((await started.get_json())["id"])
    await jobs.drain(shop["jobs"])
    runs = [
        await (await client.get(f"/test-runs/{run_id}", headers=shop["headers"])).get_json()
        for run_id in ids
    ]
    assert [run["status"] for run in runs] == ["passed", "passed"]
    said = [
        [entry["text"] for entry in run["cases"][0]["attempts"][0]["transcript"]] for run in runs
    ]
    assert said == [
        ["What are your opening hours?", "We are open 9 to 5 every day."],
        ["Do you have bread?", "We bake sourdough daily."],
    ]


async def test_a_judge_uses_the_workspaces_key_for_its_vendor(
    client, shop, scripted_llm, monkeypatch
):
    """No platform key: the workspace's OpenAI key (set once, for its vendor) judges the run."""
    from control.services import providers

    monkeypatch.setenv("OPENAI_BASE_URL", scripted_llm.base_url)  # the operator's endpoint
    await providers.put_credentials(
        shop["jobs"].settings,
        shop["workspace"].id,
        "openai",
        api_key="sk-workspace-judge",
        region=None,
        base_url=None,
    )
    scripted_llm.on(r"(?s)^Judge this", Reply(text='{"passed": true, "reason": "Hours given."}'))
    turn = {"user": "When are you open?", "expect": [{"type": "judge", "criterion": "Hours"}]}
    scripted_llm.on(r"when are you open", "We are open 9 to 5 every day.")
    await add_case(client, shop, {"name": "judged", "turns": [turn]})

    run = await run_to_end(client, shop, judge={"provider": "openai", "model": "gpt-4o-mini"})

    [expectation] = run["cases"][0]["attempts"][0]["expectations"]
    assert (expectation["status"], expectation["reason"]) == ("passed", "Hours given.")
    assert "Bearer sk-workspace-judge" in scripted_llm.authorizations
