import { api, currentWorkspace, rememberWorkspace } from "../api.js";
import { $, attempt, el, formatTime, loaded, rowAction, say, show, table } from "../ui.js";

let workspace = null;

async function loadMembers() {
  const members = await api("GET", `/workspaces/${workspace.id}/members?page_size=100`);
  show($("#members"), table(
    [
      ["Name", (member) => member.full_name || "—"],
      ["Email", (member) => member.email],
      ["Role", (member) => member.role],
      ["Joined", (member) => formatTime(member.joined_at)],
      ["", (member) => rowAction("Remove", `Remove ${member.email}`, async () => {
        await api("DELETE", `/workspaces/${workspace.id}/members/${member.user_id}`);
        say(`Removed ${member.email}.`);
        await loadMembers();
      }, `Remove ${member.email} from this workspace?`)],
    ],
    members.items,
    "No members.",
    "Members",
  ));
}

async function loadInvitations() {
  let invitations;
  try {
    invitations = await api("GET", `/workspaces/${workspace.id}/invitations?page_size=100`);
  } catch (error) {
    if (error.status !== 403) throw error;
    show($("#invitations"), el("p", { class: "empty" }, "Only an admin of this workspace sees and sends invitations."));
    return;
  }
  show($("#invitations"), table(
    [
      ["Email", (invitation) => invitation.email],
      ["Role", (invitation) => invitation.role],
      ["Expires", (invitation) => (invitation.expired ? "expired: invite again" : formatTime(invitation.expires_at))],
      ["", (invitation) => rowAction("Revoke", `Revoke the invitation of ${invitation.email}`, async () => {
        await api("DELETE", `/workspaces/${workspace.id}/invitations/${invitation.id}`);
        say(`Revoked the invitation of ${invitation.email}.`);
        await loadInvitations();
      })],
    ],
    invitations.items,
    "No pending invitations. Invite a colleague with the form above.",
    "Pending invitations",
  ));
}

async function load() {
  ({ workspace } = await currentWorkspace());
  if (!workspace) {
    say("You belong to no workspace yet: create one below.");
    return;
  }
  $("#workspace_name").value = workspace.name;
  $("#max_concurrent_calls").value = workspace.max_concurrent_calls ?? "";
  loaded();
  await loadMembers();
  await loadInvitations();
}

$("#workspace-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const limit = $("#max_concurrent_calls").value;
  attempt(async () => {
    workspace = await api("PATCH", `/workspaces/${workspace.id}`, { name: $("#workspace_name").value, max_concurrent_calls: limit ? Number(limit) : null });
    say("Saved.");
  }, { busy: event.submitter });
});

$("#delete-workspace").addEventListener("click", () => {
  if (!confirm(`Delete the workspace ${workspace.name} with all its agents, calls and numbers?`)) return;
  attempt(async () => {
    await api("DELETE", `/workspaces/${workspace.id}`);
    rememberWorkspace(null);
    location.assign("/app/agents");
  });
});

$("#invite-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const invited = await api("POST", `/workspaces/${workspace.id}/invite`, { email: $("#invite_email").value, role: $("#invite_role").value });
    say(invited.status === "added" ? `${invited.email} already had an account and is now a member.` : `Invited ${invited.email}${invited.email_sent ? "; the email is sent." : "; the email could not be sent."}`);
    event.target.reset();
    await loadMembers();
    await loadInvitations();
  }, { busy: event.submitter });
});

$("#create-workspace-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const created = await api("POST", "/workspaces", { name: $("#new_workspace_name").value });
    await api("POST", "/workspaces/switch", { workspace_id: created.id });
    rememberWorkspace(created.id);
    location.reload();
  }, { busy: event.submitter });
});

attempt(load);
