"""Agent tests in voice mode: each caller line is spoken (Piper) into the agent's real STT → LLM →
TTS pipeline (faster-whisper, the scripted LLM, Piper), as `voxline simulate` runs a call.

The scripted LLM answers by turn, never by the words whisper heard; what was heard is compared
with what was said by word error rate, never word for word.
"""

from __future__ import annotations

import json

import pytest

from control import jobs
from control.models import Role
from tests.conftest import auth_headers, make_user, scripted_agent_config
from tests.control.conftest import check_inventory
from tests.control.test_agent_tests import MOCKS, add_case, run_to_end
from tests.fakes.openai_server import tool_call
from tests.speech import word_error_rate

pytest.importorskip("faster_whisper", reason="the 'local' extra is not installed")
pytest.importorskip("piper", reason="the 'local' extra is not installed")

STOCK_LINE = "Is the blue kettle in stock?"
HOURS_LINE = "What are your opening hours?"


@pytest.fixture
async def spoken_shop(client, settings, redis, scripted_llm, inventory_api, monkeypatch):
    """A developer's agent hearing and speaking offline, on the scripted LLM, with a function."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    local = settings.model_copy(
        update={"allow_private_urls": True, "test_judge_local": False, "test_voice_speed": 4.0}
    )
    client.app.config["SETTINGS"] = local
    inventory_api[1].clear()
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    body = scripted_agent_config(
        scripted_llm,
        agent_name="Shop",
        STT_provider="local",
        TTS_provider="local",
        first_message="Hello, Acme Shop.",
        custom_functions=[check_inventory(inventory_api[0])],
    )
    headers = auth_headers(settings, user)
    created = await client.post("/agents", json=body, headers=headers)
    assert created.status_code == 201, await created.get_json()
    yield {
        "id": (await created.get_json())["id"],
        "headers": headers,
        "workspace": workspace,
        "jobs": jobs.JobContext(local, redis),
    }
    client.app.config["SETTINGS"] = settings


async def test_a_voice_run_speaks_each_line_and_judges_what_the_agent_heard_and_said(
    client,
    spoken_shop,
    scripted_llm,
    inventory_api,
):
    # by turn: the first line gets the function call, every later one the opening hours
    scripted_llm.on(".", tool_call("check_inventory", sku="A-100"), times=1)
    scripted_llm.on_tool("check_inventory", "Yes, it is in stock: {tool_output}")
    scripted_llm.on(".", "We are open nine to five every day.")
    await add_case(
        client,
        spoken_shop,
        {
            "name": "stock then hours",
            "mocks": MOCKS,
            "turns": [
                {
                    "user": STOCK_LINE,
                    "expect": [
                        {"type": "tool_called", "name": "check_inventory"},
                        {"type": "reply_contains", "text": "in stock"},
                        {"type": "max_latency_ms", "value": 120000},
                    ],
                },
                {
                    "user": HOURS_LINE,
                    "expect": [
                        {"type": "reply_contains", "text": "nine to five"},
                        {"type": "reply_not_contains", "text": "nine to five"},
                    ],
                },
            ],
        },
    )

    run = await run_to_end(client, spoken_shop, mode="voice")

    assert run["mode"] == "voice" and run["status"] == "failed", run
    [case] = run["cases"]
    [attempt] = case["attempts"]
    statuses = [(e["type"], e["status"]) for e in attempt["expectations"]]
    assert statuses == [
        ("tool_called", "passed"),
        ("reply_contains", "passed"),
        ("max_latency_ms", "passed"),
        ("reply_contains", "passed"),
        ("reply_not_contains", "failed"),
    ]
    assert "nine to five" in attempt["expectations"][-1]["reason"]
    transcript = attempt["transcript"]
    assert transcript[0] == {"role": "assistant", "text": "Hello, Acme Shop."}  # the greeting
    said = [entry for entry in transcript if entry["role"] == "user"]
    assert [entry["text"] for entry in said] == [STOCK_LINE, HOURS_LINE]
    for entry in said:  # both what was said and what the agent's STT heard
        assert word_error_rate(entry["text"], entry["heard"]) < 0.5, entry
    tool = next(entry for entry in transcript if entry["role"] == "tool_call")
    assert tool["mocked"] is True and json.loads(tool["result"]) == {"in_stock": 3}
    assert inventory_api[1] == []  # the mocked function's endpoint saw nothing
    # end of speech → first audio, every turn, in voice mode
    assert [turn["turn"] for turn in attempt["latencies"]] == [0, 1]
    assert all((turn["first_audio_ms"] or 0) > 0 for turn in attempt["latencies"]), attempt[
        "latencies"
    ]
