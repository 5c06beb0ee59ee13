"""A campaign end to end through the API: create it, upload prospects, watch it dial through
`status/` and `live/`, and read the outcomes on the prospects and the call logs.

The prospects' zone is chosen so that their local time is midday now (`Etc/GMT±N`), so the real
clock the job queue's dialer reads is inside their calling window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control.dialing import campaign_dialer
from control.models import Prospect
from telephony.config import get_settings as get_telephony_settings
from tests.control.batching import csv_of, report
from tests.control.campaign_dialing import midday_zone
from tests.control.campaigning import create_campaign, run_jobs, upload_list

PROSPECTS = ["+12125550101", "+12125550102", "+12125550103"]


async def test_a_campaign_dials_its_list_and_shows_it_live_then_the_outcomes(
    client, settings, redis, livekit, line, jobs_reach_livekit
):
    campaign = await create_campaign(
        client, line, name="Winter renewals", max_number_calls=2, public_status=True
    )
    slug = campaign["slug"]
    zone = midday_zone(datetime.now(UTC))
    rows = [f"{number},Prospect {index},{zone}" for index, number in enumerate(PROSPECTS)]
    uploaded = await upload_list(
        client, line["headers"], slug, csv_of(rows, "phone_number,name,timezone")
    )
    assert uploaded.status_code == 202, await uploaded.get_json()
    upload_id = (await uploaded.get_json())["uuid"]

    await run_jobs(settings, redis)  # reads the list (its periodic dialer may dial it already)
    status = await (
        await client.get(f"/api/v/upload/{upload_id}/", headers=line["headers"])
    ).get_json()
    assert status["status"] == "completed" and status["added_count"] == 3

    # The campaign's next tick (every dialer_interval) dials whatever is not calling yet.
    interval = timedelta(seconds=campaign["dialer_interval"] + 1)
    telephony = get_telephony_settings()
    await campaign_dialer.tick(settings, telephony, redis, now=datetime.now(UTC) + interval)
    # Dialed: every prospect is calling, each through its own LiveKit dispatch.
    assert sorted(p.status for p in await Prospect.filter(upload_id=upload_id)) == ["calling"] * 3
    assert len(livekit.dispatches) == 3

    live = await (await client.get("/api/v/live/", headers=line["headers"])).get_json()
    assert live["total"] == 3 and {call["campaign"] for call in live["items"]} == {slug}
    shown = str(live)
    assert all(number not in shown for number in PROSPECTS)  # masked
    assert {call["to_number"] for call in live["items"]} == {
        "+1212***0101",
        "+1212***0102",
        "+1212***0103",
    }

    public = await (await client.get(f"/api/v/campaign/{slug}/status/")).get_json()
    assert public["prospects"].get("calling") == 3 and public["active_now"] == 3
    assert "555" not in str(public) and "Prospect" not in str(public)

    # The calls end: one answered, one not answered, one busy.
    calls = {call["to_number"]: call["call_id"] for call in live["items"]}
    await report(
        client,
        calls["+1212***0101"],
        "completed",
        end_reason="user_hangup",
        answered_at=datetime.now(UTC).isoformat(),
    )
    await report(client, calls["+1212***0102"], "no_answer")
    await report(client, calls["+1212***0103"], "busy")
    # The tick after settles them.
    next_tick = datetime.now(UTC) + 2 * interval
    assert await campaign_dialer.tick(settings, telephony, redis, now=next_tick) == 0

    settled = {p.phone_number: p for p in await Prospect.filter(upload_id=upload_id)}
    assert (
        settled[PROSPECTS[0]].status == "completed" and settled[PROSPECTS[0]].outcome == "answered"
    )
    for number, outcome in ((PROSPECTS[1], "no_answer"), (PROSPECTS[2], "busy")):
        # attempts left: tried again after min_time_between_calls, not now
        assert settled[number].status == "retrying" and settled[number].outcome == outcome
        assert settled[number].next_attempt_at > datetime.now(UTC)
    assert len(livekit.dispatches) == 3  # nothing redialed early

    public = await (await client.get(f"/api/v/campaign/{slug}/status/")).get_json()
    assert public["active_now"] == 0 and public["answered_today"] == 1
    assert public["calls_today"] == 3 and public["prospects"].get("completed") == 1
    listed = await client.get(f"/calls?campaign={slug}", headers=line["headers"])
    items = (await listed.get_json())["items"]
    assert len(items) == 3 and {item["campaign"] for item in items} == {slug}
    assert {item["status"] for item in items} == {"completed", "no_answer", "busy"}
