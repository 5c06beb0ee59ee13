"""Data migrations: rows written before a migration come out of it right.

Each test migrates a scratch database of the selected dialect with tortoise's own command, as an
operator's upgrade does, writes rows the old schema knew, then migrates to the newest schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import TEST_DATABASE_URL, _recreate_database


@pytest.fixture
async def scratch_url(database: str, tmp_path) -> AsyncIterator[str]:
    if database == "sqlite":
        yield f"sqlite://{tmp_path}/voxline.db"
        return
    url = f"{TEST_DATABASE_URL}_migrations_{os.getpid()}"
    await _recreate_database(url)
    yield url
    await _recreate_database(url, create=False)


async def migrate(url: str, *target: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tortoise",
        "-c",
        "control.db.TORTOISE_ORM",
        "migrate",
        "models",
        *target,
        env={**os.environ, "VOXLINE_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def sql(url: str, statement: str, *values) -> list[tuple]:
    """One statement with `$n` placeholders, on either dialect."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        for number in range(len(values), 0, -1):
            statement = statement.replace(f"${number}", "?")

        def run() -> list[tuple]:
            with sqlite3.connect(path) as connection:
                return connection.execute(statement, [str(value) for value in values]).fetchall()

        return await asyncio.to_thread(run)
    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        return [tuple(row) for row in await connection.fetch(statement, *values)]
    finally:
        await connection.close()


async def new_workspace(url: str) -> uuid.UUID:
    """A workspace row, as every schema since the first knows it."""
    workspace = uuid.uuid4()
    await sql(
        url,
        'INSERT INTO "workspaces" ("id", "name", "slug", "created_at") '
        "VALUES ($1, 'Acme', 'acme', CURRENT_TIMESTAMP)",
        workspace,
    )
    return workspace


async def test_0014_gives_each_webhook_delivery_the_call_it_is_about(scratch_url):
    await migrate(scratch_url, "0013_recordings")
    workspace, call = await new_workspace(scratch_url), uuid.uuid4()
    payloads = {
        "call event": {"type": "call_ended", "data": {"call_id": str(call)}},
        "batch event": {"type": "batch_completed", "data": {"batch_id": "b1"}},
        "not a call id": {"type": "call_started", "data": {"call_id": "campaign-prospect:1:2"}},
    }
    for name, payload in payloads.items():
        await sql(
            scratch_url,
            'INSERT INTO "webhook_deliveries" ("id", "workspace_id", "event_type", "payload", '
            '"url", "status", "attempts", "next_attempt_at", "created_at") VALUES '
            "($1, $2, $3, $4, 'https://hooks.example.com/x', 'delivered', 1, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            uuid.uuid4(),
            workspace,
            name,
            json.dumps(payload),
        )

    await migrate(scratch_url)

    rows = await sql(scratch_url, 'SELECT "event_type", "call_id" FROM "webhook_deliveries"')
    calls = {name: str(call_id) if call_id else None for name, call_id in rows}
    assert calls == {"call event": str(call), "batch event": None, "not a call id": None}


async def test_0015_and_0016_keep_campaigns_private_and_give_the_dialers_their_own_keys(
    scratch_url,
):
    await migrate(scratch_url, "0014_delivery_call")
    workspace, campaign = await new_workspace(scratch_url), uuid.uuid4()
    await sql(
        scratch_url,
        'INSERT INTO "campaigns" ("id", "workspace_id", "name", "slug", "locale_name", "active", '
        '"agent_phone_number", "call_ratio", "dialer_interval", "max_active_calls", '
        '"max_number_calls", "min_time_between_calls", "dupe_days", "expire_days", '
        '"earliest_prospect_time", "latest_prospect_time", "dispositions", "created_at", '
        "\"updated_at\") VALUES ($1, $2, 'Renewals', 'renewals', 'USCA', TRUE, "
        "'+16505551234', 1.0, 10, 0, 10, 30, 90, 90, '09:00', '21:00', '[]', "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        campaign,
        workspace,
    )
    client_key = f"batch-item:{uuid.uuid4()}:1"
    await sql(
        scratch_url,
        'INSERT INTO "idempotency_keys" ("id", "workspace_id", "key", "fingerprint", '
        "\"created_at\") VALUES ($1, $2, $3, 'a', CURRENT_TIMESTAMP)",
        uuid.uuid4(),
        workspace,
        client_key,
    )

    await migrate(scratch_url, "0016_dialer_attempt_keys")

    # A campaign made before keeps its status page to its workspace until it says otherwise.
    assert await sql(scratch_url, 'SELECT "public_status" FROM "campaigns"') in ([(False,)], [(0,)])
    # The same key in the dialers' table is another key: the client's row does not clash.
    await sql(
        scratch_url,
        'INSERT INTO "dialer_attempt_keys" ("id", "workspace_id", "key", "fingerprint", '
        "\"created_at\") VALUES ($1, $2, $3, 'b', CURRENT_TIMESTAMP)",
        uuid.uuid4(),
        workspace,
        client_key,
    )
    assert await sql(scratch_url, 'SELECT "fingerprint" FROM "idempotency_keys"') == [("a",)]


async def test_0020_marks_the_hour_of_every_call_placed_before_it(scratch_url):
    await migrate(scratch_url, "0019_workspace_providers")
    workspace = await new_workspace(scratch_url)
    await sql(
        scratch_url,
        'INSERT INTO "calls" ("id", "workspace_id", "call_type", "call_direction", "status", '
        '"created_at", "transcript", "usage", "latencies", "transfers", "extracted_data", '
        "\"dynamic_variables\") VALUES ($1, $2, 'phone', 'outbound', 'completed', "
        "'2026-03-03 10:15:00+00:00', '[]', '{}', '[]', '[]', '{}', '{}')",
        uuid.uuid4(),
        workspace,
    )

    await migrate(scratch_url, "0020_report_rollups")

    # 2026-03-03 10:00 UTC is hour 492,370 since the epoch: the first rollup job computes it.
    hours = await sql(scratch_url, 'SELECT "workspace_id", "hour" FROM "report_stale_hours"')
    assert [(str(workspace_id), hour) for workspace_id, hour in hours] == [(str(workspace), 492370)]
