"""What every scripted vendor LLM stand-in shares (Anthropic's, Gemini's): rules that answer a
request by its caller's last line or by the tool result it carries, the requests and keys it
received, and scripted failures. Each vendor's wire format reads its own bodies
(`last_user_text`, `tool_result`)."""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.background import BackgroundServer
from tests.fakes.openai_server import Reply, Rule, ToolCall, _as_reply


class ScriptedVendorLLM(BackgroundServer):
    """A vendor LLM stand-in answering by rules. `requests` holds each request's JSON body,
    `api_keys` the key header it carried (None when absent); `fail_with` makes the next requests
    answer those HTTP statuses."""

    def __init__(self, *, default_reply: str = "Sorry, I did not get that.") -> None:
        super().__init__()
        self.default_reply = default_reply
        self.rules: list[Rule] = []
        self.requests: list[dict[str, Any]] = []
        self.api_keys: list[str | None] = []
        self.fail_with: list[int] = []

    @staticmethod
    def last_user_text(body: dict[str, Any]) -> str:
        raise NotImplementedError

    @staticmethod
    def tool_result(body: dict[str, Any]) -> tuple[str, str] | None:
        """(tool name, its output) when the request answers a tool call, else None."""
        raise NotImplementedError

    def on(self, pattern: str, reply: str | ToolCall | Reply) -> None:
        """Answer user messages matching `pattern` (a case-insensitive regex)."""
        regex = re.compile(pattern, re.IGNORECASE)

        def matcher(body: dict[str, Any]) -> bool:
            return self.tool_result(body) is None and bool(regex.search(self.last_user_text(body)))

        self.rules.append(Rule(matcher, _as_reply(reply, None)))

    def on_tool(self, name: str, reply: str | Reply) -> None:
        """Answer tool `name`'s result; `{tool_output}` in the text is replaced by it."""

        def matcher(body: dict[str, Any]) -> bool:
            result = self.tool_result(body)
            return result is not None and result[0] == name

        self.rules.append(Rule(matcher, _as_reply(reply, None)))

    def reset(self) -> None:
        self.rules.clear()
        self.requests.clear()
        self.api_keys.clear()
        self.fail_with.clear()

    def choose(self, body: dict[str, Any]) -> Reply:
        """The reply of the first rule the request matches, else the default reply."""
        for rule in self.rules:
            if rule.matcher(body):
                reply = rule.reply(body) if callable(rule.reply) else rule.reply
                result = self.tool_result(body)
                if result is not None:
                    text = reply.text.replace("{tool_output}", result[1])
                    reply = Reply(text=text, tool_calls=reply.tool_calls)
                return reply
        return Reply(text=self.default_reply)
