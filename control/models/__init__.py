"""Tortoise models of the control plane; every workspace-owned row cascades with its workspace."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    """A membership's role; ordering matters (member < developer < admin)."""

    MEMBER = "member"
    DEVELOPER = "developer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ROLE_RANKS[self]

    def at_least(self, minimum: Role) -> bool:
        return self.rank >= minimum.rank


ROLE_RANKS = {Role.MEMBER: 1, Role.DEVELOPER: 2, Role.ADMIN: 3}


class User(Model):
    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=320, unique=True)
    full_name = fields.CharField(max_length=200, default="")
    password_hash = fields.CharField(max_length=255, null=True)
    google_sub = fields.CharField(max_length=255, null=True, unique=True)
    is_superuser = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    current_workspace: fields.ForeignKeyNullableRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class Workspace(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    slug = fields.CharField(max_length=80, unique=True)
    # Calls this workspace may hold at once (None: only the platform's capacity applies).
    max_concurrent_calls = fields.IntField(null=True)
    # Days a call's recording is kept (None: forever); the `expire_recordings` job deletes it.
    recording_retention_days = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "workspaces"


class Membership(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="memberships", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="memberships", on_delete=fields.CASCADE
    )
    role = fields.CharEnumField(Role, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "memberships"
        unique_together = (("workspace", "user"),)


# An invite for an email that has no account yet. Only the emailed token accepts it, from an
# account with that email; only the token's SHA-256 is stored. Null token or expiry: a row from
# before tokens, which nothing can accept (the admin invites again).
class Invitation(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="invitations", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=320, db_index=True)
    role = fields.CharEnumField(Role, max_length=16)
    invited_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    token_hash = fields.CharField(max_length=64, unique=True, null=True)
    expires_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    accepted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invitations"
        unique_together = (("workspace", "email"),)


# A workspace-scoped key; only its SHA-256 is stored, the secret is shown once.
class ApiKey(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="api_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=100)
    role = fields.CharEnumField(Role, max_length=16)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


# One issued refresh token (by its JWT id); a family is one login's rotation chain.
class RefreshToken(Model):
    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    family_id = fields.UUIDField(db_index=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "refresh_tokens"


class PasswordResetToken(Model):
    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="reset_tokens", on_delete=fields.CASCADE
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "password_reset_tokens"


# An agent; every setting beyond its name and number lives in the validated `config`.
class Agent(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="agents", on_delete=fields.CASCADE
    )
    agent_name = fields.CharField(max_length=200)
    phone_number = fields.CharField(max_length=20, null=True, unique=True)
    config = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "agents"
        indexes = (("workspace_id", "created_at"),)


class FileStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


# An uploaded knowledge file; its bytes sit in the data dir under the row's id.
class KnowledgeFile(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="knowledge_files", on_delete=fields.CASCADE
    )
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="files", on_delete=fields.CASCADE
    )
    filename = fields.CharField(max_length=255)
    kind = fields.CharField(max_length=8)
    size_bytes = fields.BigIntField()
    status = fields.CharEnumField(FileStatus, max_length=16, default=FileStatus.PROCESSING)
    error = fields.TextField(null=True)
    chunk_count = fields.IntField(default=0)
    page_count = fields.IntField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_files"
        unique_together = (("agent", "filename"),)


# A call log: one phone or web call of an agent, from queueing to post-call analysis.
class Call(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="calls", on_delete=fields.CASCADE
    )
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="calls", null=True, on_delete=fields.SET_NULL
    )
    call_type = fields.CharField(max_length=8)
    call_direction = fields.CharField(max_length=10)
    from_number = fields.CharField(max_length=64, null=True)
    to_number = fields.CharField(max_length=64, null=True)
    status = fields.CharField(max_length=16, default="queued")
    end_reason = fields.CharField(max_length=32, null=True)
    sip_status = fields.IntField(null=True)
    room_name = fields.CharField(max_length=128, null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    answered_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)
    duration_seconds = fields.FloatField(null=True)
    transcript = fields.JSONField(default=list)
    usage = fields.JSONField(default=dict)
    latencies = fields.JSONField(default=list)
    # Each transfer attempt: destination name, destination (masked), when, and its outcome.
    transfers = fields.JSONField(default=list)
    recording_url = fields.CharField(max_length=1024, null=True)
    # Where the recording is in the recordings store (`services.recordings`); its extension
    # says its format. Never from the client: made from the call's workspace and id.
    recording_key = fields.CharField(max_length=255, null=True)
    summary = fields.TextField(null=True)
    disposition = fields.CharField(max_length=64, null=True)
    sentiment = fields.CharField(max_length=16, null=True)
    extracted_data = fields.JSONField(default=dict)
    dynamic_variables = fields.JSONField(default=dict)
    batch_id = fields.UUIDField(null=True)
    campaign = fields.CharField(max_length=100, null=True)  # a label; the dialer writes the slug
    campaign_id = fields.UUIDField(null=True)
    error = fields.TextField(null=True)
    # Liveness, for the reaper: when a worker took the call, when it last said the call was
    # alive, and when the call must be over whatever happens (max duration plus a grace).
    joined_at = fields.DatetimeField(null=True)
    heartbeat_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "calls"
        indexes = (
            ("workspace_id", "created_at"),
            ("workspace_id", "agent_id", "created_at"),
            ("workspace_id", "disposition", "created_at"),
            ("workspace_id", "batch_id", "created_at"),
            ("workspace_id", "campaign_id", "created_at"),
            ("workspace_id", "call_type", "created_at"),
            ("workspace_id", "call_direction", "created_at"),
            ("status", "created_at"),  # the reaper's scan of live calls
        )


# A workspace's customer webhook: where events go, and the secret that signs them.
class WebhookEndpoint(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.OneToOneRelation[Workspace] = fields.OneToOneField(
        "models.Workspace", related_name="webhook", on_delete=fields.CASCADE
    )
    url = fields.CharField(max_length=2048)
    secret_encrypted = fields.TextField()
    secret_hint = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_endpoints"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# One event to deliver (its id is the event id receivers de-duplicate on): the durable queue.
class WebhookDelivery(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="webhook_deliveries", on_delete=fields.CASCADE
    )
    event_type = fields.CharField(max_length=64)
    payload = fields.JSONField()
    url = fields.CharField(max_length=2048)
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_status_code = fields.IntField(null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    delivered_at = fields.DatetimeField(null=True)
    # The call an event is about (its `data.call_id`), so a call lists the events it caused.
    call_id = fields.UUIDField(null=True)

    class Meta:
        table = "webhook_deliveries"
        indexes = (
            ("status", "next_attempt_at"),
            ("workspace_id", "created_at"),
            ("workspace_id", "call_id"),
        )


# Every attempt at a delivery, listable by the workspace's admins.
class WebhookAttempt(Model):
    id = fields.UUIDField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_log", on_delete=fields.CASCADE
    )
    number = fields.IntField()
    attempted_at = fields.DatetimeField(auto_now_add=True)
    status_code = fields.IntField(null=True)
    error = fields.TextField(null=True)
    duration_ms = fields.FloatField()

    class Meta:
        table = "webhook_attempts"


# A phone number of a workspace and the LiveKit objects that route it (trunks, dispatch rule).
# Which agent answers it is the agent's `phone_number` (one source of truth for routing).
class PhoneNumber(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="phone_numbers", on_delete=fields.CASCADE
    )
    phone_number = fields.CharField(max_length=20, unique=True)
    source = fields.CharField(max_length=16)  # purchased | sip_trunk
    provider = fields.CharField(max_length=32)
    provider_id = fields.CharField(max_length=128, null=True)
    label = fields.CharField(max_length=200, null=True)
    email = fields.CharField(max_length=320, null=True)
    sip_address = fields.CharField(max_length=255, null=True)
    auth_username = fields.CharField(max_length=255, null=True)
    auth_password_encrypted = fields.TextField(null=True)
    krisp_enabled = fields.BooleanField(default=False)
    inbound_trunk_id = fields.CharField(max_length=64)
    outbound_trunk_id = fields.CharField(max_length=64, null=True)
    dispatch_rule_id = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "phone_numbers"


# One message of a text chat with an agent; a chat session is its `session_id`.
class ChatMessage(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="chat_messages", on_delete=fields.CASCADE
    )
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="chat_messages", on_delete=fields.CASCADE
    )
    session_id = fields.CharField(max_length=64)
    role = fields.CharField(max_length=16)
    text = fields.TextField()
    tool_calls = fields.JSONField(default=list)
    sources = fields.JSONField(default=list)
    usage = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "chat_messages"
        indexes = (
            ("workspace_id", "agent_id", "session_id", "created_at"),
            ("workspace_id", "created_at"),
        )


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# A unit of background work (ingestion, analysis, the reaper, dialer ticks): the durable queue.
class Job(Model):
    id = fields.UUIDField(primary_key=True)
    kind = fields.CharField(max_length=64)
    # At most one job per key, ever: what makes enqueueing idempotent across replicas.
    key = fields.CharField(max_length=255, unique=True, null=True)
    payload = fields.JSONField(default=dict)
    status = fields.CharEnumField(JobStatus, max_length=16, default=JobStatus.PENDING)
    attempts = fields.IntField(default=0)
    max_attempts = fields.IntField(default=5)
    # When a pending job is due; for a running job, when its lease runs out.
    run_at = fields.DatetimeField()
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "jobs"
        indexes = (("status", "run_at"),)


# The first answer to a request sent with an `Idempotency-Key`, kept 24 hours.
class IdempotencyKey(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="idempotency_keys", on_delete=fields.CASCADE
    )
    key = fields.CharField(max_length=255)
    fingerprint = fields.CharField(max_length=64)
    response = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "idempotency_keys"
        unique_together = (("workspace", "key"),)


class BatchStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ItemStatus(StrEnum):
    PENDING = "pending"
    CALLING = "calling"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"


# A batch of outbound calls from an uploaded CSV: its schedule, pace, window and retry policy.
class Batch(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="batches", on_delete=fields.CASCADE
    )
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="batches", null=True, on_delete=fields.SET_NULL
    )
    name = fields.CharField(max_length=200)
    agent_phone_number = fields.CharField(max_length=20)
    status = fields.CharEnumField(BatchStatus, max_length=16, default=BatchStatus.SCHEDULED)
    scheduled_time = fields.DatetimeField(null=True)
    timezone = fields.CharField(max_length=64, default="UTC")
    earliest_time = fields.CharField(max_length=5, null=True)  # HH:MM in `timezone`
    latest_time = fields.CharField(max_length=5, null=True)
    calls_per_minute = fields.IntField(default=60)
    max_attempts = fields.IntField(default=1)
    retry_delay_minutes = fields.IntField(default=30)
    retry_on = fields.JSONField(default=list)  # outcomes that retry: busy, no_answer, failed
    total_items = fields.IntField(default=0)
    rejected_count = fields.IntField(default=0)
    rejects = fields.JSONField(default=list)  # the first rejected rows: line and reason
    # Pacing: no dial before this time; each dial pushes it on by 60 / calls_per_minute seconds.
    next_dial_at = fields.DatetimeField(null=True)
    progress_seq = fields.IntField(default=0)
    progress_sent_at = fields.DatetimeField(null=True)
    progress_digest = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "batches"
        indexes = (("workspace_id", "created_at"), ("status",))


# One row of a batch: the number to call, its variables, and each attempt's call.
class BatchItem(Model):
    id = fields.UUIDField(primary_key=True)
    batch: fields.ForeignKeyRelation[Batch] = fields.ForeignKeyField(
        "models.Batch", related_name="items", on_delete=fields.CASCADE
    )
    workspace_id = fields.UUIDField()
    line = fields.IntField()  # its line in the uploaded file (the header is line 1)
    phone_number = fields.CharField(max_length=20)
    variables = fields.JSONField(default=dict)
    status = fields.CharEnumField(ItemStatus, max_length=16, default=ItemStatus.PENDING)
    attempts = fields.IntField(default=0)
    # When a pending or retrying item is due; for a calling item being dialed, when its claim
    # runs out (null once its call is dispatched).
    next_attempt_at = fields.DatetimeField(null=True)
    call_id = fields.UUIDField(null=True)  # the current (or last) attempt's call
    outcome = fields.CharField(max_length=16, null=True)
    error = fields.TextField(null=True)
    attempt_log = fields.JSONField(default=list)  # [{attempt, call_id, room_name, outcome, ...}]
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "batch_items"
        indexes = (
            ("batch_id", "status", "next_attempt_at"),
            ("batch_id", "line"),
            ("batch_id", "phone_number"),  # duplicates within an upload
            ("call_id",),
        )


class Locale(StrEnum):
    """Where a campaign's prospects are: the country code numbers without a `+` are read in."""

    USCA = "USCA"
    IN = "IN"
    UK = "UK"


# A campaign: a long-running, paced dialer over prospect lists, with its rules and dispositions.
class Campaign(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="campaigns", on_delete=fields.CASCADE
    )
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="campaigns", null=True, on_delete=fields.SET_NULL
    )
    created_by_id = fields.UUIDField(null=True)
    created_by_email = fields.CharField(max_length=320, null=True)
    name = fields.CharField(max_length=200)
    # Unique platform-wide: the public `status/` route finds a campaign by its slug alone.
    slug = fields.CharField(max_length=80, unique=True)
    locale_name = fields.CharEnumField(Locale, max_length=8, default=Locale.USCA)
    active = fields.BooleanField(default=True)
    agent_phone_number = fields.CharField(max_length=20)
    call_ratio = fields.FloatField(default=1.0)
    dialer_interval = fields.IntField(default=10)  # seconds between ticks, 2..15
    max_active_calls = fields.IntField(default=0)  # 0: only the platform's capacity
    max_number_calls = fields.IntField(default=10)
    min_time_between_calls = fields.IntField(default=30)  # minutes
    dupe_days = fields.IntField(default=90)  # -1: off
    expire_days = fields.IntField(default=90)
    earliest_prospect_time = fields.CharField(max_length=5, default="09:00")  # prospect's zone
    latest_prospect_time = fields.CharField(max_length=5, default="21:00")
    dispositions = fields.JSONField(default=list)  # [{name, description, callback, dnc}]
    next_dial_at = fields.DatetimeField(null=True)  # the dialer's tick compare-and-set
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "campaigns"
        unique_together = (("workspace", "name"),)
        indexes = (("workspace_id", "created_at"),)


class ProspectUploadStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


# A prospect list: one uploaded CSV (or the home of prospects added one by one), with its priority.
class ProspectUpload(Model):
    id = fields.UUIDField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name="uploads", on_delete=fields.CASCADE
    )
    workspace_id = fields.UUIDField()
    list_name = fields.CharField(max_length=200)
    priority = fields.IntField(default=0)  # higher dials first
    status = fields.CharEnumField(
        ProspectUploadStatus, max_length=16, default=ProspectUploadStatus.PENDING
    )
    file_path = fields.CharField(max_length=1024, null=True)  # the kept CSV, for a retry
    attempts = fields.IntField(default=0)
    total_rows = fields.IntField(default=0)
    added_count = fields.IntField(default=0)
    rejected_count = fields.IntField(default=0)
    rejects = fields.JSONField(default=list)  # the first rejected rows: line and reason
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "prospect_uploads"
        indexes = (("campaign_id", "created_at"),)


class ProspectStatus(StrEnum):
    PENDING = "pending"
    CALLING = "calling"
    RETRYING = "retrying"
    CALLBACK = "callback"
    COMPLETED = "completed"
    FAILED = "failed"
    DNC = "dnc"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# One person a campaign may call: their number, zones, variables, and every attempt.
class Prospect(Model):
    id = fields.UUIDField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name="prospects", on_delete=fields.CASCADE
    )
    upload: fields.ForeignKeyNullableRelation[ProspectUpload] = fields.ForeignKeyField(
        "models.ProspectUpload", related_name="prospects", null=True, on_delete=fields.CASCADE
    )
    workspace_id = fields.UUIDField()
    line = fields.IntField(null=True)  # its row in the upload (the header is line 1)
    phone_number = fields.CharField(max_length=20)
    name = fields.CharField(max_length=200, null=True)
    timezones = fields.JSONField(default=list)  # IANA zones: the given one, else the number's
    variables = fields.JSONField(default=dict)
    priority = fields.IntField(default=0)  # copied from its list
    status = fields.CharEnumField(ProspectStatus, max_length=16, default=ProspectStatus.PENDING)
    attempts = fields.IntField(default=0)
    # When the dialer may look at it again; while `calling`, the claim's lease (as BatchItem).
    next_attempt_at = fields.DatetimeField(null=True)
    call_id = fields.UUIDField(null=True)
    outcome = fields.CharField(max_length=16, null=True)
    disposition = fields.CharField(max_length=64, null=True)
    error = fields.TextField(null=True)
    attempt_log = fields.JSONField(default=list)  # [{attempt, call_id, started_at, outcome, ...}]
    skip_reason = fields.CharField(max_length=64, null=True)  # why it was not dialed last time
    last_called_at = fields.DatetimeField(null=True)
    callback_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "prospects"
        unique_together = (("upload", "line"),)
        # The dialer's due-prospect index, (campaign_id, status, priority DESC, next_attempt_at),
        # is created by migration 0011 in SQL: tortoise's indexes are ascending only, and the
        # dialer reads "higher priority first, then the longest waiting" in index order.
        indexes = (
            ("workspace_id", "phone_number"),
            ("call_id",),
        )


class DncSource(StrEnum):
    API = "api"
    DISPOSITION = "disposition"
    WEBHOOK = "webhook"


# A number a workspace must never call (checked by the dialer before every dial).
class DncNumber(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="dnc_numbers", on_delete=fields.CASCADE
    )
    phone_number = fields.CharField(max_length=20)
    reason = fields.CharField(max_length=200, null=True)
    source = fields.CharEnumField(DncSource, max_length=16, default=DncSource.API)
    created_by_email = fields.CharField(max_length=320, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "dnc_numbers"
        unique_together = (("workspace", "phone_number"),)
