"""Agents that hand a call to each other: the one `handoff` tool and its bookkeeping.

An agent's `handoff_destinations` name other agents of its workspace (their specs travel in
`CallSpec.handoff_agents`). The LLM sees one `handoff` tool whose `name` is an enum of them; the
tool returns the next agent, and livekit-agents' own agent hand-off swaps it in within the same
session and room: its prompt, voice, models, knowledge and functions take over, with the
conversation so far (`carry: "transcript"`) or a summary of it (`carry: "summary"`) as context.
Each hand-off is recorded in `CallState.handoffs`; `max_handoffs` (the answering agent's) bounds
a chain, so two agents cannot pass a caller back and forth forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from livekit.agents import Agent, llm
from livekit.agents.llm import ToolError, function_tool
from livekit.agents.voice import RunContext

from runtime.spec import AgentSpec, CallSpec, HandoffDestinationSpec
from runtime.summaries import current_llm, summarise

if TYPE_CHECKING:
    from runtime.agent import CallState

logger = logging.getLogger(__name__)

HANDOFF_TOOL = "handoff"
SUMMARY_NOTE = "You are taking over this call from another assistant. What happened so far: {}"

#: Builds the next agent: (its call spec, the destination, the context it starts with).
MakeAgent = Callable[[CallSpec, HandoffDestinationSpec, llm.ChatContext], Agent]


def handoff_target(call: CallSpec, state: CallState, agent_id: str) -> AgentSpec | None:
    """The spec of the agent `agent_id` in this call (the answering one included)."""
    if agent_id == state.call.agent.agent_id:
        return state.call.agent
    return call.handoff_agents.get(agent_id)


def carried_context(chat_ctx: llm.ChatContext) -> llm.ChatContext:
    """The conversation so far as the next agent gets it, without the last agent's prompt and
    tool calls (its tools are not the next agent's)."""
    return chat_ctx.copy(
        exclude_instructions=True,
        exclude_function_call=True,
        exclude_handoff=True,
        exclude_config_update=True,
        exclude_empty_message=True,
    )


def build_handoff_tool(
    call: CallSpec, state: CallState, make_agent: MakeAgent
) -> llm.RawFunctionTool | None:
    """`handoff`: the LLM names one of the agent's hand-off destinations (an enum it sees).

    Only destinations whose agent this call can run are offered (a chat carries none, an agent
    since deleted is gone); None when that leaves nothing.
    """
    destinations = [
        d for d in call.agent.handoff_destinations if handoff_target(call, state, d.agent_id)
    ]
    if not destinations:
        return None
    listed = "\n".join(f"- {d.name}: {d.description or 'no description'}" for d in destinations)

    async def handoff(raw_arguments: dict[str, object], context: RunContext) -> Any:
        name = str(raw_arguments.get("name") or "")
        reason = str(raw_arguments.get("reason") or "").strip()[:500] or None
        destination = next((d for d in destinations if d.name == name), None)
        if destination is None:
            names = ", ".join(d.name for d in destinations)
            raise ToolError(f"There is no agent {name!r} to hand over to; choose one of: {names}.")
        limit = state.call.agent.max_handoffs
        if len(state.handoffs) >= limit:
            logger.info("call %s: hand-off to %s refused (%d made)", call.call_id, name, limit)
            raise ToolError(
                "This call cannot be handed over again. Help the caller yourself from here."
            )
        spec = handoff_target(call, state, destination.agent_id)
        if spec is None:
            raise ToolError(f"{name} is not available now. Help the caller yourself.")
        session = context.session
        if destination.carry == "summary":
            summary = await summarise(current_llm(session), session.history)
            chat_ctx = llm.ChatContext.empty()
            chat_ctx.add_message(role="assistant", content=SUMMARY_NOTE.format(summary))
        else:
            chat_ctx = carried_context(session.current_agent.chat_ctx)
        state.handoffs.append(
            {
                "from_agent_id": call.agent.agent_id,
                "to_agent_id": spec.agent_id,
                "name": destination.name,
                "at": datetime.fromtimestamp(time.time(), UTC).isoformat(),
                "reason": reason,
            }
        )
        state.agent_id = spec.agent_id
        logger.info(
            "call %s: agent %s hands the call to %s (%s)",
            call.call_id,
            call.agent.agent_id,
            spec.agent_id,
            destination.name,
        )
        return make_agent(call.replace(agent=spec), destination, chat_ctx)

    return function_tool(
        handoff,
        raw_schema={
            "name": HANDOFF_TOOL,
            "description": (
                "Hand the call to another assistant when the caller's request is theirs to "
                "handle. They take over at once with the conversation so far; do not say "
                f"goodbye.\n{listed}"
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "enum": [d.name for d in destinations],
                        "description": "The assistant to hand the call to",
                    },
                    "reason": {
                        "type": "string",
                        "description": "In a few words, why they should take over",
                    },
                },
                "required": ["name"],
            },
        },
    )
