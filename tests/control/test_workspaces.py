"""`/workspaces`: create, list, get, update, delete, switch, members, invite and API keys."""

import uuid

import pytest

from control.models import ApiKey, Invitation, Membership, RefreshToken, Role, User, Workspace
from control.security import hash_secret
from tests.conftest import auth_headers, make_user


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


async def test_invite_new_email_records_and_emails_then_accepts_at_signup(
    client, settings, admin, mailbox
):
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
    signup = await client.post(
        "/auth/signup", json={"email": "carol@example.com", "password": "carol-pass-123"}
    )
    assert signup.status_code == 201
    carol = await User.get(email="carol@example.com")
    assert (
        await Membership.get(user_id=carol.id, workspace_id=workspace.id)
    ).role == Role.DEVELOPER
    assert (await Invitation.get(email="carol@example.com")).accepted_at is not None


async def test_invite_accepted_at_login_for_user_created_after(client, settings, admin):
    user, workspace = admin
    await Invitation.create(workspace=workspace, email="dave@example.com", role=Role.MEMBER)
    dave, _ = await make_user("dave@example.com")
    response = await client.post(
        "/auth/login", json={"email": "dave@example.com", "password": "correct-horse-9"}
    )
    assert response.status_code == 200
    assert await Membership.exists(user_id=dave.id, workspace_id=workspace.id, role=Role.MEMBER)


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
