"""The campaigns blueprint's request and response models, and how rows become them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from control.dialing import campaigns, csv_reader
from control.dialing.campaigns import LIMITS
from control.dialing.window import parse_clock
from control.http.errors import APIError
from control.http.pagination import PageQuery
from control.http.schemas import FilePart, IsoTime, file_fields_required
from control.models import (
    Campaign,
    DncNumber,
    Locale,
    Prospect,
    ProspectStatus,
    ProspectUpload,
    ProspectUploadStatus,
)
from control.services.agent_config import E164, without_nul


def _check_clock(value: str) -> str:
    return parse_clock(value, minutes_only=True).strftime("%H:%M")


#: A campaign's local time of day, exactly `HH:MM`.
ClockHHMM = Annotated[str, AfterValidator(_check_clock)]


class NoNul(BaseModel):
    """A request model whose text fields (and dict keys and values) hold no NUL character."""

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return without_nul(value)


def _ranged(field: str) -> Any:
    low, high, _ = LIMITS[field]
    return Field(default=None, ge=low, le=high, description=campaigns.LIMIT_NOTES[field])


class DispositionIn(NoNul):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)
    callback: bool = Field(default=False, description="schedule a follow-up call")
    dnc: bool = Field(default=False, description="add the number to the do-not-call list")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a disposition needs a name")
        return value


class CampaignFields(NoNul):
    """A campaign's options; one left out keeps its default (create, PUT) or value (PATCH)."""

    model_config = ConfigDict(extra="forbid")

    locale_name: Locale | None = Field(default=None, description="fixed after creation")
    active: bool | None = None
    public_status: bool | None = Field(
        default=None,
        description="anyone may read the aggregate counts of `status/` (default false: only "
        "members of the campaign's workspace)",
    )
    call_ratio: float | None = _ranged("call_ratio")
    dialer_interval: int | None = _ranged("dialer_interval")
    max_active_calls: int | None = _ranged("max_active_calls")
    max_number_calls: int | None = _ranged("max_number_calls")
    min_time_between_calls: int | None = _ranged("min_time_between_calls")
    dupe_days: int | None = _ranged("dupe_days")
    expire_days: int | None = _ranged("expire_days")
    earliest_prospect_time: ClockHHMM | None = None
    latest_prospect_time: ClockHHMM | None = None
    dispositions: list[DispositionIn] | None = Field(
        default=None, max_length=campaigns.MAX_DISPOSITIONS
    )

    @field_validator("dispositions")
    @classmethod
    def _unique(cls, value: list[DispositionIn] | None) -> list[DispositionIn] | None:
        names = [item.name.lower() for item in value or []]
        if len(set(names)) != len(names):
            raise ValueError("disposition names must be unique")
        return value

    def values(self) -> dict[str, Any]:
        """The fields the client sent; an explicit null is refused (no option is nullable)."""
        sent = self.model_dump(mode="json", exclude_unset=True)
        nulls = [name for name, value in sent.items() if value is None]
        if nulls:
            raise APIError(
                400,
                "VALIDATION_ERROR",
                f"Invalid request: {', '.join(nulls)} may not be null; leave it out instead.",
                errors=[{"field": name, "message": "may not be null"} for name in nulls],
            )
        if "agent_id" in sent:
            sent["agent_id"] = uuid.UUID(sent["agent_id"])
        if self.dispositions is not None:  # every flag, the defaults too (not only those sent)
            sent["dispositions"] = [item.model_dump() for item in self.dispositions]
        return sent


class CampaignCreate(CampaignFields):
    name: str = Field(min_length=1, max_length=200)
    agent_id: uuid.UUID
    agent_phone_number: E164

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _campaign_name(value)


def _campaign_name(value: str) -> str:
    if not value.strip():
        raise ValueError("a campaign needs a name")
    return value.strip()


class CampaignUpdate(CampaignFields):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    agent_id: uuid.UUID | None = None
    agent_phone_number: E164 | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _campaign_name(value)


class CampaignDispositionOut(BaseModel):
    name: str
    description: str
    callback: bool
    dnc: bool


class CampaignOut(BaseModel):
    id: str
    slug: str
    workspace_id: str
    name: str
    agent_id: str | None
    agent_phone_number: str
    locale_name: Locale
    active: bool
    public_status: bool
    call_ratio: float
    dialer_interval: int
    max_active_calls: int
    max_number_calls: int
    min_time_between_calls: int
    dupe_days: int
    expire_days: int
    earliest_prospect_time: str
    latest_prospect_time: str
    dispositions: list[CampaignDispositionOut]
    created_by_email: str | None
    created_at: IsoTime
    updated_at: IsoTime


class ProspectUploadOut(BaseModel):
    uuid: str
    campaign: str = Field(description="The campaign's slug")
    list_name: str
    priority: int
    status: ProspectUploadStatus
    attempts: int
    total_rows: int
    added_count: int
    rejected_count: int
    error: str | None
    created_at: IsoTime
    finished_at: IsoTime | None


class ProspectRejectOut(BaseModel):
    line: int
    reason: str


class ProspectUploadDetailOut(ProspectUploadOut):
    rejects: list[ProspectRejectOut] = Field(description="Rejected rows (the first 1,000)")


class CampaignDetailOut(CampaignOut):
    uploads: list[ProspectUploadOut]
    prospects: dict[str, int] = Field(description="Prospects per status")
    total_prospects: int


def campaign_out(campaign: Campaign) -> CampaignOut:
    return CampaignOut(
        id=str(campaign.id),
        workspace_id=str(campaign.workspace_id),
        agent_id=str(campaign.agent_id) if campaign.agent_id else None,
        created_by_email=campaign.created_by_email,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
        **{field: getattr(campaign, field) for field in campaigns.CONFIG_FIELDS},
    )


def upload_out(upload: ProspectUpload, slug: str, *, detail: bool = False) -> ProspectUploadOut:
    body: dict[str, Any] = {
        "uuid": str(upload.id),
        "campaign": slug,
        "list_name": upload.list_name,
        "priority": upload.priority,
        "status": upload.status,
        "attempts": upload.attempts,
        "total_rows": upload.total_rows,
        "added_count": upload.added_count,
        "rejected_count": upload.rejected_count,
        "error": upload.error,
        "created_at": upload.created_at,
        "finished_at": upload.finished_at,
    }
    if detail:
        return ProspectUploadDetailOut(**body, rejects=upload.rejects)
    return ProspectUploadOut(**body)


class CampaignListQuery(PageQuery, NoNul):
    email: str | None = Field(default=None, max_length=320, description="The creator's email")
    workspace: uuid.UUID | None = Field(default=None, description="A workspace id of yours")


class CampaignStatusOut(BaseModel):
    campaign: str = Field(description="The campaign's name")
    slug: str
    active: bool
    timezone: str = Field(description="The campaign locale's time zone, whose day is 'today'")
    prospects: dict[str, int] = Field(description="Prospects per status")
    total_prospects: int
    calls_today: int = Field(description="Calls placed since midnight in `timezone`")
    answered_today: int = Field(description="Of those, the calls answered")
    active_now: int = Field(description="Calls in progress")
    as_of: IsoTime


class ProspectUploadForm(NoNul):
    """Multipart form: `file` (the CSV), `list_name` and `priority`."""

    # fields a client adds are allowed (and ignored)
    model_config = ConfigDict(extra="allow", json_schema_extra=file_fields_required("file"))

    file: FilePart = None

    list_name: str = Field(min_length=1, max_length=200)
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher dials first")


class ProspectIn(NoNul):
    model_config = ConfigDict(extra="forbid")

    phone_number: str = Field(min_length=1, max_length=32)
    name: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64, description="IANA zone")
    variables: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, max_length=100
    )

    @field_validator("variables")
    @classmethod
    def _short(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if len(key) > 100 or (isinstance(item, str) and len(item) > csv_reader.MAX_CELL_CHARS):
                raise ValueError("variable names up to 100 characters, values up to 1000")
        return value


class ProspectOut(BaseModel):
    id: str
    upload: str = Field(description="The prospect list's uuid")
    campaign: str
    phone_number: str
    name: str | None
    timezones: list[str]
    variables: dict[str, Any]
    priority: int
    status: ProspectStatus
    created_at: IsoTime


def prospect_out(prospect: Prospect, slug: str) -> dict[str, Any]:
    return ProspectOut(
        id=str(prospect.id),
        upload=str(prospect.upload_id),
        campaign=slug,
        phone_number=prospect.phone_number,
        name=prospect.name,
        timezones=prospect.timezones,
        variables=prospect.variables,
        priority=prospect.priority,
        status=prospect.status,
        created_at=prospect.created_at,
    ).model_dump(mode="json")


class OptionRangeOut(BaseModel):
    min: float
    max: float
    default: float
    type: str
    description: str


class LocaleOptionOut(BaseModel):
    code: str
    name: str
    country: str
    default_timezone: str


class OptionClockOut(BaseModel):
    default: str
    format: str
    description: str


class CampaignOptionsOut(BaseModel):
    locales: list[LocaleOptionOut]
    default_locale: str
    numeric: dict[str, OptionRangeOut]
    times: dict[str, OptionClockOut]
    dispositions: dict[str, Any]
    prospect_statuses: list[str]
    upload_statuses: list[str]
    upload: dict[str, Any]


class LiveCallQuery(PageQuery, NoNul):
    campaign: str | None = Field(default=None, max_length=80, description="A campaign's slug")


class LiveCallOut(BaseModel):
    call_id: str
    campaign_id: str
    campaign: str | None = Field(description="The campaign's slug")
    to_number: str = Field(description="Masked")
    from_number: str = Field(description="Masked")
    status: str
    created_at: IsoTime
    started_at: IsoTime | None
    answered_at: IsoTime | None
    duration_seconds: float = Field(description="Since answered (or started, or queued)")


class CacheClearedOut(BaseModel):
    cleared: int = Field(description="Cached configurations dropped")


class WebhookEventIn(NoNul):
    model_config = ConfigDict(extra="allow")  # an event may carry more (e.g. its type)

    campaign: str = Field(min_length=1, max_length=80)
    prospect_id: uuid.UUID | None = None
    phone_number: str | None = Field(default=None, max_length=32)
    disposition: str = Field(min_length=1, max_length=64)
    callback_at: datetime | None = None

    @model_validator(mode="after")
    def _names_a_prospect(self) -> WebhookEventIn:
        if self.prospect_id is None and not self.phone_number:
            raise ValueError("name the prospect: prospect_id or phone_number")
        if self.callback_at is not None and self.callback_at.tzinfo is None:
            self.callback_at = self.callback_at.replace(tzinfo=UTC)
        return self


class WebhookResultOut(BaseModel):
    applied: bool = Field(
        description="False when this signed request was applied before: nothing changed "
        '(and the body is just `{"applied": false}`)'
    )
    prospect_id: str | None = None
    status: ProspectStatus | None = None
    disposition: str | None = None
    callback_at: IsoTime | None = None

    @model_serializer(mode="wrap")
    def _only_applied_when_not(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return handler(self) if self.applied else {"applied": False}


class DncIn(NoNul):
    model_config = ConfigDict(extra="forbid")

    phone_number: str = Field(min_length=1, max_length=32, description="E.164")
    reason: str | None = Field(default=None, max_length=200)


class DncOut(BaseModel):
    phone_number: str
    reason: str | None
    source: str
    created_by_email: str | None
    created_at: IsoTime


def dnc_out(entry: DncNumber) -> DncOut:
    return DncOut(
        phone_number=entry.phone_number,
        reason=entry.reason,
        source=str(entry.source),
        created_by_email=entry.created_by_email,
        created_at=entry.created_at,
    )
