"""`/auth`: signup, login, refresh rotation and reuse, logout, Google, password reset."""

import asyncio
import json
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from control.models import (
    Invitation,
    Membership,
    PasswordResetToken,
    RefreshToken,
    Role,
    User,
    Workspace,
)
from control.security import encode_token, hash_secret, utcnow
from tests.conftest import PASSWORD, auth_headers, free_port, make_user

NEW_PASSWORD = "brand-new-pass-42"


async def signup(client, email="ada@example.com", password=PASSWORD, **extra):
    return await client.post("/auth/signup", json={"email": email, "password": password, **extra})


async def login(client, email="ada@example.com", password=PASSWORD):
    return await client.post("/auth/login", json={"email": email, "password": password})


async def test_signup_creates_user_and_personal_admin_workspace(client):
    response = await signup(client, full_name="Ada Lovelace")
    assert response.status_code == 201
    body = await response.get_json()
    assert body["user"]["email"] == "ada@example.com"
    user = await User.get(email="ada@example.com")
    assert user.password_hash.startswith("$argon2")
    membership = await Membership.get(user_id=user.id).prefetch_related("workspace")
    assert membership.role == Role.ADMIN
    assert str(membership.workspace_id) == body["user"]["current_workspace_id"]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": "short1"}, "password"),
        ({"email": "a@example.com", "password": "onlyletterslong"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "is_superuser": True}, "is_superuser"),
        ({"email": 42, "password": PASSWORD}, "email"),
    ],
)
async def test_signup_rejects_bad_input_without_writing(client, payload, field):
    response = await client.post("/auth/signup", json=payload)
    assert response.status_code == 400
    body = await response.get_json()
    assert body["code"] == "VALIDATION_ERROR"
    assert any(error["field"].startswith(field) for error in body["errors"])
    assert await User.all().count() == 0


async def test_malformed_json_and_oversized_body_get_error_bodies(client):
    response = await client.post(
        "/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "code" in await response.get_json()
    huge = {"email": "a@example.com", "password": "x" * (2 * 1024 * 1024)}
    response = await client.post("/auth/login", json=huge)
    assert response.status_code == 413
    assert (await response.get_json())["code"] == "PAYLOAD_TOO_LARGE"


async def test_duplicate_signup_is_a_conflict(client):
    await signup(client)
    response = await signup(client, email="ADA@example.com")
    assert response.status_code == 409
    assert (await response.get_json())["code"] == "EMAIL_TAKEN"
    assert await Workspace.all().count() == 1


async def test_login_sets_cookies_and_returns_tokens(client, settings):
    await signup(client)
    response = await login(client)
    assert response.status_code == 200
    body = await response.get_json()
    claims = jwt.decode(body["access_token"], settings.jwt_secret, algorithms=["HS256"])
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    cookies = response.headers.getlist("Set-Cookie")
    access_cookie = next(c for c in cookies if c.startswith("access_token="))
    refresh_cookie = next(c for c in cookies if c.startswith("refresh_token="))
    for cookie in (access_cookie, refresh_cookie):
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # the test environment is not production
    # The cookie alone authenticates (the test client keeps cookies).
    assert (await client.get("/workspaces")).status_code == 200


async def test_bearer_token_authenticates(client):
    await signup(client)
    token = (await (await login(client)).get_json())["access_token"]
    fresh = client.app.test_client()  # no cookies
    response = await fresh.get("/workspaces", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert (await response.get_json())["total"] == 1


async def test_refresh_and_logout_by_cookie_come_only_from_the_sites_own_pages(client):
    await signup(client)
    await login(client)
    other_site = {"Origin": "https://evil.example.com"}
    for path in ("/auth/refresh", "/auth/logout"):
        refused = await client.post(path, headers=other_site)
        assert refused.status_code == 403, path
        assert (await refused.get_json())["code"] == "CROSS_ORIGIN"
        assert "Set-Cookie" not in refused.headers  # the session was neither rotated nor ended
    own_page = {"Origin": "http://localhost"}
    assert (await client.post("/auth/refresh", headers=own_page)).status_code == 200
    assert (await client.post("/auth/logout", headers=own_page)).status_code == 200


async def test_the_session_cookie_changes_nothing_for_another_sites_pages(client):
    await signup(client)
    await login(client)
    other_site = {"Origin": "https://evil.example.com"}
    refused = await client.post("/workspaces", json={"name": "Planted"}, headers=other_site)
    assert refused.status_code == 403
    assert (await refused.get_json())["code"] == "CROSS_ORIGIN"
    assert await Workspace.filter(name="Planted").count() == 0
    # Reading leaks nothing to another origin (the browser keeps the answer from its page) ...
    assert (await client.get("/workspaces", headers=other_site)).status_code == 200
    # ... and the site's own pages, and API clients that send no Origin, change things.
    own_page = await client.post(
        "/workspaces", json={"name": "Own"}, headers={"Origin": "http://localhost"}
    )
    assert own_page.status_code == 201, await own_page.get_json()
    # Behind a reverse proxy that rewrites Host, the public URL's pages are the site's own.
    public_host = urlsplit(client.app.config["SETTINGS"].public_url).netloc
    proxied = await client.post(
        "/workspaces", json={"name": "Proxied"}, headers={"Origin": f"https://{public_host}"}
    )
    assert proxied.status_code == 201, await proxied.get_json()
    assert (await client.post("/workspaces", json={"name": "Script"})).status_code == 201


async def test_cookies_are_secure_in_production(client, settings):
    from control.config import Settings
    from control.http.app import create_app

    production = Settings(
        **{
            **settings.model_dump(),
            "env": "production",
            "jwt_secret": "j" * 40,
            "encryption_key": "e" * 40,
            "service_token": "s" * 40,
        }
    )
    prod_client = create_app(production).test_client()
    await signup(prod_client)
    response = await login(prod_client)
    assert all("Secure" in cookie for cookie in response.headers.getlist("Set-Cookie"))


async def test_wrong_password_and_unknown_email_look_the_same(client):
    await signup(client)
    wrong = await login(client, password="wrong-password-1")
    unknown = await login(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert (await wrong.get_json()) == (await unknown.get_json())


async def test_expired_and_tampered_tokens_are_refused(client, settings):
    user, _ = await make_user()
    expired = encode_token(settings, {"sub": str(user.id), "typ": "access"}, -10)
    response = await client.get("/workspaces", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert (await response.get_json())["code"] == "TOKEN_EXPIRED"
    good = auth_headers(settings, user)["Authorization"]
    tampered = good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb")
    response = await client.get("/workspaces", headers={"Authorization": tampered})
    assert response.status_code == 401
    forged = jwt.encode(
        {"sub": str(user.id), "typ": "access", "iat": time.time(), "exp": time.time() + 60},
        "another-secret-that-is-long-enough-32b",
        algorithm="HS256",
    )
    response = await client.get("/workspaces", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(client):
    await signup(client)
    first = (await (await login(client)).get_json())["refresh_token"]
    api = client.app.test_client()
    rotated = await api.post("/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200
    second = (await rotated.get_json())["refresh_token"]
    assert second != first
    # Replaying the spent token is theft: the whole family dies, including the new token.
    replay = await api.post("/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    assert (await replay.get_json())["code"] == "TOKEN_REUSED"
    after = await api.post("/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401
    family = jwt.decode(first, options={"verify_signature": False})["fam"]
    assert await RefreshToken.filter(family_id=family).count() == 2
    assert await RefreshToken.filter(family_id=family, revoked_at=None).count() == 0


async def test_refresh_from_cookie(client):
    await signup(client)
    await login(client)
    response = await client.post("/auth/refresh")
    assert response.status_code == 200
    assert any(c.startswith("refresh_token=") for c in response.headers.getlist("Set-Cookie"))


async def test_logout_clears_cookies_and_revokes_refresh(client):
    await signup(client)
    tokens = await (await login(client)).get_json()
    response = await client.post("/auth/logout")
    assert response.status_code == 200
    cleared = response.headers.getlist("Set-Cookie")
    assert any(
        c.startswith("access_token=;") or 'access_token=""' in c or c.startswith("access_token=;")
        for c in cleared
    )
    assert all("Max-Age=0" in c or "expires=Thu, 01 Jan 1970" in c for c in cleared)
    api = client.app.test_client()
    response = await api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401


async def test_logout_needs_a_login(client):
    response = await client.post("/auth/logout")
    assert response.status_code == 401
    assert (await response.get_json())["code"] == "NOT_AUTHENTICATED"


async def test_login_is_rate_limited(client):
    # 10 a minute. The attempts are sent at once: each passes the limiter before argon2 runs
    # (in a thread), so a slow machine cannot free a slot between them, and exactly the first
    # ten are let through to be refused for their password.
    statuses = await asyncio.gather(
        *(
            _status(login(client, email="x@example.com", password="wrong-password-1"))
            for _ in range(16)
        )
    )
    assert sorted(statuses) == [401] * 10 + [429] * 6
    last = await login(client, email="x@example.com", password="wrong-password-1")
    assert last.status_code == 429
    assert (await last.get_json())["code"] == "RATE_LIMITED"
    assert int(last.headers["Retry-After"]) > 0


async def _status(response) -> int:
    return (await response).status_code


async def test_forgot_password_never_reveals_accounts_and_reset_works(client, mailbox):
    await signup(client)
    await login(client)  # a live session that the reset must end
    unknown = await client.post("/auth/forgot-password", json={"email": "ghost@example.com"})
    known = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    assert unknown.status_code == known.status_code == 200
    assert await unknown.get_json() == await known.get_json()
    email = await mailbox.wait_for("ada@example.com")
    token = re.search(r"token=([\w-]+)", email.get_content()).group(1)
    assert not any(m["To"] == "ghost@example.com" for m in mailbox.messages)
    stored = await PasswordResetToken.get(user__email="ada@example.com")
    assert stored.token_hash == hash_secret(token) and token not in stored.token_hash

    response = await client.post(
        "/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 200
    assert await RefreshToken.filter(revoked_at=None).count() == 0
    assert (await login(client)).status_code == 401
    assert (await login(client, password=NEW_PASSWORD)).status_code == 200
    again = await client.post(
        "/auth/reset-password", json={"token": token, "new_password": "another-pass-77"}
    )
    assert again.status_code == 400
    assert (await again.get_json())["code"] == "INVALID_RESET_TOKEN"


async def test_expired_reset_token_is_refused(client):
    user, _ = await make_user()
    await PasswordResetToken.create(
        user=user, token_hash=hash_secret("stale-token"), expires_at=utcnow() - timedelta(minutes=1)
    )
    response = await client.post(
        "/auth/reset-password", json={"token": "stale-token", "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400


async def test_signup_and_login_never_take_a_pending_invitation(client, settings):
    # Signup verifies no email: whoever signs up first with an invited address must not join.
    admin, workspace = await make_user("admin@example.com")
    await Invitation.create(
        workspace=workspace,
        email="newbie@example.com",
        role=Role.ADMIN,
        token_hash=hash_secret("emailed-token"),
        expires_at=utcnow() + timedelta(days=7),
    )
    assert (await signup(client, email="newbie@example.com")).status_code == 201
    assert (await login(client, email="newbie@example.com")).status_code == 200
    newbie = await User.get(email="newbie@example.com")
    assert not await Membership.exists(user_id=newbie.id, workspace_id=workspace.id)
    assert (await Invitation.get(email="newbie@example.com")).accepted_at is None


# --- Google login, verified against a locally generated key set served over HTTP ---------


@pytest.fixture(scope="module")
def google_keys():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google")])
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certs = {"test-kid": cert.public_bytes(serialization.Encoding.PEM).decode()}

    class CertsHandler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps(certs).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), CertsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield key, f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()


def google_token(key, audience, **overrides):
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": audience,
        "sub": "google-123",
        "email": "grace@example.com",
        "email_verified": True,
        "name": "Grace",
        "iat": now,
        "exp": now + 600,
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "test-kid"})


@pytest.fixture
def google_client(client, settings, google_keys):
    from control.config import Settings
    from control.http.app import create_app

    configured = Settings(**{**settings.model_dump(), "google_certs_url": google_keys[1]})
    return create_app(configured).test_client()


async def test_google_login_creates_then_finds_the_user(google_client, settings, google_keys):
    key, _ = google_keys
    token = google_token(key, settings.google_client_id)
    first = await google_client.post("/auth/google", json={"id_token": token})
    assert first.status_code == 200, await first.get_json()
    second = await google_client.post("/auth/google", json={"id_token": token})
    assert second.status_code == 200
    assert await User.filter(email="grace@example.com").count() == 1
    user = await User.get(email="grace@example.com")
    assert user.google_sub == "google-123" and user.password_hash is None
    assert await Membership.filter(user_id=user.id, role=Role.ADMIN).count() == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else.apps.googleusercontent.com"},
        {"iss": "https://evil.example.com"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"email_verified": False},
    ],
)
async def test_google_login_refuses_bad_tokens(google_client, settings, google_keys, overrides):
    key, _ = google_keys
    token = google_token(key, settings.google_client_id, **overrides)
    response = await google_client.post("/auth/google", json={"id_token": token})
    assert response.status_code == 401
    assert (await response.get_json())["code"] == "INVALID_GOOGLE_TOKEN"
    assert await User.all().count() == 0


async def test_google_login_refuses_a_token_signed_by_another_key(google_client, settings):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = google_token(other_key, settings.google_client_id)
    response = await google_client.post("/auth/google", json={"id_token": token})
    assert response.status_code == 401


async def test_background_email_does_not_block(client):
    started = asyncio.get_running_loop().time()
    await client.post("/auth/forgot-password", json={"email": "ghost@example.com"})
    assert asyncio.get_running_loop().time() - started < 2
