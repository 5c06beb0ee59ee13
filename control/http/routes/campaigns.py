"""`/api/v/`: campaigns (CRUD, public status, live calls, options, cache), prospect lists,
dispositions from signed webhooks, and the workspace do-not-call list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from quart import Blueprint, current_app, request
from quart_schema import DataSource, validate_querystring, validate_request, validate_response

from control.dialing import campaigns, csv_reader, dnc, prospects
from control.dialing.campaigns import LIMITS
from control.http.errors import APIError, field_errors
from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, public, require_role, workspace_role
from control.http.ratelimit import per_minute
from control.http.schemas import IsoTime
from control.models import (
    Campaign,
    DncNumber,
    Locale,
    Prospect,
    ProspectStatus,
    ProspectUpload,
    ProspectUploadStatus,
    Role,
)
from control.security import utcnow
from control.services import webhooks as webhook_service
from control.services.agent_config import E164

blueprint = Blueprint("campaigns", __name__, url_prefix="/api/v")


def _settings():
    return current_app.config["SETTINGS"]


def _redis():
    return current_app.extensions["redis"]


def _check_clock(value: str) -> str:
    try:
        parsed = time.fromisoformat(value)
    except ValueError as error:
        raise ValueError("use HH:MM, e.g. 09:00") from error
    if len(value) != 5 or parsed.second or parsed.microsecond:
        raise ValueError("use HH:MM, e.g. 09:00")
    return parsed.strftime("%H:%M")


Clock = Annotated[str, AfterValidator(_check_clock)]


def _without_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL: refused here as bad input, not failed there.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _without_nul(key)
            _without_nul(item)
    return value


class NoNul(BaseModel):
    """A request model whose text fields (and dict keys and values) hold no NUL character."""

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _without_nul(value)


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
    call_ratio: float | None = _ranged("call_ratio")
    dialer_interval: int | None = _ranged("dialer_interval")
    max_active_calls: int | None = _ranged("max_active_calls")
    max_number_calls: int | None = _ranged("max_number_calls")
    min_time_between_calls: int | None = _ranged("min_time_between_calls")
    dupe_days: int | None = _ranged("dupe_days")
    expire_days: int | None = _ranged("expire_days")
    earliest_prospect_time: Clock | None = None
    latest_prospect_time: Clock | None = None
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


def upload_out(upload: ProspectUpload, slug: str, *, detail: bool = False) -> dict[str, Any]:
    body = {
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
        return ProspectUploadDetailOut(**body, rejects=upload.rejects).model_dump(mode="json")
    return ProspectUploadOut(**body).model_dump(mode="json")


async def campaign_detail(campaign: Campaign) -> dict[str, Any]:
    counts = await campaigns.prospect_counts(campaign.id)
    uploads = await campaigns.uploads_of(campaign.id)
    return CampaignDetailOut(
        **campaign_out(campaign).model_dump(),
        uploads=[upload_out(upload, campaign.slug) for upload in uploads],
        prospects=counts,
        total_prospects=sum(counts.values()),
    ).model_dump(mode="json")


class CampaignListQuery(PageQuery, NoNul):
    email: str | None = Field(default=None, max_length=320, description="The creator's email")
    workspace: uuid.UUID | None = Field(default=None, description="A workspace id of yours")


async def _listed_workspaces(workspace: uuid.UUID | None) -> list[uuid.UUID] | None:
    """The workspaces a list covers: the one asked for (if the caller may see it), else the
    caller's current one (a superuser with none sees every workspace)."""
    principal = current_principal()
    if workspace is None:
        if principal.workspace is None and principal.is_superuser:
            return None
        return [principal.workspace_id]
    if principal.api_key is not None:
        if principal.api_key.workspace_id != workspace:
            raise APIError(404, "WORKSPACE_NOT_FOUND", "No workspace with that id.")
        return [workspace]
    await workspace_role(principal.require_user(), workspace)  # 404 unless a member or superuser
    return [workspace]


@blueprint.get("/campaign/")
@require_role(Role.MEMBER)
@validate_querystring(CampaignListQuery)
@validate_response(Page[CampaignOut])
async def list_campaigns(query_args: CampaignListQuery) -> dict:
    """List campaigns, newest first.

    Filters: `email` (the creator) and `workspace` (an id of a workspace you belong to).
    """
    workspaces = await _listed_workspaces(query_args.workspace)
    query = campaigns.campaigns_of(workspaces, query_args.email)
    return (await paginate(query, query_args, campaign_out)).model_dump(mode="json")


@blueprint.post("/campaign/")
@require_role(Role.DEVELOPER)
@validate_request(CampaignCreate)
@validate_response(CampaignDetailOut, 201)
async def create_campaign(data: CampaignCreate) -> tuple[dict, int]:
    """Create a campaign.

    Its slug comes from the name: 409 for a name the workspace already uses.
    """
    principal = current_principal()
    campaign = await campaigns.create_campaign(
        principal.workspace_id,
        data.values(),
        user_id=principal.user.id if principal.user else None,
        email=principal.user.email if principal.user else None,
    )
    return await campaign_detail(campaign), 201


@blueprint.get("/campaign/<slug>/")
@require_role(Role.MEMBER)
@validate_response(CampaignDetailOut)
async def get_campaign(slug: str) -> dict:
    """Get a campaign with its prospect lists and prospect counts.

    Counts are per prospect status; each list has its status and counts.
    """
    return await campaign_detail(
        await campaigns.get_campaign(current_principal().workspace_id, slug)
    )


@blueprint.put("/campaign/<slug>/")
@require_role(Role.DEVELOPER)
@validate_request(CampaignCreate)
@validate_response(CampaignDetailOut)
async def replace_campaign(slug: str, data: CampaignCreate) -> dict:
    """Replace a campaign's settings (options left out take their defaults).

    `locale_name` cannot change; the slug stays. Clears the cached configuration.
    """
    campaign = await campaigns.update_campaign(
        _redis(), current_principal().workspace_id, slug, data.values(), replace=True
    )
    return await campaign_detail(campaign)


@blueprint.patch("/campaign/<slug>/")
@require_role(Role.DEVELOPER)
@validate_request(CampaignUpdate)
@validate_response(CampaignDetailOut)
async def update_campaign(slug: str, data: CampaignUpdate) -> dict:
    """Change some of a campaign's settings.

    `locale_name` cannot change; the slug stays. Clears the cached configuration.
    """
    campaign = await campaigns.update_campaign(
        _redis(), current_principal().workspace_id, slug, data.values(), replace=False
    )
    return await campaign_detail(campaign)


@blueprint.delete("/campaign/<slug>/")
@require_role(Role.DEVELOPER)
async def delete_campaign(slug: str) -> tuple[str, int]:
    """Delete a campaign with its prospect lists (clears the cache).

    Calls in progress finish; call logs stay.
    """
    await campaigns.delete_campaign(_settings(), _redis(), current_principal().workspace_id, slug)
    return "", 204


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


@blueprint.get("/campaign/<slug>/status/")
@per_minute(60)
@public
@validate_response(CampaignStatusOut)
async def campaign_status(slug: str) -> dict:
    """A campaign's live counts (public: aggregate counts only, no personal data).

    Prospects per status, calls today, answered today and calls in progress.
    """
    return CampaignStatusOut(**await campaigns.public_status(slug)).model_dump(mode="json")


class ProspectUploadForm(NoNul):
    """Multipart form: `file` (the CSV), `list_name` and `priority`."""

    model_config = ConfigDict(extra="allow")  # `file`, and anything a client adds

    list_name: str = Field(min_length=1, max_length=200)
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher dials first")


@blueprint.post("/upload/<slug>/")
@require_role(Role.DEVELOPER)
@validate_request(ProspectUploadForm, source=DataSource.FORM_MULTIPART)
@validate_response(ProspectUploadOut, 202)
async def upload_prospects(slug: str, data: ProspectUploadForm) -> tuple[dict, int]:
    """Upload a prospect list (CSV) to a campaign; it is read in the background.

    A phone column (phone_number, phone, mobile, contact or contact_number), optional `name`
    and `timezone`; other columns become variables. Follow it at `GET /api/v/upload/{uuid}/`.
    """
    campaign = await campaigns.get_campaign(current_principal().workspace_id, slug)
    files = await request.files
    file = files.get("file")
    if file is None:
        raise APIError(400, "NO_FILE", "Send the CSV as the multipart form field `file`.")
    upload = await prospects.store_upload(
        _settings(), campaign, data.list_name.strip() or "list", data.priority, file.stream
    )
    return upload_out(upload, campaign.slug), 202


@blueprint.get("/upload/<uuid:upload_id>/")
@require_role(Role.MEMBER)
@validate_response(ProspectUploadDetailOut)
async def get_upload(upload_id: uuid.UUID) -> dict:
    """A prospect list's status, counts and rejected rows.

    Statuses: pending, processing, completed, failed (with its error).
    """
    upload = await prospects.get_upload(current_principal().workspace_id, upload_id)
    return upload_out(upload, upload.campaign.slug, detail=True)


@blueprint.post("/upload/<uuid:upload_id>/retry/")
@require_role(Role.DEVELOPER)
@validate_response(ProspectUploadOut, 202)
async def retry_upload(upload_id: uuid.UUID) -> tuple[dict, int]:
    """Retry a failed upload (409 unless it failed).

    Prospects it already added are not added again.
    """
    upload = await prospects.retry_upload(current_principal().workspace_id, upload_id)
    campaign_slug = await Campaign.filter(id=upload.campaign_id).values_list("slug", flat=True)
    return upload_out(upload, campaign_slug[0]), 202


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


@blueprint.post("/prospect/<uuid:upload_id>/")
@require_role(Role.DEVELOPER)
@validate_request(ProspectIn)
@validate_response(ProspectOut, 201)
async def add_prospect(upload_id: uuid.UUID, data: ProspectIn) -> tuple[dict, int]:
    """Add one prospect to a prospect list (and so to its campaign).

    400 for an invalid number or time zone; 409 if the campaign already has the number.
    """
    workspace_id = current_principal().workspace_id
    prospect = await prospects.add_prospect(
        workspace_id,
        upload_id,
        data.phone_number,
        data.name.strip() or None if data.name else None,
        data.timezone,
        data.variables,
    )
    slug = await Campaign.filter(id=prospect.campaign_id).values_list("slug", flat=True)
    return prospect_out(prospect, slug[0]), 201


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


@blueprint.get("/options/")
@require_role(Role.MEMBER)
@validate_response(CampaignOptionsOut)
async def options() -> dict:
    """The allowed values and ranges of every campaign option, with their defaults.

    Locales (with their default zones), numeric ranges, the time format, disposition limits.
    """
    numeric = {
        field: OptionRangeOut(
            min=low,
            max=high,
            default=default,
            type="number" if isinstance(default, float) else "integer",
            description=campaigns.LIMIT_NOTES[field],
        )
        for field, (low, high, default) in LIMITS.items()
    }
    window = "in the prospect's own time zone; earliest must be before latest"
    return CampaignOptionsOut(
        locales=[
            LocaleOptionOut(code=str(code), **info) for code, info in campaigns.LOCALES.items()
        ],
        default_locale=Locale.USCA.value,
        numeric=numeric,
        times={
            "earliest_prospect_time": OptionClockOut(
                default=campaigns.DEFAULT_EARLIEST, format=campaigns.TIME_FORMAT, description=window
            ),
            "latest_prospect_time": OptionClockOut(
                default=campaigns.DEFAULT_LATEST, format=campaigns.TIME_FORMAT, description=window
            ),
        },
        dispositions={
            "max_count": campaigns.MAX_DISPOSITIONS,
            "name_max_length": 64,
            "description_max_length": 500,
            "flags": {
                "callback": "schedule a follow-up call at the time captured (callback_at)",
                "dnc": "add the number to the workspace's do-not-call list",
            },
        },
        prospect_statuses=[status.value for status in ProspectStatus],
        upload_statuses=[status.value for status in ProspectUploadStatus],
        upload={
            "max_bytes": prospects.MAX_BYTES,
            "max_rows": prospects.MAX_ROWS,
            "phone_columns": list(csv_reader.PHONE_ALIASES),
            "name_column": prospects.NAME_COLUMN,
            "timezone_columns": list(prospects.TIMEZONE_COLUMNS),
            "priority": {"min": -1000, "max": 1000, "default": 0, "note": "higher dials first"},
        },
    ).model_dump(mode="json")


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


@blueprint.get("/live/")
@require_role(Role.MEMBER)
@validate_querystring(LiveCallQuery)
@validate_response(Page[LiveCallOut])
async def live(query_args: LiveCallQuery) -> dict:
    """The workspace's campaign calls in progress, oldest first, numbers masked.

    Filter by `campaign` (slug).
    """
    workspace_id = current_principal().workspace_id
    campaign_id = None
    if query_args.campaign:
        campaign_id = (await campaigns.get_campaign(workspace_id, query_args.campaign)).id
    query = campaigns.live_calls(workspace_id, campaign_id)
    total = await query.count()
    calls = await query.offset((query_args.page - 1) * query_args.page_size).limit(
        query_args.page_size
    )
    slugs = await campaigns.slugs_by_id(workspace_id, {call.campaign_id for call in calls})
    now = utcnow()
    items = [LiveCallOut(**campaigns.live_call_out(call, slugs, now)) for call in calls]
    return Page.of(items, total, query_args).model_dump(mode="json")


class CacheClearedOut(BaseModel):
    cleared: int = Field(description="Cached configurations dropped")


@blueprint.delete("/delete-cache/")
@require_role(Role.DEVELOPER)
@validate_response(CacheClearedOut)
async def delete_cache() -> dict:
    """Clear the cached campaign configuration.

    Every campaign of your workspace (a superuser's clears every campaign's).
    """
    principal = current_principal()
    if principal.is_superuser:
        cleared = await campaigns.clear_cache(redis=_redis())
    else:
        cleared = await campaigns.clear_cache(redis=_redis(), workspace_id=principal.workspace_id)
    return {"cleared": cleared}


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
    prospect_id: str
    status: ProspectStatus
    disposition: str
    callback_at: IsoTime | None


@blueprint.post("/webhook/")
@per_minute(600)
@public
@validate_response(WebhookResultOut)
async def dialer_webhook() -> dict:
    """Apply a call outcome from outside (e.g. a human agent's disposition).

    Signed like outgoing webhooks (`X-Voxline-Timestamp`, `X-Voxline-Signature`) with the
    campaign's workspace secret; unsigned, stale or wrongly signed events get 401.
    """
    body = await request.get_data()
    campaign, payload = await campaigns.verify_webhook(
        _settings(),
        body,
        request.headers.get(webhook_service.TIMESTAMP_HEADER),
        request.headers.get(webhook_service.SIGNATURE_HEADER),
    )
    try:
        event = WebhookEventIn.model_validate(payload)
    except ValidationError as error:
        errors = field_errors(error)
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in errors[:5])
        raise APIError(
            400, "VALIDATION_ERROR", f"Invalid request: {summary}", errors=errors
        ) from error
    prospect = await campaigns.find_prospect(campaign, event.prospect_id, event.phone_number)
    await campaigns.apply_disposition(
        prospect, event.disposition, callback_at=event.callback_at, source="webhook"
    )
    return WebhookResultOut(
        prospect_id=str(prospect.id),
        status=prospect.status,
        disposition=prospect.disposition or event.disposition,
        callback_at=prospect.callback_at,
    ).model_dump(mode="json")


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


@blueprint.get("/dnc/")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[DncOut])
async def list_dnc(query_args: PageQuery) -> dict:
    """The workspace's do-not-call list, newest first.

    The dialer checks it before every dial.
    """
    query = dnc.dnc_of(current_principal().workspace_id)
    return (await paginate(query, query_args, dnc_out)).model_dump(mode="json")


@blueprint.post("/dnc/")
@require_role(Role.DEVELOPER)
@validate_request(DncIn)
@validate_response(DncOut, 201)
@validate_response(DncOut, 200)
async def add_dnc(data: DncIn) -> tuple[dict, int]:
    """Add a number to the do-not-call list (E.164).

    Idempotent: a number already listed answers 200 with its entry.
    """
    principal = current_principal()
    entry, created = await dnc.add_dnc(
        principal.workspace_id,
        dnc.normalise(data.phone_number),
        reason=data.reason,
        created_by_email=principal.user.email if principal.user else None,
    )
    return dnc_out(entry).model_dump(mode="json"), 201 if created else 200


@blueprint.delete("/dnc/<number>/")
@require_role(Role.DEVELOPER)
async def remove_dnc(number: str) -> tuple[str, int]:
    """Remove a number from the do-not-call list (404 if it is not on it)."""
    await dnc.remove_dnc(current_principal().workspace_id, dnc.normalise(number[:32]))
    return "", 204
