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
from runtime.spec import CallReport
metrics.active_sessions.inc()
metrics.observe_report(CallReport.from_dict(json.loads(sys.argv[1])))
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
    assert 'voxline_turn_latency_seconds_count{stage="llm_ttft"} 2.0' in text
    assert 'voxline_turn_latency_seconds_bucket{le="0.3",stage="llm_ttft"} 2.0' in text
