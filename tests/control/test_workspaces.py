"""`/workspaces`: create, list, get, update, delete, switch, members, invite and API keys."""

import re
import uuid
from datetime import timedelta

import pytest

from control.models import (
    ApiKey,
    Invitation,
    Membership,
    PhoneNumber,
    RefreshToken,
    Role,
    User,
    Workspace,
)
from control.security import hash_secret, utcnow
from control.services.workspaces import create_api_key
from tests.conftest import PASSWORD, auth_headers, make_user
from tests.fakes.livekit_server import object_count


@pytest.fixture
async def admin(db):
    return await make_user("admin@example.com", role=Role.ADMIN)


async def test_create_workspace_makes_creator_admin_with_unique_slug(client, settings, admin):
    user, _ = admin
    headers = auth_headers(settings, user)
    first = await client.post("/workspaces", json={"name": "Acme Sales"}, headers=headers)
    second = await client.post("/workspaces", json={"name": "Acme  Sales!"}, headers=headers)
    assert first.status_code == second.status_code == 201
    one, two = await first.get_json(), await second.get_json()
    assert one["slug"] == "acme-sales"
    assert two["slug"].startswith("acme-sales-") and two["slug"] != one["slug"]
    membership = await Membership.get(workspace_id=one["id"], user_id=user.id)
    assert membership.role == Role.ADMIN


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 201}, {"name": 5}, {"name": "ok", "slug": "mine"}]
)
async def test_create_workspace_rejects_bad_bodies(client, settings, admin, body):
    response = await client.post("/workspaces", json=body, headers=auth_headers(settings, admin[0]))
    assert response.status_code == 400
    assert (await response.get_json())["code"] == "VALIDATION_ERROR"
    assert await Workspace.all().count() == 1


async def test_list_shows_own_workspaces_and_superuser_sees_all(client, settings, admin):
    user, _ = admin
    await make_user("other@example.com")
    response = await client.get("/workspaces", headers=auth_headers(settings, user))
    body = await response.get_json()
    assert body["total"] == 1 and body["page"] == 1 and body["page_size"] == 25
    assert body["has_next"] is False and body["has_prev"] is False
    root, _ = await make_user("root@example.com", superuser=True)
    body = await (await client.get("/workspaces", headers=auth_headers(settings, root))).get_json()
    assert body["total"] == 3


async def test_list_paginates(client, settings, admin):
    user, _ = admin
    for index in range(4):
        await client.post(
            "/workspaces", json={"name": f"W{index}"}, headers=auth_headers(settings, user)
        )
    body = await (
        await client.get("/workspaces?page=2&page_size=2", headers=auth_headers(settings, user))
    ).get_json()
    assert body["total"] == 5 and len(body["items"]) == 2
    assert body["has_next"] is True and body["has_prev"] is True
    too_big = await client.get("/workspaces?page_size=101", headers=auth_headers(settings, user))
    assert too_big.status_code == 400


async def test_get_update_delete(client, settings, admin):
    user, workspace = admin
    headers = auth_headers(settings, user)
    got = await client.get(f"/workspaces/{workspace.id}", headers=headers)
    assert got.status_code == 200 and (await got.get_json())["name"] == workspace.name
    patched = await client.patch(
        f"/workspaces/{workspace.id}", json={"name": "Renamed"}, headers=headers
    )
    assert patched.status_code == 200 and (await patched.get_json())["name"] == "Renamed"
    deleted = await client.delete(f"/workspaces/{workspace.id}", headers=headers)
    assert deleted.status_code == 204
    assert not await Workspace.exists(id=workspace.id)


async def test_delete_cascades_to_everything_the_workspace_owns(client, settings, admin):
    user, workspace = admin
    headers = auth_headers(settings, user)
    await client.post(
        f"/workspaces/{workspace.id}/api-keys",
        json={"name": "ci", "role": "developer"},
        headers=headers,
    )
    await client.post(
        f"/workspaces/{workspace.id}/invite", json={"email": "new@example.com"}, headers=headers
    )
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=workspace)
    assert (await client.delete(f"/workspaces/{workspace.id}", headers=headers)).status_code == 204
    assert await ApiKey.filter(workspace_id=workspace.id).count() == 0
    assert await Invitation.filter(workspace_id=workspace.id).count() == 0
    assert await Membership.filter(workspace_id=workspace.id).count() == 0
    assert await User.exists(id=member.id)  # users outlive their workspaces
    assert (await User.get(id=member.id)).current_workspace_id is None


async def test_delete_releases_numbers_and_livekit_objects_first(
    client, settings, admin, livekit, twilio
):
    user, workspace = admin
    headers = auth_headers(settings, user)
    bought = await client.post(
        "/phonenumbers/purchase",
        json={"phone_number": "+14155550123", "provider": "twilio", "country_code": "US"},
        headers=headers,
    )
    trunk = await client.post(
        "/phonenumbers/sip_trunk",
        json={"sip_address": "sip.example.com", "phone_number": "+16505551234"},
        headers=headers,
    )
    assert bought.status_code == trunk.status_code == 201
    assert twilio.owned_numbers() == ["+14155550123"] and object_count(livekit) > 0
    numbers = await PhoneNumber.filter(workspace_id=workspace.id)
    created = {n.dispatch_rule_id for n in numbers} | {n.inbound_trunk_id for n in numbers}

    # The provider refuses: nothing is deleted, and the answer names the number left.
    twilio.fail("release", 500, {"code": 20500, "message": "Internal Server Error"})
    refused = await client.delete(f"/workspaces/{workspace.id}", headers=headers)
    assert refused.status_code == 502
    error = await refused.get_json()
    assert error["code"] == "NUMBERS_NOT_RELEASED" and "+14155550123" in error["detail"]
    assert "+16505551234" not in error["detail"]
    assert await Workspace.exists(id=workspace.id)
    assert await PhoneNumber.filter(workspace_id=workspace.id).count() == 1
    assert twilio.owned_numbers() == ["+14155550123"]

    # Retried: the rest is released, then the workspace goes.
    deleted = await client.delete(f"/workspaces/{workspace.id}", headers=headers)
    assert deleted.status_code == 204
    assert not await Workspace.exists(id=workspace.id)
    assert twilio.owned_numbers() == [] and object_count(livekit) == 0
    deleted_ids = {
        call.request.get("sip_trunk_id") or call.request.get("sip_dispatch_rule_id")
        for call in livekit.calls()
        if call.method in ("DeleteSIPTrunk", "DeleteSIPDispatchRule")
    }
    assert created <= deleted_ids


async def test_switch_sets_the_current_workspace(client, settings, admin):
    user, first = admin
    headers = auth_headers(settings, user)
    second = await (
        await client.post("/workspaces", json={"name": "Second"}, headers=headers)
    ).get_json()
    response = await client.post(
        "/workspaces/switch", json={"workspace_id": second["id"]}, headers=headers
    )
    assert response.status_code == 200
    assert str((await User.get(id=user.id)).current_workspace_id) == second["id"]
    stranger_workspace = (await make_user("stranger@example.com"))[1]
    response = await client.post(
        "/workspaces/switch", json={"workspace_id": str(stranger_workspace.id)}, headers=headers
    )
    assert response.status_code == 404
    assert str((await User.get(id=user.id)).current_workspace_id) == second["id"]


async def test_workspace_header_overrides_current_and_requires_membership(client, settings, admin):
    user, workspace = admin
    member, _ = await make_user("dev@example.com", role=Role.DEVELOPER)
    # dev is a member of their own workspace and a plain member of admin's workspace
    await Membership.create(user=member, workspace=workspace, role=Role.MEMBER)
    api_key_attempt = await client.post(
        f"/workspaces/{workspace.id}/api-keys",
        json={"name": "k"},
        headers=auth_headers(settings, member),
    )
    assert api_key_attempt.status_code == 403
    other = (await make_user("x@example.com"))[1]
    response = await client.get(
        "/workspaces", headers={**auth_headers(settings, member), "X-Workspace-Id": str(other.id)}
    )
    assert response.status_code == 403
    assert (await response.get_json())["code"] == "NOT_A_MEMBER"
    bad = await client.get(
        "/workspaces", headers={**auth_headers(settings, member), "X-Workspace-Id": "nope"}
    )
    assert bad.status_code == 400


async def test_members_list_and_invite_existing_user(client, settings, admin):
    user, workspace = admin
    await make_user("bob@example.com")
    headers = auth_headers(settings, user)
    response = await client.post(
        f"/workspaces/{workspace.id}/invite",
        json={"email": "Bob@Example.com", "role": "developer"},
        headers=headers,
    )
    assert response.status_code == 201
    body = await response.get_json()
    assert body["status"] == "added" and body["member"]["role"] == "developer"
    members = await (
        await client.get(f"/workspaces/{workspace.id}/members", headers=headers)
    ).get_json()
    assert {m["email"]: m["role"] for m in members["items"]} == {
        "admin@example.com": "admin",
        "bob@example.com": "developer",
    }
    again = await client.post(
        f"/workspaces/{workspace.id}/invite", json={"email": "bob@example.com"}, headers=headers
    )
    assert again.status_code == 409


def invitation_token(message) -> str:
    return re.search(r"token=([\w-]+)", message.get_content()).group(1)


async def accept(client, token, email, password=PASSWORD):
    """Log in as `email` (a fresh client, so no other session's cookies) and accept `token`."""
    session = client.app.test_client()
    logged_in = await session.post("/auth/login", json={"email": email, "password": password})
    assert logged_in.status_code == 200
    return await session.post("/auth/accept-invite", json={"token": token})


async def test_invitation_is_joined_only_with_its_emailed_token(client, settings, admin, mailbox):
    user, workspace = admin
    headers = auth_headers(settings, user)
    response = await client.post(
        f"/workspaces/{workspace.id}/invite",
        json={"email": "carol@example.com", "role": "developer"},
        headers=headers,
    )
    body = await response.get_json()
    assert (
        response.status_code == 201 and body["status"] == "invited" and body["email_sent"] is True
    )
    message = await mailbox.wait_for("carol@example.com")
    assert workspace.name in message["Subject"]
    token = invitation_token(message)
    stored = await Invitation.get(email="carol@example.com")
    assert stored.token_hash == hash_secret(token) and token not in (await response.get_data(True))
    # Signing up, then logging in, as the invited address joins nothing.
    signup = await client.post(
        "/auth/signup", json={"email": "carol@example.com", "password": PASSWORD}
    )
    assert signup.status_code == 201
    carol = await User.get(email="carol@example.com")
    login = await client.post(
        "/auth/login", json={"email": "carol@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert not await Membership.exists(user_id=carol.id, workspace_id=workspace.id)
    # Someone else holding the token cannot use it; a made-up token does nothing.
    mallory, _ = await make_user("mallory@example.com")
    stolen = await accept(client, token, "mallory@example.com")
    assert stolen.status_code == 403
    assert (await stolen.get_json())["code"] == "INVITATION_FOR_ANOTHER_EMAIL"
    assert not await Membership.exists(user_id=mallory.id, workspace_id=workspace.id)
    assert (await accept(client, "made-up", "carol@example.com")).status_code == 400
    # The invited address with the token joins, with the invitation's role, once.
    accepted = await accept(client, token, "carol@example.com")
    assert accepted.status_code == 200, await accepted.get_json()
    assert await accepted.get_json() == {
        "workspace_id": str(workspace.id),
        "workspace_name": workspace.name,
        "role": "developer",
    }
    assert (
        await Membership.get(user_id=carol.id, workspace_id=workspace.id)
    ).role == Role.DEVELOPER
    assert (await Invitation.get(email="carol@example.com")).accepted_at is not None
    again = await accept(client, token, "carol@example.com")
    assert again.status_code == 400 and (await again.get_json())["code"] == "INVALID_INVITATION"


async def test_accepting_needs_a_logged_in_user(client, settings, admin):
    _, workspace = admin
    _, secret = await create_api_key(workspace.id, None, "ci", Role.DEVELOPER)
    anonymous = await client.post("/auth/accept-invite", json={"token": "x"})
    assert anonymous.status_code == 401
    with_key = await client.post(
        "/auth/accept-invite", json={"token": "x"}, headers={"X-API-Key": secret}
    )
    assert with_key.status_code == 403


async def test_invitations_expire_after_seven_days(client, settings, admin, mailbox):
    user, workspace = admin
    before = utcnow()
    await client.post(
        f"/workspaces/{workspace.id}/invite",
        json={"email": "erin@example.com"},
        headers=auth_headers(settings, user),
    )
    token = invitation_token(await mailbox.wait_for("erin@example.com"))
    invitation = await Invitation.get(email="erin@example.com")
    assert before + timedelta(days=7) <= invitation.expires_at <= utcnow() + timedelta(days=7)
    await Invitation.filter(id=invitation.id).update(expires_at=utcnow() - timedelta(seconds=1))
    erin, _ = await make_user("erin@example.com")
    expired = await accept(client, token, "erin@example.com")
    assert expired.status_code == 400
    assert (await expired.get_json())["code"] == "INVALID_INVITATION"
    assert not await Membership.exists(user_id=erin.id, workspace_id=workspace.id)


async def test_admins_list_renew_and_revoke_invitations(client, settings, admin, mailbox):
    user, workspace = admin
    headers = auth_headers(settings, user)
    base = f"/workspaces/{workspace.id}"
    for email in ("f@example.com", "g@example.com"):
        await client.post(f"{base}/invite", json={"email": email}, headers=headers)
    first_token = invitation_token(await mailbox.wait_for("f@example.com"))
    g_token = invitation_token(await mailbox.wait_for("g@example.com"))
    listed = await (await client.get(f"{base}/invitations", headers=headers)).get_json()
    assert [item["email"] for item in listed["items"]] == ["f@example.com", "g@example.com"]
    item = listed["items"][0]
    assert item["invited_by"] == "admin@example.com" and item["expired"] is False
    assert "token" not in item and "token_hash" not in item
    # Inviting again renews the invitation: a new token, and the first email's link is dead.
    mailbox.messages.clear()
    await client.post(
        f"{base}/invite", json={"email": "f@example.com", "role": "admin"}, headers=headers
    )
    renewed_token = invitation_token(await mailbox.wait_for("f@example.com"))
    assert renewed_token != first_token
    await make_user("f@example.com")
    assert (await accept(client, first_token, "f@example.com")).status_code == 400
    # Revoked: gone from the list, and its link no longer works.
    g_id = next(i["id"] for i in listed["items"] if i["email"] == "g@example.com")
    assert (await client.delete(f"{base}/invitations/{g_id}", headers=headers)).status_code == 204
    assert (await client.delete(f"{base}/invitations/{g_id}", headers=headers)).status_code == 404
    await make_user("g@example.com")
    assert (await accept(client, g_token, "g@example.com")).status_code == 400
    listed = await (await client.get(f"{base}/invitations", headers=headers)).get_json()
    assert [(i["email"], i["role"]) for i in listed["items"]] == [("f@example.com", "admin")]
    assert (await accept(client, renewed_token, "f@example.com")).status_code == 200
    listed = await (await client.get(f"{base}/invitations", headers=headers)).get_json()
    assert listed["items"] == []


async def test_remove_member_but_never_the_last_admin(client, settings, admin):
    user, workspace = admin
    headers = auth_headers(settings, user)
    member, _ = await make_user("m@example.com", role=Role.MEMBER, workspace=workspace)
    response = await client.delete(
        f"/workspaces/{workspace.id}/members/{member.id}", headers=headers
    )
    assert response.status_code == 204
    assert not await Membership.exists(user_id=member.id, workspace_id=workspace.id)
    last = await client.delete(f"/workspaces/{workspace.id}/members/{user.id}", headers=headers)
    assert last.status_code == 409
    assert (await last.get_json())["code"] == "LAST_ADMIN"
    missing = await client.delete(
        f"/workspaces/{workspace.id}/members/{uuid.uuid4()}", headers=headers
    )
    assert missing.status_code == 404


async def test_api_keys_shown_once_stored_hashed_and_revoked_at_once(client, settings, admin):
    user, workspace = admin
    headers = auth_headers(settings, user)
    created = await client.post(
        f"/workspaces/{workspace.id}/api-keys",
        json={"name": "server", "role": "developer"},
        headers=headers,
    )
    assert created.status_code == 201
    body = await created.get_json()
    secret = body["key"]
    stored = await ApiKey.get(id=body["id"])
    assert stored.key_hash == hash_secret(secret) and secret not in stored.key_hash
    listed = await (
        await client.get(f"/workspaces/{workspace.id}/api-keys", headers=headers)
    ).get_json()
    assert listed["total"] == 1 and "key" not in listed["items"][0]
    assert listed["items"][0]["prefix"] == secret[: len(listed["items"][0]["prefix"])]

    key_client = client.app.test_client()
    own = await key_client.get(f"/workspaces/{workspace.id}", headers={"X-API-Key": secret})
    assert own.status_code == 200
    bearer = await key_client.get(
        f"/workspaces/{workspace.id}", headers={"Authorization": f"Bearer {secret}"}
    )
    assert bearer.status_code == 200
    # A developer key cannot manage keys or members (admin only).
    assert (
        await key_client.get(f"/workspaces/{workspace.id}/api-keys", headers={"X-API-Key": secret})
    ).status_code == 403

    assert (
        await client.delete(f"/workspaces/{workspace.id}/api-keys/{body['id']}", headers=headers)
    ).status_code == 204
    revoked = await key_client.get(f"/workspaces/{workspace.id}", headers={"X-API-Key": secret})
    assert revoked.status_code == 401
    assert (await revoked.get_json())["code"] == "INVALID_API_KEY"


async def test_api_key_role_is_member_or_developer(client, settings, admin):
    user, workspace = admin
    response = await client.post(
        f"/workspaces/{workspace.id}/api-keys",
        json={"name": "x", "role": "admin"},
        headers=auth_headers(settings, user),
    )
    assert response.status_code == 400
    assert await ApiKey.all().count() == 0


async def test_superuser_passes_every_role_check(client, settings, admin):
    _, workspace = admin
    root, _ = await make_user("root@example.com", superuser=True)
    headers = auth_headers(settings, root)
    assert (
        await client.get(f"/workspaces/{workspace.id}/members", headers=headers)
    ).status_code == 200
    assert (
        await client.patch(f"/workspaces/{workspace.id}", json={"name": "By root"}, headers=headers)
    ).status_code == 200


async def test_user_with_no_workspace_gets_a_clear_message(client, settings):
    lonely = await User.create(email="lonely@example.com")
    other = (await make_user("x@example.com"))[1]
    response = await client.get(f"/workspaces/{other.id}", headers=auth_headers(settings, lonely))
    assert response.status_code == 404
    listed = await client.get("/workspaces", headers=auth_headers(settings, lonely))
    assert listed.status_code == 200 and (await listed.get_json())["total"] == 0
    assert await RefreshToken.all().count() == 0


async def test_a_workspace_name_with_line_breaks_cannot_add_mail_headers(
    client, settings, admin, mailbox
):
    user, workspace = admin
    headers = auth_headers(settings, user)
    renamed = await client.patch(
        f"/workspaces/{workspace.id}",
        json={"name": "Sales\r\nBcc: eve@example.com"},
        headers=headers,
    )
    assert renamed.status_code == 200
    response = await client.post(
        f"/workspaces/{workspace.id}/invite",
        json={"email": "dave@example.com", "role": "member"},
        headers=headers,
    )
    assert response.status_code == 201 and (await response.get_json())["email_sent"] is True
    message = await mailbox.wait_for("dave@example.com")
    assert message["Bcc"] is None and "\n" not in message["Subject"]
    assert "Sales Bcc: eve@example.com" in message["Subject"]
