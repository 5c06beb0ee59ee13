"""The demo workspace: an admin user and an agent on the offline providers, with knowledge."""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from dataclasses import dataclass

import knowledge
from control.config import Settings
from control.models import (
    Agent,
    AgentTestCase,
    FileStatus,
    KnowledgeFile,
    Membership,
    Role,
    User,
    Workspace,
)
from control.security import hash_password
from control.services import agent_tests
from control.services import agents as agent_service

logger = logging.getLogger(__name__)

DEMO_EMAIL = "demo@voxline.local"
DEMO_SLUG = "voxline-demo"
DEMO_AGENT_NAME = "Voxline Demo"
DEMO_FILE = "harbor-cafe.md"
DEMO_KNOWLEDGE = """# Harbor Cafe

## Opening hours
Harbor Cafe is open Monday to Friday from 7 am to 6 pm, and on weekends from 8 am to 4 pm.

## Menu
We serve coffee, tea, fresh pastries, sandwiches and a soup of the day. A large coffee costs
four dollars. The soup of the day on Tuesdays is tomato basil.

## Reservations and events
Tables for groups of six or more can be reserved by phone. The back room can be booked for
private events of up to thirty people.

## Location
Harbor Cafe is at 12 Pier Street, next to the ferry terminal. Parking is free after 5 pm.
"""
DEMO_AGENT = {
    "agent_name": DEMO_AGENT_NAME,
    "LLM_provider": "local",
    "STT_provider": "local",
    "TTS_provider": "local",
    "system_prompt": (
        "You are the friendly phone assistant of Harbor Cafe. Answer in one or two short "
        "sentences. Opening hours: weekdays 7 am to 6 pm, weekends 8 am to 4 pm. "
        "Address: 12 Pier Street, next to the ferry terminal."
    ),
    "first_message": "Hello, thanks for calling Harbor Cafe. How can I help you?",
    "max_call_duration": 300,
    # The end-of-turn model often hears a synthesised or flat question as unfinished; then a
    # turn waited the whole 3 s default (7 of 20 turns in tests/bench/bench_offline_call.py).
    "max_endpointing_delay": 1.5,
}

#: The demo agent's starter test suite (`voxline test --agent ID`): rule expectations only, so it
#: runs offline with no judge; the expectations are loose because the local model is small.
DEMO_TESTS: tuple[dict, ...] = (
    {
        "name": "opening hours",
        "turns": [
            {
                "user": "What are your opening hours?",
                "expect": [
                    {"type": "no_tool_called"},
                    {"type": "reply_matches", "pattern": r"(?i)\b(7|8|6|4)\s*(am|pm)\b"},
                ],
            }
        ],
    },
    {
        "name": "a price",
        "turns": [
            {
                "user": "How much does a large coffee cost?",
                "expect": [
                    {"type": "reply_matches", "pattern": r"(?i)\bfour\b|\$\s*4|\b4 dollars"}
                ],
            }
        ],
    },
    {
        "name": "an unknown question",
        "turns": [
            {
                "user": "Do you repair bicycles?",
                "expect": [
                    {"type": "no_tool_called"},
                    {"type": "reply_not_contains", "text": "we repair bicycles"},
                ],
            }
        ],
    },
    {
        "name": "goodbye",
        "turns": [
            {
                "user": "Thank you, goodbye!",
                "expect": [
                    {"type": "no_tool_called"},
                    {"type": "reply_matches", "pattern": r"(?i)bye|thank|welcome|great day|care"},
                ],
            }
        ],
    },
)


@dataclass(frozen=True)
class DemoSeed:
    user: User
    workspace: Workspace
    agent: Agent
    password: str | None  # set only when this run created the user with a generated password


async def find_demo_agent() -> Agent | None:
    return await Agent.filter(workspace__slug=DEMO_SLUG, agent_name=DEMO_AGENT_NAME).first()


async def seed(settings: Settings) -> DemoSeed:
    """Create what is missing of the demo; running it again changes nothing."""
    workspace, _ = await Workspace.get_or_create(slug=DEMO_SLUG, defaults={"name": "Voxline Demo"})
    user = await User.get_or_none(email=DEMO_EMAIL)
    password = None
    if user is None:
        password = os.environ.get("VOXLINE_DEMO_PASSWORD") or secrets.token_urlsafe(12)
        user = await User.create(
            email=DEMO_EMAIL,
            full_name="Demo Admin",
            password_hash=hash_password(password),
            current_workspace_id=workspace.id,
        )
        if os.environ.get("VOXLINE_DEMO_PASSWORD"):
            password = None  # the operator chose it; don't print it back
    await Membership.get_or_create(
        workspace_id=workspace.id, user_id=user.id, defaults={"role": Role.ADMIN}
    )
    agent = await find_demo_agent()
    if agent is None:
        agent = await agent_service.create_agent(settings, workspace.id, dict(DEMO_AGENT))
    file = await KnowledgeFile.get_or_none(agent_id=agent.id, filename=DEMO_FILE)
    if file is None or file.status != FileStatus.READY:
        data = DEMO_KNOWLEDGE.encode()
        result = await knowledge.ingest(str(agent.id), DEMO_FILE, "md", data)
        if file is None:
            file = KnowledgeFile(
                id=uuid.uuid4(), workspace_id=workspace.id, agent_id=agent.id, filename=DEMO_FILE
            )
        file.kind, file.size_bytes = "md", len(data)
        file.status, file.error = FileStatus.READY, None
        file.chunk_count, file.page_count = result.chunks, result.pages
        await file.save()
    have = set(await AgentTestCase.filter(agent_id=agent.id).values_list("name", flat=True))
    for case in DEMO_TESTS:
        if case["name"] not in have:
            await agent_tests.create_case(workspace.id, agent.id, dict(case))
    return DemoSeed(user=user, workspace=workspace, agent=agent, password=password)
