"""Tortoise models of the control plane, by domain; every workspace-owned row cascades with its
workspace. Tortoise finds them here (`control.models`), so each model is listed once below."""

# For the type checker, the models declare what tortoise's hints leave out: each foreign key's
# `<fk>_id`, each JSONField's type, the reverse relations the code reads, and each nullable
# TextField as `str | None` (TextField's hints have no `null` overload, unlike CharField's).

from control.models.accounts import (
    ROLE_RANKS,
    ApiKey,
    Invitation,
    Membership,
    PasswordResetToken,
    RefreshToken,
    Role,
    User,
    Workspace,
)
from control.models.agent_tests import (
    FINAL_TEST_RUN_STATUSES,
    AgentTestCase,
    TestRun,
    TestRunStatus,
)
from control.models.agents import (
    Agent,
    AgentVersion,
    ChatMessage,
    FileStatus,
    KnowledgeFile,
)
from control.models.calls import (
    Call,
    IdempotencyKey,
    PhoneNumber,
)
from control.models.dialing import (
    Batch,
    BatchItem,
    BatchStatus,
    Campaign,
    DialerAttemptKey,
    DncNumber,
    DncSource,
    ItemStatus,
    Locale,
    Prospect,
    ProspectStatus,
    ProspectUpload,
    ProspectUploadStatus,
)
from control.models.jobs import (
    Job,
    JobStatus,
)
from control.models.providers import WorkspaceProvider
from control.models.reports import (
    ReportLatencyBin,
    ReportRollup,
    ReportStaleHour,
)
from control.models.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "Role",
    "ROLE_RANKS",
    "User",
    "Workspace",
    "Membership",
    "Invitation",
    "ApiKey",
    "RefreshToken",
    "PasswordResetToken",
    "Agent",
    "AgentVersion",
    "FileStatus",
    "KnowledgeFile",
    "ChatMessage",
    "AgentTestCase",
    "TestRun",
    "TestRunStatus",
    "FINAL_TEST_RUN_STATUSES",
    "Call",
    "PhoneNumber",
    "IdempotencyKey",
    "WebhookEndpoint",
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookAttempt",
    "JobStatus",
    "Job",
    "BatchStatus",
    "ItemStatus",
    "Batch",
    "BatchItem",
    "Locale",
    "Campaign",
    "ProspectUploadStatus",
    "ProspectUpload",
    "ProspectStatus",
    "Prospect",
    "DncSource",
    "DncNumber",
    "DialerAttemptKey",
    "WorkspaceProvider",
    "ReportRollup",
    "ReportLatencyBin",
    "ReportStaleHour",
]
