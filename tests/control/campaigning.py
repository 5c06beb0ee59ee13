"""Helpers of the campaign tests: campaign bodies, prospect-list uploads, jobs, signed webhooks."""

from __future__ import annotations

import json
import time
from typing import Any

from control import jobs
from control.services import webhooks
from tests.control.batching import multipart

LINE_NUMBER = "+16505551234"

DISPOSITIONS = [
    {"name": "interested", "description": "Wants to hear more"},
    {"name": "call_back", "description": "Asked to be called later", "callback": True},
    {"name": "do_not_call", "description": "Asked never to be called", "dnc": True},
]


def campaign_body(line: dict, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Spring outreach",
        "agent_id": str(line["agent"].id),
        "agent_phone_number": line.get("number", LINE_NUMBER),
        **fields,
    }


async def create_campaign(client, line: dict, headers=None, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v/campaign/", json=campaign_body(line, **fields), headers=headers or line["headers"]
    )
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def upload_list(
    client,
    headers: dict,
    slug: str,
    file: bytes | None,
    list_name: str | None = "Leads",
    **fields: Any,
):
    form = {"list_name": list_name, **fields} if list_name is not None else dict(fields)
    body, content_type = multipart(form, file)
    return await client.post(
        f"/api/v/upload/{slug}/",
        data=body,
        headers={**headers, "Content-Type": content_type},
    )


async def run_jobs(settings, redis) -> None:
    await jobs.drain(jobs.JobContext(settings, redis))


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers of an event signed as Voxline signs its own webhooks."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        webhooks.TIMESTAMP_HEADER: str(stamp),
        webhooks.SIGNATURE_HEADER: webhooks.sign(secret, stamp, body),
    }


def event_body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()
