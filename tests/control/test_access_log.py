"""Reset and invitation tokens never reach the access log: the emailed links carry them in the
URL fragment (which browsers never send), and the log leaves out the values of any `token` or
`key` parameter a client does put in a query string."""

from __future__ import annotations

import re

import httpx

from control.models import Role
from tests.conftest import auth_headers, make_user
from tests.servers import ControlPlaneProcess

RESET_TOKEN = "reset-secret-1111"
INVITE_TOKEN = "invite-secret-2222"
API_KEY = "vx_key-secret-3333"


async def test_emailed_links_carry_their_token_in_the_fragment(client, settings, mailbox):
    await make_user("ada@example.com")
    assert (
        await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    ).status_code == 200
    reset = (await mailbox.wait_for("ada@example.com")).get_content()
    assert re.search(rf"{re.escape(settings.public_url)}/reset-password#token=[\w-]+", reset)
    assert "?token=" not in reset

    admin, workspace = await make_user("admin@example.com", role=Role.ADMIN)
    invited = await client.post(
        f"/workspaces/{workspace.id}/invite",
        json={"email": "newcomer@example.com", "role": "developer"},
        headers=auth_headers(settings, admin),
    )
    assert invited.status_code == 201
    invitation = (await mailbox.wait_for("newcomer@example.com")).get_content()
    assert re.search(rf"{re.escape(settings.public_url)}/accept-invite#token=[\w-]+", invitation)
    assert "?token=" not in invitation


async def test_the_access_log_leaves_out_tokens_and_keys_in_query_strings(settings, db, tmp_path):
    server = ControlPlaneProcess(settings, tmp_path / "serve.log")
    server.start()
    try:
        await server.wait_until_up()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            # A link in the older form: its token is moved into the fragment.
            old_link = await http.get("/reset-password", params={"token": RESET_TOKEN})
            assert old_link.status_code == 302
            assert old_link.headers["Location"] == f"/app/reset-password#token={RESET_TOKEN}"
            # The new form: the fragment is the browser's; the server sees the bare path.
            new_link = await http.get("/accept-invite")
            assert new_link.headers["Location"] == "/app/accept-invite"
            await http.get("/accept-invite", params={"token": INVITE_TOKEN})
            await http.get("/calls", params={"api_key": API_KEY, "page": "2"})
            # Signed out, the invitation page sends the browser to log in, then back to it.
            await http.get(
                "/app/login", params={"next": f"/app/accept-invite#token={INVITE_TOKEN}"}
            )
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    for target in (
        "/reset-password?token=[redacted]",
        "/accept-invite?token=[redacted]",
        "/calls?api_key=[redacted]&page=2",
        "/app/login?next=[redacted]",
    ):
        assert f'"GET {target} HTTP/1.1"' in log, log[-3000:]
    for secret in (RESET_TOKEN, INVITE_TOKEN, API_KEY):
        assert secret not in log
