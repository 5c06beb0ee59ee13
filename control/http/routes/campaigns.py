"""`/api/v/`: campaigns (CRUD, public status, live calls, options, cache), prospect lists,
dispositions from signed webhooks, and the workspace do-not-call list (the request and
response models are in `campaign_schemas`)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from quart import Blueprint, current_app, request
from quart_schema import DataSource, validate_querystring, validate_request, validate_response

from control.dialing import campaigns, csv_reader, dnc, prospects
from control.dialing.campaigns import LIMITS
from control.errors import field_errors
from control.http.errors import APIError
from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import (
    current_principal,
    optional_principal,
    public,
    require_role,
    sees_workspace,
)
from control.http.ratelimit import per_minute
from control.http.request import takes_upload
from control.http.routes.campaign_schemas import (
    CacheClearedOut,
    CampaignCreate,
    CampaignDetailOut,
    CampaignListQuery,
    CampaignOptionsOut,
    CampaignOut,
    CampaignStatusOut,
    CampaignUpdate,
    DncIn,
    DncOut,
    LiveCallOut,
    LiveCallQuery,
    LocaleOptionOut,
    OptionClockOut,
    OptionRangeOut,
    ProspectIn,
    ProspectOut,
    ProspectUploadDetailOut,
    ProspectUploadForm,
    ProspectUploadOut,
    WebhookEventIn,
    WebhookResultOut,
    campaign_out,
    dnc_out,
    prospect_out,
    upload_out,
)
from control.models import Campaign, Locale, ProspectStatus, ProspectUploadStatus, Role
from control.security import utcnow
from control.services import webhooks as webhook_service
from control.services import workspaces as workspace_service

blueprint = Blueprint("campaigns", __name__, url_prefix="/api/v")


def _settings():
    return current_app.config["SETTINGS"]


def _redis():
    return current_app.extensions["redis"]


async def campaign_detail(campaign: Campaign) -> dict[str, Any]:
    counts = await campaigns.prospect_counts(campaign)
    uploads = await campaigns.uploads_of(campaign.id)
    return CampaignDetailOut(
        **campaign_out(campaign).model_dump(),
        uploads=[upload_out(upload, campaign.slug) for upload in uploads],
        prospects=counts,
        total_prospects=sum(counts.values()),
    ).model_dump(mode="json")


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
    # NotFound unless a member or a superuser
    await workspace_service.workspace_role(principal.require_user(), workspace)
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


@blueprint.get("/campaign/<slug>/status/")
@per_minute(60)
@public
@validate_response(CampaignStatusOut)
async def campaign_status(slug: str) -> dict:
    """A campaign's live counts: aggregate counts only, no personal data.

    Anyone may read them when the campaign has `public_status`; else only members of its
    workspace (anyone else gets the 404 of an unknown slug).
    """
    # Credentials sent are checked first (401 if wrong), before any campaign is looked at.
    principal = await optional_principal()

    async def member_of(workspace_id: uuid.UUID) -> bool:
        return principal is not None and await sees_workspace(principal, workspace_id)

    status = await campaigns.campaign_status(slug, member_of)
    return CampaignStatusOut(**status).model_dump(mode="json")


@blueprint.post("/upload/<slug>/")
@takes_upload
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
    return upload_out(upload, campaign.slug).model_dump(mode="json"), 202


@blueprint.get("/upload/<uuid:upload_id>/")
@require_role(Role.MEMBER)
@validate_response(ProspectUploadDetailOut)
async def get_upload(upload_id: uuid.UUID) -> dict:
    """A prospect list's status, counts and rejected rows.

    Statuses: pending, processing, completed, failed (with its error).
    """
    upload = await prospects.get_upload(current_principal().workspace_id, upload_id)
    return upload_out(upload, upload.campaign.slug, detail=True).model_dump(mode="json")


@blueprint.post("/upload/<uuid:upload_id>/retry/")
@require_role(Role.DEVELOPER)
@validate_response(ProspectUploadOut, 202)
async def retry_upload(upload_id: uuid.UUID) -> tuple[dict, int]:
    """Retry a failed upload (409 unless it failed).

    Prospects it already added are not added again.
    """
    workspace_id = current_principal().workspace_id
    upload = await prospects.retry_upload(workspace_id, upload_id)
    slug = await campaigns.slug_of(workspace_id, upload.campaign_id)
    return upload_out(upload, slug).model_dump(mode="json"), 202


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
    slug = await campaigns.slug_of(workspace_id, prospect.campaign_id)
    return prospect_out(prospect, slug), 201


@blueprint.get("/options/")
@require_role(Role.MEMBER)
@validate_response(CampaignOptionsOut)
async def get_campaign_options() -> dict:
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


@blueprint.get("/live/")
@require_role(Role.MEMBER)
@validate_querystring(LiveCallQuery)
@validate_response(Page[LiveCallOut])
async def list_live_calls(query_args: LiveCallQuery) -> dict:
    """The workspace's campaign calls in progress, oldest first, numbers masked.

    Filter by `campaign` (slug).
    """
    workspace_id = current_principal().workspace_id
    campaign_id = None
    if query_args.campaign:
        campaign_id = (await campaigns.get_campaign(workspace_id, query_args.campaign)).id
    page = await paginate(
        campaigns.live_calls(workspace_id, campaign_id), query_args, lambda call: call
    )
    slugs = await campaigns.slugs_by_id(workspace_id, {call.campaign_id for call in page.items})
    now = utcnow()
    page.items = [LiveCallOut(**campaigns.live_call_out(call, slugs, now)) for call in page.items]
    return page.model_dump(mode="json")


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


@blueprint.post("/webhook/")
@per_minute(600)
@public
@validate_response(WebhookResultOut)
async def receive_dialer_webhook() -> dict:
    """Apply a call outcome from outside (e.g. a human agent's disposition).

    Signed like outgoing webhooks (`X-Voxline-Timestamp`, `X-Voxline-Signature`) with the
    campaign's workspace secret; unsigned, stale or wrongly signed events get 401, and a signed
    request sent again answers `{"applied": false}` and changes nothing.
    """
    # All three named, so that quart's hints pick the overload that returns bytes.
    body = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    signature = request.headers.get(webhook_service.SIGNATURE_HEADER)
    campaign = await campaigns.verify_webhook(
        _settings(), body, request.headers.get(webhook_service.TIMESTAMP_HEADER), signature
    )
    try:
        event = WebhookEventIn.model_validate(await request.get_json(force=True))
    except ValidationError as error:
        errors = field_errors(error)
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in errors[:5])
        raise APIError(
            400, "VALIDATION_ERROR", f"Invalid request: {summary}", errors=errors
        ) from error
    prospect = await campaigns.apply_webhook_event(
        _redis(),
        campaign,
        signature or "",
        named_campaign=event.campaign,
        prospect_id=event.prospect_id,
        phone_number=event.phone_number,
        disposition=event.disposition,
        callback_at=event.callback_at,
    )
    if prospect is None:
        return WebhookResultOut(applied=False).model_dump(mode="json")
    return WebhookResultOut(
        applied=True,
        prospect_id=str(prospect.id),
        status=prospect.status,
        disposition=prospect.disposition or event.disposition,
        callback_at=prospect.callback_at,
    ).model_dump(mode="json")


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
