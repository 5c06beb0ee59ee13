"""The conversation's common moves, answered from the agent's own configuration.

Measured on the demo agent (`tests/bench/eval_local_llm.py`, small talk): left to itself, the
small local LLM greets, says who it is, thanks and says goodbye with nonsense and invented
facts. These moves need no model: what to say is in the agent's configuration. So for an LLM
too small to be trusted with them (one that cannot call tools), each caller message is first
matched against the moves:

- a greeting, or "what can you help with": the topics of the agent's knowledge (its headings)
  and of its prompt (`Opening hours: ...` lines);
- "who am I speaking to", "are you a robot": who the prompt says the agent is, honestly an AI;
- "can you repeat that": its previous reply;
- asking for a person: its transfer destinations (the caller is handed over), or that no one
  else is available;
- thanks; goodbye (a polite close, and the call ends);
- small talk ("how are you"): a friendly line and an offer to help.

A question that none of these nor the knowledge answers gets "I don't know" and what the agent
can help with (`unknown`), never a guess.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from livekit.agents import AgentSession, llm
from livekit.agents.llm import ToolError
from livekit.agents.voice.events import ConversationItemAddedEvent

from runtime.spec import AgentSpec, EndReason
from runtime.tools import Retrieve, lookup_passages

if TYPE_CHECKING:
    from runtime.agent import CallState
    from runtime.call_control import CallControl

logger = logging.getLogger(__name__)

Move = Literal[
    "greeting", "capabilities", "identity", "repeat", "person", "thanks", "goodbye", "chat"
]

#: A move is a short message; a longer one asks for more (or is not a caller's line at all).
MAX_MOVE_WORDS = 16
#: How many topics "what can you help with" names at most.
MAX_TOPICS = 5
#: Knowledge passages read for the agent's topics (their headings), once per conversation.
TOPIC_PASSAGES = 8
TOPIC_QUERY = "what can you help me with"

_OPENERS = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening|day)|yes|yeah|ok(?:ay)?|so|"
    r"um+|uh+|well|excuse me|sorry|oh|hi there|hello there|hey there|there)\b[\s,.!-]*)+"
)
_GREETING_ONLY = re.compile(
    r"(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening|day)|greetings|howdy)"
    r"(?: there)?"
)
_MOVE_PATTERNS: tuple[tuple[Move, str], ...] = (
    (
        "goodbye",
        r"\b(?:good ?bye|bye(?: bye)?|see you|see ya|that'?s all|that is all|"
        r"have a (?:nice|good|great|lovely) (?:day|one|evening|weekend)|talk to you later|"
        r"i have to go|i'?ve got to go|i gotta go)\b",
    ),
    (
        "identity",
        r"\b(?:who (?:am i|are you|is this|'?s this|is speaking|am i (?:speaking|talking) "
        r"(?:to|with))|are you (?:a |an )?(?:real |actual )?(?:robot|bot|machine|ai|human|"
        r"person|computer|real|recording|automated)|(?:am i )?(?:talking|speaking) (?:to|with)"
        r" (?:a |an )?(?:real |actual |live )?(?:person|human|robot|machine|bot|computer|ai)|"
        r"is (?:this|that) (?:a |an )?(?:real |actual |live )?(?:person|human|robot|machine|"
        r"bot|computer|recording|automated|ai)|what(?:'s| is) your name|who do i have)\b",
    ),
    (
        "person",
        r"\b(?:speak|talk|put me through|transfer me|connect me|get me|give me)\b.*"
        r"\b(?:person|human|someone|somebody|manager|agent|representative|operator|staff|"
        r"people|employee|owner)\b|"
        r"\b(?:real|live|actual) (?:person|human)\b|"
        r"^(?:a )?(?:manager|human|operator|representative|agent)(?: please)?$",
    ),
    (
        "repeat",
        r"\b(?:repeat|say (?:that|it|this) again|come again|pardon|what did you (?:just )?"
        r"say|(?:didn'?t|did not) (?:catch|hear|get|understand) (?:that|it|you|what)|"
        r"one more time|what was that)\b",
    ),
    (
        "capabilities",
        r"\b(?:(?:what|how) (?:can|could|do|will) you (?:help|do|assist)|what (?:kind|sort|"
        r"type)s? of (?:things|questions|stuff) (?:can|could|do) (?:you|i)(?: \w+)?|"
        r"what can i ask|what (?:do|can) you (?:know|do|answer)|what are you (?:for|able to "
        r"do)|how (?:does|do) (?:this|you) work|what is this (?:line|number|service) for|"
        r"what can you tell me)(?: (?:me|us|you|with|about|today|exactly|then|for|here|"
        r"please|help|with that))*$",
    ),
    (
        "chat",
        r"\b(?:how are you|how(?:'s| is| are) (?:your|it|things|you doing)|how do you do|"
        r"(?:nice|lovely|beautiful|great|terrible|awful) (?:weather|day)|"
        r"what'?s up|nice to (?:meet|talk to) you)\b",
    ),
    (
        "thanks",
        r"\b(?:thanks|thank you|thank u|cheers|much appreciated|appreciate it)\b",
    ),
)
_PATTERNS = tuple((move, re.compile(pattern)) for move, pattern in _MOVE_PATTERNS)
_QUESTION_START = re.compile(
    r"^(?:what|when|where|who|whom|which|why|how|is|are|am|do|does|did|can|could|will|would|"
    r"should|shall|may|might|have|has|had|was|were|tell me|i (?:want|need|would like) to know)\b"
)
_ROLE = re.compile(
    r"(?i:\byou are\b|\byou're\b)\s+(?:the |a |an )?(?P<role>[\w' -]*?)\s+(?:of|for|at|with)\s+"
    r"(?P<org>[A-Z][\w'&-]*(?:[ \t]+(?:[A-Z][\w'&-]*|&|of|the|and)){0,5})"
)
_NAME = re.compile(
    r"(?i:\byour name is|\byou are called|\byou're called|\bcall yourself)\s+"
    r"(?P<name>[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)"
)
_PROMPT_LABEL = re.compile(r"(?:^|(?<=[.!?\n]))\s*(?P<label>[A-Z][A-Za-z]+(?: [a-z]+){0,3}):\s")
_HEADING = re.compile(r"^\s*(?P<level>#+)\s*(?P<text>.*?)\s*#*\s*$", re.MULTILINE)


def normalise(message: str) -> str:
    """Lower case, plain apostrophes, single spaces, no trailing punctuation."""
    text = message.lower().replace("\u2019", "'")
    text = re.sub(r"[^\w' ,.!?-]+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" .!?,")


def classify(message: str) -> Move | None:
    """The move the caller's message makes, or None when it asks for something else.

    A message that asks for something besides the move ("thanks, and when do you close?") is
    not a move: its question goes to the knowledge and the LLM.
    """
    text = normalise(message)
    if not text or len(text.split()) > MAX_MOVE_WORDS:
        return None
    if _GREETING_ONLY.fullmatch(text):
        return "greeting"
    rest = _OPENERS.sub("", text).strip(" ,.!?-")
    if not rest:
        return "greeting" if _GREETING_ONLY.search(text) else None
    for move, pattern in _PATTERNS:
        if pattern.search(rest):
            if move in ("thanks", "goodbye", "chat") and _asks_more(rest, pattern):
                return None
            return move
    return None


def _asks_more(text: str, pattern: re.Pattern[str]) -> bool:
    """Whether a thanks, goodbye or small talk also asks a question of its own."""
    for clause in re.split(r"[,.!?;]| and | but ", text):
        clause = clause.strip()
        if clause and not pattern.search(clause) and is_question(clause):
            return True
    return False


def is_question(message: str) -> bool:
    """Whether the message asks something (rather than telling or answering)."""
    text = message.strip()
    return text.endswith("?") or bool(_QUESTION_START.match(normalise(text)))


@dataclass(frozen=True)
class Profile:
    """What the agent's configuration says about it, for the moves' answers.

    Attributes:
        organisation: whom the agent answers for (`You are the assistant of Harbor Cafe`), else
            the agent's name.
        name: the agent's own name when the prompt gives one (`Your name is Ada`).
        topics: what it can help with: its knowledge's headings and its prompt's labels.
        transfers: the names of its transfer destinations.
    """

    organisation: str
    name: str | None = None
    topics: tuple[str, ...] = ()
    transfers: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        agent_name: str,
        prompt: str,
        passages: Sequence[dict[str, Any]] = (),
        transfers: Sequence[str] = (),
    ) -> Profile:
        role = _ROLE.search(prompt)
        organisation = role.group("org") if role else agent_name
        organisation = re.sub(r"(?:\s+(?:&|of|the|and))+$", "", organisation.strip())
        named = _NAME.search(prompt)
        topics: list[str] = []
        for label in (*knowledge_topics(passages), *prompt_topics(prompt)):
            topic = label.strip().rstrip(":").lower()
            if topic and topic != organisation.lower() and topic not in topics:
                topics.append(topic)
        return cls(
            organisation=organisation or "this line",
            name=named.group("name") if named else None,
            topics=tuple(topics[:MAX_TOPICS]),
            transfers=tuple(transfers),
        )

    @property
    def can_help_with(self) -> str:
        if not self.topics:
            return f"questions about {self.organisation}"
        if len(self.topics) == 1:
            return f"questions about {self.topics[0]}"
        return f"questions about {', '.join(self.topics[:-1])} and {self.topics[-1]}"


def knowledge_topics(passages: Sequence[dict[str, Any]]) -> list[str]:
    """The section headings of knowledge passages, in order (the top-level title left out
    when there are sections under it)."""
    headings: list[tuple[int, str]] = []
    for passage in passages:
        for match in _HEADING.finditer(str(passage.get("text") or "")):
            entry = (len(match.group("level")), match.group("text"))
            if entry[1] and entry not in headings:
                headings.append(entry)
    deepest_top = min((level for level, _ in headings), default=0)
    has_sections = any(level > deepest_top for level, _ in headings)
    return [text for level, text in headings if not (has_sections and level == deepest_top)]


def prompt_topics(prompt: str) -> list[str]:
    """The labels of the facts a prompt states (`Opening hours: weekdays 7 am to 6 pm.`)."""
    return [match.group("label") for match in _PROMPT_LABEL.finditer(prompt)]


def answer(move: Move, profile: Profile, *, previous_reply: str | None = None) -> str:
    """What the agent says for a move (at most two sentences, no fact beyond its settings)."""
    offer = f"I can help with {profile.can_help_with}."
    if move == "greeting":
        return "Hello! How can I help you today?"
    if move == "capabilities":
        return f"{offer} What would you like to know?"
    if move == "identity":
        who = f"{profile.name}, the" if profile.name else "the"
        return (
            f"I'm {who} virtual assistant of {profile.organisation}: an AI, not a person. "
            "How can I help you?"
        )
    if move == "repeat":
        return previous_reply or f"Hello! How can I help you with {profile.organisation}?"
    if move == "person":
        if profile.transfers:
            return "Of course, let me transfer you."
        return f"I'm sorry, no one else is available to take your call, but {offer}"
    if move == "thanks":
        return "You're welcome! Is there anything else I can help you with?"
    if move == "goodbye":
        return f"Thank you for calling {profile.organisation}. Goodbye!"
    return "I'm doing well, thank you for asking! How can I help you today?"  # chat


def unknown(profile: Profile) -> str:
    """A question neither the moves nor the knowledge answer: no guess, and what it can do."""
    return f"I'm sorry, I don't know that. I can help with {profile.can_help_with}."


def destination_for(message: str, destinations: Sequence[tuple[str, str]]) -> str | None:
    """The transfer destination (name, description) a request for a person names, else the
    first one."""
    words = set(re.findall(r"[a-z]+", normalise(message)))
    for name, description in destinations:
        named = set(re.findall(r"[a-z]+", f"{name} {description}".lower().replace("_", " ")))
        if words & (named - {"a", "an", "the", "to", "of", "and", "or", "for", "with"}):
            return name
    return destinations[0][0] if destinations else None


def last_messages(chat_ctx: llm.ChatContext) -> tuple[str, str | None]:
    """The caller's last message, and the agent's reply before it (None when it said nothing)."""
    said: str | None = None
    message = ""
    for item in reversed(chat_ctx.items):
        if not isinstance(item, llm.ChatMessage):
            continue
        if item.role == "user" and not message:
            message = (item.text_content or "").strip()
        elif item.role == "assistant" and message and item.text_content:
            said = item.text_content.strip()
            break
    return message, said


class ConversationMoves:
    """The moves of one conversation for an agent whose LLM is too small for them.

    Args:
        agent: the agent's settings; `prompt` its rendered system prompt.
        state: the call's state (a goodbye records why the call ends).
        may_end: whether the agent may end the conversation (a goodbye then ends it).
        control: the call's transfers (asking for a person on a phone call is handed over).
        retrieve: the knowledge search (`runtime.tools.Retrieve`), for the agent's topics.
    """

    def __init__(
        self,
        agent: AgentSpec,
        *,
        prompt: str,
        state: CallState,
        may_end: bool,
        control: CallControl | None = None,
        retrieve: Retrieve | None = None,
    ) -> None:
        self.agent = agent
        self.prompt = prompt
        self.state = state
        self.may_end = may_end
        self.control = control
        self._retrieve = retrieve
        self._profile: Profile | None = None
        self._tasks: set[asyncio.Task] = set()

    async def profile(self) -> Profile:
        """The agent's profile, its knowledge's topics read once."""
        if self._profile is None:
            passages: list[dict[str, Any]] = []
            if self.agent.knowledge_ready:
                try:
                    passages = await lookup_passages(
                        self.agent.agent_id, TOPIC_QUERY, TOPIC_PASSAGES, self._retrieve
                    )
                except ToolError:
                    logger.warning("no knowledge topics for agent %s", self.agent.agent_id)
            in_order = sorted(passages, key=lambda p: (p["file_name"] or "", p["position"] or 0))
            self._profile = Profile.of(
                agent_name=self.agent.name,
                prompt=self.prompt,
                passages=in_order,
                transfers=[d.name for d in self.agent.transfer_destinations]
                if self.control is not None
                else (),
            )
        return self._profile

    async def reply(self, chat_ctx: llm.ChatContext, session: AgentSession) -> str | None:
        """What to say when the caller's last message is one of the moves ("" for nothing: the
        transfer speaks for itself), else None."""
        message, said = last_messages(chat_ctx)
        move = classify(message)
        if move is None:
            return None
        profile = await self.profile()
        if move == "person" and profile.transfers and self.control is not None:
            destinations = [(d.name, d.description) for d in self.agent.transfer_destinations]
            name = destination_for(message, destinations)
            if name is not None:
                self._spawn(self._transfer(name, session, profile))
                return ""
        if move == "goodbye" and self.may_end:
            self._end_after_goodbye(session)
        return answer(move, profile, previous_reply=said or None)

    async def unknown(self, chat_ctx: llm.ChatContext) -> str | None:
        """ "I don't know" for a question nothing answered; None for a message that asks nothing
        (the LLM answers it)."""
        message, _ = last_messages(chat_ctx)
        return unknown(await self.profile()) if message and is_question(message) else None

    def _end_after_goodbye(self, session: AgentSession) -> None:
        """The call ends once the goodbye has been said (added to the conversation)."""
        self.state.end(EndReason.AGENT_HANGUP)

        def said(event: ConversationItemAddedEvent) -> None:
            if getattr(event.item, "role", None) == "assistant":
                session.off("conversation_item_added", said)
                session.shutdown(drain=True)

        session.on("conversation_item_added", said)

    async def _transfer(self, name: str, session: AgentSession, profile: Profile) -> None:
        assert self.control is not None
        try:
            await self.control.transfer(name)
        except ToolError:
            offer = f"I can help with {profile.can_help_with}."
            session.say(f"I'm sorry, I can't transfer you from here, but {offer}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
