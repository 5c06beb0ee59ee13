"""Tenant isolation and the role matrix for every workspace route: two workspaces, every role."""

from dataclasses import dataclass
from datetime import timedelta

import pytest

from control.models import ApiKey, Batch, BatchItem, Invitation, Membership, Role, User, Workspace
from control.security import hash_secret, utcnow
from control.services.workspaces import create_api_key
from tests.conftest import auth_headers, make_user


@dataclass
class Tenant:
    workspace: Workspace
    callers: dict  # name -> headers
    admin: User
    member: User
    api_key_id: str
    invitation_id: str
    batch_id: str = ""


async def build_tenant(settings, name: str) -> Tenant:
    admin, workspace = await make_user(f"admin@{name}.example.com", role=Role.ADMIN)
    developer, _ = await make_user(
        f"dev@{name}.example.com", role=Role.DEVELOPER, workspace=workspace
    )
    member, _ = await make_user(f"member@{name}.example.com", role=Role.MEMBER, workspace=workspace)
    dev_key, dev_secret = await create_api_key(workspace.id, admin, "dev", Role.DEVELOPER)
    _, member_secret = await create_api_key(workspace.id, admin, "member", Role.MEMBER)
    callers = {
        "admin": auth_headers(settings, admin),
        "developer": auth_headers(settings, developer),
        "member": auth_headers(settings, member),
        "developer_key": {"X-API-Key": dev_secret},
        "member_key": {"X-API-Key": member_secret},
    }
    invitation = await Invitation.create(
        workspace=workspace,
        email=f"invited@{name}.example.com",
        role=Role.MEMBER,
        token_hash=hash_secret(f"token-{name}"),
        expires_at=utcnow() + timedelta(days=7),
    )
    batch = await Batch.create(
        workspace=workspace, name=f"batch {name}", agent_phone_number="+16505551234"
    )
    await BatchItem.create(
        batch=batch, workspace_id=workspace.id, line=2, phone_number="+14155550100"
    )
    return Tenant(
        workspace, callers, admin, member, str(dev_key.id), str(invitation.id), str(batch.id)
    )


@pytest.fixture
async def tenants(db, settings):
    return await build_tenant(settings, "a"), await build_tenant(settings, "b")


def workspace_routes(target: Tenant):
    """(method, path, body) for every route that addresses a workspace by id."""
    base = f"/workspaces/{target.workspace.id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"name": "Hijacked"}),
        ("GET", f"{base}/members", None),
        ("POST", f"{base}/invite", {"email": "intruder@example.com", "role": "admin"}),
        ("DELETE", f"{base}/members/{target.member.id}", None),
        ("GET", f"{base}/api-keys", None),
        ("POST", f"{base}/api-keys", {"name": "stolen", "role": "developer"}),
        ("DELETE", f"{base}/api-keys/{target.api_key_id}", None),
        ("GET", f"{base}/invitations", None),
        ("DELETE", f"{base}/invitations/{target.invitation_id}", None),
        ("DELETE", base, None),
    ]


def resource_routes(target: Tenant):
    """(method, path, body) for routes that address a workspace's resource by its own id."""
    return [
        ("GET", f"/batch/{target.batch_id}", None),
        ("GET", f"/batch/{target.batch_id}/items", None),
        ("PATCH", f"/batch/{target.batch_id}", {"action": "pause"}),
        ("DELETE", f"/batch/{target.batch_id}", None),
    ]


async def snapshot(tenant: Tenant):
    workspace = await Workspace.get_or_none(id=tenant.workspace.id)
    return (
        workspace.name if workspace else None,
        await Membership.filter(workspace_id=tenant.workspace.id).count(),
        await ApiKey.filter(workspace_id=tenant.workspace.id).count(),
        await Invitation.filter(workspace_id=tenant.workspace.id).count(),
        await Batch.filter(workspace_id=tenant.workspace.id).values_list("status", flat=True),
    )


async def test_no_cross_workspace_read_or_write_succeeds(client, tenants):
    a, b = tenants
    before = await snapshot(b)
    for caller, headers in a.callers.items():
        for method, path, body in workspace_routes(b):
            response = await client.open(path, method=method, json=body, headers=headers)
            assert response.status_code == 404, (caller, method, path, response.status_code)
            text = await response.get_data(as_text=True)
            assert b.workspace.name not in text and str(b.admin.email) not in text
        for method, path, body in resource_routes(b):
            response = await client.open(path, method=method, json=body, headers=headers)
            # A role too low to write is refused before any lookup, so it tells nothing either.
            refused = (await response.get_json()).get("code")
            assert response.status_code == 404 or refused == "INSUFFICIENT_ROLE", (
                caller, method, path, response.status_code,
            )  # fmt: skip
            text = await response.get_data(as_text=True)
            assert "batch b" not in text and str(b.admin.email) not in text
    # Switching into the other workspace, or naming it in X-Workspace-Id, fails too.
    for caller in ("admin", "developer", "member"):
        headers = a.callers[caller]
        switched = await client.post(
            "/workspaces/switch", json={"workspace_id": str(b.workspace.id)}, headers=headers
        )
        assert switched.status_code == 404
        listed = await client.get(
            "/workspaces", headers={**headers, "X-Workspace-Id": str(b.workspace.id)}
        )
        assert listed.status_code == 403
        mine = await (await client.get("/workspaces", headers=headers)).get_json()
        assert [item["id"] for item in mine["items"]] == [str(a.workspace.id)]
    assert await snapshot(b) == before


# Minimum role of each route in its own workspace (read = member, manage = admin).
ROLE_MATRIX = {
    ("GET", ""): "member",
    ("GET", "/members"): "member",
    ("GET", "/api-keys"): "admin",
    ("POST", "/api-keys"): "admin",
    ("POST", "/invite"): "admin",
    ("GET", "/invitations"): "admin",
    ("PATCH", ""): "admin",
}
RANK = {"member": 1, "member_key": 1, "developer": 2, "developer_key": 2, "admin": 3}


@pytest.mark.parametrize("method, suffix", list(ROLE_MATRIX))
async def test_role_matrix_in_own_workspace(client, tenants, method, suffix):
    a, _ = tenants
    minimum = RANK[ROLE_MATRIX[(method, suffix)]]
    bodies = {
        "/api-keys": {"name": "k", "role": "member"},
        "/invite": {"email": "n@example.com"},
        "": {"name": "New name"},
    }
    for caller, headers in a.callers.items():
        body = bodies.get(suffix) if method != "GET" else None
        response = await client.open(
            f"/workspaces/{a.workspace.id}{suffix}", method=method, json=body, headers=headers
        )
        allowed = RANK[caller] >= minimum
        assert (response.status_code < 300) == allowed, (
            caller,
            method,
            suffix,
            response.status_code,
        )
        if not allowed:
            assert (await response.get_json())["code"] == "INSUFFICIENT_ROLE"


async def test_destructive_routes_need_admin(client, tenants):
    a, _ = tenants
    base = f"/workspaces/{a.workspace.id}"
    for caller in ("developer", "member", "developer_key", "member_key"):
        headers = a.callers[caller]
        assert (
            await client.delete(f"{base}/members/{a.member.id}", headers=headers)
        ).status_code == 403
        assert (
            await client.delete(f"{base}/api-keys/{a.api_key_id}", headers=headers)
        ).status_code == 403
        assert (
            await client.delete(f"{base}/invitations/{a.invitation_id}", headers=headers)
        ).status_code == 403
        assert (await client.delete(base, headers=headers)).status_code == 403
    assert await Workspace.exists(id=a.workspace.id)
    assert await Invitation.exists(id=a.invitation_id)
    assert (
        await client.delete(f"{base}/invitations/{a.invitation_id}", headers=a.callers["admin"])
    ).status_code == 204
    assert (
        await client.delete(f"{base}/members/{a.member.id}", headers=a.callers["admin"])
    ).status_code == 204


async def test_api_keys_cannot_use_user_only_routes(client, tenants):
    a, _ = tenants
    for caller in ("developer_key", "member_key"):
        headers = a.callers[caller]
        assert (
            await client.post("/workspaces", json={"name": "x"}, headers=headers)
        ).status_code == 403
        assert (await client.get("/workspaces", headers=headers)).status_code == 403
        assert (
            await client.post(
                "/workspaces/switch", json={"workspace_id": str(a.workspace.id)}, headers=headers
            )
        ).status_code == 403
