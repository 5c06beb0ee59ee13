"""Customer webhooks: admin routes, signed events, retries, durable queue, SSRF guard."""

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from control.config import Settings
from control.models import DeliveryStatus, Role, WebhookAttempt, WebhookDelivery
from control.services import webhooks
from tests.conftest import auth_headers, free_port, make_user

MAX_SKEW_SECONDS = 300


class Receiver:
    """A real local HTTP server that verifies signatures the way a customer would."""

    def __init__(self, secret: str = "", fail_first: int = 0):
        self.secret = secret
        self.fail_first = fail_first
        self.received: list[dict] = []
        self.verified: list[bool] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = int(self.headers["X-Voxline-Timestamp"])
                expected = (
                    "sha256="
                    + hmac.new(
                        receiver.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
                    ).hexdigest()
                )
                fresh = abs(time.time() - timestamp) <= MAX_SKEW_SECONDS
                receiver.verified.append(
                    fresh and hmac.compare_digest(expected, self.headers["X-Voxline-Signature"])
                )
                receiver.received.append(json.loads(body))
                status = 500 if len(receiver.received) <= receiver.fail_first else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def fast_settings(settings):
    # Local receivers live on loopback; retries every few milliseconds instead of minutes.
    return Settings(
        **{
            **settings.model_dump(),
            "allow_private_urls": True,
            "webhook_retry_delays": (0, 0.05, 0.05),
        }
    )


@pytest.fixture
async def workspace(db):
    return (await make_user("admin@example.com", role=Role.ADMIN))[1]


async def drain(settings, rounds=40):
    async with webhooks.delivery_client(settings) as client:
        for _ in range(rounds):
            await webhooks.deliver_due(settings, client)
            pending = await WebhookDelivery.filter(status=DeliveryStatus.PENDING).count()
            if not pending:
                return
            await __import__("asyncio").sleep(0.06)


async def test_events_are_signed_and_delivered(fast_settings, workspace):
    receiver = Receiver()
    try:
        _, secret = await webhooks.set_endpoint(fast_settings, workspace.id, receiver.url)
        receiver.secret = secret
        delivery = await webhooks.emit(
            workspace.id,
            "call_ended",
            {"call_id": "c1", "duration": 12.5, "end_reason": "user_hangup"},
            event_key="c1:call_ended",
        )
        await drain(fast_settings)
        assert receiver.verified == [True]
        event = receiver.received[0]
        assert event["id"] == str(delivery.id) and event["type"] == "call_ended"
        assert event["data"]["end_reason"] == "user_hangup"
        stored = await WebhookDelivery.get(id=delivery.id)
        assert stored.status == DeliveryStatus.DELIVERED and stored.attempts == 1
    finally:
        receiver.close()


async def test_failures_are_retried_then_marked_failed(fast_settings, workspace):
    receiver = Receiver(fail_first=1)
    try:
        _, receiver.secret = await webhooks.set_endpoint(fast_settings, workspace.id, receiver.url)
        retried = await webhooks.emit(
            workspace.id, "call_failed", {"sip_status": 486}, event_key="c1:failed"
        )
        await drain(fast_settings)
        assert (await WebhookDelivery.get(id=retried.id)).status == DeliveryStatus.DELIVERED
        attempts = await WebhookAttempt.filter(delivery_id=retried.id).order_by("number")
        assert [a.status_code for a in attempts] == [500, 200]
        # Same event id on the retry, so receivers can de-duplicate.
        assert receiver.received[0]["id"] == receiver.received[1]["id"]

        receiver.fail_first = 100
        doomed = await webhooks.emit(
            workspace.id, "call_failed", {"sip_status": 486}, event_key="c2:failed"
        )
        await drain(fast_settings)
        stored = await WebhookDelivery.get(id=doomed.id)
        assert stored.status == DeliveryStatus.FAILED
        assert stored.attempts == len(fast_settings.webhook_retry_delays)
    finally:
        receiver.close()


async def test_pending_deliveries_survive_a_restart(fast_settings, workspace):
    receiver = Receiver()
    try:
        _, receiver.secret = await webhooks.set_endpoint(fast_settings, workspace.id, receiver.url)
        queued = await webhooks.emit(
            workspace.id, "call_started", {"call_id": "c2"}, event_key="c2:started"
        )
        # Nothing is held in memory: a fresh dispatcher (as after a restart) finds the row.
        assert await WebhookDelivery.filter(status=DeliveryStatus.PENDING).count() == 1
        await drain(fast_settings)
        assert receiver.received[0]["id"] == str(queued.id)
    finally:
        receiver.close()


async def test_ssrf_guard_at_send_time(settings, workspace):
    # Saved while unresolvable-or-public, the URL is checked again when sending.
    endpoint, _ = await webhooks.set_endpoint(settings, workspace.id, "https://hooks.example.com/x")
    endpoint.url = "http://127.0.0.1:9/internal"
    await endpoint.save()
    delivery = await webhooks.emit(workspace.id, "call_started", {}, event_key="c3")
    await drain(settings, rounds=1)
    attempt = await WebhookAttempt.get(delivery_id=delivery.id)
    assert attempt.status_code is None and "private" in attempt.error
    assert "127.0.0.1" not in attempt.error and ":9" not in attempt.error


async def test_dns_rebinding_cannot_reach_an_internal_receiver(settings, workspace, monkeypatch):
    # The name is public when the URL is checked and points at loopback when connecting: the
    # check and the connection must use the same answer.
    internal = Receiver()
    port = internal.server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo
    answers = []

    def rebinding_dns(host, *args, **kwargs):
        if host not in ("hooks.rebind.test", b"hooks.rebind.test"):  # some clients send bytes
            return real_getaddrinfo(host, *args, **kwargs)
        address = "93.184.215.14" if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    try:
        await webhooks.set_endpoint(settings, workspace.id, f"http://hooks.rebind.test:{port}/x")
        delivery = await webhooks.emit(workspace.id, "call_started", {}, event_key="c5")
        answers.clear()  # public for the check at send time, loopback after it
        await drain(settings, rounds=1)
        assert "127.0.0.1" in answers  # the connection did look the name up again
        assert internal.received == []
        attempt = await WebhookAttempt.get(delivery_id=delivery.id)
        assert attempt.status_code is None and attempt.error.startswith("refused")
        assert "127.0.0.1" not in attempt.error and str(port) not in attempt.error
    finally:
        internal.close()


async def test_no_endpoint_no_event(workspace):
    assert await webhooks.emit(workspace.id, "call_started", {}, event_key="c4") is None


async def test_a_calls_events_are_listed_by_its_id(client, settings, workspace):
    admin, _ = await make_user("boss@example.com", role=Role.ADMIN, workspace=workspace)
    headers = auth_headers(settings, admin, workspace)
    await webhooks.set_endpoint(settings, workspace.id, "https://hooks.example.com/voxline")
    ours, other = uuid.uuid4(), uuid.uuid4()
    await webhooks.emit(workspace.id, "call_started", {"call_id": str(ours)}, event_key="a")
    await webhooks.emit(workspace.id, "call_ended", {"call_id": str(ours)}, event_key="b")
    await webhooks.emit(workspace.id, "call_started", {"call_id": str(other)}, event_key="c")
    await webhooks.emit(workspace.id, "batch_completed", {"batch_id": "b1"}, event_key="d")

    listed = await client.get(f"/webhook/deliveries?call_id={ours}", headers=headers)
    body = await listed.get_json()
    assert listed.status_code == 200 and body["total"] == 2
    assert {item["event_type"] for item in body["items"]} == {"call_started", "call_ended"}
    assert (await (await client.get("/webhook/deliveries", headers=headers)).get_json())[
        "total"
    ] == 4
    bad = await client.get("/webhook/deliveries?call_id=not-a-uuid", headers=headers)
    assert bad.status_code == 400
    # Another workspace's admin sees none of them, even by the call's id.
    stranger, elsewhere = await make_user("eve@example.com", role=Role.ADMIN)
    theirs = await client.get(
        f"/webhook/deliveries?call_id={ours}", headers=auth_headers(settings, stranger, elsewhere)
    )
    assert (await theirs.get_json())["total"] == 0


async def test_admin_routes(client, settings, workspace):
    admin = await make_user("boss@example.com", role=Role.ADMIN, workspace=workspace)
    developer = await make_user("dev@example.com", role=Role.DEVELOPER, workspace=workspace)
    headers = auth_headers(settings, admin[0], workspace)
    assert (await client.get("/webhook/endpoint", headers=headers)).status_code == 404
    refused = await client.put(
        "/webhook/endpoint", json={"url": "http://10.0.0.5/hook"}, headers=headers
    )
    assert refused.status_code == 400 and (await refused.get_json())["code"] == "URL_NOT_ALLOWED"
    created = await client.put(
        "/webhook/endpoint", json={"url": "https://hooks.example.com/voxline"}, headers=headers
    )
    body = await created.get_json()
    assert created.status_code == 200 and body["secret"].startswith("whsec_")
    shown = await (await client.get("/webhook/endpoint", headers=headers)).get_json()
    assert shown["secret"] is None and shown["secret_hint"].endswith(body["secret"][-4:])
    rotated = await (
        await client.post("/webhook/endpoint/rotate-secret", headers=headers)
    ).get_json()
    assert rotated["secret"] != body["secret"]
    await webhooks.emit(workspace.id, "call_started", {"call_id": "x"}, event_key="x")
    deliveries = await (await client.get("/webhook/deliveries", headers=headers)).get_json()
    assert deliveries["total"] == 1 and deliveries["items"][0]["event_type"] == "call_started"
    dev_headers = auth_headers(settings, developer[0], workspace)
    assert (await client.get("/webhook/deliveries", headers=dev_headers)).status_code == 403
    assert (
        await client.put(
            "/webhook/endpoint", json={"url": "https://x.example.com/h"}, headers=dev_headers
        )
    ).status_code == 403
    assert (await client.delete("/webhook/endpoint", headers=headers)).status_code == 204


@pytest.mark.parametrize(
    "host",
    ["j\u00ab\u00e0\u0093\u0005v.example", "a" * 64 + ".example.com"],
    ids=["invalid-idna-character", "label-over-63-characters"],
)
async def test_a_host_that_is_no_host_name_is_refused_not_a_500(client, settings, host):
    """Found by the schema fuzzer: getaddrinfo raised UnicodeError (a 500) for such hosts."""
    admin, workspace = await make_user("idna@example.com", role=Role.ADMIN)
    refused = await client.put(
        "/webhook/endpoint",
        json={"url": f"https://{host}/hook"},
        headers=auth_headers(settings, admin, workspace),
    )
    body = await refused.get_json()
    assert refused.status_code == 400, body
    assert body["code"] == "URL_NOT_ALLOWED" and "not a valid host name" in body["detail"]
