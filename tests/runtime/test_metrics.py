"""Worker metrics add up across job processes (each call runs in its own subprocess)."""

import json
import os
import subprocess
import sys

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

REPORT = {
    "call_id": "c1",
    "status": "completed",
    "end_reason": "user_hangup",
    "transcript": [
        {"role": "tool_result", "tool_name": "crm", "is_error": False, "text": "ok"},
        {"role": "tool_result", "tool_name": "crm", "is_error": True, "text": "timeout"},
    ],
    "latencies": [
        {
            "turn": 1,
            "end_of_utterance_ms": 300,
            "llm_ttft_ms": 250,
            "tts_ttfb_ms": 120,
            "end_to_end_ms": 700,
        },
    ],
}

JOB = """
import json, sys
from runtime import metrics
from runtime.spec import AgentSpec, CallReport
metrics.active_sessions.inc()
agent = AgentSpec(agent_id="a1", llm_provider="Open AI", stt_provider="local", tts_provider="x")
metrics.observe_report(CallReport.from_dict(json.loads(sys.argv[1])), agent)
"""


def test_metrics_from_two_job_processes_are_summed(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two calls, each in its own process, as livekit-agents runs jobs
        subprocess.run([sys.executable, "-c", JOB, json.dumps(REPORT)], env=env, check=True)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    text = generate_latest(registry).decode()
    assert 'voxline_tool_calls_total{outcome="ok",tool="crm"} 2.0' in text
    assert 'voxline_tool_calls_total{outcome="error",tool="crm"} 2.0' in text
    assert 'voxline_calls_total{end_reason="user_hangup",status="completed"} 2.0' in text
    # Each stage by its own provider: STT for the end of utterance, the LLM for end to end, and
    # `other` for a name the catalogue does not know (labels stay bounded).
    latency = "voxline_turn_latency_seconds"
    assert f'{latency}_count{{provider="openai",stage="llm_ttft"}} 2.0' in text
    assert f'{latency}_bucket{{le="0.3",provider="openai",stage="llm_ttft"}} 2.0' in text
    assert f'{latency}_count{{provider="local",stage="end_of_utterance"}} 2.0' in text
    assert f'{latency}_count{{provider="openai",stage="end_to_end"}} 2.0' in text
    assert f'{latency}_count{{provider="other",stage="tts_ttfb"}} 2.0' in text
