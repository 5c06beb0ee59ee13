"""The runtime's client of the control plane, against the real app (ASGI): a report whose text
holds a NUL character (a recogniser or a model may emit one) is stored, not refused."""

from __future__ import annotations

from control.models import Call
from runtime.spec import CallReport, CallStatus, EndReason
from tests.runtime.test_worker import line  # noqa: F401 (a fixture)


async def test_a_report_with_nul_characters_is_stored_without_them(line, new_runner):  # noqa: F811
    runner = new_runner()
    spec = await runner.control.open_call(str(line["agent"].id), direction="inbound")
    report = CallReport(
        call_id=spec.call_id,
        status=CallStatus.COMPLETED,
        end_reason=EndReason.USER_HANGUP,
        transcript=[{"role": "user", "text": "hel\x00lo", "started_at": None}],
        error=None,
    )

    answer = await runner.control.report(report)

    assert answer["applied"] is True
    call = await Call.get(id=spec.call_id)
    assert call.status == "completed"
    assert [entry["text"] for entry in call.transcript] == ["hello"]
